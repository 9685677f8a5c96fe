"""Strategies see the exchange's (quantised) stop, and a MoveStop that quantises to it — or is looser — is a silent
no-op: no order, no journal warning (a trailing strategy re-asks for its level on every candle)."""

from __future__ import annotations

from decimal import Decimal

from albra.config import RiskLimits
from albra.engine.executor import Executor, StrategySlot
from albra.engine.risk_limits import risk_limits
from albra.engine.syncrun import run_sync
from albra.ledger import legs as L
from albra.model import Direction, PositionMode
from albra.store import journal
from albra.strategies.base import Enter, MoveStop

from engine_helpers import make_sim

C0 = 1_704_067_200_000


def _stops(ex):
    return [(a.client_algo_id, a.trigger_price) for a in ex.open_algos("acct") if a.order_type.value == "STOP_MARKET"]


def test_noop_and_looser_stop_moves_are_silent(store):
    ex, gw = make_sim(PositionMode.HEDGE)
    lim = risk_limits(RiskLimits())
    e = Executor(store, gw, "acct", PositionMode.HEDGE, run_sync(gw.load_markets()), [StrategySlot("MOMENTUM", 10.0, 5)],
                 lambda _s: lim, lambda: ex.now, alerts=False)
    [leg_id] = run_sync(e.handle("MOMENTUM", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.07, None, "a")], 60000.0))
    [(sl, trigger)] = _stops(ex)
    assert trigger == Decimal("58000.0")  # a long's stop rounds down to the tick
    [view] = e.views("MOMENTUM", "BTCUSDT")
    assert view.stop_price == float(trigger)  # what the strategy sees is what the exchange holds
    seq = journal.entries(store)[-1].seq
    for ask in (58000.07, 58000.0, 57950.0):  # same tick after quantising, the same level, looser
        run_sync(e.handle("MOMENTUM", "BTCUSDT", C0 + 900_000, [MoveStop(leg_id, ask, "trail")], 60000.0))
    assert _stops(ex) == [(sl, trigger)]
    later = [j for j in journal.entries(store) if j.seq > seq]
    assert all(j.level in ("DEBUG", "INFO") for j in later), [(j.kind, j.level) for j in later]
    assert not [j for j in later if j.kind.startswith("stop_")]
    # a real tightening still moves it, and the view follows the exchange
    run_sync(e.handle("MOMENTUM", "BTCUSDT", C0 + 1_800_000, [MoveStop(leg_id, 58500.04, "trail")], 60000.0))
    [(sl2, trigger2)] = _stops(ex)
    assert sl2 != sl and trigger2 == Decimal("58500.0")
    assert e.views("MOMENTUM", "BTCUSDT")[0].stop_price == float(trigger2)
    assert L.require_leg(store, leg_id).stop_price == trigger2
