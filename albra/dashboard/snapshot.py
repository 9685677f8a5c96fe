"""What the dashboard shows, read from the store only: one JSON-able summary and one equity series per account.

Every figure leaves here already written as text (:mod:`albra.dashboard.figures`), so the page, the API and the
tests all read the same string. Times are UTC epoch ms in the store and ``YYYY-MM-DD HH:MM:SS KST`` here.

Per-account state (runner, equity, drawdown, daily loss, what blocks entries) comes from
:func:`albra.runbook.status_offline.offline_status`, the same reading ``albra status --offline`` prints, so the
dashboard and the CLI cannot disagree. Legs, their protective orders, the journal and incidents are read here.

Per-leg unrealised PnL needs a mark price, which the store does not hold: a leg shows what it books at its stop
and at its take-profit (from entry, stop, target and qty) and its realised PnL; the account's unrealised PnL is
the latest equity snapshot's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra.dashboard import figures as F
from albra.ledger.intents import PROTECTIVE_PURPOSES, UNRESOLVED
from albra.runbook.status_offline import down_after_ms, offline_status
from albra.store import incidents, journal, runners
from albra.store.db import Store
from albra.timefmt import fmt_kst, now_ms

if TYPE_CHECKING:
    from albra.config import Settings

LIVE_LEG_STATES = ("pending", "open", "closing")
JOURNAL_LIMIT = 50
INCIDENT_LIMIT = 20
MAX_CURVE_POINTS = 600
MAX_CURVE_HOURS = 24 * 366


def _pct_or_missing(value: float | None, signed: bool = False) -> str:
    return F.MISSING if value is None else F.pct(Decimal(str(value)), signed=signed)


def _leg_pnl_at(entry: Decimal | None, price: Decimal | None, qty: Decimal | None, direction: str) -> str:
    if entry is None or price is None or qty is None:
        return F.MISSING
    sign = 1 if direction == "LONG" else -1
    return F.money((price - entry) * qty * sign, signed=True)


def _protection(store: Store, leg_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Protective order intents (stop-loss, take-profit) per leg, oldest first."""
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in leg_ids}
    if not leg_ids:
        return out
    marks = ",".join("?" * len(leg_ids))
    purposes = tuple(sorted(PROTECTIVE_PURPOSES))
    rows = store.query(
        f"SELECT client_id, leg_id, purpose, order_type, state, qty, trigger_price, exchange_order_id, updated_ms"
        f" FROM order_intents WHERE leg_id IN ({marks}) AND purpose IN ({','.join('?' * len(purposes))})"
        f" ORDER BY created_ms, client_id", (*leg_ids, *purposes))
    for r in rows:
        out[r["leg_id"]].append({
            "purpose": r["purpose"],
            "client_id": r["client_id"],
            "order_type": r["order_type"],
            "state": r["state"],
            "live": r["state"] in ("open", *UNRESOLVED),
            "qty": F.plain(r["qty"]),
            "trigger": F.plain(r["trigger_price"]),
            "updated": fmt_kst(r["updated_ms"]),
        })
    return out


def _stop_status(orders: list[dict[str, Any]]) -> str:
    """``protected`` (a stop is open on the exchange), ``pending`` (in flight), ``UNPROTECTED`` (none live)."""
    stops = [o for o in orders if o["purpose"] == "stop_loss" and o["live"]]
    if any(o["state"] == "open" for o in stops):
        return "protected"
    return "pending" if stops else "UNPROTECTED"


def _legs(store: Store, account: str) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT leg_id, symbol, strategy, direction, position_side, state, qty, entry_price, stop_price,"
        " take_profit, sl_client_id, tp_client_id, realized_pnl, fees, funding, opened_ms FROM legs"
        " WHERE account=? AND state IN ('pending','open','closing') ORDER BY strategy, symbol, opened_ms, leg_id",
        (account,))
    protection = _protection(store, [r["leg_id"] for r in rows])
    out = []
    for r in rows:
        entry, stop, tp, qty = F.dec(r["entry_price"]), F.dec(r["stop_price"]), F.dec(r["take_profit"]), F.dec(r["qty"])
        orders = protection[r["leg_id"]]
        out.append({
            "leg_id": r["leg_id"],
            "account": account,
            "strategy": r["strategy"],
            "symbol": r["symbol"],
            "direction": r["direction"],
            "position_side": r["position_side"],
            "state": r["state"],
            "qty": F.plain(qty),
            "entry": F.plain(entry),
            "stop": F.plain(stop),
            "take_profit": F.plain(tp),
            "pnl_at_stop": _leg_pnl_at(entry, stop, qty, r["direction"]),
            "pnl_at_take_profit": _leg_pnl_at(entry, tp, qty, r["direction"]),
            "realized_pnl": F.money(r["realized_pnl"], signed=True),
            "fees": F.money(r["fees"]),
            "funding": F.money(r["funding"], signed=True),
            "opened": fmt_kst(r["opened_ms"]),
            "protection": orders,
            "stop_status": _stop_status(orders),
        })
    return out


