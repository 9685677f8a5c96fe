"""Technical indicators on numpy columns, vectorised and causal, with NaN warm-up.

Every function takes float64 numpy arrays (one value per candle, oldest first) and returns
float64 arrays of the same length. Two rules hold for all of them, because the strategies rely on
them to avoid the original system's defects:

* **Causal.** The value at index ``t`` depends only on inputs at indices ``<= t``. Computing on a
  prefix of a series gives bit-identical values to computing on the whole series and cutting
  (the strategies' no-look-ahead property test depends on it). Ichimoku's senkou spans are the
  one displaced indicator: the value *plotted* at ``t`` is computed from data ``<= t - 26``.
* **NaN warm-up.** Rows without enough history are ``NaN``, never ``0.0``. (``ta`` returns 0.0
  for the first ATR rows; a strategy reading that as a real ATR put stops at the entry price.)

Where the ``ta`` library is right it is used (RSI). Wilder smoothing (ATR, ADX/±DI) is written
here because ``ta.trend.ADXIndicator`` leaves its last smoothed row at 0 (its loops stop one row
early: the newest candle -- the one a live strategy decides on -- gets a wrong ADX) and both
ATR and ADX in ``ta`` run Python loops; here they use pandas' ``ewm`` mean seeded with the SMA
the Wilder definition prescribes.

pandas is imported only by the indicators that need more of it (RSI through ``ta``, Donchian and
Ichimoku's rolling max/min): EMA, SMA and Wilder smoothing use :mod:`albra.window_kernels`, pandas'
own loops without the 0.5 s import, with bit-identical results. ZLEMA, ZL-MACD, HMA/ZLHMA, Donchian and Ichimoku are written here
(``ta`` has no ZL variants and its Ichimoku does not displace the cloud).

EMA convention: ``span``-EMA seeded with the first valid value (as ``ta`` and StockCharts' MACD
example), NaN until ``n`` values were seen. Seeding means values depend slightly on where the
series starts; the effect decays geometrically, which is why strategies declare a bounded
``history`` long enough for it to vanish (see ``strategies/base.py``).
"""

from __future__ import annotations

import math

import numpy as np

from albra.window_kernels import ewm_mean, rolling_mean

__all__ = [
    "adx", "atr", "donchian", "ema", "hma", "ichimoku", "macd", "rsi", "shift", "sma",
    "true_range", "wma", "zlema", "zlhma", "zlmacd",
]


def _arr(x: "np.ndarray | list[float]") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"indicator input must be one-dimensional, got shape {a.shape}")
    return a


def _check_window(n: int, what: str = "window") -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")


def shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved ``k`` rows later (``out[t] = x[t-k]``), NaN where no earlier value exists."""
    x = _arr(x)
    if k < 0:
        raise ValueError("shift by a negative amount would read the future")
    out = np.full_like(x, np.nan)
    if k == 0:
        return x.copy()
    if k < len(x):
        out[k:] = x[:-k]
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over ``n`` rows."""
    _check_window(n)
    return rolling_mean(_arr(x), n)


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(n+1), seeded with the first valid value, NaN until
    ``n`` valid values were seen. Leading NaNs in ``x`` are skipped (so EMA of an EMA works)."""
    _check_window(n)
    return ewm_mean(_arr(x), (n - 1) / 2, min_periods=n)  # pandas' com for span=n


def wma(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly weighted moving average (weights 1..n, newest heaviest)."""
    _check_window(n)
    x = _arr(x)
    out = np.full_like(x, np.nan)
    if len(x) < n:
        return out
    w = np.arange(1, n + 1, dtype=np.float64)
    win = np.lib.stride_tricks.sliding_window_view(x, n)
    out[n - 1:] = win @ w / w.sum()
    return out


