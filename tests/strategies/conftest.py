"""Shared fixtures: the bundled real candles (albra/data/replay, 2024-01..06) and frame helpers."""

from __future__ import annotations

from functools import lru_cache

import pytest

from albra.candles import CandleSeries, bundled, load_candles
from albra.strategies.base import Strategy


@lru_cache(maxsize=None)
def candles_15m(symbol: str) -> CandleSeries:
    return load_candles(bundled(f"{symbol}-15m.csv.gz"))


def frames_for(cls: type[Strategy], base: CandleSeries) -> dict[str, CandleSeries]:
    """Every timeframe the strategy declares, resampled from 15m candles (closed buckets only)."""
    return {tf: base.resample(tf) for tf in cls.timeframes}


def cut_frames(cls: type[Strategy], frames: dict[str, CandleSeries], t: int) -> dict[str, CandleSeries]:
    """What a live caller holds when primary bar ``t`` has just closed: primary rows 0..t and the
    higher-timeframe candles that had closed by then."""
    p = frames[cls.timeframes[0]]
    now = int(p.ts[t]) + p.interval_ms
    out = {cls.timeframes[0]: p.take(0, t + 1)}
    for tf in cls.timeframes[1:]:
        h = frames[tf]
        k = int(((h.ts + h.interval_ms) <= now).sum())
        out[tf] = h.take(0, k)
    return out


@pytest.fixture(scope="session")
def btc15() -> CandleSeries:
    return candles_15m("BTCUSDT")


@pytest.fixture(scope="session")
def eth15() -> CandleSeries:
    return candles_15m("ETHUSDT")
