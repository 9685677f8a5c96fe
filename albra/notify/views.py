"""What the bot's query commands say, read from the store only (never from a runner's memory).

Each function returns Telegram HTML built with :func:`albra.notify.format.esc`, so every value is redacted
and escaped. Money is summed as Decimal. An account with no data says so explicitly ("no snapshot yet")
rather than showing zero: unknown is not empty.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra.notify.format import esc, fmt_money, fmt_num
from albra.runbook.status_offline import offline_status
from albra.store import incidents
from albra.store.db import Store
from albra.timefmt import fmt_kst, kst_date, kst_day_start_ms

if TYPE_CHECKING:
    from albra.config import Settings


def status_text(settings: "Settings", store: Store) -> str:
    st = offline_status(settings, store)
    lines = [f"<b>albra status</b> — {esc(st['as_of'])}"]
    lines += [f"🛑 <b>{esc(k['text'])}</b>" for k in st["kill_switches"]] or ["kill switch: off"]
    for f in st["flags"]:
        if f["kind"] == "pause":
            lines.append(f"⏸ paused: {esc(f['scope'])} by {esc(f['actor'])} since {esc(f['since'])}"
                         + (f" — {esc(f['reason'])}" if f["reason"] else ""))
    for a in st["accounts"]:
        r = a["runner"]
        lines.append("")
        lines.append(f"<b>{esc(a['account'])}</b> ({esc(a['mode'])})")
        lines.append(("🟢 runner " if r["alive"] else "🔴 runner ") + esc(r["text"]))
        if a["equity"] is not None:
            lines.append(f"equity {esc(fmt_money(a['equity'], signed=False))} at {esc(a['equity_at'])}")
        else:
            lines.append("equity: no snapshot yet")
        if a["drawdown_pct"] is not None:
            lines.append(f"drawdown {a['drawdown_pct']:.2f}% · MDD level {a['mdd_level']}")
        if a["daily_loss_pct"] is not None:
            lines.append(f"daily loss used {a['daily_loss_pct']:.2f}%")
        lines.append(f"open legs {len(a['legs'])} · strategies {esc(', '.join(a['strategies']) or '-')}")
        if a["trading_blocked"]:
            lines.append(f"⛔ new entries blocked — {esc(a['trading_blocked'])}")
        elif a["entries_blocked_by"]:
            lines.append(f"entries blocked by {esc(', '.join(a['entries_blocked_by']))}")
    if st["open_incidents"]:
        lines.append("")
        lines.append(f"🚨 {len(st['open_incidents'])} open incident(s): "
                     + esc(", ".join(i["id"] for i in st["open_incidents"])))
    return "\n".join(lines)


def kill_switch_text(store: Store) -> str:
    """``/killswitch``: every kill switch that is on, in the words the CLI uses, or that it is off."""
    from albra.store import flags

    on = flags.kill_switches(store)
    if not on:
        return "kill switch: off everywhere"
    return "\n".join(f"🛑 <b>{esc(flags.block_text(f))}</b>" for f in on)


def positions_text(settings: "Settings", store: Store) -> str:
    lines = ["<b>Open legs</b>"]
    any_leg = False
    for name in sorted(settings.accounts):
        legs = store.query(
            "SELECT strategy, symbol, direction, qty, entry_price, stop_price, take_profit, state, opened_ms FROM legs"
            " WHERE account=? AND state IN ('pending','open','closing') ORDER BY symbol, strategy, opened_ms", (name,))
        lines.append(f"\n<b>{esc(name)}</b>" + ("" if legs else ": none"))
        for l in legs:
            any_leg = True
            entry = fmt_num(l["entry_price"]) if l["entry_price"] else "-"
            stop = fmt_num(l["stop_price"]) if l["stop_price"] else "⚠️ none"
            tp = fmt_num(l["take_profit"]) if l["take_profit"] else "-"
            state = "" if l["state"] == "open" else f" [{esc(l['state'])}]"
            lines.append(f"{esc(l['symbol'])} {esc(l['direction'])} {esc(fmt_num(l['qty']))} · {esc(l['strategy'])}"
                         f"{state}\n  entry {esc(entry)} · stop {esc(stop)} · tp {esc(tp)} · since "
                         f"{esc(fmt_kst(l['opened_ms']))}")
    if not any_leg:
        lines.append("\n(no open legs in the ledger)")
    return "\n".join(lines)


def _latest_snapshot(store: Store, account: str) -> dict[str, Any] | None:
    return store.query_one("SELECT * FROM equity_snapshots WHERE account=? ORDER BY ts DESC LIMIT 1", (account,))


def balance_text(settings: "Settings", store: Store) -> str:
    lines = ["<b>Balances</b> (latest equity snapshots)"]
    total = Decimal(0)
    known = 0
    for name in sorted(settings.accounts):
        s = _latest_snapshot(store, name)
        if s is None:
            lines.append(f"\n<b>{esc(name)}</b>: no snapshot yet")
            continue
        known += 1
        total += Decimal(s["equity"])
        lines.append(f"\n<b>{esc(name)}</b> at {esc(fmt_kst(s['ts']))}\n"
                     f"wallet {esc(fmt_money(s['wallet'], signed=False))}\n"
                     f"unrealised {esc(fmt_money(s['unrealized']))}\n"
                     f"equity <b>{esc(fmt_money(s['equity'], signed=False))}</b>\n"
                     f"available {esc(fmt_money(s['available'], signed=False))}")
    if known > 1:
        lines.append(f"\ntotal equity <b>{esc(fmt_money(total, signed=False))}</b>")
    return "\n".join(lines)


def pnl_text(settings: "Settings", store: Store, now_ms: int) -> str:
    """Today's PnL (KST day): realised from fills minus USDT fees, funding from income, unrealised now."""
    start = kst_day_start_ms(now_ms)
    lines = [f"<b>PnL today</b> ({esc(kst_date(now_ms))} KST, since 00:00)"]
    grand = Decimal(0)
    for name in sorted(settings.accounts):
        realised = Decimal(0)
        fees = Decimal(0)
        other_fees: dict[str, Decimal] = {}
        for f in store.query("SELECT realized_pnl, fee, fee_asset, fee_quote FROM fills WHERE account=? AND ts>=?"
                             " AND ts<=?", (name, start, now_ms)):
            realised += Decimal(f["realized_pnl"])
            if f["fee_asset"] == "USDT":
                fees += Decimal(f["fee"])
            else:  # paid in BNB: counted at its USDT value at the fill (when known), shown in its own asset too
                other_fees[f["fee_asset"]] = other_fees.get(f["fee_asset"], Decimal(0)) + Decimal(f["fee"])
                if f["fee_quote"] is not None:
                    fees += Decimal(f["fee_quote"])
        funding = sum((Decimal(r["amount"]) for r in store.query(
            "SELECT amount FROM income WHERE account=? AND income_type='FUNDING_FEE' AND ts>=? AND ts<=?",
            (name, start, now_ms))), Decimal(0))
        closed = store.query_one("SELECT COUNT(*) AS n FROM legs WHERE account=? AND state='closed' AND closed_ms>=?"
                                 " AND closed_ms<=?", (name, start, now_ms))["n"]
        snap = _latest_snapshot(store, name)
        net_realised = realised - fees + funding
        lines.append(f"\n<b>{esc(name)}</b>")
        lines.append(f"realised {esc(fmt_money(realised))} · fees {esc(fmt_money(-fees))} · funding "
                     f"{esc(fmt_money(funding))}")
        for asset, amt in sorted(other_fees.items()):
            lines.append(f"fees paid in {esc(asset)}: {esc(fmt_num(amt))} (in the total at their USDT value at each fill)")
        lines.append(f"net realised <b>{esc(fmt_money(net_realised))}</b> · {closed} leg(s) closed today")
        if snap is None:
            lines.append("unrealised: no snapshot yet")
            grand += net_realised
        else:
            unreal = Decimal(snap["unrealized"])
            lines.append(f"unrealised {esc(fmt_money(unreal))} (at {esc(fmt_kst(snap['ts']))})")
            grand += net_realised + unreal
    lines.append(f"\ntotal <b>{esc(fmt_money(grand))}</b>")
    return "\n".join(lines)


