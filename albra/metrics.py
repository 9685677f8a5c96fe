"""Performance metrics a trader decides from: pure functions over an equity curve and a list of trade results.

Why one small module: backtests (``albra backtest``), parameter search (``albra optimize``) and monthly reports
all rank the same numbers, so they must be computed one way. Nothing here touches the store, the exchange or the
clock; inputs are plain floats and UTC epoch milliseconds (statistics only — money is never decided from these).

Conventions (stated once so every caller agrees):

- An equity curve is a sequence of ``(ts_ms, equity)`` points in time order.
- Returns for Sharpe/Sortino are **daily** (the last equity of each UTC day over the last of the day before, the
  first day measured from the curve's first point), annualised with 365 days (crypto trades every day).
- Drawdown is measured from the running peak as a fraction (0.25 = 25 % below the peak); its duration is the
  longest time spent below a previous peak (until a new peak, or the curve's end if it never recovers).
- Undefined values (no losing trade for the profit factor, no volatility for Sharpe) are ``None``, never
  ``inf`` or ``nan``, so the result always serialises to JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Iterable, Sequence

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS

Point = tuple[int, float]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Drawdown:
    """The deepest fall from a running peak and the longest time under water."""

    max_pct: float  # deepest drawdown as a fraction of the peak it fell from
    peak_ms: int | None  # the peak before the deepest drawdown
    trough_ms: int | None  # the bottom of the deepest drawdown
    longest_ms: int  # the longest stretch below a previous peak (ms)


def profit_factor(pnls: Iterable[float]) -> float | None:
    """Gross profit over gross loss; None when there is no losing trade (undefined, not infinite)."""
    win = loss = 0.0
    for p in pnls:
        if p > 0:
            win += p
        elif p < 0:
            loss -= p
    return win / loss if loss > 0 else None


def expectancy(pnls: Sequence[float]) -> float | None:
    """Average result per trade (in the PnL's currency); None with no trades."""
    return sum(pnls) / len(pnls) if pnls else None


def drawdown(curve: Sequence[Point]) -> Drawdown:
    """Deepest drawdown (fraction of the running peak) and the longest time spent under a previous peak."""
    peak = -math.inf
    peak_ms = 0
    best = 0.0
    best_peak: int | None = None
    best_trough: int | None = None
    under_since: int | None = None
    longest = 0
    for ts, eq in curve:
        if eq >= peak:
            if under_since is not None:
                longest = max(longest, ts - under_since)
                under_since = None
            peak, peak_ms = eq, ts
            continue
        if under_since is None:
            under_since = peak_ms
        if peak > 0:
            dd = (peak - eq) / peak
            if dd > best:
                best, best_peak, best_trough = dd, peak_ms, ts
    if under_since is not None and curve:
        longest = max(longest, curve[-1][0] - under_since)
    return Drawdown(best, best_peak, best_trough, longest)


def daily_returns(curve: Sequence[Point]) -> list[float]:
    """Simple returns between the last equity of consecutive UTC days (the first day from the first point)."""
    if not curve:
        return []
    closes: list[float] = []
    day = curve[0][0] // DAY_MS
    prev = curve[0][1]
    last = prev
    for ts, eq in curve:
        d = ts // DAY_MS
        if d != day:
            closes.append(last)
            day = d
        last = eq
    closes.append(last)
    out: list[float] = []
    for c in closes:
        out.append(c / prev - 1.0 if prev > 0 else 0.0)
        prev = c
    return out


def sharpe(returns: Sequence[float], periods_per_year: int = 365) -> float | None:
    """Annualised Sharpe ratio (risk-free 0) of per-period returns; None with < 2 returns or no volatility."""
    n = len(returns)
    if n < 2:
        return None
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)


def sortino(returns: Sequence[float], periods_per_year: int = 365) -> float | None:
    """Annualised Sortino ratio: mean return over the downside deviation (below 0); None without losses."""
    n = len(returns)
    if n < 2:
        return None
    down = sum(min(r, 0.0) ** 2 for r in returns) / n
    if down <= 0:
        return None
    return sum(returns) / n / math.sqrt(down) * math.sqrt(periods_per_year)


