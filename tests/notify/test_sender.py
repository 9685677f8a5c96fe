"""AlertSender against a local Bot API server through real python-telegram-bot: delivery, pacing, 429 /
400 / 403 / 5xx / dropped connections, claims across senders, and nothing lost silently."""

from __future__ import annotations

import pytest

from albra.notify import AlertEvent, Routing, emit
from albra.notify import outbox
from albra.notify.ratelimit import RateLimiter
from albra.notify.sender import AlertSender, SenderPolicy
from albra.notify.testing import Fault
from albra.notify.transport import TelegramTransport
from albra.store import journal

pytestmark = pytest.mark.anyio

CHAT = 1001
GROUP = -100200


def _sender(store, api, fake_time, chats=(CHAT,), **policy) -> AlertSender:
    transport = TelegramTransport.create(api.token, api.base_url, read_timeout=5)
    return AlertSender(store, transport, chats, clock=fake_time, sleep=fake_time.sleep,
                       policy=SenderPolicy(**policy), routing=Routing(digest_interval_s=600))


def _status(store, event_id):
    return store.query_one("SELECT * FROM alerts WHERE event_id=?", (event_id,))


async def test_immediate_alerts_go_to_every_chat_and_low_never(store, api, fake_time) -> None:
    s = _sender(store, api, fake_time, chats=(CHAT, GROUP))
    emit(store, AlertEvent("k:1", "kill_switch", message="operator"), now_ms=fake_time.now_ms())
    emit(store, AlertEvent("h:1", "heartbeat"), now_ms=fake_time.now_ms())
    emit(store, AlertEvent("m:1", "risk_refused", message="daily loss"), now_ms=fake_time.now_ms())
    assert await s.drain() == 1
    assert [m["chat_id"] for m in api.sent] == [CHAT, GROUP]
    assert api.sent[0]["parse_mode"] == "HTML" and "Kill switch ON" in api.sent[0]["text"]
    row = _status(store, "k:1")
    assert row["status"] == "sent" and row["attempts"] == 1 and sorted(eval(row["delivered_to"])) == [GROUP, CHAT]
    assert _status(store, "h:1")["status"] == "logged"
    assert _status(store, "m:1")["status"] == "queued"
    # the MEDIUM alert goes out in a digest once the interval has passed — not before
    fake_time.advance(599)
    assert await s.drain() == 0
    fake_time.advance(1)
    assert await s.drain() == 1
    assert "Digest: 1 alert" in api.sent[-1]["text"] and "daily loss" in api.sent[-1]["text"]
    assert _status(store, "m:1")["status"] == "digested"
    assert not any("Heartbeat" in m["text"] for m in api.sent)
    await s.transport.close()


async def test_429_retry_after_is_honoured(store, api, fake_time) -> None:
    s = _sender(store, api, fake_time)
    api.fault("sendMessage", Fault(status=429, retry_after=3))
    emit(store, AlertEvent("k:2", "emergency_shutdown"), now_ms=fake_time.now_ms())
    await s.drain()
    assert sum(fake_time.sleeps) >= 3.0
    assert len(api.sent) == 1 and _status(store, "k:2")["status"] == "sent"
    send_calls = [c for c in api.calls if c.method == "sendMessage"]
    assert len(send_calls) == 2
    await s.transport.close()


async def test_repeated_429_puts_the_row_back_due_after_retry_after(store, api, fake_time) -> None:
    s = _sender(store, api, fake_time, max_retry_after=2)
    api.fault("sendMessage", Fault(status=429, retry_after=30, times=2))
    emit(store, AlertEvent("k:3", "mdd_halt"), now_ms=fake_time.now_ms())
    await s.drain()
    row = _status(store, "k:3")
    assert row["status"] == "queued" and row["attempts"] == 0 and "429" in row["last_error"]
    assert row["next_attempt_ms"] == fake_time.now_ms() + 30_000
    assert await s.drain() == 0          # not due yet
    fake_time.advance(30)
    await s.drain()
    assert _status(store, "k:3")["status"] == "sent" and len(api.sent) == 1
    await s.transport.close()


@pytest.mark.parametrize("status,needle", [(400, "chat not found"), (403, "blocked by the user")])
async def test_400_and_403_fail_once_and_are_kept(store, api, fake_time, status, needle) -> None:
    s = _sender(store, api, fake_time)
    api.fault("sendMessage", Fault(status=status, times=None))
    emit(store, AlertEvent("k:4", "unattributed_leg", account="master"), now_ms=fake_time.now_ms())
    await s.drain()
    row = _status(store, "k:4")
    assert row["status"] == "failed" and needle in row["last_error"].lower() and str(status) in row["last_error"]
    calls = sum(1 for c in api.calls if c.method == "sendMessage")
    fake_time.advance(100_000)
    assert await s.drain() == 0
    assert sum(1 for c in api.calls if c.method == "sendMessage") == calls == 1   # not retried forever
    failed = journal.entries(store, kinds=("alert_failed",))
    assert len(failed) == 1 and "k:4" in failed[0].message
    await s.transport.close()


