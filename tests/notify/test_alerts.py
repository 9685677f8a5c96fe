"""Alerts: the kinds table, emit() and its outbox rows, formatting, redaction and the digest."""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.notify import AlertEvent, Level, Routing, UnknownAlertKind, emit, make_event_id
from albra.notify import outbox
from albra.notify.kinds import KINDS, level_for
from albra.notify.testing import FakeTime
from albra.redact import REDACTOR, register_secret

TOKEN_SHAPED = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX"


def _row(store, event_id):
    return store.query_one("SELECT * FROM alerts WHERE event_id=?", (event_id,))


def test_every_issue_kind_has_an_explicit_level() -> None:
    expected = {
        "kill_switch": Level.CRITICAL, "emergency_shutdown": Level.CRITICAL, "mdd_halt": Level.CRITICAL,
        "unattributed_leg": Level.CRITICAL, "ip_banned": Level.CRITICAL, "exchange_unreachable": Level.CRITICAL,
        "mdd_level_change": Level.HIGH, "breaker_open": Level.HIGH, "rate_limited": Level.HIGH,
        "runner_started": Level.HIGH, "runner_stopped": Level.HIGH, "leg_opened": Level.HIGH,
        "leg_closed": Level.HIGH, "stop_moved": Level.HIGH, "stop_triggered": Level.HIGH,
        "take_profit_hit": Level.HIGH, "partial_exit": Level.HIGH, "order_rejected": Level.HIGH,
        "reconcile_difference": Level.HIGH, "daily_loss_limit": Level.HIGH, "config_error": Level.HIGH,
        "breaker_closed": Level.MEDIUM, "risk_refused": Level.MEDIUM, "digest": Level.MEDIUM,
        "heartbeat": Level.LOW,
    }
    for kind, level in expected.items():
        assert level_for(kind) is level, kind
    assert all(isinstance(spec.level, Level) and spec.title for spec in KINDS.values())


def test_unknown_kind_raises_in_dev_and_is_sent_high_at_runtime(store) -> None:
    ev = AlertEvent("x:1", "position_sync_error", message="ledger drift")
    with pytest.raises(UnknownAlertKind, match="position_sync_error"):
        emit(store, ev)
    assert _row(store, "x:1") is None
    got = emit(store, ev, strict=False)
    assert got.level is Level.HIGH and got.status == "queued"
    row = _row(store, "x:1")
    assert row["level"] == "HIGH" and "not in albra.notify.kinds.KINDS" in row["text"]


def test_emit_dedups_by_event_id(store) -> None:
    ev = AlertEvent(make_event_id("leg_closed", "L-1"), "leg_closed", account="master", pnl="12.5")
    first = emit(store, ev)
    second = emit(store, ev)
    assert not first.duplicate and second.duplicate
    assert store.query_one("SELECT COUNT(*) AS n FROM alerts")["n"] == 1


def test_levels_route_to_queued_or_logged(store) -> None:
    assert emit(store, AlertEvent("a", "kill_switch")).status == "queued"
    assert emit(store, AlertEvent("b", "risk_refused")).status == "queued"
    assert emit(store, AlertEvent("c", "heartbeat")).status == "logged"
    quiet = Routing(immediate=frozenset({Level.CRITICAL}), digest=frozenset(), digest_interval_s=60)
    assert emit(store, AlertEvent("d", "leg_opened"), routing=quiet).status == "logged"


def test_message_says_who_what_prices_pnl_in_kst(store) -> None:
    ev = AlertEvent("leg_closed:L-7", "leg_closed", account="master", strategy="TFPE", symbol="BTCUSDT",
                    side="sell", size=Decimal("0.0120"), prices={"entry": Decimal("60000.0"), "exit": "61000.5"},
                    pnl=Decimal("12.006"), ts=1_767_225_600_000, message="trailing stop <hit> & closed",
                    details={"fees": "0.57 USDT"})
    emit(store, ev)
    text = _row(store, "leg_closed:L-7")["text"]
    assert text.startswith("⚠️ <b>Leg closed</b>")
    assert "master · TFPE · BTCUSDT" in text
    assert "<b>SELL</b> 0.012" in text
    assert "entry 60000 · exit 61000.5" in text
    assert "PnL <b>+12.01 USDT</b>" in text
    assert "trailing stop &lt;hit&gt; &amp; closed" in text
    assert "fees: 0.57 USDT" in text
    assert "2026-01-01 09:00:00 KST" in text


def test_secrets_never_reach_the_outbox(store) -> None:
    secret = "registered-Secret-value-xyz"
    register_secret(secret)
    try:
        emit(store, AlertEvent("s:1", "config_error", message=f"bad key {secret} and token {TOKEN_SHAPED}",
                               details={"url": f"https://x/?signature={secret}"}))
        row = _row(store, "s:1")
        assert secret not in row["text"] and TOKEN_SHAPED not in row["text"] and "***" in row["text"]
        assert secret not in row["summary"] and TOKEN_SHAPED not in row["summary"]
    finally:
        REDACTOR.clear()


def test_bad_event_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="event_id"):
        AlertEvent("", "leg_opened")
    with pytest.raises(ValueError, match="pnl"):
        AlertEvent("e", "leg_closed", pnl="twelve")
    with pytest.raises(ValueError, match="not finite"):
        AlertEvent("e", "leg_closed", prices={"entry": "NaN"})


def test_medium_alerts_are_batched_into_one_digest_after_the_interval(store) -> None:
    clock = FakeTime()
    routing = Routing(digest_interval_s=600)
    for i in range(3):
        emit(store, AlertEvent(f"r:{i}", "risk_refused", account="master", strategy="TFPE",
                               message=f"max open legs #{i}", ts=clock.now_ms() + i * 1000))
    assert outbox.build_digest(store, routing, clock.now_ms() + 599_000) is None
    digest_id = outbox.build_digest(store, routing, clock.now_ms() + 600_000)
    assert digest_id is not None
    rows = {r["event_id"]: r for r in store.query("SELECT * FROM alerts")}
    assert {rows[f"r:{i}"]["status"] for i in range(3)} == {"digested"}
    assert {rows[f"r:{i}"]["digest_id"] for i in range(3)} == {digest_id}
    d = rows[digest_id]
    assert d["kind"] == "digest" and d["status"] == "queued"
    assert "Digest: 3 alerts" in d["text"] and "max open legs #2" in d["text"]
    # nothing left to fold: a second build is a no-op
    assert outbox.build_digest(store, routing, clock.now_ms() + 10_000_000) is None
