"""Indicators against the ``ta`` reference files (StockCharts worked examples) and hand computation.

Reference files: tests/data/indicator-reference (copies of ta's test data, see its PROVENANCE.md);
parameters as in /work/shared/data/PROVENANCE.md §4. Only the final rows are compared: seeding
conventions differ at the start.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from albra import indicators as ind

REF = Path(__file__).resolve().parents[1] / "data" / "indicator-reference"
TAIL = 5


def ref(name: str) -> pd.DataFrame:
    return pd.read_csv(REF / name)


def close_tail(got: np.ndarray, want: pd.Series, rel: float = 1e-6) -> None:
    g = np.asarray(got)[-TAIL:]
    w = want.to_numpy(dtype=float)[-TAIL:]
    assert np.allclose(g, w, rtol=rel, atol=1e-6), f"got {g}, want {w}"


@pytest.mark.parametrize("file,window", [("cs-atr.csv", 14), ("cs-atr2.csv", 10)])
def test_atr_matches_reference(file: str, window: int) -> None:
    d = ref(file)
    close_tail(ind.atr(d.High, d.Low, d.Close, window), d.ATR)


def test_atr_warm_up_is_nan_not_zero() -> None:
    d = ref("cs-atr.csv")
    a = ind.atr(d.High, d.Low, d.Close, 14)
    assert np.isnan(a[:13]).all()
    assert a[13] == pytest.approx(d.TR.iloc[:14].mean())


def test_adx_and_di_match_reference() -> None:
    d = ref("cs-adx.csv")
    a, p, n = ind.adx(d.High, d.Low, d.Close, 14)
    close_tail(a, d.ADX)
    close_tail(p, d["+DI14"])
    close_tail(n, d["-DI14"])
    assert np.isnan(a[:27]).all() and not np.isnan(a[27])
    assert np.isnan(p[:14]).all() and not np.isnan(p[14])


def test_adx_last_row_is_right_unlike_ta() -> None:
    """ta's ADX leaves its newest smoothed row at 0; ours extends the recursion to the last row."""
    d = ref("cs-adx.csv")
    full = ind.adx(d.High, d.Low, d.Close, 14)[0]
    cut = ind.adx(d.High[:-1], d.Low[:-1], d.Close[:-1], 14)[0]
    assert cut[-1] == pytest.approx(full[-2])
    assert full[-1] == pytest.approx(d.ADX.iloc[-1], rel=1e-6)


def test_rsi_matches_reference() -> None:
    d = ref("cs-rsi.csv")
    r = ind.rsi(d.Close, 14)
    close_tail(r, d.RSI)
    assert np.isnan(r[:14]).all()


def test_macd_and_its_emas_match_reference() -> None:
    d = ref("cs-macd.csv")
    line, sig, hist = ind.macd(d.Close, 12, 26, 9)
    close_tail(ind.ema(d.Close, 12), d.short_ema)
    close_tail(ind.ema(d.Close, 26), d.long_ema)
    close_tail(line, d.MACD_line)
    close_tail(sig, d.MACD_signal)
    close_tail(hist, d.MACD_diff)


@pytest.mark.parametrize("file,offset", [("cs-dc.csv", 0), ("cs-dc2.csv", 1)])
def test_donchian_matches_reference(file: str, offset: int) -> None:
    d = ref(file)
    u, lo, m = ind.donchian(d.high, d.low, 20, offset)
    close_tail(u, d.upper_band)
    close_tail(lo, d.lower_band)
    close_tail(m, d.middle_band)
    pband = (d.close.to_numpy() - ind.shift(lo, 0)) / (u - lo)
    if offset == 0:
        close_tail(pband, d.dc_percentage)


def test_wma_matches_reference() -> None:
    d = ref("cs-wma.csv")
    close_tail(ind.wma(d.Close, 9), d.WMA, rel=1e-5)


# --- hand-computed -------------------------------------------------------------------------

def _ema_loop(x: list[float], n: int) -> list[float]:
    a = 2 / (n + 1)
    out: list[float] = []
    for i, v in enumerate(x):
        out.append(v if i == 0 else a * v + (1 - a) * out[-1])
    return out


def _wma_loop(x: list[float], n: int) -> list[float]:
    out = []
    for i in range(len(x)):
        if i < n - 1:
            out.append(math.nan)
        else:
            w = x[i - n + 1:i + 1]
            out.append(sum((k + 1) * v for k, v in enumerate(w)) / (n * (n + 1) / 2))
    return out


PRICES = [100 + 10 * math.sin(i / 5) + i * 0.3 for i in range(120)]


def test_zlema_by_hand() -> None:
    n = 5
    e1 = _ema_loop(PRICES, n)
    e2 = _ema_loop(e1, n)
    want = [2 * a - b for a, b in zip(e1, e2)]
    got = ind.zlema(np.array(PRICES), n)
    # EMA of the EMA starts where the first EMA becomes valid (row n-1) and needs n values
    first_valid = 2 * (n - 1)
    assert np.isnan(got[:first_valid]).all()
    e1v = e1[n - 1:]
    e2v = _ema_loop(e1v, n)
    want_tail = [2 * a - b for a, b in zip(e1v, e2v)]
    assert np.allclose(got[n - 1:][n - 1:], want_tail[n - 1:], rtol=1e-12)
    assert len(want) == len(got)