async def test_a_dead_chat_does_not_stop_delivery_to_the_others(store, api, fake_time) -> None:
    s = _sender(store, api, fake_time, chats=(CHAT, GROUP))
    api.fault("sendMessage", Fault(status=403))
    emit(store, AlertEvent("k:5", "breaker_open"), now_ms=fake_time.now_ms())
    await s.drain()
    row = _status(store, "k:5")
    assert row["status"] == "failed" and f"chat {CHAT}" in row["last_error"]
    assert [m["chat_id"] for m in api.sent] == [GROUP]
    await s.transport.close()


@pytest.mark.parametrize("fault", [Fault(status=502), Fault(drop=True)], ids=["502", "connection-drop"])
async def test_network_errors_back_off_then_deliver(store, api, fake_time, fault) -> None:
    s = _sender(store, api, fake_time, backoff_base_s=2)
    api.fault("sendMessage", Fault(**{**fault.__dict__, "times": 2}))
    emit(store, AlertEvent("k:6", "stop_triggered", symbol="ETHUSDT"), now_ms=fake_time.now_ms())
    await s.drain()
    row = _status(store, "k:6")
    assert row["status"] == "queued" and row["attempts"] == 1 and row["last_error"]
    assert row["next_attempt_ms"] - fake_time.now_ms() == 2000
    fake_time.advance(2)
    await s.drain()
    row = _status(store, "k:6")
    assert row["status"] == "queued" and row["attempts"] == 2
    assert row["next_attempt_ms"] - fake_time.now_ms() == 4000      # exponential
    fake_time.advance(4)
    await s.drain()
    assert _status(store, "k:6")["status"] == "sent" and len(api.sent) == 1
    await s.transport.close()


async def test_gives_up_after_max_attempts_and_keeps_the_row(store, api, fake_time) -> None:
    s = _sender(store, api, fake_time, max_attempts=3, backoff_base_s=1)
    api.fault("sendMessage", Fault(status=502, times=None))
    emit(store, AlertEvent("k:7", "leg_opened"), now_ms=fake_time.now_ms())
    for _ in range(5):
        await s.drain()
        fake_time.advance(60)
    row = _status(store, "k:7")
    assert row["status"] == "failed" and row["attempts"] == 3 and "gave up after 3 attempts" in row["last_error"]
    assert outbox.counts(store) == {"failed": 1}
    await s.transport.close()


async def test_unparseable_html_falls_back_to_plain_text(store, api, fake_time) -> None:
    s = _sender(store, api, fake_time)
    api.fault("sendMessage", Fault(status=400, description="Bad Request: can't parse entities: unclosed tag"))
    emit(store, AlertEvent("k:8", "leg_opened", message="a & b"), now_ms=fake_time.now_ms())
    await s.drain()
    assert _status(store, "k:8")["status"] == "sent"
    assert api.sent[0]["parse_mode"] is None and "<b>" not in api.sent[0]["text"] and "a & b" in api.sent[0]["text"]
    await s.transport.close()


async def test_two_senders_never_send_the_same_row(store, api, fake_time) -> None:
    a = _sender(store, api, fake_time)
    b = _sender(store, api, fake_time)
    for i in range(4):
        emit(store, AlertEvent(f"k:9{i}", "leg_opened"), now_ms=fake_time.now_ms())
    now = fake_time.now_ms()
    got_a = outbox.claim(store, a.name, a.routing, now, 60_000, 3)
    got_b = outbox.claim(store, b.name, b.routing, now, 60_000, 3)
    assert len(got_a) == 3 and len(got_b) == 1
    assert not {r.event_id for r in got_a} & {r.event_id for r in got_b}
    # a's lease expires (crashed sender): b may take those rows
    assert outbox.claim(store, b.name, b.routing, now + 60_001, 60_000, 10) != []
    await a.transport.close()
    await b.transport.close()


async def test_pacing_respects_per_chat_group_and_global_limits(fake_time) -> None:
    lim = RateLimiter(fake_time, fake_time.sleep)
    for _ in range(3):
        await lim.acquire(CHAT)
    assert fake_time.sleeps == [1.0, 1.0]            # one message per second per chat
    fake_time.sleeps.clear()
    for _ in range(21):
        await lim.acquire(GROUP)
    assert sum(fake_time.sleeps) >= 40                # 20 per minute per group: the 21st waits for the window
    fake_time.sleeps.clear()
    chats = range(5000, 5031)
    for c in chats:
        await lim.acquire(c)
    assert fake_time.sleeps and fake_time.sleeps[-1] <= 1.0     # the 31st distinct chat in a second waits
    lim.penalise(CHAT, 7)
    assert lim.wait_ms(CHAT) == 7000
