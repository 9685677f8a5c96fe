"""Replay feed: the clock, the forming-candle path, klines aggregation, and driving the core."""

from __future__ import annotations

from decimal import Decimal as Dec

import numpy as np
import pytest

from albra.candles import CandleSeries
from albra.sim.exchange import SimExchange
from albra.sim.feed import MarketReplay, SimClock, path_point

T0 = 1_704_067_200_000
M15 = 900_000


def series(rows: list[tuple[float, float, float, float]]) -> CandleSeries:
    n = len(rows)
    a = np.array(rows, dtype=float)
    return CandleSeries("BTCUSDT", "15m", np.arange(n, dtype=np.int64) * M15 + T0, a[:, 0].copy(), a[:, 1].copy(),
                        a[:, 2].copy(), a[:, 3].copy(), np.full(n, 10.0))


def test_path_goes_to_the_nearer_extreme_first():
    # O=100 H=105 L=90 C=95: high nearer → 100→105→90→95, total 25; half-way = 7.5 below 105
    assert path_point(100, 105, 90, 95, 0.5) == (97.5, 105, 97.5, [105])
    assert path_point(100, 105, 90, 95, 1.0)[0] == 95
    # low nearer: 100→95→120→110, total 40; a quarter = 10 → 5 down then 5 up
    price, hi, lo, passed = path_point(100, 120, 95, 110, 0.25)
    assert passed == [95] and lo == 95 and price == 100 and hi == 100


def test_clock_speeds():
    wall = [0.0]
    c = SimClock(T0, speed=60, wall=lambda: wall[0])
    wall[0] = 2.0
    assert c.now_ms() == T0 + 120_000
    still = SimClock(T0, speed=0, wall=lambda: wall[0])
    wall[0] = 100.0
    assert still.now_ms() == T0
    assert still.advance(5000) == T0 + 5000
    with pytest.raises(ValueError):
        still.set(T0)


def test_klines_forming_candle_and_aggregation():
    s = series([(100, 110, 95, 105), (105, 106, 104, 104.5), (104.5, 120, 104, 119), (119, 121, 118, 120)])
    ex = SimExchange(now_ms=T0)
    rp = MarketReplay(ex, {"BTCUSDT": s})
    now = T0 + M15 + M15 // 2  # half-way through the second candle
    rows = rp.klines("BTCUSDT", "15m", now, limit=5)
    assert [r[0] for r in rows] == [T0, T0 + M15]
    assert rows[0][1:5] == ["100.00", "110.00", "95.00", "105.00"]
    # 105→106→104→104.5 total 3.5: half = 1.75 → past 106 (1.0), 0.75 down → 105.25 → tick 0.1: 105.3
    assert rows[1][1:5] == ["105.00", "106.00", "105.00", "105.30"] and rows[1][5] == "5.000"
    one_h = rp.klines("BTCUSDT", "1h", T0 + 3 * M15 + 1, limit=5)
    assert len(one_h) == 1 and one_h[0][1] == "100.00" and one_h[0][2] == "120.00" and one_h[0][3] == "95.00"
    assert one_h[0][4] == "119.00"  # the 4th candle has just opened at 119
    with pytest.raises(ValueError):
        rp.klines("BTCUSDT", "1m", now)


def test_sync_drives_orders_inside_the_forming_candle():
    s = series([(100, 110, 95, 105), (105, 106, 90, 91)])
    ex = SimExchange(now_ms=T0)
    ex.add_account("a", Dec(1000))
    rp = MarketReplay(ex, {"BTCUSDT": s})
    rp.sync(T0 + M15)  # second candle opens at 105
    ex.set_leverage("a", "BTCUSDT", 5)
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("2"))
    stop = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("100"), Dec("2"), reduce_only=True)
    rp.sync(T0 + M15 + 60_000)  # 105→106 first: nothing
    assert stop.status == "NEW"
    rp.sync(T0 + M15 + 800_000)  # well down the 106→90 leg
    assert stop.status == "FINISHED" and stop.actual_price == Dec("100")


def test_pull_mode_steps_candle_by_candle():
    s = series([(100, 110, 95, 105), (105, 106, 104, 104.5), (104.5, 120, 104, 119)])
    ex = SimExchange(now_ms=T0)
    rp = MarketReplay(ex, {"BTCUSDT": s})
    clock = SimClock(T0, speed=0)
    rp.sync(T0)
    seen = []
    while (t := rp.step_to_next_close(clock)) is not None:
        seen.append((t, ex.last_price("BTCUSDT")))
    assert seen == [(T0 + M15, Dec("105.0")), (T0 + 2 * M15, Dec("104.5")), (T0 + 3 * M15, Dec("119.0"))]
