"""``audit --compare-exchange``: the ledger against the exchange, per account, read-only.

What is compared (each disagreement is a :class:`Finding`; reconcile explains and repairs them):

* positions — per (symbol, position side) the signed sum of live legs against the exchange position
  (:func:`albra.ledger.positions.compare_positions`);
* protection — every open leg of a strategy has its stop on the exchange (an algo order with the leg's recorded
  stop client id), sized to the leg; a stop the ledger believes live but the exchange no longer has is reported;
* other open orders — regular or algo orders on the exchange whose client id is no intent of the account;
* unresolved order intents — placements whose outcome albra never learned.

Also reported (facts, not findings): balance and equity, today's realised PnL from the exchange's income history
and unrealised PnL (the KST day by *exchange* time, the clock the trades carry), the ledger's realised PnL per
strategy for the same day, and the loss since a time or an incident.

A read that fails makes the account ``unreachable`` — never an empty book that "agrees".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra.timefmt import fmt_kst, kst_date, kst_day_start_ms

if TYPE_CHECKING:
    from albra.exchange.types import AccountSnapshot, Gateway
    from albra.store.db import Store


@dataclass(frozen=True)
class Finding:
    """One disagreement. ``kind``: position, missing_stop, stop_size, orphan_order (an albra order of a leg that
    is no longer live), unknown_order, unresolved_intent."""

    kind: str
    symbol: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "symbol": self.symbol, "detail": self.detail, "data": self.data}


@dataclass
class AccountAudit:
    """One account's audit. ``config_error``: the account cannot even be tried (its API key variables are not set);
    ``reason`` then names the variables (exit 2, not 3: nothing is wrong with the exchange)."""

    account: str
    reachable: bool = True
    reason: str = ""
    config_error: bool = False
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    position_mode: str = ""
    positions: list[dict[str, Any]] = field(default_factory=list)
    balance: dict[str, str] = field(default_factory=dict)
    pnl_today: dict[str, Any] = field(default_factory=dict)
    loss_since: dict[str, Any] | None = None
    open_algo_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["findings"] = [f.as_dict() for f in self.findings]
        d["agrees"] = self.reachable and not self.findings
        return d


def compare(store: "Store", account: str, snap: "AccountSnapshot") -> tuple[list[Finding], list[str],
                                                                          list[dict[str, Any]]]:
    """Findings, notes and the per-symbol position table for one account (pure reads of the store)."""
    from albra.ledger import intents as I
    from albra.ledger import legs as L
    from albra.ledger.positions import compare_positions
    from albra.model import Side

    legs = L.live_legs(store, account)
    unresolved = I.unresolved(store, account)
    findings: list[Finding] = []
    notes: list[str] = []
    for d in compare_positions(legs, list(snap.positions), unresolved_by_symbol=I.unresolved_by_symbol(unresolved)):
        findings.append(Finding("position", d.symbol, f"{d.position_side.value}: ledger {d.ledger_qty}, exchange "
                                f"{d.exchange_qty} — {d.likely_cause}", d.as_dict()))
    algos = {o.client_id: o for o in snap.open_algo_orders}
    hand_stops: set[str] = set()  # stops placed by hand that protect an unattributed leg: not "unknown orders"
    for leg in legs:
        if leg.qty <= 0 or leg.state is not L.LegState.OPEN:
            continue
        if leg.strategy == L.UNATTRIBUTED:
            # no strategy protects it; a stop placed by hand on that side still counts. None: a naked position
            closing = Side.SELL if leg.direction.value == "LONG" else Side.BUY
            guarded = [o for o in snap.open_algo_orders if o.symbol == leg.symbol and o.side is closing
                       and o.position_side is leg.position_side and o.trigger_price is not None]
            if not guarded:
                findings.append(Finding("missing_stop", leg.symbol, f"unattributed leg {leg.leg_id} ({leg.direction} "
                                        f"{leg.qty} {leg.symbol}) has NO stop on the exchange: close it or protect "
                                        "it by hand", {"leg_id": leg.leg_id, "strategy": leg.strategy,
                                                       "qty": str(leg.qty)}))
            else:
                hand_stops.update(o.client_id for o in guarded)
                notes.append(f"unattributed leg {leg.leg_id} ({leg.direction} {leg.qty} {leg.symbol}) is covered by "
                             f"a stop placed outside albra ({guarded[0].client_id})")
            continue
        stop = algos.get(leg.sl_client_id or "")
        data = {"leg_id": leg.leg_id, "strategy": leg.strategy, "qty": str(leg.qty),
                "stop_price": None if leg.stop_price is None else str(leg.stop_price), "sl_client_id": leg.sl_client_id}
        if stop is None:
            why = ("no stop was ever recorded" if not leg.sl_client_id else
                   f"stop {leg.sl_client_id} is not open on the exchange (fired, cancelled by hand or expired)")
            findings.append(Finding("missing_stop", leg.symbol, f"leg {leg.leg_id} ({leg.strategy} {leg.direction} "
                                    f"{leg.qty}) is unprotected: {why}", data))
        elif not stop.close_position and stop.qty != leg.qty:
            findings.append(Finding("stop_size", leg.symbol, f"leg {leg.leg_id} holds {leg.qty} but its stop "
                                    f"{stop.client_id} is for {stop.qty}", data | {"stop_qty": str(stop.qty)}))
    known = {r["client_id"]: r for r in store.query(
        "SELECT i.client_id, i.leg_id, g.state AS leg_state FROM order_intents i LEFT JOIN legs g ON g.leg_id = i.leg_id"
        " WHERE i.account=?", (account,))}
    for o in list(snap.open_orders) + list(snap.open_algo_orders):
        mine = known.get(o.client_id)
        if mine is not None and mine["leg_id"] and mine["leg_state"] not in ("pending", "open", "closing"):
            findings.append(Finding("orphan_order", o.symbol, f"{o.order_type.value} {o.side.value} {o.qty} "
                                    f"({o.client_id}) still on the exchange for leg {mine['leg_id']}, which is "
                                    f"{mine['leg_state']}", {"client_id": o.client_id, "is_algo": o.is_algo,
                                                              "leg_id": mine["leg_id"]}))
        if mine is None and o.client_id not in hand_stops:
            findings.append(Finding("unknown_order", o.symbol, f"{'algo ' if o.is_algo else ''}{o.order_type.value} "
                                    f"{o.side.value} {o.qty} ({o.client_id}) is not an albra intent (placed by hand "
                                    "or by another bot)", {"client_id": o.client_id, "is_algo": o.is_algo}))
    for it in unresolved:
        findings.append(Finding("unresolved_intent", it.symbol, f"intent {it.client_id} ({it.purpose}) is "
                                f"{it.state}: outcome never learned", {"client_id": it.client_id}))
    table = _position_table(legs, snap)
    return findings, notes, table


def _position_table(legs: list[Any], snap: "AccountSnapshot") -> list[dict[str, Any]]:
    """Per (symbol, side): the exchange position and the legs by strategy (for people)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for p in snap.positions:
        rows[(p.symbol, p.position_side.value)] = {
            "symbol": p.symbol, "position_side": p.position_side.value, "exchange_qty": str(p.qty),
            "entry_price": str(p.entry_price), "mark_price": str(p.mark_price), "unrealized": str(p.unrealized),
            "legs": []}
    for g in legs:
        r = rows.setdefault((g.symbol, g.position_side.value), {
            "symbol": g.symbol, "position_side": g.position_side.value, "exchange_qty": "0", "entry_price": None,
            "mark_price": None, "unrealized": None, "legs": []})
        r["legs"].append({"strategy": g.strategy, "direction": g.direction.value, "qty": str(g.qty),
                          "state": g.state.value, "entry_price": None if g.entry_price is None else str(g.entry_price),
                          "stop_price": None if g.stop_price is None else str(g.stop_price)})
    return [rows[k] for k in sorted(rows)]


