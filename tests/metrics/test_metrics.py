"""albra.metrics: hand-computed values on small curves and trade lists."""

import math
from datetime import datetime, timedelta, timezone

import pytest

from albra import metrics as M

D = M.DAY_MS


def test_profit_factor_and_expectancy():
    assert M.profit_factor([10, -5, 20, -10]) == pytest.approx(2.0)
    assert M.profit_factor([1, 2]) is None  # no loss: undefined, not inf
    assert M.expectancy([10, -5, 20, -10]) == pytest.approx(3.75)
    assert M.expectancy([]) is None


def test_drawdown_depth_and_duration():
    curve = [(0, 100.0), (D, 120.0), (2 * D, 90.0), (3 * D, 100.0), (5 * D, 130.0), (6 * D, 117.0)]
    dd = M.drawdown(curve)
    assert dd.max_pct == pytest.approx(0.25)
    assert (dd.peak_ms, dd.trough_ms) == (D, 2 * D)
    assert dd.longest_ms == 4 * D  # under the 120 peak from day 1 until the new peak on day 5


def test_drawdown_never_recovered_counts_to_the_end():
    dd = M.drawdown([(0, 100.0), (D, 50.0), (3 * D, 60.0)])
    assert dd.max_pct == pytest.approx(0.5) and dd.longest_ms == 3 * D


def test_daily_returns_sharpe_sortino():
    curve = [(0, 100.0), (D // 2, 105.0), (D, 110.0), (2 * D, 99.0), (3 * D, 108.9)]
    rets = M.daily_returns(curve)
    assert rets == pytest.approx([0.05, 110 / 105 - 1, -0.1, 0.1])
    mean = sum(rets) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in rets) / 3)
    assert M.sharpe(rets) == pytest.approx(mean / sd * math.sqrt(365))
    down = math.sqrt(0.01 / 4)  # one losing day of -10 %
    assert M.sortino(rets) == pytest.approx(mean / down * math.sqrt(365))
    assert M.sharpe([0.01, 0.01]) is None and M.sortino([0.01, 0.02]) is None


def test_cagr_and_calmar():
    curve = [(0, 100.0), (M.YEAR_MS // 2, 80.0), (M.YEAR_MS, 121.0)]
    assert M.cagr(curve) == pytest.approx(0.21)
    assert M.calmar(curve) == pytest.approx(0.21 / 0.2)
    assert M.calmar([(0, 1.0), (M.YEAR_MS, 2.0)]) is None  # no drawdown


def test_exposure_merges_overlaps():
    assert M.exposure([(0, 10), (5, 20), (30, 40), (90, 200)], 0, 100) == pytest.approx(0.4)
    assert M.exposure([], 0, 100) == 0.0


def test_monthly_returns_and_summary_is_json_safe():
    jan, feb = 1704067200000, 1706745600000  # 2024-01-01, 2024-02-01 UTC
    curve = [(jan, 100.0), (jan + D, 110.0), (feb + D, 99.0)]
    assert M.monthly_returns(curve) == pytest.approx({"2024-01": 0.10, "2024-02": -0.10})
    s = M.summary(curve, [10.0, -11.0], [(jan, jan + D)])
    assert s["max_drawdown_pct"] == 10.0 and s["profit_factor"] == pytest.approx(10 / 11, abs=1e-4)
    assert M.summary([], [])["sharpe"] is None


@pytest.mark.parametrize("tz", [timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                timezone(timedelta(hours=-9, minutes=-45))])
def test_monthly_returns_label_every_point_by_its_own_month(tz) -> None:
    """Labels are computed once per month, yet each point lands in the month its own timestamp is in -- also
    on the boundary's first and last ms, and in zones whose midnight is not on a UTC hour."""
    import random

    rnd = random.Random(7)
    start = 1_700_000_000_000
    ts = sorted({start + rnd.randrange(0, 3 * 365 * D) for _ in range(3000)})
    for y, mo in [(2024, 2), (2024, 3), (2025, 1)]:  # points on and next to month boundaries in tz
        b = int(datetime(y, mo, 1, tzinfo=tz).timestamp() * 1000)
        ts += [b - 1, b, b + 1]
    ts.sort()
    curve = [(t, 100.0 + rnd.random()) for t in ts]
    want: dict[str, float] = {}
    prev, month, last = curve[0][1], None, curve[0][1]
    for t, eq in curve:  # the reference: a label per point
        m = datetime.fromtimestamp(t / 1000, tz).strftime("%Y-%m")
        if month is not None and m != month:
            want[month] = last / prev - 1.0
            prev = last
        month, last = m, eq
    want[month] = last / prev - 1.0
    assert M.monthly_returns(curve, tz) == want
