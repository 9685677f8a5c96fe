"""Partial exits re-size the leg's protection through the ledger's two-case protocol: on a side shared with
another strategy's leg the live stops never sum to more than the position at any moment (watched on every event
of the simulated exchange); alone on its side the new, smaller stop is placed before the old one is cancelled."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest

from albra.config import RiskLimits
from albra.engine.executor import Executor, StrategySlot
from albra.engine.risk_limits import risk_limits
from albra.engine.syncrun import run_sync
from albra.ledger import legs as L
from albra.model import Direction, PositionMode
from albra.store import journal
from albra.strategies.base import Enter, Exit

from engine_helpers import make_sim

C0 = 1_704_067_200_000


def _executor(store, gw, ex, mode):
    lim = risk_limits(RiskLimits())
    return Executor(store, gw, "acct", mode, run_sync(gw.load_markets()),
                    [StrategySlot("TFPE", 20.0, 10), StrategySlot("ZLMACD_ICHIMOKU", 20.0, 10)], lambda _s: lim,
                    lambda: ex.now, alerts=False)


class _SideWatch:
    """On every exchange event: the live stop quantities on (BTCUSDT, side) against the position there."""

    def __init__(self, ex, side: str) -> None:
        self.ex, self.side, self.worst = ex, side, Decimal("-1e9")
        self.events = 0
        ex.listeners.append(self)

    def __call__(self, kind, obj) -> None:
        acct = self.ex.account("acct")
        stops = sum((a.qty for a in acct.open_algos.values() if a.order_type.value == "STOP_MARKET"
                     and a.position_side.value == self.side), Decimal(0))
        pos = sum((abs(p.amt) for p in acct.live_positions("BTCUSDT") if p.side.value == self.side), Decimal(0))
        self.worst = max(self.worst, stops - pos)
        self.events += 1


@pytest.mark.parametrize("mode,side", [(PositionMode.HEDGE, "LONG"), (PositionMode.ONE_WAY, "BOTH")])
def test_partial_exit_on_a_shared_side_never_over_stops(store, mode, side):
    ex, gw = make_sim(mode)
    e = _executor(store, gw, ex, mode)
    a = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, 64000.0, "a")], 60000.0))[0]
    b = run_sync(e.handle("ZLMACD_ICHIMOKU", "BTCUSDT", C0, [Enter(Direction.LONG, 57000.0, None, "b")], 60000.0))[0]
    before = {g.leg_id: g for g in L.live_legs(store, "acct")}
    watch = _SideWatch(ex, side)
    run_sync(e.handle("TFPE", "BTCUSDT", C0 + 900_000, [Exit(a, 0.5, "half off", "tp1")], 60000.0))
    assert watch.events > 0 and watch.worst <= 0, f"stops exceeded the position by {watch.worst}"
    legs = {g.leg_id: g for g in L.live_legs(store, "acct")}
    half = (before[a].qty_initial / 2).quantize(Decimal("0.001"), rounding=ROUND_DOWN)  # floored to the step
    assert legs[a].qty == before[a].qty - half
    stops = {x.client_algo_id: x for x in ex.open_algos("acct") if x.order_type.value == "STOP_MARKET"}
    assert set(stops) == {legs[a].sl_client_id, legs[b].sl_client_id}
    assert stops[legs[a].sl_client_id].qty == legs[a].qty and stops[legs[b].sl_client_id].qty == legs[b].qty
    assert legs[b].sl_client_id == before[b].sl_client_id  # the other strategy's stop was not touched
    tps = [x for x in ex.open_algos("acct") if x.order_type.value == "TAKE_PROFIT_MARKET"]
    assert [(x.client_algo_id, x.qty) for x in tps] == [(legs[a].tp_client_id, legs[a].qty)]
    resized = journal.entries(store, kinds=("stop_replaced", "take_profit_replaced"))
    assert {r.kind for r in resized} == {"stop_replaced", "take_profit_replaced"}
    assert all("cancel_then_place" in r.message for r in resized)
    assert e.stats.closed == []


def test_partial_exit_alone_on_its_side_places_first(store):
    ex, gw = make_sim(PositionMode.HEDGE)
    e = _executor(store, gw, ex, PositionMode.HEDGE)
    a = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, None, "a")], 60000.0))[0]
    run_sync(e.handle("TFPE", "BTCUSDT", C0 + 900_000, [Exit(a, 0.5, "half off", "tp1")], 60000.0))
    leg = L.require_leg(store, a)
    stops = [x for x in ex.open_algos("acct") if x.order_type.value == "STOP_MARKET"]
    assert [(x.client_algo_id, x.qty) for x in stops] == [(leg.sl_client_id, leg.qty)]
    [moved] = journal.entries(store, kinds=("stop_replaced",))
    assert "place_then_cancel" in moved.message


@pytest.mark.parametrize("mode", [PositionMode.HEDGE, PositionMode.ONE_WAY])
def test_full_exit_on_a_shared_side_takes_its_stop_off_first(store, mode):
    """Issue 13 finding 4: a full exit sent its market order while the leg's own stop was still live, so on a side
    shared with another strategy a stop firing in that window sold the other strategy's share. Now, on a shared
    side, the leg's stop and take-profit are off the book when its reduce-only order reaches the exchange."""
    ex, gw = make_sim(mode)
    e = _executor(store, gw, ex, mode)
    a = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, 64000.0, "a")], 60000.0))[0]
    b = run_sync(e.handle("ZLMACD_ICHIMOKU", "BTCUSDT", C0, [Enter(Direction.LONG, 57000.0, None, "b")], 60000.0))[0]
    leg_a = L.require_leg(store, a)
    own = {leg_a.sl_client_id, leg_a.tp_client_id}
    live_at_exit: list[set[str]] = []

    def watch(kind, obj) -> None:
        if kind == "order" and obj.source == "api" and "-ex-" in obj.client_id:
            live_at_exit.append({x.client_algo_id for x in ex.account("acct").open_algos.values()} & own)

    ex.listeners.append(watch)
    run_sync(e.handle("TFPE", "BTCUSDT", C0 + 900_000, [Exit(a, 1.0, "exit", "signal")], 60000.0))
    assert live_at_exit == [set()], live_at_exit
    assert L.require_leg(store, a).state is L.LegState.CLOSED
    other = L.require_leg(store, b)
    assert other.state is L.LegState.OPEN and other.sl_client_id in {x.client_algo_id for x in ex.open_algos("acct")}
