"""The ledger's writers return the row they wrote without reading it back (a backtest speed-up); what they
return must be exactly what a fresh read of the store gives, field by field, including Decimal exponents
("0.010" stays "0.010") and None vs empty. Covers inserts, state changes with and without extra columns,
leg transitions with and without a close reason, and an exchange id that is not a plain string."""

from __future__ import annotations

from dataclasses import astuple
from decimal import Decimal

from albra.exchange.client_ids import make_client_id
from albra.exchange.types import OrderRequest, OrderResult
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.model import Direction, OrderStatus, OrderType, PositionMode, PositionSide, Side, WorkingType
from albra.store import Store

from tests.ledger.conftest import T0, entry_intent, open_leg


def _same_intent(store: Store, got: I.Intent) -> None:
    stored = I.get_intent(store, got.client_id)
    assert stored is not None
    assert astuple(got) == astuple(stored)
    assert [type(v) for v in astuple(got)] == [type(v) for v in astuple(stored)]
    assert [str(v) for v in astuple(got)] == [str(v) for v in astuple(stored)]  # same Decimal exponents


def _same_leg(store: Store, got: L.Leg) -> None:
    stored = L.require_leg(store, got.leg_id)
    assert astuple(got) == astuple(stored)
    assert [str(v) for v in astuple(got)] == [str(v) for v in astuple(stored)]


def _result(intent: I.Intent, status: OrderStatus, filled: str, avg: str | None, exchange_id: object = "777") -> OrderResult:
    return OrderResult(intent.client_id, exchange_id, intent.symbol, intent.side, intent.order_type, status,  # type: ignore[arg-type]
                       intent.position_side, intent.qty or Decimal(0), Decimal(filled),
                       None if avg is None else Decimal(avg), None, None, False, False, False, T0)


def test_entry_and_its_leg_as_returned_are_as_stored(store: Store) -> None:
    intent, leg = entry_intent(store, qty="0.010", stop="60000.0", tp="71000.50")
    _same_intent(store, intent)
    _same_leg(store, leg)
    _same_intent(store, I.mark_sent(store, intent.client_id, now_ms=T0 + 1))
    _same_intent(store, I.mark_outcome(store, _result(intent, OrderStatus.FILLED, "0.010", "65000.10"),
                                       now_ms=T0 + 2))


def test_state_changes_with_errors_and_non_string_ids_are_as_stored(store: Store) -> None:
    a, _ = entry_intent(store)
    _same_intent(store, I.mark_sent(store, a.client_id, now_ms=T0))
    _same_intent(store, I.mark_unknown(store, a.client_id, "timeout after 10 s", now_ms=T0 + 5))
    # an int exchange id lands in a TEXT column as text: the writer must return what the store holds
    _same_intent(store, I.mark_outcome(store, _result(a, OrderStatus.CANCELED, "0", None, exchange_id=123456),
                                       now_ms=T0 + 6))
    b, _ = entry_intent(store, candle_ts=T0 + 900_000)
    _same_intent(store, I.mark_rejected(store, b.client_id, "-2019 margin is insufficient", now_ms=T0 + 7))
    c, _ = entry_intent(store, candle_ts=T0 + 1_800_000)
    _same_intent(store, I.mark_not_found(store, c.client_id, now_ms=T0 + 8))


def test_protective_and_exit_intents_and_leg_transitions_are_as_stored(store: Store) -> None:
    leg = open_leg(store, qty="0.020", price="65000")
    sl = OrderRequest(make_client_id("main", "TFPE", "BTCUSDT", T0, "stop_loss"), "BTCUSDT", Side.SELL,
                      OrderType.STOP_MARKET, None, PositionSide.BOTH, trigger_price=Decimal("60000.0"),
                      close_position=True, working_type=WorkingType.MARK_PRICE)
    _same_intent(store, I.record_intent(store, sl, account="main", strategy="TFPE", purpose="stop_loss",
                                        candle_ts=None, now_ms=T0 + 10, leg_id=leg.leg_id))
    ex = OrderRequest(make_client_id("main", "TFPE", "BTCUSDT", T0, "exit"), "BTCUSDT", Side.SELL,
                      OrderType.MARKET, Decimal("0.020"), PositionSide.BOTH, reduce_only=True)
    _same_intent(store, I.record_intent(store, ex, account="main", strategy="TFPE", purpose="exit",
                                        candle_ts=T0, now_ms=T0 + 11, leg_id=leg.leg_id))
    _same_leg(store, L.require_leg(store, leg.leg_id))
    with store.tx() as c:
        back = L.transition_in(c, leg.leg_id, L.LegState.OPEN, now_ms=T0 + 12)
    _same_leg(store, back)
    hedge_leg = L.transition(store, entry_intent(store, candle_ts=T0 + 2_700_000, direction=Direction.SHORT,
                                                 mode=PositionMode.HEDGE)[1].leg_id,
                             L.LegState.CANCELLED, now_ms=T0 + 13, close_reason="entry canceled")
    _same_leg(store, hedge_leg)