def cagr(curve: Sequence[Point]) -> float | None:
    """Compound annual growth rate between the curve's first and last points; None when undefined."""
    if len(curve) < 2:
        return None
    (t0, e0), (t1, e1) = curve[0], curve[-1]
    if e0 <= 0 or t1 <= t0:
        return None
    if e1 <= 0:
        return -1.0
    return (e1 / e0) ** (YEAR_MS / (t1 - t0)) - 1.0


def calmar(curve: Sequence[Point], dd_: Drawdown | None = None) -> float | None:
    """Annual growth over the deepest drawdown; None when there was no drawdown or no growth rate. ``dd_``: the
    curve's drawdown when the caller has it already (one pass less over a long curve)."""
    g = cagr(curve)
    dd = (dd_ or drawdown(curve)).max_pct
    if g is None or dd <= 0:
        return None
    return g / dd


def exposure(intervals: Iterable[tuple[int, int]], start_ms: int, end_ms: int) -> float:
    """Share of ``[start_ms, end_ms)`` during which at least one position was open (overlaps counted once)."""
    span = end_ms - start_ms
    if span <= 0:
        return 0.0
    covered = 0
    cur_a = cur_b = None
    for a, b in sorted((max(a, start_ms), min(b, end_ms)) for a, b in intervals):
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                covered += cur_b - cur_a
            cur_a, cur_b = a, b
        elif b > cur_b:
            cur_b = b
    if cur_b is not None:
        covered += cur_b - cur_a
    return covered / span


def monthly_returns(curve: Sequence[Point], tz: tzinfo = timezone.utc) -> dict[str, float]:
    """Return of each calendar month (``YYYY-MM`` in ``tz``): its last equity over the previous month's last
    (the first month from the curve's first point)."""
    out: dict[str, float] = {}
    if not curve:
        return out
    prev = curve[0][1]
    month = None
    last = prev
    # the label is computed once per month, not per point (a 3-year 15m curve has 100k): then only the first ms
    # of the next month is compared (exact integer ms, so a point on the boundary opens the new month)
    m = ""
    next_ms = None
    for ts, eq in curve:
        if next_ms is None or ts >= next_ms:
            d = datetime.fromtimestamp(ts / 1000, tz)
            m = f"{d.year:04d}-{d.month:02d}"
            nxt = datetime(d.year + 1, 1, 1, tzinfo=tz) if d.month == 12 else datetime(d.year, d.month + 1, 1, tzinfo=tz)
            next_ms = (nxt - _EPOCH) // _MS
        if month is not None and m != month:
            out[month] = last / prev - 1.0 if prev > 0 else 0.0
            prev = last
        month = m
        last = eq
    if month is not None:
        out[month] = last / prev - 1.0 if prev > 0 else 0.0
    return out


def summary(curve: Sequence[Point], pnls: Sequence[float],
            open_intervals: Iterable[tuple[int, int]] = ()) -> dict[str, float | int | None]:
    """Every metric above in one JSON-ready dict (fractions as percentages rounded for people)."""

    def r(x: float | None, nd: int = 4) -> float | None:
        return None if x is None else round(x, nd)

    rets = daily_returns(curve)
    dd = drawdown(curve)
    start, end = (curve[0][0], curve[-1][0]) if curve else (0, 0)
    return {
        "profit_factor": r(profit_factor(pnls)),
        "expectancy": r(expectancy(pnls)),
        "sharpe": r(sharpe(rets)),
        "sortino": r(sortino(rets)),
        "calmar": r(calmar(curve, dd)),
        "cagr_pct": r(None if (g := cagr(curve)) is None else g * 100, 2),
        "max_drawdown_pct": round(dd.max_pct * 100, 2),
        "max_drawdown_duration_days": round(dd.longest_ms / DAY_MS, 2),
        "exposure_pct": round(exposure(open_intervals, start, end) * 100, 2),
    }
