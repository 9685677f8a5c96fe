"""Runner liveness: one definition (heartbeat age vs the configured limit) read the same by the CLI's status, the
dashboard and the bot, and a CRITICAL alert sent by the bot process when a runner process is SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albra.config import load_settings
from albra.dashboard.snapshot import summary
from albra.notify import views
from albra.notify.access import Access
from albra.notify.bot import AlbraBot, run_bot
from albra.notify.liveness_watch import LivenessWatch
from albra.notify.sender import AlertSender, SenderPolicy
from albra.notify.transport import TelegramTransport
from albra.notify.wiring import alert_chats
from albra.runbook.status_offline import offline_status
from albra.store import Store, journal, runners
from albra.timefmt import fmt_kst

pytestmark = pytest.mark.anyio

CONFIG = """
[paths]
state_dir = "state"
[telegram]
admin_user_ids = [111]
chat_ids = [-100500]
[runner]
heartbeat_s = {beat}
down_after_s = {down}
[accounts.master]
mode = "paper"
[accounts.sub1]
mode = "paper"
"""


def _settings(tmp_path: Path, beat: float = 2.0, down: float = 30.0):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "albra.toml").write_text(CONFIG.format(beat=beat, down=down))
    return load_settings(tmp_path / "config" / "albra.toml")


def test_one_wording_in_cli_dashboard_and_bot(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    now = int(time.time() * 1000)
    with Store.open(s.db_path) as store:
        runners.beat(store, "run:master", "running", ts=now - 12 * 60_000, started_ms=now - 3_600_000)
        runners.beat(store, "run:sub1", "running", ts=now - 1000, started_ms=now - 7_200_000)
        st = offline_status(s, store)
        r = {a["account"]: a["runner"] for a in st["accounts"]}
        down = f"DOWN since {fmt_kst(now - 12 * 60_000)}, 12 min"
        assert r["master"]["text"] == down and not r["master"]["alive"] and r["master"]["liveness"] == "down"
        assert r["sub1"]["alive"] and r["sub1"]["text"].startswith(f"up since {fmt_kst(now - 7_200_000)}, 2 h")
        dash = summary(s, store)
        assert [a["runner"]["text"] for a in dash["accounts"]] == [r["master"]["text"], r["sub1"]["text"]]
        assert {x["name"]: x["text"] for x in dash["runners"]}["run:master"] == down
        assert f"🔴 runner {down}" in views.status_text(s, store)
        # a clean stop is not "down", and a heartbeat just inside the configured limit is up
        runners.beat(store, "run:master", "stopped", {"reason": "SIGTERM"}, ts=now - 60_000)
        assert offline_status(s, store)["accounts"][0]["runner"]["text"].startswith("stopped since")
        lv = runners.liveness(runners.get_all(store)[1], now + 28_000, 30_000)
        assert lv.up


async def test_sigkilled_runner_is_alerted_critical_by_the_bot(tmp_path: Path, api) -> None:
    s = _settings(tmp_path, beat=0.2, down=1.0)
    store = Store.open(s.db_path)
    beat = ("import sys, time; from albra.store import Store, runners; s = Store.open(sys.argv[1]);"
            "t = int(time.time()*1000); runners.beat(s, 'run:master', 'running', started_ms=t)\n"
            "while True:\n    runners.beat(s, 'run:master', 'running'); time.sleep(0.2)")
    proc = subprocess.Popen([sys.executable, "-c", beat, str(s.db_path)])
    bot = AlbraBot(s, store, Access.from_settings(s.telegram))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_bot(
        bot, api.token, base_url=api.base_url, stop=stop, ready=ready, poll_interval=0.2, poll_timeout=0,
        heartbeat_s=s.runner.heartbeat_s, watch=LivenessWatch(s, store).check,
        sender_factory=lambda b: AlertSender(store, TelegramTransport(b), alert_chats(s),
                                             policy=SenderPolicy(poll_interval_s=0.2))))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        deadline = time.monotonic() + 10
        while not runners.liveness(next((r for r in runners.get_all(store) if r.name == "run:master"), None),
                                   int(time.time() * 1000), 1000).up:
            assert time.monotonic() < deadline, "the runner never beat"
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        while not any("Runner down" in m["text"] for m in api.sent):
            assert time.monotonic() - killed < 60, ("no CRITICAL alert within a minute of the runner's death",
                                                    store.query("SELECT event_id, status, attempts, last_error FROM"
                                                                " alerts"), [r.__dict__ for r in
                                                                             runners.get_all(store)])
            await asyncio.sleep(0.05)
        took = time.monotonic() - killed
        print(f"\nrunner SIGKILL → CRITICAL alert delivered: {took:.2f} s (heartbeat 0.2 s, down after 1 s)")
        [msg] = [m for m in api.sent if "Runner down" in m["text"]]
        assert "master" in msg["text"] and "DOWN since" in msg["text"]
        await asyncio.sleep(0.6)  # more checks: still one alert, one journal row for this episode
        assert sum("Runner down" in m["text"] for m in api.sent) == 1
        [row] = journal.entries(store, kinds=("runner_down",))
        assert row.level == "CRITICAL" and row.account == "master"
        assert journal.entries(store, kinds=("runner_down",), account="sub1") == []  # never started: no alarm
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        stop.set()
        await asyncio.wait_for(task, 10)
        store.close()