def test_zlmacd_by_hand() -> None:
    x = np.array(PRICES)
    line, sig, hist = ind.zlmacd(x, 12, 26, 9)
    assert np.allclose(line, ind.zlema(x, 12) - ind.zlema(x, 26), equal_nan=True)
    valid = line[~np.isnan(line)].tolist()
    want_sig = _ema_loop(valid, 9)
    got_sig = sig[~np.isnan(line)]
    assert np.allclose(got_sig[8:], want_sig[8:], rtol=1e-12)
    assert np.isnan(got_sig[:8]).all()
    assert np.allclose(hist, line - sig, equal_nan=True)


def test_hma_and_zlhma_by_hand() -> None:
    n = 14
    w7, w14 = _wma_loop(PRICES, 7), _wma_loop(PRICES, 14)
    raw = [2 * a - b for a, b in zip(w7, w14)]
    want = _wma_loop(raw, 3)  # floor(sqrt(14)) = 3
    got = ind.hma(np.array(PRICES), n)
    assert np.isnan(got[:15]).all() and not np.isnan(got[15])
    assert np.allclose(got[15:], want[15:], rtol=1e-12)
    z = ind.zlhma(np.array(PRICES), n, 6)
    for t in (30, 60, 119):
        assert z[t] == pytest.approx(want[t] + (want[t] - want[t - 6]))
    assert np.isnan(z[:21]).all() and not np.isnan(z[21])


def test_ichimoku_by_hand_and_displacement() -> None:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, 200))
    high = close + rng.uniform(0.1, 1, 200)
    low = close - rng.uniform(0.1, 1, 200)
    ich = ind.ichimoku(high, low)
    t = 150
    tenkan = (high[t - 8:t + 1].max() + low[t - 8:t + 1].min()) / 2
    kijun = (high[t - 25:t + 1].max() + low[t - 25:t + 1].min()) / 2
    assert ich["tenkan"][t] == pytest.approx(tenkan)
    assert ich["kijun"][t] == pytest.approx(kijun)
    s = t - 26  # the spans plotted at t come from row t-26
    a = ((high[s - 8:s + 1].max() + low[s - 8:s + 1].min()) / 2
         + (high[s - 25:s + 1].max() + low[s - 25:s + 1].min()) / 2) / 2
    b = (high[s - 51:s + 1].max() + low[s - 51:s + 1].min()) / 2
    assert ich["senkou_a"][t] == pytest.approx(a)
    assert ich["senkou_b"][t] == pytest.approx(b)
    assert ich["cloud_top"][t] == pytest.approx(max(a, b))
    assert ich["cloud_bottom"][t] == pytest.approx(min(a, b))
    # warm-up: senkou B needs 52 rows then 26 rows of displacement
    assert np.isnan(ich["senkou_b"][:77]).all() and not np.isnan(ich["senkou_b"][77])
    assert np.isnan(ich["senkou_a"][:51]).all() and not np.isnan(ich["senkou_a"][51])
    # data after t-26 cannot change the cloud at t
    h2, l2 = high.copy(), low.copy()
    h2[s + 1:] += 50
    l2[s + 1:] -= 50
    ich2 = ind.ichimoku(h2, l2)
    assert ich2["senkou_a"][t] == ich["senkou_a"][t]
    assert ich2["senkou_b"][t] == ich["senkou_b"][t]


@pytest.mark.parametrize("name", ["atr", "adx", "rsi", "ema", "sma", "wma", "zlmacd", "zlhma",
                                  "ichimoku", "donchian"])
def test_prefix_gives_identical_values(name: str) -> None:
    """Causality: computing on a prefix equals cutting the full computation (bit for bit)."""
    rng = np.random.default_rng(1)
    c = 100 + np.cumsum(rng.normal(0, 1, 400))
    h, lo = c + 1, c - 1

    def run(k: int) -> list[np.ndarray]:
        f = {
            "atr": lambda: [ind.atr(h[:k], lo[:k], c[:k])],
            "adx": lambda: list(ind.adx(h[:k], lo[:k], c[:k])),
            "rsi": lambda: [ind.rsi(c[:k])],
            "ema": lambda: [ind.ema(c[:k], 50)],
            "sma": lambda: [ind.sma(c[:k], 20)],
            "wma": lambda: [ind.wma(c[:k], 9)],
            "zlmacd": lambda: list(ind.zlmacd(c[:k])),
            "zlhma": lambda: [ind.zlhma(c[:k])],
            "ichimoku": lambda: list(ind.ichimoku(h[:k], lo[:k]).values()),
            "donchian": lambda: list(ind.donchian(h[:k], lo[:k])),
        }[name]
        return f()

    full = run(400)
    for k in (90, 200, 333):
        part = run(k)
        for p, f in zip(part, full):
            np.testing.assert_array_equal(p, f[:k])


def test_bad_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="window"):
        ind.sma(np.arange(5.0), 0)
    with pytest.raises(ValueError, match="negative"):
        ind.shift(np.arange(5.0), -1)
    with pytest.raises(ValueError, match="one-dimensional"):
        ind.ema(np.ones((2, 2)), 3)