async def _income_sum(gw: "Gateway", since: int) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for row in await gw.fetch_income(since=since):
        out[row.income_type] = out.get(row.income_type, Decimal(0)) + row.amount
    return out


async def audit_account(store: "Store", gw: "Gateway", account: str, *, since_ms: int | None = None,
                        since_label: str = "", with_pnl: bool = True) -> AccountAudit:
    """Read the account (every read must succeed) and compare it with the ledger. ``with_pnl=False`` skips the
    income history (request weight 30 each) for the re-checks reconcile does after repairing."""
    from albra.exchange.errors import ExchangeError
    from albra.exchange.resolve import read_snapshot
    from albra.ledger import daily_pnl
    from albra.runbook.connect import classify_failure

    out = AccountAudit(account)
    try:
        snap, server_now = await asyncio.gather(read_snapshot(gw), gw.server_time())
        day_start = kst_day_start_ms(server_now)
        today = await _income_sum(gw, day_start) if with_pnl else {}
        since_income = await _income_sum(gw, since_ms) if since_ms is not None else None
    except ExchangeError as e:
        u = classify_failure(account, e)
        out.reachable, out.reason = False, u.reason
        return out
    out.position_mode = snap.position_mode.value
    out.open_algo_ids = [o.client_id for o in snap.open_algo_orders]
    out.findings, out.notes, out.positions = compare(store, account, snap)
    b = snap.balance
    out.balance = {"wallet": str(b.wallet), "unrealized": str(b.unrealized), "equity": str(b.equity),
                   "available": str(b.available)}
    realized = today.get("REALIZED_PNL", Decimal(0))
    fees = today.get("COMMISSION", Decimal(0))
    funding = today.get("FUNDING_FEE", Decimal(0))
    unreal = sum((p.unrealized for p in snap.positions), Decimal(0))
    strategies = [r["strategy"] for r in store.query(
        "SELECT DISTINCT strategy FROM legs WHERE account=? ORDER BY strategy", (account,))]
    day = kst_date(server_now)
    if not with_pnl:
        return out
    out.pnl_today = {
        "kst_day": day, "exchange_time": fmt_kst(server_now), "realized": str(realized), "commission": str(fees),
        "funding": str(funding), "realized_net": str(realized + fees + funding), "unrealized": str(unreal),
        "ledger_realized_by_strategy": {s: str(daily_pnl.realized_on(store, account, s, day)) for s in strategies},
    }
    if since_ms is not None:
        snap_then = store.query_one("SELECT ts, equity FROM equity_snapshots WHERE account=? AND ts<=? ORDER BY ts"
                                    " DESC LIMIT 1", (account, since_ms))
        inc = since_income or {}
        net = sum((v for k, v in inc.items() if k in ("REALIZED_PNL", "COMMISSION", "FUNDING_FEE")), Decimal(0))
        out.loss_since = {
            "since": since_label or fmt_kst(since_ms),
            "equity_then": snap_then["equity"] if snap_then else None,
            "equity_then_at": fmt_kst(snap_then["ts"]) if snap_then else None,
            "equity_now": str(b.equity),
            "equity_change": str(b.equity - Decimal(snap_then["equity"])) if snap_then else None,
            "realized_net_since": str(net),
            "transfers_since": str(inc.get("TRANSFER", Decimal(0))),
        }
        if snap_then is None:
            out.notes.append("no equity snapshot before the start time: the change of equity is unknown; the "
                             "realised PnL since then comes from the exchange's income history")
    return out


