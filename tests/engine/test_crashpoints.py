"""Crash points (albra.crashpoints): inert unless armed, SIGKILL on the N-th hit, unknown names refused; and a
real runner SIGKILLed at ``after_intent_commit`` against ``albra sim serve``: the restart resolves the intent by
client id and nothing reaches the exchange twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from albra.sim.testing import SimAdmin, sim_process
from albra.store import Store, journal
from albra.timefmt import parse_time

from test_e2e_sim_serve import KEY, SECRET, START, STEP_MS, _config, _marks, _wait_marks

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).parents[2]


def _py(code: str, armed: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ALBRA_CRASHPOINT"}
    if armed is not None:
        env["ALBRA_CRASHPOINT"] = armed
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_crashpoint_inert_counted_and_checked():
    code = ("from albra.crashpoints import crashpoint\n"
            "for i in range(3):\n    crashpoint('mid_reconcile'); crashpoint('after_order_sent'); print(i, flush=True)")
    assert _py(code, None).stdout.split() == ["0", "1", "2"]
    killed = _py(code, "after_order_sent:2")
    assert killed.returncode == -signal.SIGKILL and killed.stdout.split() == ["0"]
    first = _py(code, "mid_reconcile")
    assert first.returncode == -signal.SIGKILL and first.stdout == ""
    bad = _py("import albra.crashpoints", "after_intent_comit")
    assert bad.returncode == 1 and "unknown crash point 'after_intent_comit'" in bad.stderr
    bad_n = _py("import albra.crashpoints", "mid_reconcile:0")
    assert bad_n.returncode == 1 and "at least 1" in bad_n.stderr


def _runner(cfg: Path, log: Path, crash: str | None) -> subprocess.Popen:
    env = dict(os.environ, E2E_KEY=KEY, E2E_SECRET=SECRET, ALBRA_DEV="1", PYTHONUNBUFFERED="1")
    env.pop("ALBRA_CRASHPOINT", None)
    if crash:
        env["ALBRA_CRASHPOINT"] = crash
    return subprocess.Popen([sys.executable, "-m", "albra", "run", "--account", "e2e", "--config", str(cfg)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))


def _caught_up_or_died(db: Path, now: int, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Wait until the runner evaluated every candle closed by ``now`` (True) or exited (False)."""
    want = {"MOMENTUM": (now // 900_000) * 900_000 - 900_000, "TEMPLATE": (now // 3_600_000) * 3_600_000 - 3_600_000}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        m = _marks(db)
        if m.get("pid") == proc.pid and all(m.get(k, -1) >= v for k, v in want.items()):
            return True
        time.sleep(0.05)
    pytest.fail(f"runner neither caught up to {now} nor exited")


def _intents(db: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in con.execute("SELECT client_id, purpose, state FROM order_intents ORDER BY created_ms")]
    finally:
        con.close()


@pytest.mark.slow
async def test_killed_after_intent_commit_restart_resolves_without_duplicate(tmp_path: Path) -> None:
    with sim_process("--start", START, "--speed", "0", "--hedge", "e2e", "--balance", "10000",
                     accounts={"e2e": (KEY, SECRET)}) as (url, _sim):
        admin = SimAdmin(url)
        try:
            cfg = _config(tmp_path, position_mode="hedge", mode_lines=textwrap.dedent(f"""\
                mode = "live"
                base_url = "{url}"
                api_key_env = "E2E_KEY"
                api_secret_env = "E2E_SECRET\""""))
            db = tmp_path / "state" / "albra.db"
            log = tmp_path / "runner.log"
            proc = _runner(cfg, log, "after_intent_commit")
            now = await admin.clock()
            assert now == parse_time(START)
            for _ in range(24):  # step the exchange clock until the runner commits its first intent and dies
                if not _caught_up_or_died(db, now, proc):
                    break
                now = await admin.advance(STEP_MS)
            assert proc.wait(10) == -signal.SIGKILL, log.read_text()[-3000:]
            [(cid, purpose, state)] = _intents(db)
            assert state == "pending"  # committed, never sent
            assert cid not in (await admin.orders("e2e"))["counts"]
            # restart without the crash point: start-up resolution finds the id unknown, nothing is re-sent blindly
            proc = _runner(cfg, log, None)
            _wait_marks(db, now, proc, log, timeout=60)
            now = await admin.advance(STEP_MS)
            _wait_marks(db, now, proc, log)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(40) == 0, log.read_text()[-3000:]
            counts = (await admin.orders("e2e"))["counts"]
        finally:
            await admin.close()
    assert counts.get(cid, 0) <= 1 and (not counts or max(counts.values()) == 1), counts
    with Store.open(db) as st:
        row = st.query_one("SELECT state FROM order_intents WHERE client_id=?", (cid,))
        assert row["state"] not in ("pending", "sent", "unknown")  # resolved
        resolved = [j for j in journal.entries(st, kinds=("intent_resolved",)) if j.data["client_id"] == cid]
        assert resolved and resolved[0].data["before"] == "pending"
