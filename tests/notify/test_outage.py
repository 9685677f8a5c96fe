"""A Telegram outage must not delay candle processing.

The Bot API server holds every sendMessage open (then drops connections) while a loop shaped like the
runner's — the real CandleScheduler deciding which closed 15m candles are due, marking them in the store
and emitting an alert per candle — runs in the same event loop as the AlertSender. The proof is ordering,
not wall-clock: every candle is processed before the sender's first send attempt returns, the outbox holds
every alert, and the sender's in-memory queue stays bounded. After the outage every alert is delivered.
"""

from __future__ import annotations

import asyncio

import pytest

from albra.engine.scheduler import CandleScheduler, Track, get_mark
from albra.notify import AlertEvent, emit
from albra.notify import outbox
from albra.notify.sender import AlertSender, SenderPolicy
from albra.notify.testing import Fault
from albra.notify.transport import TelegramTransport
from albra.timefmt import FixedClock

pytestmark = pytest.mark.anyio

CHAT = 1001
N = 60
STEP = 15 * 60_000


class RecordingTransport:
    """The real Telegram transport, noting in the shared event log when each send attempt returns."""

    def __init__(self, inner: TelegramTransport, events: list[str]) -> None:
        self.inner = inner
        self.events = events

    async def send(self, chat_id: int, text: str) -> None:
        try:
            await self.inner.send(chat_id, text)
        finally:
            self.events.append("send_returned")


async def test_candles_keep_flowing_while_telegram_hangs(store, api, fake_time) -> None:
    events: list[str] = []
    api.fault("sendMessage", Fault(hang=True, times=None))
    transport = RecordingTransport(TelegramTransport.create(api.token, api.base_url, read_timeout=60), events)
    policy = SenderPolicy(queue_size=4, poll_interval_s=0.005, backoff_base_s=1)
    sender = AlertSender(store, transport, [CHAT], policy=policy, clock=fake_time, sleep=fake_time.sleep)
    sender_task = asyncio.create_task(sender.run())

    # the sender is now stuck inside its first send
    emit(store, AlertEvent("runner_started:master", "runner_started", account="master"))
    await api.wait_calls("sendMessage", 1)
    assert "send_returned" not in events

    engine_clock = FixedClock(1_767_225_600_000)
    track = Track("TFPE", "BTCUSDT", "15m")
    sched = CandleScheduler(store, "master", [track])
    processed = 0
    for i in range(N):
        engine_clock.advance(STEP)
        for due in sched.due(engine_clock.now_ms()):
            sched.mark(due, engine_clock.now_ms())
            emit(store, AlertEvent(f"leg_opened:{due.ts}", "leg_opened", account="master", strategy="TFPE",
                                   symbol="BTCUSDT", side="BUY", size="0.01", prices={"entry": 60000 + i}))
            processed += 1
            events.append(f"candle:{due.ts}")
        await asyncio.sleep(0)   # the runner awaits between candles; the sender gets its turns

    assert processed == N
    assert get_mark(store, "master", track) == engine_clock.now_ms() // STEP * STEP - STEP
    assert "send_returned" not in events          # all N candles done before the first send came back
    assert sum(1 for e in events if e.startswith("candle:")) == N
    # bounded: at most queue_size claimed in memory + 1 in flight; the rest wait in the store, not in RAM
    claimed = store.query_one("SELECT COUNT(*) AS n FROM alerts WHERE claimed_by IS NOT NULL")["n"]
    assert claimed <= policy.queue_size + 1
    assert outbox.counts(store) == {"queued": N + 1}

    # the outage ends with dropped connections, then Telegram is back: everything is delivered once
    api.clear_faults("sendMessage")
    api.fault("sendMessage", Fault(drop=True, times=1))
    api.release()
    for _ in range(200):
        if outbox.counts(store).get("sent", 0) == N + 1:
            break
        fake_time.advance(5)          # lets backed-off rows fall due; pacing sleeps advance it too
        await asyncio.sleep(0.01)
    sender.stop()
    await asyncio.wait_for(sender_task, 10)
    await transport.inner.close()
    assert outbox.counts(store) == {"sent": N + 1}
    assert events.index("send_returned") > max(i for i, e in enumerate(events) if e.startswith("candle:"))
    delivered = [m["text"] for m in api.sent]
    assert len(delivered) == len(set(delivered)) == N + 1
