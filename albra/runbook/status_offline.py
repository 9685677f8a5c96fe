"""What the store knows, without touching the exchange: flags, runners, legs, equity, risk state, incidents.

``albra status --offline`` renders this; it must stay fast (no ccxt import) and work while runners trade.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra.store import flags, incidents, risk_state, runners
from albra.store.db import Store
from albra.timefmt import fmt_kst, now_ms

if TYPE_CHECKING:
    from albra.config import Settings


def down_after_ms(settings: "Settings") -> int:
    """The configured limit past which a silent runner is down (``runner.down_after_s``)."""
    return int(settings.runner.down_after_s * 1000)


def offline_status(settings: "Settings", store: Store, account: str | None = None) -> dict[str, Any]:
    """A JSON-able snapshot per account plus global flags and open incidents."""
    now = now_ms()
    runner_map = {r.name: r for r in runners.get_all(store)}
    accounts_out = []
    for name, acct in sorted(settings.accounts.items()):
        if account and name != account:
            continue
        r = runner_map.get(f"run:{name}")
        lv = runners.liveness(r, now, down_after_ms(settings), f"run:{name}")
        legs = store.query(
            "SELECT leg_id, symbol, strategy, direction, position_side, state, qty, entry_price, stop_price,"
            " take_profit, sl_client_id, opened_ms FROM legs WHERE account=? AND state IN ('pending','open','closing')"
            " ORDER BY symbol, strategy, opened_ms", (name,))
        snap = store.query_one("SELECT * FROM equity_snapshots WHERE account=? ORDER BY ts DESC LIMIT 1", (name,))
        peak = risk_state.get(store, name, risk_state.MDD_PEAK)
        level = risk_state.get(store, name, risk_state.MDD_LEVEL)
        anchor = risk_state.get(store, name, risk_state.DAILY_ANCHOR)
        drawdown = None
        daily_used = None
        if snap and peak:
            eq, pk = Decimal(snap["equity"]), Decimal(str(peak["equity"]))
            drawdown = float((pk - eq) / pk * 100) if pk > 0 else 0.0
        if snap and anchor:
            start = Decimal(str(anchor["start_equity"]))
            loss = start - Decimal(snap["equity"])
            daily_used = float(loss / start * 100) if start > 0 else 0.0
        marks = store.query("SELECT strategy, symbol, timeframe, last_ts FROM candle_marks WHERE account=?"
                            " ORDER BY strategy, symbol", (name,))
        accounts_out.append({
            "account": name,
            "mode": str(acct.mode),
            "strategies": [s.name for s in acct.strategies],
            "runner": {
                "alive": lv.up,
                "liveness": lv.state,
                "text": lv.text,
                "down_since": fmt_kst(lv.since_ms) if lv.state == "down" else None,
                "heartbeat_age_s": lv.heartbeat_age_s,
                "state": r.state if r else "never started",
                "pid": r.pid if r else None,
                "since": fmt_kst(r.started_ms) if r else None,
                "heartbeat": fmt_kst(r.heartbeat_ms) if r else None,
            },
            "equity": snap["equity"] if snap else None,
            "equity_at": fmt_kst(snap["ts"]) if snap else None,
            "drawdown_pct": drawdown,
            "mdd_level": (level or {}).get("level", 0),
            "daily_loss_pct": daily_used,
            "legs": [dict(l) | {"opened": fmt_kst(l["opened_ms"])} for l in legs],
            "last_candles": [dict(m) | {"last": fmt_kst(m["last_ts"])} for m in marks],
            "entries_blocked_by": [f.scope + f" ({f.kind})" for f in flags.active_flags(store)
                                   if f.account in ("", name)],
            "trading_blocked": (lambda b: flags.block_text(b) if b else None)(flags.entry_block(store, name, "")),
        })
    return {
        "as_of": fmt_kst(now),
        "store": str(store.path),
        "kill_switch": bool(flags.kill_switch(store)),
        "kill_switches": [{"scope": f.account or "all", "reason": f.reason, "actor": f.actor,
                           "since": fmt_kst(f.updated_ms), "text": flags.block_text(f)}
                          for f in flags.kill_switches(store)],
        "flags": [{"kind": f.kind, "scope": f.scope, "reason": f.reason, "actor": f.actor,
                   "since": fmt_kst(f.updated_ms)} for f in flags.active_flags(store)],
        "accounts": accounts_out,
        "open_incidents": [{"id": i.incident_id, "kind": i.kind, "title": i.title, "opened": fmt_kst(i.opened_ms)}
                           for i in incidents.list_incidents(store, status="open")],
    }
