"""Leg state machine and write-ahead intents against a real SQLite store."""

from __future__ import annotations

from decimal import Decimal
from itertools import product

import pytest

from albra.exchange.types import OrderRequest, OrderResult
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.ledger.errors import IllegalTransition, IntentConflict, LedgerError
from albra.model import Direction, OrderStatus, OrderType, PositionMode, PositionSide, Side
from albra.store import Store

from tests.ledger.conftest import T0, entry_intent, exit_intent, open_leg

LEGAL = {("pending", "open"), ("pending", "failed"), ("pending", "cancelled"), ("open", "closing"),
         ("open", "closed"), ("closing", "open"), ("closing", "closed")}


@pytest.mark.parametrize("frm,to", list(product([s.value for s in L.LegState], repeat=2)))
def test_every_transition_is_either_allowed_or_raises(frm: str, to: str) -> None:
    if (frm, to) in LEGAL:
        L.check_transition(frm, to)
    else:
        with pytest.raises(IllegalTransition):
            L.check_transition(frm, to)


def test_transitions_in_the_store_follow_the_machine(store: Store) -> None:
    _, leg = entry_intent(store)
    assert leg.state is L.LegState.PENDING and leg.leg_id == L.leg_id_for(leg.leg_id[4:])
    with pytest.raises(IllegalTransition):
        L.transition(store, leg.leg_id, "closing", now_ms=T0)
    with pytest.raises(IllegalTransition):
        L.transition(store, leg.leg_id, "closed", now_ms=T0)
    L.transition(store, leg.leg_id, "cancelled", now_ms=T0)
    for to in L.LegState:
        with pytest.raises(IllegalTransition):
            L.transition(store, leg.leg_id, to, now_ms=T0)
    assert L.require_leg(store, leg.leg_id).state is L.LegState.CANCELLED


def test_closing_a_leg_with_qty_raises(store: Store) -> None:
    leg = open_leg(store)
    with pytest.raises(IllegalTransition, match="still open"):
        L.transition(store, leg.leg_id, "closed", now_ms=T0)


def test_recording_an_intent_twice_gives_one_row_and_the_same_intent(store: Store) -> None:
    a, leg_a = entry_intent(store)
    I.mark_sent(store, a.client_id, now_ms=T0 + 1)
    b, leg_b = entry_intent(store)  # a restart re-derives the same id
    assert b.client_id == a.client_id and b.state == "sent" and leg_b.leg_id == leg_a.leg_id
    assert store.query_one("SELECT COUNT(*) AS n FROM order_intents")["n"] == 1
    assert store.query_one("SELECT COUNT(*) AS n FROM legs")["n"] == 1


def test_same_id_with_other_content_is_a_conflict(store: Store) -> None:
    a, leg = entry_intent(store)
    req = OrderRequest(a.client_id, "BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.01"), PositionSide.BOTH,
                       reduce_only=True)
    with pytest.raises(IntentConflict):
        I.record_intent(store, req, account="main", strategy="TFPE", purpose="exit", candle_ts=T0, now_ms=T0,
                        leg_id=leg.leg_id)


def test_exit_intents_must_be_reduce_only_in_one_way_and_not_in_hedge(store: Store) -> None:
    leg = open_leg(store)
    bad = OrderRequest("al-ex-x-0-aaaaaaaaaa", "BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.01"),
                       PositionSide.BOTH, reduce_only=False)
    with pytest.raises(LedgerError, match="reduce-only"):
        I.record_intent(store, bad, account="main", strategy="TFPE", purpose="exit", candle_ts=T0, now_ms=T0,
                        leg_id=leg.leg_id)
    hleg = open_leg(store, strategy="ZL", mode=PositionMode.HEDGE, direction=Direction.SHORT)
    bad_h = OrderRequest("al-ex-y-0-aaaaaaaaaa", "BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.01"),
                         PositionSide.SHORT, reduce_only=True)
    with pytest.raises(LedgerError, match="-1106"):
        I.record_intent(store, bad_h, account="main", strategy="ZL", purpose="exit", candle_ts=T0, now_ms=T0,
                        leg_id=hleg.leg_id)
    assert store.query_one("SELECT COUNT(*) AS n FROM order_intents WHERE purpose='exit'")["n"] == 0


def test_entry_shape_is_checked(store: Store) -> None:
    req = OrderRequest("al-en-1-0-aaaaaaaaaa", "BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.01"),
                       PositionSide.BOTH)
    with pytest.raises(LedgerError, match="LONG entry is a BUY"):
        I.record_entry(store, req, account="main", strategy="S", direction=Direction.LONG,
                       position_mode=PositionMode.ONE_WAY, candle_ts=T0, now_ms=T0)
    req2 = OrderRequest("al-en-1-0-aaaaaaaaaa", "BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.01"),
                        PositionSide.BOTH)
    with pytest.raises(LedgerError, match="LONG in hedge"):
        I.record_entry(store, req2, account="main", strategy="S", direction=Direction.LONG,
                       position_mode=PositionMode.HEDGE, candle_ts=T0, now_ms=T0)


def _result(intent: I.Intent, status: OrderStatus, filled: str = "0") -> OrderResult:
    return OrderResult(intent.client_id, "123", intent.symbol, intent.side, intent.order_type, status,
                       intent.position_side, intent.qty or Decimal(0), Decimal(filled), None, None, None, False, False,
                       False, T0)


def test_intent_states_and_leg_consequences(store: Store) -> None:
    a, leg = entry_intent(store)
    assert [i.client_id for i in I.unresolved(store, "main")] == [a.client_id]
    I.mark_sent(store, a.client_id, now_ms=T0)
    I.mark_unknown(store, a.client_id, "timeout", now_ms=T0)
    assert I.get_intent(store, a.client_id).state == "unknown"
    I.mark_outcome(store, _result(a, OrderStatus.REJECTED), now_ms=T0)
    assert L.require_leg(store, leg.leg_id).state is L.LegState.FAILED
    assert I.unresolved(store, "main") == []
    with pytest.raises(IllegalTransition):
        I.mark_outcome(store, _result(a, OrderStatus.FILLED), now_ms=T0)
    b, leg_b = entry_intent(store, candle_ts=T0 + 900_000)
    I.mark_not_found(store, b.client_id, now_ms=T0)
    assert L.require_leg(store, leg_b.leg_id).state is L.LegState.CANCELLED


def test_full_exit_moves_leg_to_closing_and_back_when_it_ends_unfilled(store: Store) -> None:
    leg = open_leg(store)
    ex = exit_intent(store, leg, "0.010")
    assert L.require_leg(store, leg.leg_id).state is L.LegState.CLOSING
    I.mark_outcome(store, _result(ex, OrderStatus.EXPIRED), now_ms=T0)
    assert L.require_leg(store, leg.leg_id).state is L.LegState.OPEN
    partial = exit_intent(store, leg, "0.004", purpose="reduce")
    assert partial.reduce_only and L.require_leg(store, leg.leg_id).state is L.LegState.OPEN


def test_intent_request_round_trips(store: Store) -> None:
    a, _ = entry_intent(store, qty="0.123")
    r = a.request()
    assert (r.client_id, r.qty, r.side, r.order_type, r.position_side) == (
        a.client_id, Decimal("0.123"), Side.BUY, OrderType.MARKET, PositionSide.BOTH)
