"""``albra config check`` as an operator runs it: a real subprocess, real exit codes, and no secret
character in its output (human or --json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from config_fixtures import LIVE_MASTER, PAPER_BODY, PAPER_ONLY, fake_bot_token, fake_key

ROOT = Path(__file__).resolve().parents[2]


def run_check(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.upper().startswith(("ALBRA_", "BINANCE_", "SUB1_", "TELEGRAM_"))}
    base["PYTHONPATH"] = str(ROOT)
    base["COLUMNS"] = "200"
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "albra", "config", "check", *args], capture_output=True,
                          text=True, env=base, cwd=cwd or ROOT, timeout=120)


def test_example_config_demo_passes_on_a_fresh_machine(tmp_path):
    # No keys, no .env next to the copy: exactly what the README's first command meets.
    (tmp_path / "config").mkdir()
    example = (ROOT / "config" / "albra.example.toml").read_text()
    (tmp_path / "config" / "albra.example.toml").write_text(example)
    r = run_check("--config", "config/albra.example.toml", "--account", "demo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stdout
    assert "demo paper" in r.stdout and "TFPE" in r.stdout and "ZLMACD_ICHIMOKU" in r.stdout
    assert "BINANCE_API_KEY missing" in r.stdout  # shown, but only a warning for --account demo
    assert "warning: env BINANCE_API_KEY" in r.stderr


def test_live_account_without_keys_exits_2_naming_the_env_var(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "albra.toml").write_text(LIVE_MASTER)
    r = run_check(cwd=tmp_path)  # default path config/albra.toml
    assert r.returncode == 2
    assert ("env BINANCE_API_KEY: accounts.master.api_key_env: API key for live account 'master' is not set"
            in r.stderr)
    assert "config check failed: 2 error(s)" in r.stderr
    assert r.stdout == ""


def test_errors_exit_2_with_one_line_each(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "albra.toml").write_text(PAPER_ONLY.replace("leverage = 5", 'leverage = "ten"'))
    r = run_check(cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == ('config/albra.toml: accounts.demo.strategies[0].leverage: Input should be '
                                        'a valid integer, unable to parse string as an integer, got "ten"')


def test_malformed_toml_exit_2_with_line_and_column(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "albra.toml").write_text('[accounts.demo]\nmode = "paper\n')
    r = run_check(cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("config/albra.toml:2:14: malformed TOML at line 2, column 14: Illegal character")


def test_missing_default_config_checks_the_shipped_example(tmp_path):
    r = run_check(cwd=tmp_path)
    assert r.returncode == 2  # its live accounts have no keys
    assert "this is the example shipped with albra" in " ".join(r.stderr.split())
    r = run_check("--account", "demo", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"]["paths"]["state_dir"] == str(tmp_path.resolve() / "state")


def test_json_output(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "albra.toml").write_text(PAPER_ONLY)
    r = run_check("--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["errors"] == []
    assert doc["config"]["accounts"]["demo"]["strategies"][0]["leverage"] == 5
    assert doc["config"]["paths"]["state_dir"] == str(tmp_path.resolve() / "state")
    (tmp_path / "config" / "albra.toml").write_text(LIVE_MASTER)
    r = run_check("--json", cwd=tmp_path)
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["config"] is None
    assert [e["source"] for e in doc["errors"]] == ["env BINANCE_API_KEY", "env BINANCE_SECRET_KEY"]
    assert doc["errors"][0]["path"] == "accounts.master.api_key_env"


def test_no_secret_appears_in_config_check_output(tmp_path):
    key, secret, sub_key, sub_secret = fake_key(31), fake_key(32), fake_key(33), fake_key(34)
    token = fake_bot_token(35)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "albra.toml").write_text(
        LIVE_MASTER + PAPER_BODY + '\n[accounts.sub1]\nmode = "demo"\n')
    (tmp_path / ".env").write_text(f"SUB1_API_KEY={sub_key}\nSUB1_API_SECRET={sub_secret}\n")
    env = {
        "BINANCE_API_KEY": key,
        "BINANCE_SECRET_KEY": secret,
        "TELEGRAM_BOT_TOKEN": token,
        "ALBRA_TELEGRAM__ENABLED": "true",
        # Secrets that reach the config by accident: in a URL and in a JSON table (repr of a dict).
        "ALBRA_ACCOUNTS__MASTER__BASE_URL": f"http://127.0.0.1:9/fapi?apiKey={key}&token={token}",
        "ALBRA_ACCOUNTS__DEMO__STRATEGIES": json.dumps([{
            "name": "TEMPLATE", "symbols": ["BTCUSDT"], "timeframe": "1h", "leverage": 3, "size_pct": 5,
            "params": {"note": {"k": sub_secret}}}]),
    }
    human = run_check(env=env, cwd=tmp_path)
    as_json = run_check("--json", env=env, cwd=tmp_path)
    for r in (human, as_json):
        out = r.stdout + r.stderr
        for s in (key, secret, sub_key, sub_secret, token, token.split(":")[1]):
            assert s not in out
            assert s[:16] not in out and s[-16:] not in out  # not even a recognisable part
    # The params table is not a valid TEMPLATE param: the error line itself must stay clean.
    assert human.returncode == 2 and "params.note: unknown key 'note'" in human.stderr
    # Valid config with all secrets set: exit 0 and every secret shown as set, by name only.
    env.pop("ALBRA_ACCOUNTS__DEMO__STRATEGIES")
    human = run_check(env=env, cwd=tmp_path)
    as_json = run_check("--json", env=env, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "BINANCE_API_KEY set (environment)" in human.stdout
    assert "SUB1_API_SECRET set (.env)" in human.stdout
    assert "apiKey=***" in human.stdout
    assert "sub1 demo one_way/isolated → https://demo-fapi.binance.com" in human.stdout  # where demo orders go
    doc = json.loads(as_json.stdout)
    assert doc["config"]["accounts"]["sub1"]["endpoint"] == "https://demo-fapi.binance.com"
    assert doc["config"]["accounts"]["master"]["api_key"] == {"env": "BINANCE_API_KEY", "status": "set",
                                                             "from": "environment"}
    assert doc["config"]["telegram"]["token"]["status"] == "set"
    for r in (human, as_json):
        for s in (key, secret, sub_key, sub_secret, token, token.split(":")[1]):
            assert s not in r.stdout + r.stderr
