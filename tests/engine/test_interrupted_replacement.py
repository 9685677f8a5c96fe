"""A stop move interrupted between its exchange calls and its ledger update (issue 9 finding 1), both protocol orders.

The process "dies" in-process: the order manager's crash hooks (``albra.orders.protection.crashpoint``, ``albra.orders.manager.crashpoint``) raises instead of
SIGKILLing, so nothing after that line runs and the store holds exactly what was committed. The restart is what
``albra run`` does: a new executor on the same store, start-up resolution by client id, the protective sync, a
reconciliation round. Afterwards the leg must name the newest live stop (id and trigger), no older generation may
stay live, and when that stop fires its fill closes this leg — never ``fill_unattributed``, never another leg.
"""

from __future__ import annotations


from decimal import Decimal

import pytest

from albra.config import RiskLimits
from albra.engine.executor import Executor, StrategySlot
from albra.engine.reconcile import Reconciler
from albra.engine.risk_limits import risk_limits
from albra.engine.syncrun import run_sync
from albra.orders.resolution import resolve_unresolved
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.orders import manager, protection
from albra.model import Direction, PositionMode
from albra.store import journal
from albra.strategies.base import Enter

from engine_helpers import make_sim, settle

C0 = 1_704_067_200_000


class Died(BaseException):
    """The simulated SIGKILL: a BaseException, so no ``except Exception`` on the way up can swallow it."""


def _executor(store, gw, ex, filters=None):
    lim = risk_limits(RiskLimits())
    return Executor(store, gw, "acct", PositionMode.HEDGE, filters or run_sync(gw.load_markets()),
                    [StrategySlot("TFPE", 10.0, 10), StrategySlot("ZLMACD_ICHIMOKU", 10.0, 10)], lambda _s: lim,
                    lambda: ex.now, alerts=False)


def _die_at(monkeypatch, point: str) -> None:
    def crash(name: str) -> None:
        if name == point:
            raise Died(point)

    monkeypatch.setattr(protection, "crashpoint", crash)
    monkeypatch.setattr(manager, "crashpoint", crash)


def _restart(store, gw, ex):
    """What ``albra run`` does before its first candle: resolve by id, sync protective orders, reconcile."""
    filters = run_sync(gw.load_markets())
    run_sync(resolve_unresolved(store, gw, "acct", now_ms=ex.now))
    e = _executor(store, gw, ex, filters)
    run_sync(e.sync_protective())
    e.reload_legs()
    rec = Reconciler(store, gw, "acct", e, filters, lambda: ex.now)
    first = run_sync(rec.round())
    second = run_sync(rec.round())
    return e, first, second


def _stops(ex, side: str) -> dict[str, tuple[Decimal, Decimal]]:
    return {a.client_algo_id: (a.trigger_price, a.qty) for a in ex.open_algos("acct")
            if a.order_type.value == "STOP_MARKET" and a.position_side.value == side}


def _short_legs(store, ex, e, shared: bool):
    a = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.SHORT, 62000.0, None, "a")], 60000.0))[0]
    b = None
    if shared:
        b = run_sync(e.handle("ZLMACD_ICHIMOKU", "BTCUSDT", C0, [Enter(Direction.SHORT, 63000.0, None, "b")],
                              60000.0))[0]
    return a, b


@pytest.mark.parametrize("shared,point", [
    (True, "after_order_sent"),    # cancel_then_place: old cancelled, new sent, answer not recorded
    (False, "after_order_sent"),   # place_then_cancel: new sent (answer not recorded), old still live
    (False, "mid_stop_replace"),   # place_then_cancel: new recorded open, old still live
])
def test_interrupted_stop_move_is_linked_and_the_old_one_cancelled(store, monkeypatch, shared, point):
    ex, gw = make_sim(PositionMode.HEDGE)
    e = _executor(store, gw, ex)
    a, b = _short_legs(store, ex, e, shared)
    before_a = L.require_leg(store, a)
    before_b = L.require_leg(store, b) if b else None
    _die_at(monkeypatch, point)
    with pytest.raises(Died):
        run_sync(e.move_stop(a, 61000.0, "trail"))
    monkeypatch.setattr(protection, "crashpoint", lambda name: None)
    monkeypatch.setattr(manager, "crashpoint", lambda name: None)
    live_now = _stops(ex, "SHORT")
    assert (before_a.sl_client_id in live_now) is (not shared)  # the interrupted state this test is about
    assert L.require_leg(store, a).sl_client_id == before_a.sl_client_id

    e2, first, second = _restart(store, gw, ex)
    leg = L.require_leg(store, a)
    assert leg.sl_client_id != before_a.sl_client_id and leg.stop_price == Decimal("61000.0")
    stops = _stops(ex, "SHORT")
    assert stops[leg.sl_client_id] == (Decimal("61000.0"), leg.qty)
    assert before_a.sl_client_id not in stops  # no older generation left live beside it
    if before_b is not None:  # the other strategy's stop untouched
        assert L.require_leg(store, b).sl_client_id == before_b.sl_client_id and before_b.sl_client_id in stops
    assert set(stops) == {leg.sl_client_id} | ({before_b.sl_client_id} if before_b else set())
    assert not I.unresolved(store, "acct")
    assert second is not None and second.clean, second.as_dict()
    assert journal.entries(store, kinds=("protection_linked",))

    # the moved stop fires: its fill closes THIS leg (attributed), the other strategy's leg keeps its share
    ex.now += 60_000
    ex.on_candle("BTCUSDT", ex.now, 60000.0, 61500.0, 59900.0, 61200.0)
    settle(ex)  # a sync right after the trigger sees TRIGGERING (not final): the next one, after FINISHED
    run_sync(e2.sync_protective())
    closed = L.require_leg(store, a)
    assert closed.state is L.LegState.CLOSED and closed.close_reason == "stop_loss"
    assert closed.exit_price is not None and closed.exit_price >= Decimal("61000.0")
    assert not journal.entries(store, kinds=("fill_unattributed",))
    pos = {p.position_side.value: p.qty for p in run_sync(gw.fetch_positions())}
    if before_b is not None:
        other = L.require_leg(store, b)
        assert other.state is L.LegState.OPEN and pos["SHORT"] == -other.qty
    else:
        assert pos.get("SHORT", Decimal(0)) == 0


def test_sync_links_a_newer_generation_even_without_a_restart(store, monkeypatch):
    """The periodic sync follows every live protective intent of a leg: a newer generation the leg does not name
    is linked, and its fill is attributed — without start-up resolution having run."""
    ex, gw = make_sim(PositionMode.HEDGE)
    e = _executor(store, gw, ex)
    a, b = _short_legs(store, ex, e, True)
    _die_at(monkeypatch, "after_order_sent")
    with pytest.raises(Died):
        run_sync(e.move_stop(a, 61000.0, "trail"))
    monkeypatch.setattr(protection, "crashpoint", lambda name: None)
    monkeypatch.setattr(manager, "crashpoint", lambda name: None)
    [sent] = [i for i in I.intents_of_leg(store, a, "stop_loss") if i.state == "sent"]
    run_sync(e.sync_protective())  # the same executor: the 'sent' intent is looked up, found open, linked
    leg = L.require_leg(store, a)
    assert I.get_intent(store, sent.client_id).state == "open"
    assert leg.sl_client_id == sent.client_id and leg.stop_price == Decimal("61000.0")
