"""Legs vs exchange positions (one-way and hedge, several strategies on one symbol), explicit adoption and
closing of legs the exchange no longer has."""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.exchange.types import ExchangePosition
from albra.ledger import legs as L
from albra.ledger.errors import LedgerError
from albra.ledger.positions import adopt_unattributed, close_missing, compare_positions
from albra.model import Direction, Fill, PositionMode, PositionSide, Side
from albra.store import Store, incidents, journal

from tests.ledger.conftest import T0, open_leg


def pos(symbol: str, side: PositionSide, qty: str, entry: str = "65000") -> ExchangePosition:
    return ExchangePosition(symbol, side, Decimal(qty), Decimal(entry), Decimal(entry), Decimal(0), None, 10, T0)


def test_one_way_two_strategies_stack_and_match(store: Store) -> None:
    open_leg(store, strategy="A", qty="0.010")
    open_leg(store, strategy="B", qty="0.020")
    legs = L.live_legs(store, "main")
    assert compare_positions(legs, [pos("BTCUSDT", PositionSide.BOTH, "0.030")]) == []
    d = compare_positions(legs, [pos("BTCUSDT", PositionSide.BOTH, "0.025")])
    assert len(d) == 1 and d[0].delta == Decimal("-0.005") and "partial close" in d[0].likely_cause
    assert set(d[0].leg_ids) == {g.leg_id for g in legs}
    flat = compare_positions(legs, [])
    assert flat[0].exchange_qty == 0 and "no longer has" in flat[0].likely_cause
    flip = compare_positions(legs, [pos("BTCUSDT", PositionSide.BOTH, "-0.010")])
    assert "opposite direction" in flip[0].likely_cause


def test_hedge_opposite_legs_live_on_their_own_sides(store: Store) -> None:
    open_leg(store, strategy="A", qty="0.010", mode=PositionMode.HEDGE)
    open_leg(store, strategy="B", qty="0.020", mode=PositionMode.HEDGE, direction=Direction.SHORT)
    open_leg(store, strategy="C", qty="0.005", mode=PositionMode.HEDGE)
    legs = L.live_legs(store, "main")
    ok = [pos("BTCUSDT", PositionSide.LONG, "0.015"), pos("BTCUSDT", PositionSide.SHORT, "-0.020")]
    assert compare_positions(legs, ok) == []
    d = compare_positions(legs, [pos("BTCUSDT", PositionSide.LONG, "0.015"),
                                 pos("BTCUSDT", PositionSide.SHORT, "-0.030")])
    assert [(x.position_side, x.delta) for x in d] == [(PositionSide.SHORT, Decimal("-0.010"))]
    assert "larger" in d[0].likely_cause


def test_exchange_only_position_is_adopted_explicitly_with_incident(store: Store) -> None:
    open_leg(store, strategy="A", qty="0.010")
    d = compare_positions(L.live_legs(store, "main"), [pos("BTCUSDT", PositionSide.BOTH, "0.013", "64000"),
                                                       pos("ETHUSDT", PositionSide.BOTH, "-0.5", "3000")],
                          unresolved_by_symbol={"ETHUSDT": 1})
    assert [x.symbol for x in d] == ["BTCUSDT", "ETHUSDT"] and "unresolved" in d[1].likely_cause
    btc = adopt_unattributed(store, "main", d[0], now_ms=T0 + 5)
    eth = adopt_unattributed(store, "main", d[1], now_ms=T0 + 6)
    assert (btc.strategy, btc.direction, btc.qty, btc.state) == (L.UNATTRIBUTED, Direction.LONG, Decimal("0.003"),
                                                                 L.LegState.OPEN)
    assert (eth.direction, eth.qty, eth.entry_price) == (Direction.SHORT, Decimal("0.5"), Decimal("3000"))
    assert compare_positions(L.live_legs(store, "main"), [pos("BTCUSDT", PositionSide.BOTH, "0.013"),
                                                          pos("ETHUSDT", PositionSide.BOTH, "-0.5")]) == []
    open_inc = [i for i in incidents.list_incidents(store, "open") if i.kind == "unattributed_leg"]
    assert len(open_inc) == 1  # reused, not one per adoption
    assert len(journal.entries(store, kinds=("unattributed_leg",))) == 2


def test_a_shortfall_is_not_adopted(store: Store) -> None:
    open_leg(store, strategy="A", qty="0.010")
    d = compare_positions(L.live_legs(store, "main"), [pos("BTCUSDT", PositionSide.BOTH, "0.004")])
    with pytest.raises(LedgerError, match="only an excess"):
        adopt_unattributed(store, "main", d[0], now_ms=T0)
    assert L.require_leg(store, L.live_legs(store, "main")[0].leg_id).qty == Decimal("0.010")


def test_close_missing_takes_pnl_from_trade_history(store: Store) -> None:
    leg = open_leg(store, strategy="A", qty="0.010", price="60000")
    trades = [Fill("h1", "5", "", "BTCUSDT", Side.SELL, PositionSide.BOTH, Decimal("61000"), Decimal("0.004"),
                   Decimal("0.1"), Decimal(0), T0 + 100),
              Fill("h2", "6", "", "BTCUSDT", Side.SELL, PositionSide.BOTH, Decimal("62000"), Decimal("0.006"),
                   Decimal("0.2"), Decimal(0), T0 + 200),
              Fill("h0", "4", "", "BTCUSDT", Side.BUY, PositionSide.BOTH, Decimal("50000"), Decimal("1"),
                   Decimal("0"), Decimal(0), T0 + 50)]
    with pytest.raises(LedgerError, match="no trade"):
        close_missing(store, "main", leg, [], now_ms=T0 + 300)
    done = close_missing(store, "main", leg, trades, now_ms=T0 + 300)
    assert done.state is L.LegState.CLOSED and done.close_reason == "missing_on_exchange"
    assert done.exit_price == Decimal("61600") and done.realized_pnl == Decimal("16.000")
    assert {r["trade_id"] for r in store.query("SELECT trade_id FROM fills WHERE leg_id=?", (leg.leg_id,))} >= {
        "h1", "h2"}
