"""Trading performance metrics as pure functions: numbers in, numbers out, no store, no I/O.

Why one module: the monthly review (``albra report --month``), backtests and the dashboard should all say the same
thing by "profit factor" or "max drawdown". Money stays Decimal; ratios (Sharpe, Sortino, Calmar) are floats, as
they are statistics, not amounts. Conventions are stated on each function, because each metric has variants:

* profit factor = gross profit / gross loss of closed trades (None without a loss: infinite is not a number a
  report should print as one);
* drawdown is measured on an equity series against its running peak, in quote currency and in % of the peak, with
  the longest time spent below a peak (recovered or not at the series' end);
* Sharpe and Sortino use daily returns, annualised with √365 (crypto trades every day), risk-free rate 0;
* Calmar = annualised return / max drawdown %;
* exposure = share of a window during which at least one position was open (overlapping trades count once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Sequence

DAYS_PER_YEAR = 365


def win_rate(pnls: Sequence[Decimal]) -> float | None:
    """Share of trades with a positive net PnL (None without trades)."""
    if not pnls:
        return None
    return sum(1 for p in pnls if p > 0) / len(pnls)


def profit_factor(pnls: Sequence[Decimal]) -> Decimal | None:
    """Gross profit / gross loss; None when there is no losing trade (or no trade)."""
    gain = sum((p for p in pnls if p > 0), Decimal(0))
    loss = -sum((p for p in pnls if p < 0), Decimal(0))
    if loss == 0:
        return None
    return gain / loss


@dataclass(frozen=True)
class Drawdown:
    """The deepest fall of an equity series from its running peak."""

    amount: Decimal          # peak - trough, quote currency (≥ 0)
    pct: Decimal             # (peak - trough) / peak × 100
    peak_ts: int | None      # when the peak before the trough was set
    trough_ts: int | None
    longest_ms: int          # longest time below a previous peak (to recovery, or to the series' end)


def max_drawdown(points: Sequence[tuple[int, Decimal]]) -> Drawdown:
    """Max drawdown of ``(ts, equity)`` points sorted by time."""
    best = Drawdown(Decimal(0), Decimal(0), None, None, 0)
    if not points:
        return best
    peak_ts, peak = points[0]
    under_since: int | None = None
    longest = 0
    amount, pct, at_peak, at_trough = Decimal(0), Decimal(0), None, None
    for ts, eq in points:
        if eq >= peak:
            if under_since is not None:
                longest = max(longest, ts - under_since)
                under_since = None
            peak, peak_ts = eq, ts
            continue
        if under_since is None:
            under_since = peak_ts
        dd = peak - eq
        if dd > amount:
            amount, at_peak, at_trough = dd, peak_ts, ts
            pct = dd / peak * 100 if peak > 0 else Decimal(0)
    if under_since is not None:
        longest = max(longest, points[-1][0] - under_since)
    return Drawdown(amount, pct, at_peak, at_trough, longest)


def daily_returns(day_equity: Sequence[Decimal]) -> list[float]:
    """Returns between consecutive day-end equities (a day starting at zero equity is skipped)."""
    out: list[float] = []
    for prev, cur in zip(day_equity, day_equity[1:]):
        if prev > 0:
            out.append(float((cur - prev) / prev))
    return out


def sharpe(returns: Sequence[float]) -> float | None:
    """Annualised Sharpe ratio of daily returns (None with fewer than two returns or no variation)."""
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(DAYS_PER_YEAR)


def sortino(returns: Sequence[float]) -> float | None:
    """Annualised Sortino ratio: mean daily return over the downside deviation (target 0)."""
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    down = [min(r, 0.0) ** 2 for r in returns]
    dd = math.sqrt(sum(down) / len(returns))
    if dd <= 0:
        return None
    return mean / dd * math.sqrt(DAYS_PER_YEAR)


def calmar(start_equity: Decimal, end_equity: Decimal, days: float, max_dd_pct: Decimal) -> float | None:
    """Annualised return / max drawdown % (None without a drawdown or a starting equity)."""
    if start_equity <= 0 or days <= 0 or max_dd_pct <= 0 or end_equity <= 0:
        return None
    growth = float(end_equity / start_equity)
    annual = growth ** (DAYS_PER_YEAR / days) - 1
    return annual * 100 / float(max_dd_pct)


def exposure(intervals: Iterable[tuple[int, int]], start_ms: int, end_ms: int) -> float:
    """Share of [start, end) covered by the union of ``(open, close)`` intervals (clipped to the window)."""
    if end_ms <= start_ms:
        return 0.0
    clipped = sorted((max(a, start_ms), min(b, end_ms)) for a, b in intervals if b > start_ms and a < end_ms)
    covered = 0
    cur_a: int | None = None
    cur_b = 0
    for a, b in clipped:
        if b <= a:
            continue
        if cur_a is None or a > cur_b:
            if cur_a is not None:
                covered += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None:
        covered += cur_b - cur_a
    return covered / (end_ms - start_ms)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` (0..100) percentile of ascending values, nearest-rank (a value that was actually observed)."""
    if not sorted_values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