def incidents_text(store: Store, limit: int = 10) -> str:
    rows = incidents.list_incidents(store, limit=limit)
    if not rows:
        return "<b>Incidents</b>\nnone recorded"
    lines = [f"<b>Incidents</b> (latest {len(rows)})"]
    for i in rows:
        mark = "🚨 OPEN" if i.status == "open" else "closed"
        lines.append(f"\n<b>{esc(i.incident_id)}</b> {mark} · {esc(i.severity)} · {esc(i.kind)}\n{esc(i.title)}"
                     + (f" · {esc(i.account)}" if i.account else "")
                     + f"\nopened {esc(fmt_kst(i.opened_ms))}"
                     + (f" · closed {esc(fmt_kst(i.closed_ms))}" if i.closed_ms else ""))
    return "\n".join(lines)


def report_text(settings: "Settings", store: Store, args: list[str], now_ms: int) -> str:
    """``/report [YYYY-MM] [account]``: the monthly review's summary lines (the full page: ``albra report``)."""
    from albra.review.month import ReviewError, build, last_month, summary_lines

    month = next((a for a in args if len(a) == 7 and a[4] == "-"), None) or last_month(now_ms)
    rest = [a for a in args if a != month]
    if len(rest) > 1:
        return "usage: /report [YYYY-MM] [account]"
    try:
        rep = build(settings, store, month, rest[0] if rest else None, now_ms)
    except ReviewError as e:
        return f"❌ {esc(str(e).replace('--month ', '').replace('--account ', 'account '))}"
    head, *lines = summary_lines(rep)
    return f"<b>{esc(head)}</b>\n" + "\n".join(esc(l) for l in lines) + \
        f"\n<i>full review: albra report --month {esc(rep['month'])} --output DIR</i>"
