"""Inline SVG charts for the review page: an equity line with its drawdown below, and daily PnL bars.

Why SVG drawn here and not a chart library in the browser: the page is a file an operator keeps, mails or opens on a
machine without network; it must render the same in ten years with nothing to load. Each chart carries its data
count in ``data-points`` (tests read it) and a <title> per point group for hover text.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any, Sequence

W, H, PAD = 860, 220, 44


def _scale(lo: float, hi: float, a: float, b: float):  # type: ignore[no-untyped-def]
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def equity_chart(account: str, curve: Sequence[dict[str, Any]]) -> str:
    """Equity (top, line) and drawdown % from the running peak (bottom, filled), one x axis in time."""
    if not curve:
        return f'<p class="empty" data-testid="equity-chart-{escape(account)}">no equity snapshots this month</p>'
    ts = [float(p["ts"]) for p in curve]
    eq = [float(Decimal(p["equity"])) for p in curve]
    dd = [float(p["drawdown_pct"]) for p in curve]
    x = _scale(min(ts), max(ts), PAD, W - 8)
    top_h = H * 0.62
    y = _scale(min(eq), max(eq), top_h - 6, 10)
    ddy = _scale(0.0, max(max(dd), 0.01), top_h + 16, H - 18)
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, eq))
    area = (f"{x(ts[0]):.1f},{ddy(0):.1f} " + " ".join(f"{x(t):.1f},{ddy(v):.1f}" for t, v in zip(ts, dd))
            + f" {x(ts[-1]):.1f},{ddy(0):.1f}")
    return (
        f'<svg class="chart" data-testid="equity-chart-{escape(account)}" data-points="{len(curve)}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="equity and drawdown of {escape(account)}">'
        f'<title>{escape(account)}: equity {min(eq):,.2f} – {max(eq):,.2f} USDT, max drawdown {max(dd):.2f}%</title>'
        f'<text x="4" y="14" class="axis">{max(eq):,.0f}</text><text x="4" y="{top_h - 6:.0f}" class="axis">'
        f'{min(eq):,.0f}</text><text x="4" y="{H - 18:.0f}" class="axis">-{max(dd):.1f}%</text>'
        f'<polyline class="equity" fill="none" points="{line}"/>'
        f'<polygon class="drawdown" points="{area}"/>'
        f'<line class="zero" x1="{PAD}" x2="{W - 8}" y1="{ddy(0):.1f}" y2="{ddy(0):.1f}"/></svg>'
    )


def daily_bars(account: str, daily: Sequence[dict[str, Any]]) -> str:
    """One bar per KST day: net PnL of the legs closed that day (green up, red down)."""
    vals = [float(Decimal(d["net_pnl"])) for d in daily]
    if not vals:
        return ""
    hi = max(max(vals), 0.0)
    lo = min(min(vals), 0.0)
    y = _scale(lo, hi, H - 20, 12)
    step = (W - PAD - 8) / len(vals)
    bars = []
    for i, (d, v) in enumerate(zip(daily, vals)):
        x0 = PAD + i * step + step * 0.12
        y0, y1 = sorted((y(0.0), y(v)))
        cls = "up" if v > 0 else ("down" if v < 0 else "flat")
        bars.append(f'<rect class="{cls}" x="{x0:.1f}" y="{y0:.1f}" width="{step * 0.76:.1f}" '
                    f'height="{max(y1 - y0, 0.5):.1f}"><title>{escape(d["day"])}: {v:+,.2f} USDT</title></rect>')
    return (
        f'<svg class="chart" data-testid="daily-chart-{escape(account)}" data-points="{len(vals)}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="daily PnL of {escape(account)}">'
        f'<text x="4" y="14" class="axis">{hi:+,.0f}</text><text x="4" y="{H - 20:.0f}" class="axis">{lo:+,.0f}</text>'
        f'<line class="zero" x1="{PAD}" x2="{W - 8}" y1="{y(0.0):.1f}" y2="{y(0.0):.1f}"/>' + "".join(bars) + "</svg>"
    )
