"""A paper replay and a backtest of the same account, strategies, data and window take the same trades (issue 14:
47.34 vs 175.89 PnL on the example configuration). The difference was the paper runner evaluating a candle before
syncing the protective orders that fired on it: a take-profit had closed the leg on the exchange, but the strategy
still saw it open and skipped the entry the backtest took on the flat book."""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.candles import bundled, load_funding
from albra.config import load_settings
from albra.engine.backtest import BacktestSetup, StrategySpec, run_backtest
from albra.engine.runner import Runner, build_paper
from albra.ledger import legs as L
from albra.model import PositionMode
from albra.store import Store
from albra.timefmt import parse_time
from engine_helpers import QuietNotifier, write_config

pytestmark = pytest.mark.anyio




async def test_paper_replay_and_backtest_take_the_same_trades(tmp_path, btc15m):
    start, end = "2024-01-01", "2024-01-20"
    cfg = write_config(tmp_path, position_mode="one_way", replay_start=start, replay_end=end)
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    store = Store.open(settings.db_path)
    try:
        await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier()).run()
        paper = [(g.strategy, g.direction.value, g.qty_initial, g.opened_ms, g.closed_ms, g.close_reason)
                 for g in L.legs_of(store, "demo", states=[L.LegState.CLOSED])]
    finally:
        store.close()
    acc = settings.account("demo")
    res = run_backtest(BacktestSetup(
        [StrategySpec(s.name, dict(s.params), s.size_pct, s.leverage) for s in acc.strategies],
        {"BTCUSDT": [btc15m]}, parse_time(start), parse_time(end), acc.paper_balance, PositionMode.ONE_WAY,
        {"BTCUSDT": load_funding(bundled("BTCUSDT-funding.csv"))}, settings.effective_risk("demo"), tmp_path))
    back = [(t["strategy"], t["side"], Decimal(t["quantity"]), t["entry_time"], t["exit_time"], t["exit_reason"])
            for t in res.trades]
    assert len(paper) >= 5, paper  # enough trades to mean something
    assert sorted(paper, key=lambda t: (t[4], t[3], t[0])) == back
