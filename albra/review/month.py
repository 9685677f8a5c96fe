"""The monthly review's figures, read from the journal and the ledger (``albra report --month YYYY-MM``).

Why it reads only the store: a review is about what albra did and recorded; it must work with the exchange down
and give the same answer every time it is run on the same store. The month is a KST calendar month (the operator's
month, like the daily loss's KST day). Every figure is a plain JSON value (money as Decimal strings) so the
Markdown, the HTML and ``--json`` say exactly the same thing; :mod:`albra.review.render` only formats.

Net PnL of a leg = realised PnL − fees + funding, as the runner's summary and the ledger count it; a leg belongs to
the month in which it closed. Equity, drawdown and the risk ratios come from the equity snapshots the runner writes,
through :mod:`albra.metrics` (the one definition backtests and optimisation use); amounts stay Decimal here.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra import metrics as M
from albra.store import operations
from albra.store.db import Store
from albra.timefmt import KST, fmt_kst, kst_date

if TYPE_CHECKING:
    from albra.config import Settings

#: journal actors that are a person (or a command a person ran), not the trading loop
OPERATOR_ACTORS = ("cli", "telegram:", "emergency-shutdown", "reconcile", "safe-restart", "upgrade", "drill")
#: journal kinds that record someone acting on the exchange behind albra's back
EXTERNAL_KINDS = ("unattributed_leg", "fill_unattributed")
#: at most this many points per equity chart (the figures use every snapshot)
CHART_POINTS = 600


class ReviewError(ValueError):
    """A month or account the review cannot be built for (the command exits 2 with this message)."""


@dataclass(frozen=True)
class Window:
    month: str
    start_ms: int
    end_ms: int

    @classmethod
    def parse(cls, month: str) -> "Window":
        try:
            d = datetime.strptime(month.strip(), "%Y-%m")
        except ValueError:
            raise ReviewError(f"--month {month!r}: use YYYY-MM, e.g. 2026-11") from None
        start = d.replace(tzinfo=KST)
        nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return cls(start.strftime("%Y-%m"), int(start.timestamp() * 1000), int(nxt.timestamp() * 1000))

    def days(self) -> list[str]:
        out, t = [], self.start_ms
        while t < self.end_ms:
            out.append(kst_date(t))
            t += 86_400_000
        return out


def last_month(now_ms: int) -> str:
    """``YYYY-MM`` of the KST month before the one containing ``now_ms`` (the default review)."""
    d = datetime.fromtimestamp(now_ms / 1000, tz=KST)
    return f"{d.year - 1}-12" if d.month == 1 else f"{d.year}-{d.month - 1:02d}"


def _d(v: Any) -> Decimal:
    return Decimal(str(v)) if v not in (None, "") else Decimal(0)


def _s(v: Decimal | None) -> str | None:
    return None if v is None else format(v.normalize(), "f")


def _f(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(v, nd)


# ---------------------------------------------------------------------------------------------- performance
def _closed_legs(store: Store, account: str, w: Window) -> list[dict[str, Any]]:
    return [dict(r) for r in store.query(
        "SELECT leg_id, strategy, symbol, direction, realized_pnl, fees, funding, opened_ms, closed_ms, entry_ts,"
        " close_reason FROM legs WHERE account=? AND state='closed' AND closed_ms >= ? AND closed_ms < ?"
        " ORDER BY closed_ms, leg_id", (account, w.start_ms, w.end_ms))]


def _intervals(store: Store, account: str, w: Window, strategy: str | None = None) -> list[tuple[int, int]]:
    sql = ("SELECT opened_ms, closed_ms FROM legs WHERE account=? AND state IN ('open','closing','closed')"
           " AND opened_ms < ? AND (closed_ms IS NULL OR closed_ms >= ?)")
    params: tuple = (account, w.end_ms, w.start_ms)
    if strategy is not None:
        sql += " AND strategy=?"
        params += (strategy,)
    return [(r[0], r[1] if r[1] is not None else w.end_ms) for r in store.query_values(sql, params)]


def _trade_figures(legs: list[dict[str, Any]]) -> dict[str, Any]:
    nets = [_d(l["realized_pnl"]) - _d(l["fees"]) + _d(l["funding"]) for l in legs]
    pf = M.profit_factor([float(n) for n in nets])
    wr = sum(1 for n in nets if n > 0) / len(nets) if nets else None
    return {
        "trades": len(legs),
        "wins": sum(1 for n in nets if n > 0),
        "net_pnl": _s(sum(nets, Decimal(0))),
        "realized_pnl": _s(sum((_d(l["realized_pnl"]) for l in legs), Decimal(0))),
        "fees": _s(sum((_d(l["fees"]) for l in legs), Decimal(0))),
        "funding": _s(sum((_d(l["funding"]) for l in legs), Decimal(0))),
        "win_rate_pct": None if wr is None else round(wr * 100, 2),
        "profit_factor": None if pf is None else round(pf, 4),
        "best_trade": _s(max(nets)) if nets else None,
        "worst_trade": _s(min(nets)) if nets else None,
    }


def _daily_pnl(legs: list[dict[str, Any]], w: Window) -> list[dict[str, Any]]:
    by_day: dict[str, Decimal] = defaultdict(Decimal)
    for l in legs:
        by_day[kst_date(l["closed_ms"])] += _d(l["realized_pnl"]) - _d(l["fees"]) + _d(l["funding"])
    return [{"day": d, "net_pnl": _s(by_day.get(d, Decimal(0)))} for d in w.days()]


def _equity(store: Store, account: str, w: Window) -> dict[str, Any]:
    rows = store.query_values("SELECT ts, equity FROM equity_snapshots WHERE account=? AND ts >= ? AND ts < ?"
                              " ORDER BY ts", (account, w.start_ms, w.end_ms))
    pts = [(int(t), _d(e)) for t, e in rows]
    if not pts:
        return {"snapshots": 0, "start": None, "end": None, "change": None, "max_drawdown": None,
                "max_drawdown_pct": None, "drawdown_longest_h": None, "sharpe": None, "sortino": None, "calmar": None,
                "curve": []}
    fpts = [(t, float(e)) for t, e in pts]
    dd = M.drawdown(fpts)
    rets = M.daily_returns(fpts)
    stride = max(1, len(pts) // CHART_POINTS)
    curve = pts[::stride]
    if curve[-1] != pts[-1]:
        curve.append(pts[-1])
    peak = Decimal("-Infinity")
    chart = []
    for t, e in curve:
        peak = max(peak, e)
        chart.append({"ts": t, "equity": _s(e), "drawdown_pct": round(float((peak - e) / peak * 100), 4)
                      if peak > 0 else 0.0})
    return {
        "snapshots": len(pts),
        "start": _s(pts[0][1]), "end": _s(pts[-1][1]), "change": _s(pts[-1][1] - pts[0][1]),
        "max_drawdown": _s(_deepest_fall(pts)), "max_drawdown_pct": round(dd.max_pct * 100, 4),
        "drawdown_peak": fmt_kst(dd.peak_ms) if dd.peak_ms else None,
        "drawdown_trough": fmt_kst(dd.trough_ms) if dd.trough_ms else None,
        "drawdown_longest_h": round(dd.longest_ms / 3_600_000, 2),
        "sharpe": _f(M.sharpe(rets)), "sortino": _f(M.sortino(rets)), "calmar": _f(M.calmar(fpts)),
        "curve": chart,
    }


def _deepest_fall(points: list[tuple[int, Decimal]]) -> Decimal:
    """The largest fall below a running peak, in USDT (albra.metrics gives the fall as a share of the peak, which a
    strategy's PnL curve starting at zero does not have)."""
    peak, worst = None, Decimal(0)
    for _t, v in points:
        peak = v if peak is None or v > peak else peak
        worst = max(worst, peak - v)
    return worst


def _strategy_drawdown(legs: list[dict[str, Any]]) -> Decimal:
    """Max drawdown (amount) of a strategy's cumulative closed-trade PnL, starting from zero."""
    pts: list[tuple[int, Decimal]] = [(0, Decimal(0))]
    cum = Decimal(0)
    for l in legs:
        cum += _d(l["realized_pnl"]) - _d(l["fees"]) + _d(l["funding"])
        pts.append((int(l["closed_ms"]), cum))
    return _deepest_fall(pts)


def performance(store: Store, account: str, w: Window) -> dict[str, Any]:
    legs = _closed_legs(store, account, w)
    by_strategy: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for l in legs:
        by_strategy[l["strategy"]].append(l)
    live = {r[0] for r in store.query_values(
        "SELECT DISTINCT strategy FROM legs WHERE account=? AND opened_ms < ? AND (closed_ms IS NULL OR closed_ms >= ?)",
        (account, w.end_ms, w.start_ms))}
    strategies = []
    for name in sorted(set(by_strategy) | live):
        sl = by_strategy.get(name, [])
        strategies.append({"strategy": name, **_trade_figures(sl), "max_drawdown": _s(_strategy_drawdown(sl)),
                           "exposure_pct": round(M.exposure(_intervals(store, account, w, name), w.start_ms,
                                                            w.end_ms) * 100, 2)})
    return {
        **_trade_figures(legs),
        "exposure_pct": round(M.exposure(_intervals(store, account, w), w.start_ms, w.end_ms) * 100, 2),
        "equity": _equity(store, account, w),
        "daily": _daily_pnl(legs, w),
        "strategies": strategies,
    }


# ---------------------------------------------------------------------------------------------- risk
def _journal(store: Store, w: Window, kinds: tuple[str, ...], account: str | None) -> list[dict[str, Any]]:
    sql = (f"SELECT * FROM journal WHERE ts >= ? AND ts < ? AND kind IN ({','.join('?' * len(kinds))})")
    params: tuple = (w.start_ms, w.end_ms, *kinds)
    if account is not None:
        sql += " AND account IN (?, '')"
        params += (account,)
    return [dict(r) | {"data": json.loads(r["data"] or "{}")} for r in store.query(sql + " ORDER BY seq", params)]


def flag_periods(store: Store, w: Window, account: str | None) -> list[dict[str, Any]]:
    """Kill-switch and pause periods overlapping the month, rebuilt from the journal's set/cleared entries
    (a flag already on when the month began starts at the month's start; one still on ends 'open')."""
    kinds = ("kill_switch_set", "kill_switch_cleared", "pause_set", "pause_cleared")
    sql = f"SELECT ts, kind, account, strategy, actor, data FROM journal WHERE ts < ? AND kind IN ({','.join('?' * 4)})"
    rows = store.query(sql + " ORDER BY seq", (w.end_ms, *kinds))
    on: dict[tuple[str, str, str], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for r in rows:
        flag = "kill_switch" if r["kind"].startswith("kill_switch") else "pause"
        key = (flag, r["account"], r["strategy"])
        if account is not None and r["account"] not in ("", account):
            continue
        if r["kind"].endswith("_set"):
            if key not in on:
                on[key] = {"flag": flag, "scope": _scope(r["account"], r["strategy"]), "from_ms": r["ts"],
                           "reason": json.loads(r["data"] or "{}").get("reason", ""), "actor": r["actor"]}
            continue
        p = on.pop(key, None)
        if p is not None and r["ts"] >= w.start_ms:
            out.append(p | {"to_ms": r["ts"]})
    for p in on.values():
        out.append(p | {"to_ms": None})
    res = []
    for p in sorted(out, key=lambda p: p["from_ms"]):
        a = max(p["from_ms"], w.start_ms)
        b = p["to_ms"] if p["to_ms"] is not None else w.end_ms
        res.append({"flag": p["flag"], "scope": p["scope"], "from": fmt_kst(a),
                    "to": fmt_kst(p["to_ms"]) if p["to_ms"] is not None else "still on",
                    "hours": round(max(0, min(b, w.end_ms) - a) / 3_600_000, 2), "reason": p["reason"],
                    "actor": p["actor"]})
    return res


def _scope(account: str, strategy: str) -> str:
    return "all" if not account else (account if not strategy else f"{account}/{strategy}")


def risk(store: Store, w: Window, account: str | None) -> dict[str, Any]:
    mdd = [{"at": fmt_kst(r["ts"]), "account": r["account"], "from": r["data"].get("old"), "to": r["data"].get("new"),
            "drawdown_pct": r["data"].get("drawdown_pct")}
           for r in _journal(store, w, ("mdd_level",), account)]
    refusals: dict[str, int] = defaultdict(int)
    for r in _journal(store, w, ("risk_refused",), account):
        refusals[str(r["data"].get("rule", "unknown"))] += 1
    sql = "SELECT * FROM journal WHERE ts >= ? AND ts < ? AND kind != 'bot_command'"
    params: tuple = (w.start_ms, w.end_ms)
    if account is not None:
        sql += " AND account IN (?, '')"
        params += (account,)
    manual = []
    for r in store.query(sql + " ORDER BY seq", params):
        by_person = any(r["actor"] == a or (a.endswith(":") and r["actor"].startswith(a)) for a in OPERATOR_ACTORS)
        if by_person or r["kind"] in EXTERNAL_KINDS:
            manual.append({"at": fmt_kst(r["ts"]), "kind": r["kind"], "account": r["account"], "actor": r["actor"],
                           "message": r["message"]})
    return {"mdd_level_changes": mdd, "refusals_by_rule": dict(sorted(refusals.items())),
            "flag_periods": flag_periods(store, w, account), "manual_interventions": manual}


# ---------------------------------------------------------------------------------------------- operations
def _uptime(store: Store, name: str, w: Window, now_ms: int) -> dict[str, Any]:
    segs = operations.uptime_segments(store, name, w.end_ms)
    if not segs:
        return {"runner": name, "uptime_pct": None, "observed_h": 0.0, "up_h": 0.0, "starts": 0, "restarts": 0,
                "unclean_stops": 0, "first_seen": None}
    first = segs[0].start_ms
    a = max(w.start_ms, first)
    b = min(w.end_ms, max(now_ms, segs[-1].last_ms))
    up = sum(max(0, min(s.last_ms, b) - max(s.start_ms, a)) for s in segs)
    in_month = [s for s in segs if w.start_ms <= s.start_ms < w.end_ms]
    restarts = sum(1 for s in in_month if s.start_ms != first)
    # a segment that ended without a clean stop and is not the one still running is a crash (or a hang)
    unclean = sum(1 for i, s in enumerate(segs) if not s.clean and i < len(segs) - 1 and w.start_ms <= s.last_ms
                  < w.end_ms)
    return {"runner": name, "uptime_pct": round(up / (b - a) * 100, 3) if b > a else None,
            "observed_h": round(max(0, b - a) / 3_600_000, 2), "up_h": round(up / 3_600_000, 2),
            "starts": len(in_month), "restarts": restarts, "unclean_stops": unclean, "first_seen": fmt_kst(first)}


def _calls(store: Store, account: str, w: Window) -> dict[str, Any]:
    rows = operations.call_counts(store, account, w.start_ms, w.end_ms)
    total = sum(int(r["n"]) for r in rows)
    by_class: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["outcome"] != "ok":
            by_class[r["outcome"]] += int(r["n"])
    errors = sum(by_class.values())
    lat = operations.placement_latencies(store, account, w.start_ms, w.end_ms)
    return {
        "calls": total, "errors": errors, "error_rate_pct": round(errors / total * 100, 4) if total else None,
        "errors_by_class": {k: {"n": n, "rate_pct": round(n / total * 100, 4)} for k, n in sorted(by_class.items())},
        "placements": len(lat),
        "placement_latency_ms": {q: _f(_percentile(lat, v), 1) for q, v in (("p50", 50), ("p90", 90), ("p99", 99),
                                                                             ("max", 100))},
    }


def _percentile(ascending: list[float], q: float) -> float | None:
    """Nearest-rank percentile (a latency that was actually observed); None without values."""
    if not ascending:
        return None
    return ascending[max(1, math.ceil(q / 100 * len(ascending))) - 1]


def incidents_in(store: Store, w: Window, account: str | None, now_ms: int) -> list[dict[str, Any]]:
    sql = "SELECT * FROM incidents WHERE opened_ms < ? AND (closed_ms IS NULL OR closed_ms >= ?)"
    params: tuple = (w.end_ms, w.start_ms)
    if account is not None:
        sql += " AND account IN (?, '')"
        params += (account,)
    out = []
    for r in store.query(sql + " ORDER BY opened_ms", params):
        end = r["closed_ms"] if r["closed_ms"] is not None else now_ms
        out.append({"id": r["incident_id"], "kind": r["kind"], "severity": r["severity"], "account": r["account"],
                    "title": r["title"], "opened": fmt_kst(r["opened_ms"]), "closed": fmt_kst(r["closed_ms"])
                    if r["closed_ms"] is not None else None, "status": r["status"],
                    "duration_h": round(max(0, end - r["opened_ms"]) / 3_600_000, 2)})
    return out


# ---------------------------------------------------------------------------------------------- the review
def build(settings: "Settings", store: Store, month: str, account: str | None, now_ms: int) -> dict[str, Any]:
    """Everything the review shows, JSON-able. Raises :class:`ReviewError` for a bad month or unknown account."""
    w = Window.parse(month)
    if account is not None and account not in settings.accounts:
        raise ReviewError(f"--account {account!r}: not in the configuration (accounts: "
                          f"{', '.join(sorted(settings.accounts)) or 'none'})")
    names = [account] if account is not None else sorted(settings.accounts)
    accounts = []
    for name in names:
        perf = performance(store, name, w)
        accounts.append({"account": name, "mode": str(settings.accounts[name].mode), "performance": perf,
                         "operations": {"uptime": _uptime(store, f"run:{name}", w, now_ms),
                                        "exchange": _calls(store, name, w)}})
    totals = _trade_figures([l for n in names for l in _closed_legs(store, n, w)])
    return {
        "month": w.month, "from": fmt_kst(w.start_ms), "to": fmt_kst(w.end_ms), "from_ms": w.start_ms,
        "to_ms": w.end_ms, "generated": fmt_kst(now_ms), "account_filter": account, "store": str(store.path),
        "totals": totals, "accounts": accounts, "risk": risk(store, w, account),
        "incidents": incidents_in(store, w, account, now_ms),
    }


def summary_lines(rep: dict[str, Any]) -> list[str]:
    """A few plain lines (bot /report, the command's closing line): PnL, trades, drawdown, uptime, incidents."""
    t = rep["totals"]
    from albra.dashboard.figures import money

    lines = [f"Review {rep['month']} ({rep['from'][:10]} → {rep['to'][:10]} KST)",
             f"total: net {money(t['net_pnl'], signed=True)} USDT over {t['trades']} trades, win rate "
             f"{'-' if t['win_rate_pct'] is None else format(t['win_rate_pct'], '.1f') + '%'}, profit factor "
             f"{'-' if t['profit_factor'] is None else format(t['profit_factor'], '.2f')}"]
    for a in rep["accounts"]:
        p, eq, up = a["performance"], a["performance"]["equity"], a["operations"]["uptime"]
        dd = "-" if eq["max_drawdown_pct"] is None else f"{eq['max_drawdown_pct']:.2f}%"
        upt = "-" if up["uptime_pct"] is None else f"{up['uptime_pct']:.2f}%"
        lines.append(f"{a['account']}: net {money(p['net_pnl'], signed=True)} USDT, {p['trades']} trades, "
                     f"fees {money(p['fees'])}, "
                     f"max DD {dd}, uptime {upt}, restarts {up['restarts']}")
    opened = len(rep["incidents"])
    refusals = sum(rep["risk"]["refusals_by_rule"].values())
    lines.append(f"risk: {refusals} refusal(s), {len(rep['risk']['mdd_level_changes'])} MDD level change(s), "
                 f"{len(rep['risk']['manual_interventions'])} manual intervention(s); incidents: {opened}")
    return lines