def summary(settings: "Settings", store: Store) -> dict[str, Any]:
    """Everything the page shows except the equity curves: accounts, legs, runners, flags, journal, incidents."""
    base = offline_status(settings, store)
    accounts = []
    for a in base["accounts"]:
        name = a["account"]
        snap = store.query_one("SELECT * FROM equity_snapshots WHERE account=? ORDER BY ts DESC LIMIT 1", (name,))
        limit = settings.effective_risk(name)
        daily = a["daily_loss_pct"]
        legs = _legs(store, name)
        accounts.append({
            "account": name,
            "mode": a["mode"],
            "strategies": a["strategies"],
            "runner": a["runner"],
            "equity": F.money(snap["equity"]) if snap else F.MISSING,
            "wallet": F.money(snap["wallet"]) if snap else F.MISSING,
            "unrealized": F.money(snap["unrealized"], signed=True) if snap else F.MISSING,
            "available": F.money(snap["available"]) if snap else F.MISSING,
            "equity_at": a["equity_at"] or F.MISSING,
            "drawdown": _pct_or_missing(a["drawdown_pct"]),
            "mdd_level": a["mdd_level"],
            "mdd_halt": F.pct(Decimal(str(limit.mdd_halt_pct))),
            "daily_loss_used": _pct_or_missing(None if daily is None else max(daily, 0.0)),
            "daily_change": _pct_or_missing(None if daily is None else -daily, signed=True),
            "daily_loss_limit": F.pct(Decimal(str(limit.daily_loss_pct))),
            "entries_blocked_by": a["entries_blocked_by"],
            "trading_blocked": a["trading_blocked"],
            "open_legs": len(legs),
            "unprotected_legs": sum(1 for leg in legs if leg["stop_status"] == "UNPROTECTED"),
            "legs": legs,
        })
    t = now_ms()
    return {
        "as_of": base["as_of"],
        "store": base["store"],
        "kill_switch": base["kill_switch"],
        "kill_switches": base["kill_switches"],
        "flags": base["flags"],
        "accounts": accounts,
        "runners": [{
            "name": r.name, "state": r.state, "alive": lv.up, "liveness": lv.state, "text": lv.text,
            "pid": r.pid, "host": r.host, "since": fmt_kst(r.started_ms), "heartbeat": fmt_kst(r.heartbeat_ms),
            "heartbeat_age_s": lv.heartbeat_age_s,
        } for r in runners.get_all(store) for lv in [runners.liveness(r, t, down_after_ms(settings))]],
        "incidents": [{
            "id": i.incident_id, "status": i.status, "severity": i.severity, "kind": i.kind, "title": i.title,
            "account": i.account, "opened": fmt_kst(i.opened_ms), "closed": fmt_kst(i.closed_ms),
        } for i in incidents.list_incidents(store, limit=INCIDENT_LIMIT)],
        "journal": [{
            "seq": e.seq, "time": fmt_kst(e.ts), "level": e.level, "kind": e.kind, "account": e.account,
            "strategy": e.strategy, "symbol": e.symbol, "message": e.message, "incident_id": e.incident_id,
        } for e in journal.entries(store, limit=JOURNAL_LIMIT, newest_first=True)],
    }


def equity_curve(store: Store, account: str, hours: int, now: int) -> dict[str, Any]:
    """The account's equity snapshots of the last ``hours``, thinned to at most ``MAX_CURVE_POINTS`` (the newest
    point is always kept, so the curve ends at the figure the account card shows)."""
    if not 1 <= hours <= MAX_CURVE_HOURS:
        raise ValueError(f"hours must be between 1 and {MAX_CURVE_HOURS}, got {hours}")
    rows = store.query("SELECT ts, equity FROM equity_snapshots WHERE account=? AND ts>=? ORDER BY ts",
                       (account, now - hours * 3_600_000))
    if len(rows) > MAX_CURVE_POINTS:
        step = len(rows) / MAX_CURVE_POINTS
        picked = [rows[int(i * step)] for i in range(MAX_CURVE_POINTS - 1)] + [rows[-1]]
    else:
        picked = rows
    values = [F.dec(r["equity"]) for r in picked]
    nums = [v for v in values if v is not None]
    return {
        "account": account,
        "hours": hours,
        "count": len(rows),
        "points": [[r["ts"], float(v)] for r, v in zip(picked, values) if v is not None],
        "first": F.money(nums[0]) if nums else F.MISSING,
        "last": F.money(nums[-1]) if nums else F.MISSING,
        "min": F.money(min(nums)) if nums else F.MISSING,
        "max": F.money(max(nums)) if nums else F.MISSING,
        "change": F.money(nums[-1] - nums[0], signed=True) if nums else F.MISSING,
        "from": fmt_kst(picked[0]["ts"]) if picked else F.MISSING,
        "to": fmt_kst(picked[-1]["ts"]) if picked else F.MISSING,
    }
