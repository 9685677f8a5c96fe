"""The engine against Binance's eventual visibility (the realistic in-process exchange, wall-clock windows):
an entry's fill that reaches trade history after the answer still opens and protects the leg, a stop that has
only reached TRIGGERING is not final, a leg held ten days whose stop fires is closed (trade history is read in
7-day windows), and a stop that FINISHED with nothing executed is not booked as a fill."""

from __future__ import annotations

from decimal import Decimal

from albra.config import RiskLimits
from albra.engine.executor import Executor, StrategySlot
from albra.engine.risk_limits import risk_limits
from albra.engine.syncrun import run_sync
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.model import Direction, PositionMode
from albra.store import journal
from albra.strategies.base import Enter

from engine_helpers import make_sim, settle

C0 = 1_704_067_200_000
DAY = 86_400_000


def _executor(store, gw, ex):
    lim = risk_limits(RiskLimits())
    return Executor(store, gw, "acct", PositionMode.ONE_WAY, run_sync(gw.load_markets()),
                    [StrategySlot("TFPE", 10.0, 10)], lambda _s: lim, lambda: ex.now, alerts=False)


def test_late_fill_opens_and_protects_the_leg(store):
    ex, gw = make_sim(PositionMode.ONE_WAY)
    assert ex.realism.trade_ms > 0 and ex.realism.lookup_ms > 0  # the realistic default
    e = _executor(store, gw, ex)
    [leg_id] = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, None, "a")], 60000.0))
    leg = L.require_leg(store, leg_id)
    assert leg.state is L.LegState.OPEN and leg.qty > 0 and leg.sl_client_id
    assert [a.client_algo_id for a in ex.open_algos("acct")] == [leg.sl_client_id]
    assert not journal.entries(store, kinds=("fills_missing",))


def test_triggering_is_not_final_and_a_ten_day_leg_closes_on_its_stop(store):
    ex, gw = make_sim(PositionMode.ONE_WAY)
    e = _executor(store, gw, ex)
    [leg_id] = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, None, "a")], 60000.0))
    sl = L.require_leg(store, leg_id).sl_client_id
    settle(ex)
    ex.now += 10 * DAY  # held ten days: its entry lies outside any single 7-day trade-history window
    ex.on_candle("BTCUSDT", ex.now, 60000.0, 60100.0, 57000.0, 57500.0)
    run_sync(e.sync_protective())  # right after the trigger: TRIGGERING, nothing decided yet
    assert L.require_leg(store, leg_id).state is L.LegState.OPEN
    assert I.get_intent(store, sl).state == "open"
    settle(ex)
    run_sync(e.sync_protective())
    closed = L.require_leg(store, leg_id)
    assert closed.state is L.LegState.CLOSED and closed.close_reason == "stop_loss"
    assert closed.exit_price is not None and closed.realized_pnl < 0
    assert I.get_intent(store, sl).state == "filled"
    assert ex.account("acct").position("BTCUSDT", closed.position_side).amt == 0


def test_a_stop_finished_with_nothing_executed_is_not_a_fill(store):
    """The position went away behind the engine's back (a manual close); the stop then fires, its reduce-only
    child finds nothing and expires, and Binance says FINISHED. Not a stop-out with PnL: the intent ends expired,
    the loss of protection is journaled and alerted, re-protecting is refused by the exchange (nothing to reduce)
    without breaking the sync, and the leg is left for reconciliation to settle against the exchange."""
    ex, gw = make_sim(PositionMode.ONE_WAY)
    e = _executor(store, gw, ex)
    [leg_id] = run_sync(e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.LONG, 58000.0, None, "a")], 60000.0))
    leg = L.require_leg(store, leg_id)
    ex.place_order("acct", "BTCUSDT", "SELL", "MARKET", leg.qty, reduce_only=True, client_id="by-hand")
    ex.now += 60_000
    ex.on_candle("BTCUSDT", ex.now, 60000.0, 60000.0, 57000.0, 57500.0)
    settle(ex)
    run_sync(e.sync_protective())
    after = L.require_leg(store, leg_id)
    assert I.get_intent(store, leg.sl_client_id).state == "expired"
    assert after.state is L.LegState.OPEN and after.close_reason is None  # no phantom stop-out
    assert journal.entries(store, kinds=("protective_vanished",))