def _wilder(x: np.ndarray, n: int, first: int) -> np.ndarray:
    """Wilder's smoothing (alpha = 1/n) of ``x`` starting at row ``first``: the first output, at
    ``first + n - 1``, is the mean of ``x[first:first+n]``; then ``s = s + (x - s)/n``."""
    out = np.full_like(x, np.nan)
    seed = first + n - 1
    if seed >= len(x):
        return out
    y = np.full_like(x, np.nan)
    y[seed] = x[first:seed + 1].mean()
    y[seed + 1:] = x[seed + 1:]
    alpha = 1.0 / n
    sm = ewm_mean(y, (1 - alpha) / alpha)  # pandas' ewm(alpha=1/n, adjust=False).mean()
    out[seed:] = sm[seed:]
    return out


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range; row 0 (no previous close) is ``high - low``."""
    h, lo, c = _arr(high), _arr(low), _arr(close)
    pc = shift(c, 1)
    tr = np.fmax(h - lo, np.fmax(np.abs(h - pc), np.abs(lo - pc)))
    return tr


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's average true range: first value at row ``n-1`` = mean of the first ``n`` true
    ranges (row 0 = high - low, as StockCharts and ``ta``), NaN before."""
    _check_window(n)
    return _wilder(true_range(high, low, close), n, 0)


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's ADX with +DI and -DI (StockCharts' method), returned as ``(adx, plus_di, minus_di)``.

    TR, +DM, -DM from row 1; their Wilder sums seed at row ``n`` (sum of rows 1..n); DI valid
    from row ``n``; ADX seeds at row ``2n-1`` with the mean of DX rows n..2n-1.
    """
    _check_window(n)
    h, lo, c = _arr(high), _arr(low), _arr(close)
    up = h - shift(h, 1)
    down = shift(lo, 1) - lo
    pdm = np.where((up > down) & (up > 0), up, 0.0)
    ndm = np.where((down > up) & (down > 0), down, 0.0)
    tr = true_range(h, lo, c)
    # Wilder *sums* are n × Wilder means; ratios are identical, so means suffice.
    tr_s = _wilder(tr, n, 1)
    p_s = _wilder(pdm, n, 1)
    n_s = _wilder(ndm, n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pdi = np.where(tr_s > 0, 100.0 * p_s / tr_s, 0.0)
        ndi = np.where(tr_s > 0, 100.0 * n_s / tr_s, 0.0)
        pdi[np.isnan(tr_s)] = np.nan
        ndi[np.isnan(tr_s)] = np.nan
        s = pdi + ndi
        dx = np.where(s > 0, 100.0 * np.abs(pdi - ndi) / s, 0.0)
        dx[np.isnan(s)] = np.nan
    adx_ = _wilder(dx, n, n)
    return adx_, pdi, ndi


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """RSI as ``ta.momentum.RSIIndicator`` computes it (Wilder's alpha = 1/n on gains/losses, the
    same convention as the StockCharts reference file), NaN for the first ``n`` rows (before
    ``n`` price changes exist)."""
    _check_window(n)
    import pandas as pd
    from ta.momentum import RSIIndicator

    c = _arr(close)
    out = RSIIndicator(pd.Series(c), window=n, fillna=False).rsi().to_numpy(dtype=np.float64).copy()
    out[: min(n, len(out))] = np.nan
    return out


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line (EMA fast − EMA slow), signal (EMA of the line) and histogram."""
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def donchian(high: np.ndarray, low: np.ndarray, n: int = 20, offset: int = 0
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian channel ``(upper, lower, middle)`` over the last ``n`` rows including the current
    one; ``offset`` shifts the channel that many rows later (``ta``'s ``offset``)."""
    _check_window(n)
    import pandas as pd

    upper = pd.Series(_arr(high)).rolling(n, min_periods=n).max().to_numpy()
    lower = pd.Series(_arr(low)).rolling(n, min_periods=n).min().to_numpy()
    if offset:
        upper, lower = shift(upper, offset), shift(lower, offset)
    return upper, lower, (upper + lower) / 2.0


def zlema(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-lag EMA as the original defined it: ``2·EMA(n) − EMA(EMA(n), n)``."""
    e = ema(x, n)
    return 2.0 * e - ema(e, n)


def zlmacd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-lag MACD: ``ZLEMA(fast) − ZLEMA(slow)``, signal = EMA(signal) of it, histogram."""
    line = zlema(close, fast) - zlema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def hma(x: np.ndarray, n: int) -> np.ndarray:
    """Hull MA: ``WMA(2·WMA(n//2) − WMA(n), floor(sqrt(n)))``."""
    _check_window(n)
    if n < 2:
        raise ValueError("HMA window must be at least 2")
    raw = 2.0 * wma(x, n // 2) - wma(x, n)
    return wma(raw, max(1, int(math.sqrt(n))))


def zlhma(x: np.ndarray, n: int = 14, lag: int = 6) -> np.ndarray:
    """Zero-lag HMA as the original defined it: ``HMA + (HMA − HMA shifted lag rows)``."""
    h = hma(x, n)
    return h + (h - shift(h, lag))


def ichimoku(high: np.ndarray, low: np.ndarray, tenkan_n: int = 9, kijun_n: int = 26,
             senkou_b_n: int = 52, displacement: int = 26) -> dict[str, np.ndarray]:
    """Ichimoku lines as known at each row.

    ``tenkan``/``kijun`` = mid of the ``n``-row high/low. ``senkou_a``/``senkou_b`` are the spans
    *plotted* at each row, i.e. computed ``displacement`` rows earlier: the cloud at row ``t`` is
    built from rows ``<= t - displacement`` (NaN while that is not available). ``cloud_top`` /
    ``cloud_bottom`` are their max/min. No chikou span (it is the close shifted into the past and
    would be look-ahead if read at ``t``).
    """
    def mid(n: int) -> np.ndarray:
        u, lo, m = donchian(high, low, n)
        return m

    tenkan = mid(tenkan_n)
    kijun = mid(kijun_n)
    a = shift((tenkan + kijun) / 2.0, displacement)
    b = shift(mid(senkou_b_n), displacement)
    return {
        "tenkan": tenkan,
        "kijun": kijun,
        "senkou_a": a,
        "senkou_b": b,
        "cloud_top": np.maximum(a, b),
        "cloud_bottom": np.minimum(a, b),
    }
