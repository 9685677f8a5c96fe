"""The backtest report as one self-contained HTML page: equity and drawdown curves, monthly returns, and the
trades on each symbol's price chart, plus the summary metrics as a table.

Why plotly with the library inlined: the page must open on a laptop with no network (an operator mails it to
themselves, opens it on a train); ``include_plotlyjs=True`` embeds plotly.js (~4.5 MB) so nothing is fetched.
Long curves are thinned to at most ``MAX_POINTS`` points per line for a page a browser draws at once; the thinning
keeps each bucket's lowest and highest value so no drawdown or spike disappears. Trades are drawn exactly.
Plotly is imported here only, so ``albra --help`` stays light.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

MAX_POINTS = 4000


def thin(xs: Sequence[int], ys: Sequence[float], limit: int = MAX_POINTS) -> tuple[list[int], list[float]]:
    """At most ``limit`` points: per bucket its first, lowest and highest point in time order (extremes kept)."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    size = -(-n * 3 // limit)  # three points per bucket
    ox: list[int] = []
    oy: list[float] = []
    for a in range(0, n, size):
        b = min(n, a + size)
        lo = min(range(a, b), key=ys.__getitem__)
        hi = max(range(a, b), key=ys.__getitem__)
        for k in sorted({a, lo, hi, b - 1}):
            ox.append(xs[k])
            oy.append(ys[k])
    return ox, oy


def _dt(ms: Sequence[int]) -> list[str]:
    """UTC ISO strings: plotly reads them as dates on every platform (epoch ms would be plain numbers)."""
    return [datetime.fromtimestamp(t / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for t in ms]


def _summary_table(summary: Mapping[str, Any]) -> str:
    tot = summary["total"]
    rows = [(k.replace("_", " "), v) for k, v in tot.items() if not isinstance(v, dict)]
    rows += [(f"exit: {k}", v) for k, v in tot.get("exit_reasons", {}).items()]
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape('—' if v is None else str(v))}</td></tr>"
                   for k, v in rows)
    per = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{b['trades']}</td><td>{b['win_rate'] * 100:.1f}%</td>"
        f"<td>{html.escape(str(b['pnl']))}</td><td>{html.escape(str(b.get('profit_factor')))}</td></tr>"
        for name, b in summary["strategies"].items())
    return (f"<table id='summary'>{body}</table><table id='strategies'><tr><th>strategy</th><th>trades</th>"
            f"<th>win rate</th><th>PnL</th><th>profit factor</th></tr>{per}</table>")


def render_html(summary: Mapping[str, Any], trades: Sequence[Mapping[str, Any]], curve: Sequence[tuple[int, float]],
                prices: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str = "albra backtest") -> str:
    """The whole page. ``prices`` maps a symbol to its (close time ms, close) series."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from albra import metrics

    symbols = list(prices)
    rows = 3 + len(symbols)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=False, vertical_spacing=0.06,
                        subplot_titles=["Equity (USDT)", "Drawdown (%)", "Monthly returns (%)"]
                        + [f"{s} close and trades" for s in symbols])
    xs = [t for t, _ in curve]
    eq = [e for _, e in curve]
    tx, ty = thin(xs, eq)
    fig.add_trace(go.Scatter(x=_dt(tx), y=ty, name="equity", line={"width": 1.2}), row=1, col=1)
    peak = float("-inf")
    dd = []
    for e in eq:
        peak = max(peak, e)
        dd.append(-(peak - e) / peak * 100 if peak > 0 else 0.0)
    dx, dy = thin(xs, dd)
    fig.add_trace(go.Scatter(x=_dt(dx), y=dy, name="drawdown", fill="tozeroy", line={"width": 1, "color": "#c0392b"}),
                  row=2, col=1)
    months = metrics.monthly_returns(curve)
    fig.add_trace(go.Bar(x=list(months), y=[r * 100 for r in months.values()], name="monthly return",
                         marker_color=["#27ae60" if r >= 0 else "#c0392b" for r in months.values()]), row=3, col=1)
    for k, sym in enumerate(symbols, start=4):
        px, py = thin(*prices[sym])
        fig.add_trace(go.Scatter(x=_dt(px), y=py, name=f"{sym} close", line={"width": 1, "color": "#7f8c8d"}),
                      row=k, col=1)
        mine = [t for t in trades if t["symbol"] == sym]
        for side, color, symbol_ in (("LONG", "#27ae60", "triangle-up"), ("SHORT", "#c0392b", "triangle-down")):
            ts = [t for t in mine if t["side"] == side]
            fig.add_trace(go.Scatter(
                x=_dt([t["entry_time"] for t in ts]), y=[float(t["entry_price"]) for t in ts], mode="markers",
                name=f"{sym} {side.lower()} entry", marker={"symbol": symbol_, "color": color, "size": 7},
                text=[f"{t['strategy']} {side} pnl {t['pnl']}" for t in ts]), row=k, col=1)
        fig.add_trace(go.Scatter(
            x=_dt([t["exit_time"] for t in mine]), y=[float(t["exit_price"]) for t in mine], mode="markers",
            name=f"{sym} exit", marker={"symbol": "x", "color": "#2c3e50", "size": 6},
            text=[f"{t['exit_reason']} pnl {t['pnl']}" for t in mine]), row=k, col=1)
    fig.update_layout(height=320 * rows, title=title, showlegend=True, template="plotly_white")
    plot = fig.to_html(full_html=False, include_plotlyjs=True, div_id="report-figure",
                       config={"displaylogo": False})
    meta = html.escape(json.dumps({"trades": len(trades), "symbols": symbols}))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:0 1.5em 1em 0;"
            "display:inline-table;vertical-align:top}th,td{border:1px solid #ddd;padding:2px 8px;text-align:left}"
            "</style></head><body data-report='" + meta + "'><h1>" + html.escape(title) + "</h1>"
            + _summary_table(summary) + plot + "</body></html>")


def write_html(path: str | Path, summary: Mapping[str, Any], trades: Sequence[Mapping[str, Any]],
               curve: Sequence[tuple[int, float]], prices: Mapping[str, tuple[Sequence[int], Sequence[float]]],
               title: str = "albra backtest") -> Path:
    """Write the page to ``path`` (its folder must exist) and return the path."""
    p = Path(path)
    p.write_text(render_html(summary, trades, curve, prices, title), encoding="utf-8")
    return p
