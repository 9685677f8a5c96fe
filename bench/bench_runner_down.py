"""Time from a runner's death (SIGKILL) to the CRITICAL ``runner_down`` alert delivered to Telegram by the bot process
(python-telegram-bot against albra's local Bot API server), with the DEFAULT liveness settings ([runner]
heartbeat_s = 2, down_after_s = 30). Two cases:

* same host: the bot sees the runner's pid gone at its next check (≤ heartbeat_s), then the sender delivers;
* other host (the runner row names another host, so no pid check is possible): the heartbeat must go stale first
  (down_after_s), then the next check.

The "runner" is a real process writing heartbeats exactly as ``albra run`` does (runners.beat every heartbeat_s).

    .venv/bin/python bench/bench_runner_down.py
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from albra.config import load_settings  # noqa: E402
from albra.notify.access import Access  # noqa: E402
from albra.notify.bot import AlbraBot, run_bot  # noqa: E402
from albra.notify.liveness_watch import LivenessWatch  # noqa: E402
from albra.notify.sender import AlertSender  # noqa: E402
from albra.notify.testing import FakeBotApi  # noqa: E402
from albra.notify.transport import TelegramTransport  # noqa: E402
from albra.notify.wiring import alert_chats  # noqa: E402
from albra.store import Store  # noqa: E402

CONFIG = """
[paths]
state_dir = "state"
[telegram]
admin_user_ids = [111]
chat_ids = [-100500]
[accounts.master]
mode = "paper"
"""

BEAT = ("import sys, time; from albra.store import Store, runners; s = Store.open(sys.argv[1]); host = sys.argv[2];"
        "t = int(time.time()*1000); runners.beat(s, 'run:master', 'running', started_ms=t)\n"
        "while True:\n"
        "    runners.beat(s, 'run:master', 'running')\n"
        "    if host: s.execute(\"UPDATE runners SET host=? WHERE name='run:master'\", (host,))\n"
        "    time.sleep(2.0)")


async def one(case: str, other_host: str) -> float:
    api = FakeBotApi()
    await api.start()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config").mkdir()
        (Path(tmp) / "config" / "albra.toml").write_text(CONFIG)
        s = load_settings(Path(tmp) / "config" / "albra.toml")
        store = Store.open(s.db_path)
        proc = subprocess.Popen([sys.executable, "-c", BEAT, str(s.db_path), other_host], cwd=str(ROOT))
        bot = AlbraBot(s, store, Access.from_settings(s.telegram))
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run_bot(bot, api.token, base_url=api.base_url, stop=stop, ready=ready,
                                           poll_timeout=1, heartbeat_s=s.runner.heartbeat_s,
                                           watch=LivenessWatch(s, store).check,
                                           sender_factory=lambda b: AlertSender(store, TelegramTransport(b),
                                                                                alert_chats(s))))
        try:
            await asyncio.wait_for(ready.wait(), 20)
            await asyncio.sleep(5)  # beating for a while, seen up by the bot
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            t0 = time.monotonic()
            while not any("Runner down" in m["text"] for m in api.sent):
                await asyncio.sleep(0.02)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
            stop.set()
            await asyncio.wait_for(task, 20)
            store.close()
            await api.stop()
    print(f"{case}: runner SIGKILL → CRITICAL alert delivered to Telegram in {took:.2f} s "
          f"(heartbeat_s={s.runner.heartbeat_s:g}, down_after_s={s.runner.down_after_s:g})")
    return took


async def main() -> None:
    await one("same host (pid gone)", "")
    await one("other host (heartbeat stale)", "elsewhere")


if __name__ == "__main__":
    asyncio.run(main())