async def audit_accounts(settings: Any, store: "Store", accounts: list[str], *, since_ms: int | None = None,
                         since_label: str = "") -> list[AccountAudit]:
    """Every account concurrently; an account that cannot be opened or read is ``unreachable``, not empty."""
    from albra.runbook.connect import Unreachable, account_gateway, close_quietly

    async def one(a: str) -> AccountAudit:
        gw = account_gateway(settings, a)
        if isinstance(gw, Unreachable):
            if gw.kind == "paper":  # nothing to compare against outside its runner: not a failure
                return AccountAudit(a, notes=[gw.reason])
            return AccountAudit(a, reachable=False, reason=gw.reason, config_error=gw.is_config)
        try:
            return await audit_account(store, gw, a, since_ms=since_ms, since_label=since_label)
        finally:
            await close_quietly(gw, store)

    return list(await asyncio.gather(*(one(a) for a in accounts)))


def exit_code(audits: list[AccountAudit]) -> int:
    """2 when an account is misconfigured (keys not set), else 3 when one could not be read, else 1 on any
    finding, else 0."""
    if any(a.config_error for a in audits):
        return 2
    if any(not a.reachable for a in audits):
        return 3
    return 1 if any(a.findings for a in audits) else 0


@dataclass(frozen=True)
class BotVerdict:
    """The audit for the Telegram bot's /audit: ``ok`` (everything agrees) and a phone-sized ``summary``."""

    ok: bool
    summary: str


#: findings listed per account in a bot reply (the rest counted): a phone screen, not a report
BOT_FINDINGS_SHOWN = 8


def verdict_of(audits: list[AccountAudit]) -> BotVerdict:
    """A short text per account: agrees, or each discrepancy (kind, symbol, detail), or why it was not read."""
    lines: list[str] = []
    for a in audits:
        if a.config_error:
            lines.append(f"{a.account}: CONFIG ERROR — {a.reason}")
        elif not a.reachable:
            lines.append(f"{a.account}: UNREACHABLE — {a.reason}")
        elif not a.findings:
            eq = a.balance.get("equity")
            lines.append(f"{a.account}: ok — ledger agrees with the exchange" + (f" (equity {eq})" if eq else "")
                         + ("; " + "; ".join(a.notes) if a.notes and not a.balance else ""))
        else:
            lines.append(f"{a.account}: {len(a.findings)} discrepancy(ies)")
            for f in a.findings[:BOT_FINDINGS_SHOWN]:
                lines.append(f"• {f.kind} {f.symbol}: {f.detail}")
            if len(a.findings) > BOT_FINDINGS_SHOWN:
                lines.append(f"• … {len(a.findings) - BOT_FINDINGS_SHOWN} more: run `albra audit --compare-exchange`")
    code = exit_code(audits)
    if code == 1:
        lines.append("repair: `albra reconcile` explains each, `albra reconcile --apply` repairs")
    return BotVerdict(code == 0, "\n".join(lines) or "no accounts configured")


async def bot_audit(settings: Any) -> BotVerdict:
    """``/audit`` in the Telegram bot: the same audit as ``albra audit --compare-exchange`` on every configured
    account, read-only, on its own store handle. A store that cannot be opened is a failed audit, said so."""
    from albra.store import Store

    try:
        store = Store.open(settings.db_path, create=False)
    except Exception as e:  # noqa: BLE001 - reported to the operator instead of a silent "ok"
        return BotVerdict(False, f"store unreadable: {type(e).__name__}: {e}")
    try:
        return verdict_of(await audit_accounts(settings, store, sorted(settings.accounts)))
    finally:
        store.close()
