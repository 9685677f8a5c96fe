"""``albra status`` without ``--offline``: the store's picture (:func:`offline_status`) plus, per account, the
exchange's live view — positions by strategy with PnL at the exchange's mark, equity, drawdown from the stored peak
and daily loss used against the live equity.

An account whose exchange cannot be read keeps its store view and gets ``exchange: {"ok": false, "reason": …}``;
``status`` exits 3 only when *every* non-paper account is unreachable (then nothing live could be shown), so a
cron check still notices a total outage while one sub-account's trouble does not hide the others; it exits 2 when
an account's API key variables are not set (a configuration error, named in its ``reason``).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra.runbook.status_offline import offline_status

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.store.db import Store


async def _live(settings: "Settings", store: "Store", account: str) -> dict[str, Any]:
    from albra.exchange.errors import ExchangeError
    from albra.ledger import legs as L
    from albra.runbook.connect import Unreachable, account_gateway, classify_failure, close_quietly
    from albra.store import risk_state

    gw = account_gateway(settings, account)
    if isinstance(gw, Unreachable):
        return {"ok": gw.kind == "paper", "paper": gw.kind == "paper", "config_error": gw.is_config,
                "reason": gw.reason}
    try:
        bal, positions = await asyncio.gather(gw.fetch_balance(), gw.fetch_positions())
    except ExchangeError as e:
        return {"ok": False, "reason": classify_failure(account, e).reason}
    finally:
        await close_quietly(gw, store)
    from albra.ledger.positions import compare_positions

    marks = {(p.symbol, p.position_side.value): p.mark_price for p in positions}
    live = L.live_legs(store, account)
    # the ledger must sum to the exchange: a leg the exchange no longer holds (or a position no leg owns) is a
    # finding (exit 1), never a quiet "ok" — `albra reconcile` explains and repairs it
    mismatches = [{"symbol": d.symbol, "position_side": d.position_side.value, "ledger_qty": str(d.ledger_qty),
                   "exchange_qty": str(d.exchange_qty), "cause": d.likely_cause}
                  for d in compare_positions(live, positions)]
    legs = []
    for g in live:
        mark = marks.get((g.symbol, g.position_side.value))
        upnl = None
        if mark is not None and g.entry_price is not None:
            upnl = (mark - g.entry_price) * g.qty * g.direction.sign
        legs.append({"symbol": g.symbol, "strategy": g.strategy, "direction": g.direction.value, "qty": str(g.qty),
                     "entry_price": None if g.entry_price is None else str(g.entry_price),
                     "mark": None if mark is None else str(mark), "unrealized": None if upnl is None else str(upnl)})
    peak = risk_state.get(store, account, risk_state.MDD_PEAK)
    anchor = risk_state.get(store, account, risk_state.DAILY_ANCHOR)
    dd = daily = None
    if peak and Decimal(str(peak["equity"])) > 0:
        pk = Decimal(str(peak["equity"]))
        dd = float(max(Decimal(0), (pk - bal.equity) / pk * 100))
    if anchor and Decimal(str(anchor["start_equity"])) > 0:
        st = Decimal(str(anchor["start_equity"]))
        daily = float((st - bal.equity) / st * 100)
    return {"ok": True, "equity": str(bal.equity), "wallet": str(bal.wallet), "unrealized": str(bal.unrealized),
            "available": str(bal.available), "drawdown_pct": dd, "daily_loss_pct": daily,
            "positions": [{"symbol": p.symbol, "position_side": p.position_side.value, "qty": str(p.qty),
                           "mark": str(p.mark_price), "unrealized": str(p.unrealized)} for p in positions],
            "legs": legs, "mismatches": mismatches}


async def live_status(settings: "Settings", store: "Store", account: str | None = None) -> dict[str, Any]:
    data = offline_status(settings, store, account)
    names = [a["account"] for a in data["accounts"]]
    lives = await asyncio.gather(*(_live(settings, store, n) for n in names))
    for a, lv in zip(data["accounts"], lives):
        a["exchange"] = lv
    real = [lv for lv in lives if not lv.get("paper")]
    if any(lv.get("config_error") for lv in lives):
        data["exit_code"] = 2  # an account's keys are not set: fix the configuration (the reason names them)
    elif real and all(not lv["ok"] for lv in real):
        data["exit_code"] = 3
    else:  # 1: the ledger does not match the exchange somewhere (listed per account under "mismatches")
        data["exit_code"] = 1 if any(lv.get("mismatches") for lv in lives) else 0
    return data
