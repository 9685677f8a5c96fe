"""Bad input gets a clear error and loses nothing (issue 14's smaller items): the live store is never an output file,
a directory is not a CSV, a damaged store is an error not a traceback, an absurd paper balance or an --until before
the replay is refused before the last paper session is cleared, leverage conflicts and too-short secrets are caught
by ``config check``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from albra.store import Store, journal
from tests.commands.test_control_status import EXAMPLE, ROOT, albra

DATA = "BTCUSDT=albra/data/replay/BTCUSDT-15m.csv.gz"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _run(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALBRA_")} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "albra", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_outputs_never_overwrite_the_store_and_a_directory_is_an_error(state: Path, tmp_path: Path) -> None:
    assert albra(["pause", "--reason", "keep me"], state).returncode == 0
    db = state / "albra.db"
    before = db.read_bytes()
    r = albra(["incident-report", "--list", "--output", str(db)], state)
    assert r.returncode == 2 and "store" in r.stderr and "Traceback" not in r.stderr
    other = tmp_path / "copy.db"
    other.write_bytes(before)
    for args in (["backtest", "--strategy", "TEMPLATE", "--symbol", "BTCUSDT", "--data", DATA, "--trades-csv", str(db)],
                 ["backtest", "--strategy", "TEMPLATE", "--symbol", "BTCUSDT", "--data", DATA, "--trades-csv",
                  str(other)],
                 ["backtest", "--strategy", "TEMPLATE", "--symbol", "BTCUSDT", "--data", DATA, "--trades-csv",
                  str(tmp_path)]):
        r = _run(args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "store" in r.stderr or "SQLite" in r.stderr or "directory" in r.stderr, r.stderr
    assert other.read_bytes() == before
    with Store.open(db) as s:
        assert [e.kind for e in journal.entries(s)] == ["pause_set"]  # the live store is intact


def test_status_offline_on_a_store_missing_a_table_is_a_clear_error(state: Path) -> None:
    assert albra(["pause"], state).returncode == 0
    con = sqlite3.connect(state / "albra.db")
    con.execute("DROP TABLE candle_marks")
    con.commit()
    con.close()
    r = albra(["status", "--offline"], state)
    assert r.returncode == 2 and "cannot be read" in r.stderr and "candle_marks" in r.stderr
    assert "Traceback" not in r.stderr


def test_paper_balance_and_until_are_refused_before_the_last_session_is_cleared(state: Path) -> None:
    r = albra(["run", "--account", "demo", "--max-candles", "300"], state)
    assert r.returncode == 0, r.stderr
    with Store.open(state / "albra.db") as s:
        legs_before = s.query_one("SELECT COUNT(*) AS n FROM legs WHERE account='demo'")["n"]
    env = {"ALBRA_PATHS__STATE_DIR": str(state), "ALBRA_PATHS__LOG_DIR": str(state / "logs")}
    r = _run(["run", "--account", "demo", "--config", str(EXAMPLE)], env | {"ALBRA_ACCOUNTS__DEMO__PAPER_BALANCE": "1e40"})
    assert r.returncode == 2 and "paper_balance" in r.stderr and "Traceback" not in r.stderr
    r = _run(["run", "--account", "demo", "--config", str(EXAMPLE), "--until", "2020-01-01"], env)
    assert r.returncode == 2 and "not after the replay start" in r.stderr
    with Store.open(state / "albra.db") as s:  # nothing was reset
        assert s.query_one("SELECT COUNT(*) AS n FROM legs WHERE account='demo'")["n"] == legs_before
        assert not journal.entries(s, kinds=("paper_session_reset",))


def test_config_check_leverage_conflict_and_short_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "albra.toml"
    cfg.write_text(f"""
[paths]
state_dir = "{tmp_path / 'state'}"
[telegram]
enabled = false
[accounts.master]
mode = "live"
api_key_env = "T14_KEY"
api_secret_env = "T14_SECRET"
[[accounts.master.strategies]]
name = "TFPE"
symbols = ["BTCUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 10
[[accounts.master.strategies]]
name = "ZLMACD_ICHIMOKU"
symbols = ["BTCUSDT"]
timeframe = "1h"
leverage = 8
size_pct = 10
""")
    r = _run(["config", "check", "--config", str(cfg)], {"T14_KEY": "a", "T14_SECRET": "b"})
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    out = r.stdout + r.stderr
    assert "one leverage per symbol per account" in out and "strategies[1].leverage" in out
    assert "only 1 characters" in out
    cfg.write_text(cfg.read_text().replace("leverage = 8", "leverage = 10"))
    r = _run(["config", "check", "--config", str(cfg)], {"T14_KEY": "a", "T14_SECRET": "b"})
    assert r.returncode == 0 and "config OK" in r.stdout, r.stdout + r.stderr  # a 1-character secret crashed this
    assert "state_dir" in r.stdout and "***" not in r.stdout  # and the short value did not mangle the output
