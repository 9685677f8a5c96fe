"""Checking downloaded data: gaps and anomalies are reported, never filled.

Binance's own history has holes (exchange maintenance, e.g. 2023-03-24 for USDⓈ-M): a missing candle stays missing.
A report says where; ``albra data download`` exits 1 when there is one, and the candle loader refuses a file with a
gap unless told otherwise, so a backtest never runs across a hole it was not told about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from albra.timefmt import fmt_kst

#: a funding row later than this after the previous one is a gap (8 h plus slack: funding times are not to the ms)
FUNDING_GAP_MS = 8 * 3_600_000 + 60_000


@dataclass
class Report:
    """What verification found in one file."""

    what: str
    rows: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (last present, next present) open times
    anomalies: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.gaps and not self.anomalies

    def lines(self, limit: int = 5) -> list[str]:
        out = []
        for a, b in self.gaps[:limit]:
            out.append(f"{self.what}: gap after {fmt_kst(a)} (next row {fmt_kst(b)})")
        if len(self.gaps) > limit:
            out.append(f"{self.what}: … {len(self.gaps) - limit} more gaps")
        out.extend(f"{self.what}: {a}" for a in self.anomalies[:limit])
        if len(self.anomalies) > limit:
            out.append(f"{self.what}: … {len(self.anomalies) - limit} more anomalies")
        return out

    def as_dict(self) -> dict:
        return {"file": self.what, "rows": self.rows, "first": self.first_ms, "last": self.last_ms,
                "gaps": [{"after": a, "next": b} for a, b in self.gaps], "anomalies": self.anomalies}


def verify_candles(what: str, rows: list[list[str]], step_ms: int, prices_only: bool = False) -> Report:
    """Continuity at ``step_ms``, boundaries, and OHLC sanity (low ≤ open/close ≤ high, positive prices,
    non-negative volume; ``prices_only`` skips volume for mark-price candles)."""
    rep = Report(what, len(rows))
    prev: int | None = None
    for r in rows:
        try:
            ts = int(r[0])
            o, h, lo, c, v = (float(x) for x in r[1:6])
        except (ValueError, IndexError):
            rep.anomalies.append(f"unreadable row {r!r}")
            continue
        if ts % step_ms:
            rep.anomalies.append(f"{fmt_kst(ts)}: open time not on an interval boundary")
        if not all(math.isfinite(x) for x in (o, h, lo, c, v)) or lo <= 0 or not (lo <= min(o, c) and max(o, c) <= h):
            rep.anomalies.append(f"{fmt_kst(ts)}: impossible candle o={r[1]} h={r[2]} l={r[3]} c={r[4]}")
        elif not prices_only and v < 0:
            rep.anomalies.append(f"{fmt_kst(ts)}: negative volume {r[5]}")
        if prev is not None:
            if ts <= prev:
                rep.anomalies.append(f"{fmt_kst(ts)}: not after the previous row")
            elif ts - prev != step_ms:
                rep.gaps.append((prev, ts))
        prev = ts if prev is None or ts > prev else prev
        rep.first_ms = ts if rep.first_ms is None else rep.first_ms
    rep.last_ms = prev
    return rep


def verify_funding(what: str, rows: list[list[str]]) -> Report:
    """Funding rows increasing in time, no hole longer than one 8 h interval, finite rates."""
    rep = Report(what, len(rows))
    prev: int | None = None
    for r in rows:
        try:
            ts, rate = int(r[0]), float(r[1])
        except (ValueError, IndexError):
            rep.anomalies.append(f"unreadable row {r!r}")
            continue
        if not math.isfinite(rate):
            rep.anomalies.append(f"{fmt_kst(ts)}: rate {r[1]} is not a number")
        if prev is not None:
            if ts <= prev:
                rep.anomalies.append(f"{fmt_kst(ts)}: not after the previous row")
            elif ts - prev > FUNDING_GAP_MS:
                rep.gaps.append((prev, ts))
        prev = ts if prev is None or ts > prev else prev
        rep.first_ms = ts if rep.first_ms is None else rep.first_ms
    rep.last_ms = prev
    return rep
