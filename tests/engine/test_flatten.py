"""``mdd_flatten_on_halt`` (issue 13 finding 10): the runner flattens its account through the executor — every leg
closed reduce-only, protection off, verified flat by two reads, an incident — instead of only writing a journal
line."""

from __future__ import annotations

from albra.config import RiskLimits
from albra.engine.executor import Executor, StrategySlot
from albra.engine.flatten import flatten_account
from albra.engine.risk_limits import risk_limits
from albra.engine.syncrun import run_sync
from albra.ledger import legs as L
from albra.model import Direction, PositionMode
from albra.store import incidents, journal
from albra.strategies.base import Enter

from engine_helpers import make_sim

C0 = 1_704_067_200_000


def test_flatten_closes_every_leg_and_verifies_flat(store):
    ex, gw = make_sim(PositionMode.HEDGE)
    lim = risk_limits(RiskLimits())
    e = Executor(store, gw, "acct", PositionMode.HEDGE, run_sync(gw.load_markets()),
                 [StrategySlot("TFPE", 10.0, 10), StrategySlot("ZLMACD_ICHIMOKU", 10.0, 10)], lambda _s: lim,
                 lambda: ex.now, alerts=True)
    run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, 64000.0, "a")], 60000.0))
    run_sync(e.handle("ZLMACD_ICHIMOKU", "BTCUSDT", C0, [Enter(Direction.LONG, 57000.0, None, "b")], 60000.0))
    run_sync(e.handle("TFPE", "BTCUSDT", C0 + 900_000, [Enter(Direction.SHORT, 62000.0, None, "c")], 60000.0))
    assert len(L.live_legs(store, "acct")) == 3
    res = run_sync(flatten_account(e, reason="MDD halt", now_ms=C0 + 40 * 86_400_000))  # legs > 32 days old
    assert res.verified and len(res.legs_closed) == 3 and res.remaining == [] and res.errors == []
    assert L.live_legs(store, "acct") == []
    acct = ex.account("acct")
    assert acct.live_positions() == [] and not acct.open_algos and not acct.open_orders
    inc = incidents.get(store, res.incident_id)
    assert inc is not None and inc.status == "open" and inc.kind == "mdd_flatten"
    done = journal.entries(store, kinds=("flatten_done",))
    assert done and "verified flat" in done[-1].message
