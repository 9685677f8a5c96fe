"""The Markdown write-up of one incident, built only from the store (journal, legs, intents, equity snapshots).

Why from the store alone: the report is written after the fact, possibly while the exchange is unreachable, and
it must describe what albra saw and did at the time — not what the exchange looks like now. Every time is on the
exchange's clock (the one clock every row is stamped with, ADR 0015) and shown in KST. The window of the report runs from a little before the incident opened (so the lead-up is visible) to the
moment it was closed, or now while it is still open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from albra.model import D
from albra.store import incidents, journal
from albra.store.db import Store
from albra.store.incidents import Incident
from albra.timefmt import fmt_kst

#: how much of the journal before the incident opened the timeline shows (the lead-up).
LEAD_UP_MS = 30 * 60_000
MAX_TIMELINE = 400
#: journal kinds that are an action somebody (an operator, a command, the engine) took, not an observation.
ACTION_KINDS = ("kill_switch_set", "kill_switch_cleared", "pause_set", "pause_cleared", "runner_stopped",
                "runner_stop_failed", "orders_cancelled", "position_closed", "emergency_shutdown",
                "emergency_order", "reconcile_repair", "reconcile_round", "restart", "incident_closed", "stop_replaced", "leg_adopted",
                "leg_closed_by_reconcile", "intent_resolved")


class IncidentNotFound(KeyError):
    """No incident with that id in the store."""


@dataclass(frozen=True)
class Window:
    start_ms: int
    end_ms: int


def _window(store: Store, inc: Incident, now: int) -> Window:
    """From the lead-up (at most ``LEAD_UP_MS`` before it opened, and never reaching back into an earlier incident's
    own activity, so its orders and rows are not counted twice) to its close, or now."""
    end = inc.closed_ms if inc.closed_ms is not None else now
    start = inc.opened_ms - LEAD_UP_MS
    prev = store.query_one("SELECT incident_id, opened_ms, closed_ms FROM incidents WHERE opened_ms <= ? AND"
                           " incident_id != ? ORDER BY opened_ms DESC LIMIT 1", (inc.opened_ms, inc.incident_id))
    if prev is not None:
        last = store.query_one("SELECT MAX(ts) AS t FROM journal WHERE incident_id=? AND ts <= ?",
                               (prev["incident_id"], inc.opened_ms))
        busy_until = max(x for x in (prev["opened_ms"], prev["closed_ms"] if prev["closed_ms"] is not None and
                                     prev["closed_ms"] <= inc.opened_ms else None, last["t"] if last else None)
                         if x is not None)
        start = max(start, busy_until + 1)
    return Window(min(start, inc.opened_ms), max(end, inc.opened_ms))


def _realized_since(store: Store, account: str, since_ms: int, until_ms: int) -> dict[str, Any]:
    """Realised PnL − USDT fees + funding of every fill and funding payment on the exchange's clock since the incident
    opened — attributed to a leg or not (a manual position closed by the emergency counts too)."""
    acct = " AND account = ?" if account else ""
    extra = (account,) if account else ()
    # a fill counts when it is stamped after the incident opened, or when its order was sent after that (an exchange
    # whose clock stood still — a drill server at --speed 0 — stamps every trade at the same instant)
    # (and the emergency's own closes are tied to it by their client ids, which carry its start as candle time)
    sql = (f"SELECT realized_pnl, fee, fee_asset FROM fills f WHERE ((ts >= ? AND ts <= ?) OR exchange_order_id IN"
           f" (SELECT exchange_order_id FROM order_intents i WHERE i.account = f.account AND exchange_order_id IS NOT"
           f" NULL AND ((i.created_ms >= ? AND i.created_ms <= ?) OR (i.purpose = 'emergency' AND i.candle_ts = ?)))){acct}")
    pnl = fees = Decimal(0)
    n = 0
    for f in store.query(sql, (since_ms, until_ms, since_ms, until_ms, since_ms, *extra)):
        n += 1
        pnl += D(f["realized_pnl"])
        if f["fee_asset"] == "USDT":
            fees += D(f["fee"])
    funding = sum((D(r["amount"]) for r in store.query(
        f"SELECT amount FROM income WHERE income_type='FUNDING_FEE' AND ts >= ? AND ts <= ?{acct}",
        (since_ms, until_ms, *extra))), Decimal(0))
    return {"fills": n, "pnl": pnl, "fees": fees, "funding": funding, "net": pnl - fees + funding}


def _equity_before_from_details(inc: Incident) -> dict[str, Any] | None:
    """The balance the emergency itself read at its first look (more exact than the last snapshot before it)."""
    per = {a: d["equity_before"]["equity"] for a, d in (inc.details.get("accounts") or {}).items()
           if isinstance(d, dict) and d.get("equity_before")}
    if not per:
        return None
    return {"total": sum((D(v) for v in per.values()), Decimal(0)), "per_account": per, "ts": inc.opened_ms}


def _legs_open_at(store: Store, account: str, ts: int) -> list[dict[str, Any]]:
    """Legs that held a position at ``ts`` (opened before, not closed yet). Quantity is the current qty for legs
    still live and the initial qty for closed ones (the ledger keeps no per-time history)."""
    sql = ("SELECT leg_id, account, symbol, strategy, direction, position_side, state, qty, qty_initial, entry_price,"
           " realized_pnl, fees, funding, stop_price, opened_ms, closed_ms FROM legs WHERE opened_ms <= ?"
           " AND (closed_ms IS NULL OR closed_ms > ?) AND state NOT IN ('failed', 'cancelled')")
    params: list[Any] = [ts, ts]
    if account:
        sql += " AND account = ?"
        params.append(account)
    return [dict(r) for r in store.query(sql + " ORDER BY account, symbol, strategy", tuple(params))]


def _equity(store: Store, account: str, ts: int, before: bool) -> dict[str, Any] | None:
    """The equity snapshot(s) nearest to ``ts``: the last at/before it, or the first after it; summed over every
    account when the incident is not tied to one."""
    accounts = [account] if account else [r["account"] for r in store.query(
        "SELECT DISTINCT account FROM equity_snapshots ORDER BY account")]
    total = Decimal(0)
    per: dict[str, str] = {}
    last_ts = None
    for a in accounts:
        if before:
            r = store.query_one("SELECT ts, equity FROM equity_snapshots WHERE account=? AND ts<=? ORDER BY ts DESC"
                                " LIMIT 1", (a, ts))
        else:
            r = store.query_one("SELECT ts, equity FROM equity_snapshots WHERE account=? AND ts>=? ORDER BY ts DESC"
                                " LIMIT 1", (a, ts))
        if r is None:
            continue
        per[a] = r["equity"]
        total += D(r["equity"])
        last_ts = r["ts"] if last_ts is None else max(last_ts, r["ts"])
    if not per:
        return None
    return {"total": total, "per_account": per, "ts": last_ts}


def build_report(store: Store, incident_id: str, now_ms: int | None = None) -> dict[str, Any]:
    """Everything the Markdown shows, as data (``--json`` prints this)."""
    inc = incidents.get(store, incident_id)
    if inc is None:
        known = [i.incident_id for i in incidents.list_incidents(store, limit=5)]
        raise IncidentNotFound(f"no incident {incident_id!r} in the store"
                               + (f" (latest: {', '.join(known)})" if known else " (the store has no incidents)"))
    from albra.store.clock import exchange_now

    now = exchange_now(store, inc.account) if now_ms is None else now_ms
    w = _window(store, inc, now)
    acct_filter = inc.account or None
    timeline = [e for e in journal.entries(store, since_ms=w.start_ms, until_ms=w.end_ms)
                if acct_filter is None or e.account in ("", acct_filter) or e.incident_id == incident_id]
    truncated = max(0, len(timeline) - MAX_TIMELINE)
    timeline = timeline[-MAX_TIMELINE:]
    sql = ("SELECT client_id, account, strategy, symbol, purpose, side, position_side, order_type, qty, trigger_price,"
           " reduce_only, state, filled_qty, avg_price, error, created_ms FROM order_intents WHERE created_ms BETWEEN"
           " ? AND ?")
    params: list[Any] = [w.start_ms, w.end_ms]
    if acct_filter:
        sql += " AND account = ?"
        params.append(acct_filter)
    orders = [dict(r) for r in store.query(sql + " ORDER BY created_ms, client_id", tuple(params))]
    before_legs = _legs_open_at(store, inc.account, inc.opened_ms)
    after_legs = _legs_open_at(store, inc.account, w.end_ms)
    eq_before = _equity_before_from_details(inc) or _equity(store, inc.account, inc.opened_ms, before=True)
    eq_after = _equity(store, inc.account, inc.opened_ms, before=False)
    closed_sql = ("SELECT leg_id, account, symbol, strategy, direction, realized_pnl, fees, funding, close_reason,"
                  " closed_ms FROM legs WHERE closed_ms BETWEEN ? AND ? AND state = 'closed'")
    cparams: list[Any] = [inc.opened_ms, w.end_ms]
    if acct_filter:
        closed_sql += " AND account = ?"
        cparams.append(acct_filter)
    closed = [dict(r) for r in store.query(closed_sql + " ORDER BY closed_ms", tuple(cparams))]
    realized = sum((D(c["realized_pnl"]) - D(c["fees"]) + D(c["funding"]) for c in closed), Decimal(0))
    since = _realized_since(store, inc.account, inc.opened_ms, w.end_ms)
    equity_change = None
    if eq_before and eq_after:
        equity_change = eq_after["total"] - eq_before["total"]
    actions = [e for e in timeline if e.kind in ACTION_KINDS or e.incident_id == incident_id]
    unresolved = store.query(
        "SELECT client_id, account, symbol, purpose, state FROM order_intents WHERE state IN ('pending','sent',"
        "'unknown')" + (" AND account = ?" if acct_filter else "") + " ORDER BY created_ms",
        (acct_filter,) if acct_filter else ())
    questions = _open_questions(inc, after_legs, [dict(r) for r in unresolved], eq_before, eq_after, orders)
    return {
        "incident": {"id": inc.incident_id, "kind": inc.kind, "severity": inc.severity, "status": inc.status,
                     "title": inc.title, "account": inc.account or "all", "opened_by": inc.opened_by,
                     "opened": fmt_kst(inc.opened_ms), "closed": fmt_kst(inc.closed_ms) if inc.closed_ms else None,
                     "details": inc.details},
        "window": {"from": fmt_kst(w.start_ms), "to": fmt_kst(w.end_ms)},
        "timeline": [{"time": fmt_kst(e.ts), "level": e.level, "kind": e.kind, "account": e.account,
                      "strategy": e.strategy, "symbol": e.symbol, "message": e.message, "actor": e.actor}
                     for e in timeline],
        "timeline_truncated": truncated,
        "positions_before": before_legs,
        "positions_after": after_legs,
        "equity_before": _eq_json(eq_before),
        "equity_after": _eq_json(eq_after),
        "orders": [o | {"created": fmt_kst(o["created_ms"])} for o in orders],
        "loss": {"equity_change": None if equity_change is None else str(equity_change),
                 "realized_net_in_window": str(realized), "legs_closed": closed,
                 "realized_since_opened": {k: str(v) for k, v in since.items()}},
        "actions": [{"time": fmt_kst(e.ts), "kind": e.kind, "actor": e.actor, "message": e.message} for e in actions],
        "open_questions": questions,
    }


def _eq_json(eq: dict[str, Any] | None) -> dict[str, Any] | None:
    if eq is None:
        return None
    return {"total": str(eq["total"]), "per_account": eq["per_account"], "at": fmt_kst(eq["ts"])}


def _open_questions(inc: Incident, after_legs: list[dict[str, Any]], unresolved: list[dict[str, Any]],
                    eq_before: dict[str, Any] | None, eq_after: dict[str, Any] | None,
                    orders: list[dict[str, Any]]) -> list[str]:
    """What a person still has to find out — derived from gaps in the record, never boilerplate."""
    q: list[str] = []
    if inc.status == "open":
        q.append(f"The incident is still open: close it once resolved (`albra incident-report --incident-id "
                 f"{inc.incident_id}` again afterwards for the final record).")
    live = [l for l in after_legs if l["state"] in ("pending", "open", "closing")]
    if live:
        q.append(f"{len(live)} leg(s) are still open in the ledger after the incident: "
                 + ", ".join(f"{l['account']}/{l['symbol']}/{l['strategy']} {l['direction']} {l['qty']}" for l in live)
                 + " — are they really on the exchange? (`albra audit --compare-exchange`)")
    if unresolved:
        q.append(f"{len(unresolved)} order intent(s) have no known outcome: "
                 + ", ".join(f"{u['client_id']} ({u['purpose']}, {u['state']})" for u in unresolved)
                 + " — resolve with `albra reconcile --apply`.")
    if eq_before is None:
        q.append("No equity snapshot before the incident: the loss cannot be measured from the store.")
    if eq_after is None:
        q.append("No equity snapshot after the incident opened: run `albra audit --compare-exchange "
                 f"--incident {inc.incident_id}` to measure the loss against the exchange.")
    failed = [o for o in orders if o["state"] in ("rejected", "unknown", "not_found")]
    if failed:
        q.append(f"{len(failed)} order(s) in the window did not go through: "
                 + ", ".join(f"{o['client_id']} {o['purpose']} {o['state']}" for o in failed) + ".")
    for key in ("unverified", "errors", "store_error"):
        v = inc.details.get(key)
        if v:
            q.append(f"{key.replace('_', ' ')} recorded at the time: {json.dumps(v, default=str)[:400]}")
    return q


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return ("-" if v is None or v == "" else str(v)).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def render_markdown(rep: dict[str, Any]) -> str:
    """The report as Markdown (what ``albra incident-report`` prints or writes)."""
    inc = rep["incident"]
    lines = [f"# Incident {inc['id']}: {inc['title']}", ""]
    lines += [f"- **Kind:** {inc['kind']} ({inc['severity']})", f"- **Status:** {inc['status']}",
              f"- **Account:** {inc['account']}", f"- **Opened:** {inc['opened']} by {inc['opened_by'] or '-'}",
              f"- **Closed:** {inc['closed'] or 'not yet'}",
              f"- **Report window:** {rep['window']['from']} → {rep['window']['to']}", ""]
    if inc["details"]:
        lines += ["## Details recorded when it opened", "", "```json",
                  json.dumps(inc["details"], indent=2, default=str, sort_keys=True)[:6000], "```", ""]
    lines += ["## Timeline (KST)", ""]
    if rep["timeline_truncated"]:
        lines += [f"_{rep['timeline_truncated']} earlier journal entries left out._", ""]
    if rep["timeline"]:
        lines += _md_table(["time", "level", "kind", "account", "strategy", "symbol", "message"],
                           [[e["time"], e["level"], e["kind"], e["account"], e["strategy"], e["symbol"], e["message"]]
                            for e in rep["timeline"]])
    else:
        lines.append("No journal entries in the window.")
    lines += ["", "## Positions and equity before and after", ""]
    for label, legs_key, eq_key in (("Before (when it opened)", "positions_before", "equity_before"),
                                    ("After (end of the window)", "positions_after", "equity_after")):
        eq = rep[eq_key]
        lines.append(f"### {label}")
        lines.append("")
        lines.append(f"Equity: {eq['total']} USDT at {eq['at']} ({', '.join(f'{a} {v}' for a, v in eq['per_account'].items())})"
                     if eq else "Equity: no snapshot in the store.")
        lines.append("")
        legs = rep[legs_key]
        if legs:
            lines += _md_table(["account", "symbol", "strategy", "direction", "state", "qty", "entry", "stop"],
                               [[l["account"], l["symbol"], l["strategy"], l["direction"], l["state"],
                                 l["qty"] if l["state"] != "closed" else l["qty_initial"], l["entry_price"],
                                 l["stop_price"]] for l in legs])
        else:
            lines.append("No open legs.")
        lines.append("")
    lines += ["## Orders sent", ""]
    if rep["orders"]:
        lines += _md_table(["created", "account", "strategy", "symbol", "purpose", "side", "type", "qty", "state",
                            "filled", "avg price", "error"],
                           [[o["created"], o["account"], o["strategy"], o["symbol"], o["purpose"], o["side"],
                             o["order_type"], o["qty"], o["state"], o["filled_qty"], o["avg_price"], o["error"]]
                            for o in rep["orders"]])
    else:
        lines.append("No order intents were recorded in the window.")
    loss = rep["loss"]
    lines += ["", "## Loss assessment", ""]
    lines.append(f"- Equity change (snapshot after − snapshot before): "
                 f"{loss['equity_change'] + ' USDT' if loss['equity_change'] is not None else 'unknown (missing snapshot)'}")
    rs = loss["realized_since_opened"]
    lines.append(f"- Realised since the incident opened, from the exchange's fills (PnL {rs['pnl']} − fees {rs['fees']}"
                 f" + funding {rs['funding']}): **{rs['net']} USDT** over {rs['fills']} fill(s)")
    lines.append(f"- Realised net PnL of legs closed since it opened (price PnL − fees + funding): "
                 f"{loss['realized_net_in_window']} USDT over {len(loss['legs_closed'])} leg(s)")
    for c in loss["legs_closed"]:
        net = D(c["realized_pnl"]) - D(c["fees"]) + D(c["funding"])
        lines.append(f"  - {c['account']}/{c['symbol']}/{c['strategy']} {c['direction']}: {net} USDT "
                     f"({c['close_reason'] or 'closed'}, {fmt_kst(c['closed_ms'])})")
    lines += ["", "## Actions taken", ""]
    if rep["actions"]:
        lines += [f"- {a['time']} — {a['kind']}" + (f" ({a['actor']})" if a["actor"] else "") + f": {a['message']}"
                  for a in rep["actions"]]
    else:
        lines.append("No actions were journaled.")
    lines += ["", "## Open questions", ""]
    lines += [f"- {q}" for q in rep["open_questions"]] or ["- None found in the record."]
    return "\n".join(lines) + "\n"


def list_rows(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Incidents newest first, for ``incident-report --list``."""
    return [{"id": i.incident_id, "status": i.status, "severity": i.severity, "kind": i.kind, "account": i.account or "all",
             "title": i.title, "opened": fmt_kst(i.opened_ms), "closed": fmt_kst(i.closed_ms) if i.closed_ms else None}
            for i in incidents.list_incidents(store, limit=limit)]
