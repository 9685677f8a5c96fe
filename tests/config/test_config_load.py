"""Loading the configuration: every kind of error names its source, key and problem; overrides and
secret resolution follow the documented rules."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from albra.config import ConfigError, check_config, load_settings
from albra.config.loader import project_root
from albra.model import PositionMode
from config_fixtures import LIVE_MASTER, PAPER_BODY, PAPER_ONLY, fake_key


def errors_of(path: Path | str | None, account: str | None = None) -> list[str]:
    return [str(p) for p in check_config(path, account=account).errors]


def test_minimal_paper_config_loads_with_defaults(write_config, project):
    path = write_config(PAPER_ONLY)
    s = load_settings(str(path))
    demo = s.accounts["demo"]
    assert demo.mode == "paper" and demo.paper_balance == Decimal("10000")
    assert demo.position_mode is PositionMode.ONE_WAY
    assert s.risk.daily_loss_pct == 3.0 and s.risk.mdd_halt_pct == 60.0
    assert [(lv.drawdown_pct, lv.size_multiplier) for lv in s.risk.mdd_levels] == [
        (30, 0.7), (35, 0.5), (40, 0.3), (50, 0.1)]
    # config/ lives in the project root: relative paths and .env resolve there, not in config/.
    assert s.base_dir == project.resolve()
    assert s.paths.state_dir == project.resolve() / "state"
    assert s.paths.log_dir == project.resolve() / "logs"
    assert s.db_path == project.resolve() / "state" / "albra.db"
    assert s.env_file == project.resolve() / ".env"
    # Paper with no replay table: the bundled candle file of each traded symbol.
    assert demo.replay["BTCUSDT"].name == "BTCUSDT-15m.csv.gz" and demo.replay["BTCUSDT"].is_file()
    assert s.require_secrets("demo") is None  # paper needs no key


def test_project_root_rule(tmp_path):
    assert project_root(tmp_path / "config" / "a.toml") == tmp_path.resolve()
    assert project_root(tmp_path / "etc" / "a.toml") == (tmp_path / "etc").resolve()


def test_account_without_mode_is_a_missing_key(write_config):
    path = write_config("""
        [accounts.demo]
        paper_balance = 500
    """)
    assert errors_of(path) == ["config/albra.toml: accounts.demo.mode: required key is missing"]


def test_wrong_type_names_file_key_and_value(write_config):
    path = write_config(PAPER_ONLY.replace("leverage = 5", 'leverage = "ten"'))
    (err,) = errors_of(path)
    assert err.startswith("config/albra.toml: accounts.demo.strategies[0].leverage: Input should be a valid integer")
    assert err.endswith('got "ten"')


def test_unknown_key_names_the_key_and_the_file(write_config):
    path = write_config(PAPER_ONLY.replace("leverage = 5", "leverage = 5\nleverge = 5"))
    assert errors_of(path) == ["config/albra.toml: accounts.demo.strategies[0].leverge: unknown key 'leverge'"]
    path = write_config("[pathz]\nstate_dir = 'x'\n")
    assert errors_of(path) == ["config/albra.toml: pathz: unknown key 'pathz'"]


def test_unknown_strategy_name_lists_known_ones(write_config):
    path = write_config(PAPER_ONLY.replace('name = "TEMPLATE"', 'name = "NOPE"'))
    (err,) = errors_of(path)
    assert err.startswith("config/albra.toml: accounts.demo.strategies[0].name: unknown strategy 'NOPE'")
    assert "TEMPLATE" in err  # the registry's list of known names


def test_strategy_name_is_case_insensitive(write_config):
    path = write_config(PAPER_ONLY.replace('name = "TEMPLATE"', 'name = "template"'))
    assert errors_of(path) == []


def test_strategy_params_are_validated_against_the_strategy(write_config):
    path = write_config(PAPER_ONLY + "params = { stop_loss_pct = 2.0, bogus = 1 }\n")
    errs = errors_of(path)
    assert any(e.startswith("config/albra.toml: accounts.demo.strategies[0].params.stop_loss_pct: "
                            "Input should be less than 1") for e in errs), errs
    assert "config/albra.toml: accounts.demo.strategies[0].params.bogus: unknown key 'bogus'" in errs


def test_missing_secret_for_live_account_names_env_var_and_account(write_config):
    path = write_config(LIVE_MASTER)
    assert errors_of(path) == [
        "env BINANCE_API_KEY: accounts.master.api_key_env: API key for live account 'master' is not set: "
        "set BINANCE_API_KEY in the environment or .env",
        "env BINANCE_SECRET_KEY: accounts.master.api_secret_env: API secret for live account 'master' is not "
        "set: set BINANCE_SECRET_KEY (or BINANCE_API_SECRET) in the environment or .env",
    ]
    s = load_settings(path)  # loading for e.g. status --offline needs no key
    with pytest.raises(ConfigError, match="BINANCE_API_KEY.*'master'"):
        s.require_secrets("master")


def test_account_filter_turns_other_accounts_missing_secrets_into_warnings(write_config):
    path = write_config(LIVE_MASTER + PAPER_BODY)
    result = check_config(path, account="demo")
    assert result.ok and result.errors == []
    assert {w.source for w in result.warnings} == {"env BINANCE_API_KEY", "env BINANCE_SECRET_KEY"}
    assert [str(e) for e in check_config(path, account="nope").errors][0] == (
        "config/albra.toml: accounts.nope: no such account (configured: demo, master)")


def test_malformed_toml_gives_line_and_column(write_config):
    path = write_config('[paths]\nstate_dir = "state"\nlog_dir "logs"\n')
    (err,) = errors_of(path)
    assert err.startswith("config/albra.toml:3:9: malformed TOML at line 3, column 9: ")


@pytest.mark.parametrize("name", ["Master", "1acc", "a" * 17, "bad.name", "sp ace"])
def test_bad_account_name(write_config, name):
    path = write_config(f'[accounts."{name}"]\nmode = "paper"\n')
    (err,) = errors_of(path)
    assert err.startswith(f"config/albra.toml: accounts: account name {name!r} is invalid")


@pytest.mark.parametrize("lev,msg", [(0, "greater than or equal to 1"), (126, "less than or equal to 125")])
def test_leverage_out_of_range(write_config, lev, msg):
    path = write_config(PAPER_ONLY.replace("leverage = 5", f"leverage = {lev}"))
    (err,) = errors_of(path)
    assert err.startswith(f"config/albra.toml: accounts.demo.strategies[0].leverage: Input should be {msg}")


@pytest.mark.parametrize("size", [0, -1, 100.5])
def test_size_pct_bounds(write_config, size):
    path = write_config(PAPER_ONLY.replace("size_pct = 10", f"size_pct = {size}"))
    (err,) = errors_of(path)
    assert err.startswith("config/albra.toml: accounts.demo.strategies[0].size_pct: Input should be")


def test_duplicate_strategy_symbol_in_one_account(write_config):
    strat = PAPER_ONLY[PAPER_ONLY.index("[[accounts"):]
    path = write_config(PAPER_ONLY + strat.replace('"BTCUSDT"', '"ETHUSDT", "BTCUSDT"'))
    assert errors_of(path) == [
        "config/albra.toml: accounts.demo.strategies[1].symbols: TEMPLATE already runs BTCUSDT in "
        "strategies[0] of this account (strategy+symbol must be unique per account)"]


def test_bad_timeframe_and_symbol(write_config):
    path = write_config(PAPER_ONLY.replace('"1h"', '"7m"').replace('"BTCUSDT"', '"btcusdt"'))
    errs = errors_of(path)
    assert any("accounts.demo.strategies[0].timeframe: unknown timeframe '7m'" in e for e in errs), errs
    assert any("accounts.demo.strategies[0].symbols: symbol 'btcusdt' must be an upper-case" in e for e in errs)


def test_mdd_levels_must_ascend_and_stay_below_halt(write_config):
    path = write_config("""
        [risk]
        mdd_halt_pct = 45
        mdd_levels = [{ drawdown_pct = 30, size_multiplier = 0.5 }, { drawdown_pct = 50, size_multiplier = 0.2 }]
    """)
    (err,) = errors_of(path)
    assert err == ("config/albra.toml: risk: mdd_levels[1].drawdown_pct (50.0) must be below mdd_halt_pct (45.0)")


def test_secret_literal_in_toml_is_refused_without_echoing_it(write_config):
    key = fake_key(1)
    path = write_config(LIVE_MASTER.replace('mode = "live"', f'mode = "live"\napi_key = "{key}"') +
                        f'\n[accounts.demo]\nmode = "paper"\nbase_url = "http://x/{fake_key(2)}"\n')
    errs = errors_of(path, account="demo")
    assert errs[0] == ("config/albra.toml: accounts.master.api_key: secrets are not allowed in the config file: "
                       "put the value in the environment or .env and name the variable with api_key_env")
    assert errs[1].startswith("config/albra.toml: accounts.demo.base_url: this value looks like an API key")
    assert not any(key in e or fake_key(2) in e for e in errs)


def test_default_config_missing_loads_the_shipped_example_for_paper_only(project, clean_env):
    from albra.config import ConfigError

    s = load_settings(None)
    assert s._example and s.config_path.name == "albra.example.toml"
    assert s.require_secrets("demo") is None  # the paper demo runs
    with pytest.raises(ConfigError, match="albra loaded its shipped example; a live account needs your own"):
        s.require_secrets("master")  # a live account never starts from the example, keys or not
    warnings = [str(p) for p in check_config(None, account="demo").warnings]
    assert any("this is the example shipped with albra" in w for w in warnings), warnings


def test_albra_config_env_selects_the_file(write_config, clean_env):
    path = write_config(PAPER_ONLY, name="other.toml")
    clean_env.setenv("ALBRA_CONFIG", str(path))
    assert "demo" in load_settings(None).accounts
    clean_env.setenv("ALBRA_CONFIG", "nowhere.toml")
    assert errors_of(None) == ["nowhere.toml: config file named by env ALBRA_CONFIG does not exist"]


def test_env_overrides(write_config, clean_env, tmp_path):
    path = write_config(LIVE_MASTER + PAPER_BODY)
    clean_env.setenv("ALBRA_ACCOUNTS__DEMO__PAPER_BALANCE", "20000.5")
    clean_env.setenv("ALBRA_ACCOUNTS__MASTER__MODE", "demo")
    clean_env.setenv("ALBRA_ACCOUNTS__MASTER__POSITION_MODE", "hedge")
    clean_env.setenv("ALBRA_PATHS__STATE_DIR", str(tmp_path / "var-state"))
    clean_env.setenv("ALBRA_PATHS__LOG_DIR", "var/log")
    clean_env.setenv("ALBRA_TELEGRAM__CHAT_IDS", "[111, -222]")
    clean_env.setenv("ALBRA_RISK__KELLY__MIN_TRADES", "30")
    replay = tmp_path / "eth.csv"
    replay.write_text("x")
    clean_env.setenv("ALBRA_ACCOUNTS__DEMO__REPLAY__BTCUSDT", str(replay))  # arrives lower-cased
    s = load_settings(path)
    assert s.accounts["demo"].replay == {"BTCUSDT": replay}
    assert s.accounts["demo"].paper_balance == Decimal("20000.5")
    assert s.accounts["master"].mode == "demo"
    assert s.accounts["master"].position_mode is PositionMode.HEDGE
    assert s.accounts["master"].strategies[0].leverage == 10  # the rest of the TOML account survives
    assert s.paths.state_dir == tmp_path / "var-state"
    assert s.paths.log_dir == s.base_dir / "var" / "log"  # relative override: project root too
    assert s.telegram.chat_ids == [111, -222]
    assert s.risk.kelly.min_trades == 30 and s.risk.kelly.fraction == 0.5


def test_bad_env_override_names_the_env_var(write_config, clean_env):
    path = write_config(PAPER_ONLY)
    clean_env.setenv("ALBRA_ACCOUNTS__DEMO__PAPER_BALANCE", "lots")
    clean_env.setenv("ALBRA_ACCOUNTS__DEMO__MODE", "real")
    errs = errors_of(path)
    assert "env ALBRA_ACCOUNTS__DEMO__PAPER_BALANCE: accounts.demo.paper_balance: Input should be a valid " \
           "decimal, got \"lots\"" in errs, errs
    assert any(e.startswith("env ALBRA_ACCOUNTS__DEMO__MODE: accounts.demo.mode: Input should be 'live', "
                            "'demo' or 'paper'") for e in errs), errs


def test_unknown_env_section_is_an_error_but_plain_albra_vars_are_not(write_config, clean_env):
    path = write_config(PAPER_ONLY)
    clean_env.setenv("ALBRA_LOG_LEVEL", "DEBUG")  # single word, not a section: someone else's variable
    assert errors_of(path) == []
    clean_env.setenv("ALBRA_ACOUNTS__DEMO__MODE", "paper")
    assert errors_of(path) == [
        "env ALBRA_ACOUNTS__DEMO__MODE: acounts.demo.mode: unknown setting section 'acounts'; "
        "known: accounts, paths, risk, runner, telegram"]


def test_secrets_from_dotenv_file_without_touching_os_environ(write_config, project):
    path = write_config(LIVE_MASTER)
    key, secret = fake_key(3), fake_key(4)
    (project / ".env").write_text(f"# keys\nBINANCE_API_KEY={key}\nexport BINANCE_SECRET_KEY='{secret}'\n")
    assert errors_of(path) == []
    s = load_settings(path)
    pair = s.require_secrets("master")
    assert pair is not None
    assert pair.api_key.reveal() == key and pair.api_secret.reveal() == secret
    assert pair.api_key.source == str(project.resolve() / ".env")
    assert "BINANCE_API_KEY" not in os.environ  # .env is never loaded into the process environment
    assert key not in repr(pair) and key not in str(pair.api_key) and secret not in f"{pair}"


def test_environment_wins_over_dotenv(write_config, project, clean_env):
    path = write_config(LIVE_MASTER)
    (project / ".env").write_text(f"BINANCE_API_KEY={fake_key(5)}\nBINANCE_SECRET_KEY={fake_key(6)}\n")
    clean_env.setenv("BINANCE_API_KEY", fake_key(7))
    pair = load_settings(path).require_secrets("master")
    assert pair.api_key.reveal() == fake_key(7) and pair.api_key.source == "environment"
    assert pair.api_secret.reveal() == fake_key(6)


def test_malformed_dotenv_is_an_error_naming_the_line(write_config, project):
    path = write_config(PAPER_ONLY)
    (project / ".env").write_text("GOOD=1\nthis is not an assignment\n")
    assert errors_of(path) == [".env: line 2: cannot parse this line (expected NAME=value)"]


def test_original_env_names(write_config, clean_env):
    path = write_config(LIVE_MASTER + """
        [accounts.sub1]
        mode = "live"
        [accounts.alt-2]
        mode = "demo"
    """)
    clean_env.setenv("BINANCE_API_KEY", fake_key(10))
    clean_env.setenv("BINANCE_API_SECRET", fake_key(11))  # the drifted name from the original docs
    clean_env.setenv("SUB1_API_KEY", fake_key(12))
    clean_env.setenv("SUB1_API_SECRET", fake_key(13))
    clean_env.setenv("ALT_2_API_KEY", fake_key(14))
    clean_env.setenv("ALT_2_API_SECRET", fake_key(15))
    assert errors_of(path) == []
    s = load_settings(path)
    m = s.require_secrets("master")
    assert m.api_secret.env_var == "BINANCE_API_SECRET" and m.api_secret.reveal() == fake_key(11)
    assert s.require_secrets("sub1").api_key.reveal() == fake_key(12)
    assert s.require_secrets("alt-2").api_secret.env_var == "ALT_2_API_SECRET"


def test_explicit_env_names_replace_the_defaults(write_config, clean_env):
    path = write_config(LIVE_MASTER.replace('mode = "live"', 'mode = "live"\napi_key_env = "MY_KEY"\n'
                                                              'api_secret_env = "MY_SECRET"'))
    clean_env.setenv("BINANCE_API_KEY", fake_key(20))
    clean_env.setenv("BINANCE_SECRET_KEY", fake_key(21))
    errs = errors_of(path)
    assert [e.split(":")[0] for e in errs] == ["env MY_KEY", "env MY_SECRET"]


def test_telegram_chat_id_env_adds_a_chat(write_config, clean_env):
    path = write_config("[telegram]\nenabled = false\nchat_ids = [5]\n")
    clean_env.setenv("TELEGRAM_CHAT_ID", "123456, -1009")
    assert load_settings(path).telegram.chat_ids == [5, 123456, -1009]
    clean_env.setenv("TELEGRAM_CHAT_ID", "@mychannel")
    assert errors_of(path) == ["env TELEGRAM_CHAT_ID: telegram.chat_ids: '@mychannel' is not a Telegram chat id "
                               "(an integer; several separated by commas)"]


def test_telegram_token_required_when_enabled(write_config, clean_env, project):
    from config_fixtures import fake_bot_token

    path = write_config(PAPER_BODY)  # telegram enabled by default
    assert errors_of(path) == ["env TELEGRAM_BOT_TOKEN: telegram.token_env: Telegram is enabled but "
                               "TELEGRAM_BOT_TOKEN is not set (environment or .env)"]
    assert check_config(path, account="demo").ok  # a warning only when checking one account
    token = fake_bot_token(1)
    (project / ".env").write_text(f"TELEGRAM_BOT_TOKEN={token}\n")
    assert errors_of(path) == []
    assert load_settings(path).telegram_token().reveal() == token


def test_effective_risk_layers_account_and_strategy_overrides(write_config):
    path = write_config(PAPER_ONLY.replace('mode = "paper"', 'mode = "paper"\nrisk = { daily_loss_pct = 5.0, '
                                           'max_open_legs = 2 }') + "risk = { max_open_legs = 1 }\n")
    s = load_settings(path)
    assert s.effective_risk("demo").daily_loss_pct == 5.0 and s.effective_risk("demo").max_open_legs == 2
    st = s.effective_risk("demo", 0)
    assert (st.daily_loss_pct, st.max_open_legs, st.mdd_halt_pct) == (5.0, 1, 60.0)
    with pytest.raises(ConfigError, match=r"accounts.nope: no such account \(configured: demo\)"):
        s.effective_risk("nope")


def test_replay_file_paths(write_config, project):
    path = write_config(PAPER_ONLY.replace('mode = "paper"', 'mode = "paper"\nreplay = { BTCUSDT = "data/b.csv" }'))
    assert errors_of(path) == [
        f"config/albra.toml: accounts.demo.replay.BTCUSDT: replay file {project.resolve()}/data/b.csv does not exist"]
    (project / "data").mkdir()
    (project / "data" / "b.csv").write_text("x")
    assert load_settings(path).accounts["demo"].replay["BTCUSDT"] == project.resolve() / "data" / "b.csv"
    path = write_config(PAPER_ONLY.replace('"BTCUSDT"', '"DOGEUSDT"'))
    assert errors_of(path) == [
        f"config/albra.toml: accounts.demo.replay: no replay data for DOGEUSDT in {project.resolve()}/state/data nor "
        "bundled: `albra data download DOGEUSDT --start YYYY-MM-DD`, or set accounts.demo.replay.DOGEUSDT to a "
        "candle file"]
    # downloaded data is found by symbol (the finest interval), no path to write
    (project / "state" / "data" / "DOGEUSDT").mkdir(parents=True)
    (project / "state" / "data" / "DOGEUSDT" / "DOGEUSDT-1h.csv.gz").write_bytes(b"")
    (project / "state" / "data" / "DOGEUSDT" / "DOGEUSDT-15m.csv.gz").write_bytes(b"")
    assert load_settings(path).accounts["demo"].replay["DOGEUSDT"] == (
        project.resolve() / "state" / "data" / "DOGEUSDT" / "DOGEUSDT-15m.csv.gz")


def test_all_problems_reported_at_once(write_config):
    path = write_config(PAPER_ONLY.replace("leverage = 5", "leverage = 500").replace("size_pct = 10", "size_pct = 0")
                        + '[accounts.other]\nmode = "nope"\n')
    errs = errors_of(path)
    assert len(errs) == 3, errs


def test_shipped_example_config_is_valid_for_demo(clean_env, repo_root):
    result = check_config(repo_root / "config" / "albra.example.toml", account="demo")
    assert [str(p) for p in result.errors] == []
    s = result.settings
    master, sub1 = s.accounts["master"], s.accounts["sub1"]
    assert (master.mode, master.strategies[0].name, master.strategies[0].leverage, master.strategies[0].size_pct) == (
        "live", "TFPE", 10, 24.0)
    assert (sub1.mode, sub1.strategies[0].name, sub1.strategies[0].leverage, sub1.strategies[0].size_pct) == (
        "live", "ZLMACD_ICHIMOKU", 8, 24.0)
    assert s.accounts["demo"].mode == "paper"
    assert {st.name for st in s.accounts["demo"].strategies} == {"TFPE", "ZLMACD_ICHIMOKU"}
    # Without --account, the live accounts' keys are required.
    assert {p.source for p in check_config(repo_root / "config" / "albra.example.toml").errors} >= {
        "env BINANCE_API_KEY", "env BINANCE_SECRET_KEY", "env SUB1_API_KEY", "env SUB1_API_SECRET"}


def test_testnet_is_refused_with_the_way_to_demo(write_config, clean_env):
    path = write_config(LIVE_MASTER.replace('mode = "live"', 'mode = "testnet"'))
    errs = errors_of(path)
    assert len(errs) == 1 and "accounts.master.mode" in errs[0], errs
    assert 'Use mode = "demo"' in errs[0] and "demo.binance.com" in errs[0], errs
