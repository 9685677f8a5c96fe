"""Paper replay sessions (ADR 0006): the README's main job run twice gives the same result; the reset journals
the previous session, clears only that paper account's ledger, keeps the journal, and refuses live accounts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from albra.engine.paper_session import LEDGER_TABLES, NotAPaperReplay, previous_session, reset_paper_session
from albra.store import Store, journal

ROOT = Path(__file__).parents[2]


def _demo(tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ALBRA_PATHS__STATE_DIR=str(tmp_path / "state"), ALBRA_PATHS__LOG_DIR=str(tmp_path / "logs"),
               ALBRA_TELEGRAM__ENABLED="false", ALBRA_DEV="1")
    return subprocess.run([sys.executable, "-m", "albra", "run", "--account", "demo", "--config",
                           str(ROOT / "config" / "albra.example.toml"), "--max-candles", "400", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_demo_run_twice_gives_the_same_summary(tmp_path):
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    s1 = json.loads(first.stdout)
    assert s1["open_legs"] >= 1  # the first session ends holding a leg (its stop is live on that exchange)
    assert "new replay session" not in first.stderr
    second = _demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout) == s1
    notices = [ln for ln in second.stderr.splitlines() if "new replay session" in ln]
    assert len(notices) == 1 and "1 open" in notices[0]
    with Store.open(tmp_path / "state" / "albra.db") as st:
        resets = journal.entries(st, kinds=("paper_session_reset",))
        assert len(resets) == 1 and resets[0].data["open_legs"] == 1
        # the journal kept both sessions: two starts, two stops
        kinds = [e.kind for e in journal.entries(st, account="demo")]
        assert kinds.count("runner_started") == 2 and kinds.count("runner_stopped") == 2
        # the second session's alerts are its own events, not swallowed as duplicates of the first session's
        ids = [r["event_id"] for r in st.query("SELECT event_id FROM alerts WHERE account='demo' ORDER BY ts")]
        first_ids = [i for i in ids if not i.startswith("paper1:")]
        second_ids = [i[len("paper1:"):] for i in ids if i.startswith("paper1:")]
        assert first_ids and sorted(second_ids) == sorted(first_ids)


def _seed(store: Store, account: str) -> None:
    store.execute("INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty,"
                  " qty_initial, realized_pnl, fees, funding, opened_ms, updated_ms) VALUES"
                  " (?, ?, 'BTCUSDT', 'TFPE', 'LONG', 'BOTH', 'closed', '0', '1', '12.5', '0.5', '-1', 1, 2)",
                  (f"leg-{account}", account))
    store.execute("INSERT INTO candle_marks(account, strategy, symbol, timeframe, last_ts, updated_ms) VALUES"
                  " (?, 'TFPE', 'BTCUSDT', '15m', 900000, 2)", (account,))


def test_reset_clears_only_that_account_and_refuses_live(store):
    _seed(store, "demo")
    _seed(store, "master")
    before = len(journal.entries(store))
    paper = SimpleNamespace(mode=SimpleNamespace(value="paper"), paper_feed="replay")
    live = SimpleNamespace(mode=SimpleNamespace(value="live"), paper_feed="replay")
    live_feed = SimpleNamespace(mode=SimpleNamespace(value="paper"), paper_feed="live")
    with pytest.raises(NotAPaperReplay):
        reset_paper_session(store, "master", live, now_ms=5)
    from albra.engine.paper_session import is_paper_replay

    assert is_paper_replay(live_feed)  # a live-fed paper account's exchange is in-process too: a new session per run
    prev = reset_paper_session(store, "demo", paper, now_ms=5)
    assert prev is not None and prev.closed_legs == 1 and prev.realized_pnl == Decimal("11.0")
    assert prev.last_candle_ms == 900000
    assert previous_session(store, "demo") is None
    assert previous_session(store, "master") is not None  # another account's ledger is untouched
    for t in LEDGER_TABLES:
        assert store.query_one(f"SELECT COUNT(*) AS n FROM {t} WHERE account='demo'")["n"] == 0
    assert len(journal.entries(store)) == before + 1
    assert reset_paper_session(store, "demo", paper, now_ms=6) is None  # nothing left: no second entry
    assert len(journal.entries(store)) == before + 1
