"""The pandas-free EMA/SMA/Wilder kernels give pandas' float64 results bit for bit.

Strategies' pinned trades depend on the exact indicator values, so "close" is not enough: every value is
compared by its bits (NaN against NaN, -0.0 against 0.0 told apart), on the bundled candles and on random
series built to hit pandas' corner cases (leading and inner NaN, ±inf, constant runs, signed zeros, huge and
tiny magnitudes, windows of one row and longer than the series).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from albra import indicators as ind
from albra.candles import bundled, load_candles
from albra.window_kernels import ewm_mean, rolling_mean

WINDOWS = (1, 2, 3, 5, 14, 20, 50)


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.int64)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == want.shape
    diff = np.flatnonzero(bits(got) != bits(want))
    assert diff.size == 0, f"first difference at row {diff[0]}: {got[diff[0]]!r} != {want[diff[0]]!r}"


def pd_ema(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).ewm(span=n, adjust=False, min_periods=n).mean().to_numpy()


def pd_wilder(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).ewm(alpha=1.0 / n, adjust=False).mean().to_numpy()


def pd_sma(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n, min_periods=n).mean().to_numpy()


def random_series(seed: int, count: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        size = int(rng.integers(0, 70))
        kind = k % 6
        if kind == 0:
            x = rng.normal(0, 1, size)
        elif kind == 1:  # prices with one decimal: long runs of equal values
            x = np.round(rng.normal(100, 0.3, size), 1)
        elif kind == 2:
            x = rng.choice([1.0, 1.0, 2.0, -1.0, 0.0, -0.0, np.nan], size)
        elif kind == 3:
            x = rng.normal(0, 1, size)
            x[rng.random(size) < 0.3] = np.nan
        elif kind == 4:
            x = rng.choice([np.inf, -np.inf, np.nan, 3.0, 1e300, -1e-300, 5.5], size)
        else:  # tiny steps on a large level: where Kahan compensation and rounding matter
            x = np.cumsum(rng.normal(0, 1e-3, size)) + rng.choice([0.0, 1e8])
        out.append(x)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_random_series_match_pandas_bit_for_bit(seed: int) -> None:
    for x in random_series(seed):
        for n in WINDOWS:
            assert_same(ewm_mean(x, (n - 1) / 2, min_periods=n), pd_ema(x, n))
            assert_same(ewm_mean(x, (1 - 1.0 / n) / (1.0 / n)), pd_wilder(x, n))
            assert_same(rolling_mean(x, n), pd_sma(x, n))


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_bundled_candles_match_pandas_bit_for_bit(symbol: str) -> None:
    s = load_candles(bundled(f"{symbol}-15m.csv.gz"))
    for n in (9, 20, 50, 200):
        assert_same(ind.ema(s.close, n), pd_ema(s.close, n))
        assert_same(ind.sma(s.volume, n), pd_sma(s.volume, n))
    e = ind.ema(s.close, 20)  # EMA of a series with a NaN warm-up (MACD's signal line)
    assert_same(ind.ema(e, 9), pd_ema(e, 9))
    tr = ind.true_range(s.high, s.low, s.close)
    y = np.full_like(tr, np.nan)
    y[13] = tr[:14].mean()
    y[14:] = tr[14:]
    want = np.full_like(tr, np.nan)
    want[13:] = pd_wilder(y, 14)[13:]
    assert_same(ind.atr(s.high, s.low, s.close, 14), want)


def test_ema_sma_shift_import_no_pandas() -> None:
    code = ("import sys, numpy as np\nfrom albra import indicators as ind\nx = np.arange(60.0)\n"
            "ind.ema(x, 20); ind.sma(x, 20); ind.shift(x, 1); ind.atr(x + 1, x, x + 0.5); ind.adx(x + 1, x, x + 0.5)\n"
            "print('pandas' in sys.modules, 'ta' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
