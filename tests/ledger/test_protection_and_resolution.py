"""Protective orders per leg, the stop replacement protocol, and start-up resolution of intents — driven through
the paper gateway over albra's simulated exchange (tests/ledger/simgw.py adds call recording and lost responses)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from decimal import Decimal

import pytest

from albra.exchange.errors import OutcomeUnknown
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.ledger.fills import apply_fill
from albra.ledger.positions import compare_positions
from albra.ledger.protection import plan_protection, protection_gaps
from albra.orders.manager import OrderManager
from albra.orders.protection import protect_leg, replace_stop
from albra.orders.resolution import resolve_unresolved


def _om(store: Store, gw, t: int) -> OrderManager:
    return OrderManager(store, gw, "main", lambda: t)
from albra.model import Direction, OrderType, PositionMode, PositionSide, Side
from albra.sim.exchange import SimExchange
from albra.store import Store, journal

from tests.ledger.conftest import BTC, T0, entry_intent, fill_for
from tests.ledger.simgw import SimGateway

pytestmark = pytest.mark.anyio


def make(mode: PositionMode = PositionMode.ONE_WAY) -> tuple[SimExchange, SimGateway]:
    sim = SimExchange(now_ms=T0)
    sim.add_account("main", Decimal("100000"), mode)
    sim.open_at("BTCUSDT", T0, Decimal("65000"))
    return sim, SimGateway(sim, "main")


async def sync_trades(store: Store, gw: SimGateway) -> None:
    """What the engine's fill sync does: once every fill so far has reached trade history (and every order its
    lookup), tie each fired stop's child order to the stop through the algo's actualOrderId, then apply the history
    (fills are attributed only by their orders' ids — never guessed from side and price)."""
    r = gw.sim.realism
    await asyncio.sleep(max(r.trigger_ms + r.trade_ms, r.lookup_ms) / 1000 + 0.02)
    child_of: dict[str, str] = {}
    for row in store.query("SELECT client_id FROM order_intents WHERE purpose IN ('stop_loss', 'take_profit')"
                           " AND state = 'open'"):
        algo = await gw.fetch_order("BTCUSDT", row["client_id"], True)
        if algo is not None and algo.actual_order_id:
            child_of[str(algo.actual_order_id)] = row["client_id"]
    for t in await gw.fetch_trades("BTCUSDT"):
        if str(t.order_id) in child_of:
            t = replace(t, extra={**(t.extra or {}), "algo_client_id": child_of[str(t.order_id)]})
        apply_fill(store, "main", t)


async def enter(store: Store, gw: SimGateway, *, strategy: str, qty: str, stop: str, direction=Direction.LONG,
                mode=PositionMode.ONE_WAY, tp: str | None = None) -> L.Leg:
    intent, leg = entry_intent(store, strategy=strategy, qty=qty, stop=stop, tp=tp, direction=direction, mode=mode)
    out = await _om(store, gw, T0).place(intent)
    assert out.state == "filled"
    await sync_trades(store, gw)
    await protect_leg(_om(store, gw, T0), leg.leg_id, BTC)
    return L.require_leg(store, leg.leg_id)


def test_plan_protection_shapes_and_rounding(store: Store) -> None:
    intent, leg = entry_intent(store, stop="60000.05", tp="70000.01")
    apply_fill(store, "main", fill_for(intent, "0.010", "65000"))
    leg = L.require_leg(store, leg.leg_id)
    sl, tp = plan_protection(leg, BTC)
    assert (sl.side, sl.order_type, sl.qty, sl.position_side) == (Side.SELL, OrderType.STOP_MARKET, Decimal("0.010"),
                                                                  PositionSide.BOTH)
    assert sl.reduce_only and not sl.close_position and sl.is_algo
    assert sl.trigger_price == Decimal("60000.0")  # long stop rounds down: never fires early
    assert tp.trigger_price == Decimal("70000.1") and tp.order_type is OrderType.TAKE_PROFIT_MARKET
    assert sl.client_id != tp.client_id and len(sl.client_id) <= 36

    hi, hleg = entry_intent(store, strategy="Z", direction=Direction.SHORT, mode=PositionMode.HEDGE, stop="70000.01")
    apply_fill(store, "main", fill_for(hi, "0.020", "65000"))
    (hs,) = plan_protection(L.require_leg(store, hleg.leg_id), BTC)
    assert (hs.side, hs.position_side, hs.reduce_only, hs.qty) == (Side.BUY, PositionSide.SHORT, False,
                                                                  Decimal("0.020"))
    assert hs.trigger_price == Decimal("70000.1")  # short stop rounds up


async def test_each_leg_stop_closes_only_its_own_share(store: Store) -> None:
    sim, gw = make()
    a = await enter(store, gw, strategy="A", qty="0.010", stop="64000")
    b = await enter(store, gw, strategy="B", qty="0.020", stop="62000")
    assert len(gw.open_algo_ids("BTCUSDT")) == 2
    sim.move("BTCUSDT", Decimal("63000"))  # crosses A's stop only
    await sync_trades(store, gw)
    la, lb = L.require_leg(store, a.leg_id), L.require_leg(store, b.leg_id)
    assert la.state is L.LegState.CLOSED and la.close_reason == "stop_loss"
    assert lb.state is L.LegState.OPEN and lb.qty == Decimal("0.020")
    assert compare_positions(L.live_legs(store, "main"), await gw.fetch_positions()) == []


async def test_replace_stop_alone_on_side_places_then_cancels(store: Store) -> None:
    sim, gw = make()
    a = await enter(store, gw, strategy="A", qty="0.010", stop="60000")
    old = a.sl_client_id
    res = await replace_stop(_om(store, gw, T0 + 1), a.leg_id, Decimal("62000"), BTC, mark_price=Decimal("65000"))
    assert res.status == "replaced" and res.protocol == "place_then_cancel"
    order = [c for c in gw.calls if c[1] in (old, res.new_client_id) and c[0] in ("place", "cancel")]
    assert order == [("place", old), ("place", res.new_client_id), ("cancel", old)]
    assert gw.open_algo_ids("BTCUSDT") == [res.new_client_id]
    leg = L.require_leg(store, a.leg_id)
    assert leg.sl_client_id == res.new_client_id and leg.stop_price == Decimal("62000")
    assert I.get_intent(store, old).state == "canceled"
    assert protection_gaps(store, "main") == []


async def test_replace_stop_on_shared_side_cancels_then_places(store: Store) -> None:
    sim, gw = make()
    a = await enter(store, gw, strategy="A", qty="0.010", stop="60000")
    b = await enter(store, gw, strategy="B", qty="0.020", stop="61000")
    res = await replace_stop(_om(store, gw, T0 + 1), a.leg_id, Decimal("63000"), BTC, mark_price=Decimal("65000"))
    assert res.status == "replaced" and res.protocol == "cancel_then_place"
    order = [c for c in gw.calls if c[1] in (a.sl_client_id, res.new_client_id) and c[0] in ("place", "cancel")]
    assert order[-2:] == [("cancel", a.sl_client_id), ("place", res.new_client_id)]
    assert sorted(gw.open_algo_ids("BTCUSDT")) == sorted([res.new_client_id, b.sl_client_id])
    assert protection_gaps(store, "main") == []


async def test_crossed_new_stop_touches_nothing(store: Store) -> None:
    sim, gw = make()
    a = await enter(store, gw, strategy="A", qty="0.010", stop="60000")
    before = list(gw.calls)
    res = await replace_stop(_om(store, gw, T0 + 1), a.leg_id, Decimal("66000"), BTC, mark_price=Decimal("65000"))
    assert res.status == "crossed" and gw.calls == before
    assert gw.open_algo_ids("BTCUSDT") == [a.sl_client_id]


async def test_refused_new_stop_on_shared_side_is_reported_unprotected(store: Store) -> None:
    sim, gw = make()
    a = await enter(store, gw, strategy="A", qty="0.010", stop="60000")
    await enter(store, gw, strategy="B", qty="0.020", stop="61000")
    res = await replace_stop(_om(store, gw, T0 + 1), a.leg_id, Decimal("66000"), BTC)  # no mark given
    assert res.status == "unprotected"
    assert I.get_intent(store, res.new_client_id).state == "rejected"
    assert journal.entries(store, kinds=("stop_unprotected",))[0].level == "CRITICAL"
    gaps = protection_gaps(store, "main")
    assert [(g.leg_id, g.missing) for g in gaps] == [(a.leg_id, True)]


async def test_hedge_opposite_legs_have_their_own_stops(store: Store) -> None:
    sim, gw = make(PositionMode.HEDGE)
    lo = await enter(store, gw, strategy="A", qty="0.010", stop="60000", mode=PositionMode.HEDGE)
    sh = await enter(store, gw, strategy="B", qty="0.020", stop="70000", mode=PositionMode.HEDGE,
                     direction=Direction.SHORT)
    assert compare_positions(L.live_legs(store, "main"), await gw.fetch_positions()) == []
    res = await replace_stop(_om(store, gw, T0 + 1), sh.leg_id, Decimal("68000"), BTC, mark_price=Decimal("65000"))
    assert res.status == "replaced" and res.protocol == "place_then_cancel"  # alone on the SHORT side
    sim.move("BTCUSDT", Decimal("68500"))
    await sync_trades(store, gw)
    assert L.require_leg(store, sh.leg_id).state is L.LegState.CLOSED
    assert L.require_leg(store, lo.leg_id).qty == Decimal("0.010")
    assert compare_positions(L.live_legs(store, "main"), await gw.fetch_positions()) == []


async def test_resolve_unresolved_after_crashes(store: Store) -> None:
    sim, gw = make()
    # 1) committed, then crashed before sending
    never, never_leg = entry_intent(store, strategy="N", qty="0.010")
    # 2) sent, accepted, response lost
    lost, lost_leg = entry_intent(store, strategy="L", qty="0.020")
    I.mark_sent(store, lost.client_id, now_ms=T0)
    gw.lose_response.add(lost.client_id)
    with pytest.raises(OutcomeUnknown):
        await gw.place_order(lost.request())
    I.mark_unknown(store, lost.client_id, "timeout", now_ms=T0)
    # 3) sent, never arrived
    gone, gone_leg = entry_intent(store, strategy="G", qty="0.030")
    I.mark_sent(store, gone.client_id, now_ms=T0)
    gw.lose_before.add(gone.client_id)
    with pytest.raises(OutcomeUnknown):
        await gw.place_order(gone.request())
    places_before = [c for c in gw.calls if c[0] == "place"]

    res = {r.client_id: r for r in await resolve_unresolved(store, gw, "main", now_ms=T0 + 5)}
    assert res[never.client_id].after == "not_found" and res[never.client_id].leg_state == "cancelled"
    assert res[lost.client_id].after == "filled" and res[lost.client_id].fills_applied == 1
    assert res[gone.client_id].after == "not_found" and res[gone.client_id].leg_state == "cancelled"
    assert [c for c in gw.calls if c[0] == "place"] == places_before  # nothing (re)sent
    assert L.require_leg(store, lost_leg.leg_id).qty == Decimal("0.020")
    assert I.unresolved(store, "main") == []
    assert compare_positions(L.live_legs(store, "main"), await gw.fetch_positions()) == []
    # the lost entry has no stop yet: start-up finds the gap and protects it
    assert [g.leg_id for g in protection_gaps(store, "main")] == [lost_leg.leg_id]
    await protect_leg(_om(store, gw, T0 + 6), lost_leg.leg_id, BTC)
    assert protection_gaps(store, "main") == []


async def test_placement_with_lost_response_is_looked_up_not_resent(store: Store) -> None:
    sim, gw = make()
    intent, leg = entry_intent(store, strategy="A", qty="0.010")
    gw.lose_response.add(intent.client_id)
    out = await _om(store, gw, T0).place(intent)
    assert out.state == "filled"
    calls = [c[0] for c in gw.calls if c[1] == intent.client_id]
    assert calls[0] == "place" and set(calls[1:]) == {"fetch"}  # looked up (spaced, until visible), never re-sent
    again, _ = entry_intent(store, strategy="A", qty="0.010")
    assert again.state == "filled"  # re-deriving the id finds the known outcome: never a second order
