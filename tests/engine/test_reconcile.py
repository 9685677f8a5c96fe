"""The runner's reconciliation round against the paper exchange: a stop cancelled by hand is re-placed, a leg
closed by hand is closed from the trade history, a position opened by hand becomes an explicit unattributed leg
(incident + alert), a failed read changes nothing — and a second round finds nothing (it converges)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.config import RiskLimits
from albra.engine.executor import Executor, StrategySlot
from albra.engine.reconcile import Reconciler
from albra.engine.risk_limits import risk_limits
from albra.engine.syncrun import run_sync
from albra.exchange import errors as X
from albra.exchange.paper import PaperGateway
from albra.ledger import legs as L
from albra.ledger.positions import compare_positions
from albra.model import Direction, PositionMode
from albra.store import incidents, journal
from albra.strategies.base import Enter

from engine_helpers import make_sim, settle

C0 = 1_704_067_200_000


def _setup(store):
    ex, gw = make_sim(PositionMode.HEDGE)
    lim = risk_limits(RiskLimits())
    e = Executor(store, gw, "acct", PositionMode.HEDGE, run_sync(gw.load_markets()),
                 [StrategySlot("TFPE", 24.0, 10), StrategySlot("ZLMACD_ICHIMOKU", 24.0, 10)], lambda _s: lim,
                 lambda: ex.now, alerts=True)
    a = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, None, "a")], 60000.0))[0]
    b = run_sync(e.handle("ZLMACD_ICHIMOKU", "BTCUSDT", C0, [Enter(Direction.SHORT, 62000.0, None, "b")], 60000.0))[0]
    return ex, gw, e, Reconciler(store, gw, "acct", e, e.filters, lambda: ex.now), a, b


def test_round_repairs_explicitly_and_converges(store):
    ex, gw, e, rec, a, b = _setup(store)
    assert run_sync(rec.round()).clean  # nothing to do on a consistent account
    leg_a, leg_b = L.require_leg(store, a), L.require_leg(store, b)
    ex.now += 60_000
    ex.cancel_algo("acct", None, leg_a.sl_client_id)                          # stop cancelled by hand
    ex.place_order("acct", "BTCUSDT", "BUY", "MARKET", leg_b.qty, position_side="SHORT")  # B closed by hand
    ex.place_order("acct", "BTCUSDT", "BUY", "MARKET", Decimal("0.010"), position_side="LONG")  # manual add
    settle(ex)  # done by hand a while before the round: their trades are in the history by then

    rep = run_sync(rec.round())
    assert rep is not None and not rep.clean
    assert rep.closed == [b] and L.require_leg(store, b).state is L.LegState.CLOSED
    assert L.require_leg(store, b).close_reason == "missing_on_exchange"
    assert len(rep.adopted) == 1
    un = L.require_leg(store, rep.adopted[0])
    assert un.strategy == L.UNATTRIBUTED and un.qty == Decimal("0.010") and un.direction is Direction.LONG
    assert any(i.kind == "unattributed_leg" for i in incidents.list_incidents(store))
    new_a = L.require_leg(store, a)
    assert new_a.sl_client_id != leg_a.sl_client_id and rep.protected == [new_a.sl_client_id]
    live = {x.client_algo_id: x for x in ex.open_algos("acct", "BTCUSDT")}
    assert set(live) == {new_a.sl_client_id}  # B's orphaned stop was cancelled with its leg
    assert live[new_a.sl_client_id].qty == new_a.qty
    assert compare_positions(L.live_legs(store, "acct"), run_sync(gw.fetch_positions())) == []
    kinds = {r["kind"] for r in store.query("SELECT kind FROM alerts")}
    assert {"reconcile_difference", "unattributed_leg"} <= kinds

    again = run_sync(rec.round())
    assert again is not None and again.clean, again  # converged: the second round finds nothing


class _BrokenPositions(PaperGateway):
    async def fetch_positions(self, symbols=None):
        raise X.MalformedResponse("positionRisk: HTML body")


def test_failed_read_skips_the_round_and_changes_nothing(store):
    ex, gw, e, rec, a, b = _setup(store)
    ex.place_order("acct", "BTCUSDT", "BUY", "MARKET", Decimal("0.010"), position_side="LONG")
    bad = Reconciler(store, _BrokenPositions("acct", ex), "acct", e, e.filters, lambda: ex.now)
    before = [(g.leg_id, g.qty, g.state) for g in L.live_legs(store, "acct")]
    assert run_sync(bad.round()) is None
    assert [(g.leg_id, g.qty, g.state) for g in L.live_legs(store, "acct")] == before  # unknown is not empty
    assert journal.entries(store, kinds=("reconcile_skipped",))


def test_a_closed_legs_stop_left_live_is_swept(store, monkeypatch):
    """Issue 13 finding 11: a crash right after a full exit was sent left the closed leg's stop and take-profit live;
    a day later the stale stop fired and closed another strategy's position. Each round now cancels every open
    protective order of ours whose leg is no longer live, and journals it."""
    ex, gw, e, rec, a, b = _setup(store)
    leg_a = L.require_leg(store, a)
    own = {leg_a.sl_client_id} | ({leg_a.tp_client_id} if leg_a.tp_client_id else set())

    async def crashed_before_cancel(leg, keep=frozenset()):  # the exit is sent and filled; the process dies here
        return None

    monkeypatch.setattr(e, "_cancel_protective", crashed_before_cancel)
    monkeypatch.setattr(e, "_after_reduce", lambda *a_, **k: crashed_before_cancel(None))
    assert own <= {x.client_algo_id for x in ex.open_algos("acct")}
    run_sync(e.exit(a, 1.0, "exit", "signal", C0 + 900_000))
    monkeypatch.undo()
    # the exit filled; the ledger learns it at the next round, which must also take the orphans off the book
    rep = run_sync(rec.round())
    assert rep is not None
    left = {x.client_algo_id for x in ex.open_algos("acct")}
    assert not (own & left), f"the closed leg's protective orders are still live: {own & left}"
    assert L.require_leg(store, b).sl_client_id in left  # the other leg keeps its stop
    assert L.require_leg(store, a).state is L.LegState.CLOSED
    assert journal.entries(store, kinds=("orphan_cancelled",))


def test_an_unreadable_symbol_does_not_stop_resolution_of_the_others(store):
    """Issue 13: an unresolvable record of one symbol does not stop the round for the others."""
    from albra.exchange import errors as X
    from albra.exchange.client_ids import make_client_id
    from albra.exchange.types import OrderRequest
    from albra.ledger import intents as I
    from albra.model import Direction, OrderType, PositionSide
    from albra.orders.resolution import resolve_unresolved

    ex, gw = make_sim(PositionMode.ONE_WAY)
    ex.on_candle("ETHUSDT", ex.now, 3000.0, 3000.0, 3000.0, 3000.0)
    for sym in ("BTCUSDT", "ETHUSDT"):
        cid = make_client_id("acct", "TFPE", sym, ex.now, "entry")
        I.record_entry(store, OrderRequest(cid, sym, Direction.LONG.entry_side, OrderType.MARKET, Decimal("0.01"),
                                           PositionSide.BOTH), account="acct", strategy="TFPE",
                       direction=Direction.LONG, position_mode=PositionMode.ONE_WAY, candle_ts=ex.now, now_ms=ex.now,
                       stop_price=Decimal("1"))
        I.mark_sent(store, cid, now_ms=ex.now)  # sent; the answer was lost (and the order never reached the book)
    real = gw.fetch_order

    async def eth_unreadable(symbol, client_id, is_algo):
        if symbol == "ETHUSDT":
            raise X.NetworkFailure("503 on ETHUSDT")
        return await real(symbol, client_id, is_algo)

    gw.fetch_order = eth_unreadable
    done = run_sync(resolve_unresolved(store, gw, "acct", now_ms=ex.now))
    assert [(r.client_id.split("-")[1], r.after) for r in done] == [("en", "not_found")]
    left = I.unresolved(store, "acct")
    assert [i.symbol for i in left] == ["ETHUSDT"]
    assert any(j.symbol == "ETHUSDT" for j in journal.entries(store, kinds=("intent_unresolved",)))

    async def all_unreadable(symbol, client_id, is_algo):
        raise X.NetworkFailure("503 everywhere")

    gw.fetch_order = all_unreadable
    with pytest.raises(X.NetworkFailure):
        run_sync(resolve_unresolved(store, gw, "acct", now_ms=ex.now))
