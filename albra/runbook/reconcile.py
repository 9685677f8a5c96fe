"""``reconcile``: explain every difference between ledger and exchange and, with ``apply``, repair it.

This is the cure for the original's "POSITION_SYNC_ERROR every five minutes": its reconciler compared per-record
sizes with one net position, "repaired" by doing nothing, and so never converged. Here every repair is one of the
ledger's explicit operations, journaled, and the procedure ends with a fresh audit — so a second run finds nothing:

1. unresolved intents are looked up by client id and their outcome recorded (:func:`intents.resolve_unresolved`);
2. protective intents the ledger thinks open but the exchange no longer lists are looked up (fired → ``filled``,
   cancelled by hand → ``canceled``);
3. the trade history of every symbol that differs is applied (:func:`fills.apply_fill`, idempotent) — this is
   how a stop that fired or a late entry fill reaches its leg;
4. what still differs: legs the exchange no longer holds are closed from the trade history
   (:func:`positions.close_missing`; legs whose stop fired first); an exchange excess becomes an UNATTRIBUTED leg
   plus an incident (:func:`positions.adopt_unattributed`);
5. protection: a missing stop is re-placed through a write-ahead intent (:func:`protection.protect_leg`), a stop
   of the wrong size is replaced (:func:`protection.replace_stop`), orders of legs that are closed are cancelled;
6. orders nobody in albra placed are reported, and cancelled only with ``cancel_unknown``.

Nothing is guessed: when the exchange is smaller than the legs and neither a fired stop nor a single leg of
exactly the missing size explains it, the difference is reported for a person ("needs operator").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra.runbook.audit import AccountAudit, Finding, audit_account
from albra.timefmt import now_ms as _now_ms

if TYPE_CHECKING:
    from albra.exchange.types import Gateway
    from albra.store.db import Store


@dataclass
class Proposal:
    """One discrepancy, its likely cause and the repair proposed (and, when applied, what happened)."""

    kind: str
    symbol: str
    detail: str
    cause: str
    repair: str
    result: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AccountReconcile:
    account: str
    reachable: bool = True
    reason: str = ""
    config_error: bool = False  # API key variables not set: ``reason`` names them (exit 2)
    proposals: list[Proposal] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    remaining: list[dict[str, Any]] = field(default_factory=list)
    still_found: list[dict[str, Any]] = field(default_factory=list)
    applied: bool = False
    blocked: str = ""  # --apply refused: another process holds the account's write lease (who, since when)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["proposals"] = [p.as_dict() for p in self.proposals]
        return d


def _propose(f: Finding, store: "Store") -> Proposal:
    d = f.data
    if f.kind == "position":
        ledger, exch = Decimal(d["ledger_qty"]), Decimal(d["exchange_qty"])
        unresolved = int(d.get("unresolved_intents", 0))
        if ledger == 0 or (abs(exch) > abs(ledger) and (exch > 0) == (ledger > 0)):
            cause = ("a fill albra has not applied (unresolved entry intent)" if unresolved else
                     "opened by hand or by another bot (no albra leg holds it)")
            repair = ("resolve the intent and apply the trade history; adopt any rest as an UNATTRIBUTED leg + "
                      "incident")
        else:
            cause = ("closed on the exchange (by a stop, a liquidation or by hand): the exit fills never reached "
                     "the ledger")
            repair = "apply the trade history; close legs the exchange no longer has with their realised PnL"
        return Proposal(f.kind, f.symbol, f.detail, cause, repair)
    if f.kind == "missing_stop":
        stop = d.get("stop_price")
        repair = (f"re-place the stop at {stop} for {d['qty']} (write-ahead intent, next generation)" if stop else
                  "cannot re-place: the leg has no stop price — close the leg or set a stop by hand")
        return Proposal(f.kind, f.symbol, f.detail, "the stop fired, was cancelled by hand, expired, or was never "
                        "placed", repair)
    if f.kind == "stop_size":
        return Proposal(f.kind, f.symbol, f.detail, "a partial fill or partial exit changed the leg after its stop "
                        "was placed", "replace the stop with one sized to the leg")
    if f.kind == "orphan_order":
        return Proposal(f.kind, f.symbol, f.detail, "the leg closed but its protective order was left on the book",
                        "cancel it")
    if f.kind == "unknown_order":
        return Proposal(f.kind, f.symbol, f.detail, "placed by hand or by another bot",
                        "none automatically (cancel by hand, or reconcile --apply --cancel-unknown)")
    return Proposal(f.kind, f.symbol, f.detail, "a placement whose answer was lost (timeout, 5xx, crash)",
                    "look the client id up and record the outcome (never re-send)")


def _journal(store: "Store", account: str, symbol: str, message: str, level: str = "WARNING",
             data: dict | None = None) -> None:
    from albra.store import journal

    journal.append(store, "reconcile_repair", message, level=level, account=account, symbol=symbol,
                   data=data or {}, actor="reconcile")


async def _settle_stale_protection(store: "Store", gw: "Gateway", account: str, open_ids: set[str],
                                   out: AccountReconcile) -> None:
    """Protective intents 'open' in the ledger but not on the exchange: learn what became of them."""
    from albra.ledger import intents as I

    rows = store.query("SELECT client_id FROM order_intents WHERE account=? AND is_algo=1 AND state='open'",
                       (account,))
    if not rows:
        return
    for r in rows:
        if r["client_id"] in open_ids:
            continue
        it = I.get_intent(store, r["client_id"])
        assert it is not None
        found = await gw.fetch_order(it.symbol, it.client_id, True)
        now = _now_ms()
        after = (I.mark_not_found(store, it.client_id, now_ms=now, note="not on the exchange at reconcile")
                 if found is None else I.mark_outcome(store, found, now_ms=now))
        msg = f"protective order {it.client_id} ({it.purpose}) is no longer on the exchange: {after.state}"
        out.actions.append(msg)
        _journal(store, account, it.symbol, msg, data={"client_id": it.client_id, "state": after.state})


async def _apply_trades(store: "Store", gw: "Gateway", account: str, symbols: set[str],
                        out: AccountReconcile) -> dict[str, list]:
    from dataclasses import replace

    from albra.ledger.fills import apply_fill

    trades: dict[str, list] = {}
    for sym in sorted(symbols):
        # a fired stop's child order is tied to the stop only through the algo's actualOrderId (never by guessing
        # from side and price): read each protective order this account may still have live on the symbol
        child_of: dict[str, str] = {}
        for row in store.query("SELECT client_id FROM order_intents WHERE account = ? AND symbol = ? AND purpose IN"
                               " ('stop_loss', 'take_profit') AND state IN ('open', 'sent', 'unknown')",
                               (account, sym)):
            algo = await gw.fetch_order(sym, row["client_id"], True)
            if algo is not None and algo.actual_order_id:
                child_of[str(algo.actual_order_id)] = row["client_id"]
        trades[sym] = await gw.fetch_trades(sym)
        n = 0
        for t in trades[sym]:
            if str(t.order_id) in child_of:
                t = replace(t, extra={**(t.extra or {}), "algo_client_id": child_of[str(t.order_id)]})
            if apply_fill(store, account, t, now_ms=_now_ms()).applied:
                n += 1
        if n:
            msg = f"{n} trade(s) of {sym} from the exchange history applied to the ledger"
            out.actions.append(msg)
            _journal(store, account, sym, msg, level="INFO")
    return trades


def _stop_fired(store: "Store", leg_id: str) -> bool:
    from albra.ledger import intents as I

    return any(i.state == "filled" for i in I.intents_of_leg(store, leg_id, "stop_loss"))


async def _fix_positions(store: "Store", gw: "Gateway", account: str, trades: dict[str, list],
                         out: AccountReconcile) -> None:
    from albra.ledger import intents as I
    from albra.ledger import legs as L
    from albra.ledger.errors import LedgerError
    from albra.ledger.positions import adopt_unattributed, close_missing, compare_positions

    positions = await gw.fetch_positions()
    for d in compare_positions(L.live_legs(store, account), positions,
                               unresolved_by_symbol=I.unresolved_by_symbol(I.unresolved(store, account))):
        if d.symbol not in trades:
            trades[d.symbol] = await gw.fetch_trades(d.symbol)
        legs = [g for g in L.live_legs(store, account, d.symbol) if g.position_side is d.position_side]
        shortfall = d.ledger_qty != 0 and (d.exchange_qty == 0 or (d.exchange_qty > 0) != (d.ledger_qty > 0)
                                           or abs(d.exchange_qty) < abs(d.ledger_qty))
        if shortfall:
            if d.exchange_qty == 0 or (d.exchange_qty > 0) != (d.ledger_qty > 0):
                victims = legs
            else:
                missing = abs(d.ledger_qty) - abs(d.exchange_qty)
                fired = [g for g in legs if _stop_fired(store, g.leg_id)]
                exact = [g for g in legs if g.qty == missing]
                victims = fired if sum((g.qty for g in fired), Decimal(0)) == missing else (
                    exact[:1] if len(exact) == 1 else [])
                if not victims:
                    out.remaining.append({"symbol": d.symbol, "issue": f"{d.position_side.value}: exchange "
                                          f"{d.exchange_qty} < ledger {d.ledger_qty} and no fired stop or single "
                                          "leg explains which strategy's share went — needs operator"})
                    continue
            for g in victims:
                try:
                    close_missing(store, account, g, trades[d.symbol], now_ms=_now_ms())
                    out.actions.append(f"leg {g.leg_id} ({g.strategy} {g.direction} {g.qty} {g.symbol}) closed "
                                       "from the trade history")
                except LedgerError as e:
                    out.remaining.append({"symbol": d.symbol, "issue": f"leg {g.leg_id}: {e}"})
            continue
        try:
            leg = adopt_unattributed(store, account, d, now_ms=_now_ms())
            out.actions.append(f"adopted {leg.direction} {leg.qty} {d.symbol} ({d.position_side.value}) as "
                               f"UNATTRIBUTED leg {leg.leg_id} (incident opened)")
        except LedgerError as e:
            out.remaining.append({"symbol": d.symbol, "issue": str(e)})
    # a flip (closed above) may leave an excess in the other direction: adopt it on a second look
    positions = await gw.fetch_positions()
    for d in compare_positions(L.live_legs(store, account), positions):
        if d.ledger_qty == 0:
            leg = adopt_unattributed(store, account, d, now_ms=_now_ms())
            out.actions.append(f"adopted {leg.direction} {leg.qty} {d.symbol} as UNATTRIBUTED leg {leg.leg_id}")


async def _fix_orders(store: "Store", gw: "Gateway", audit: AccountAudit, account: str, cancel_unknown: bool,
                      out: AccountReconcile) -> None:
    from albra.exchange.errors import ExchangeError
    from albra.ledger import intents as I
    from albra.ledger import legs as L
    from albra.ledger.errors import LedgerError
    from albra.ledger.protection import cancel_intent, protect_leg, replace_stop

    for f in audit.findings:
        try:
            if f.kind == "missing_stop":
                leg = L.get_leg(store, f.data["leg_id"])
                if leg is None or leg.state is not L.LegState.OPEN or leg.qty <= 0:
                    continue
                if leg.stop_price is None:
                    out.remaining.append({"symbol": f.symbol, "issue": f"leg {leg.leg_id} has no stop price"})
                    continue
                done = await protect_leg(store, gw, leg.leg_id, await gw.filters(leg.symbol), now_ms=_now_ms())
                for it in done:
                    out.actions.append(f"{it.purpose} {it.client_id} for leg {leg.leg_id}: {it.state}")
                    _journal(store, account, f.symbol, f"re-placed {it.purpose} {it.client_id} for leg "
                             f"{leg.leg_id}: {it.state}", level="WARNING" if it.state == "open" else "CRITICAL")
            elif f.kind == "stop_size":
                leg = L.require_leg(store, f.data["leg_id"])
                assert leg.stop_price is not None
                res = await replace_stop(store, gw, leg.leg_id, leg.stop_price, await gw.filters(leg.symbol),
                                         now_ms=_now_ms())
                out.actions.append(f"stop of leg {leg.leg_id} re-sized: {res.status} ({res.protocol})")
            elif f.kind == "orphan_order":
                it = I.get_intent(store, f.data["client_id"])
                assert it is not None
                after = await cancel_intent(store, gw, it, now_ms=_now_ms())
                out.actions.append(f"cancelled {it.client_id} of closed leg {it.leg_id}: {after.state}")
                _journal(store, account, f.symbol, f"cancelled {it.client_id} of closed leg {it.leg_id}")
            elif f.kind == "unknown_order" and cancel_unknown:
                await gw.cancel_order(f.symbol, f.data["client_id"], bool(f.data["is_algo"]))
                out.actions.append(f"cancelled unknown order {f.data['client_id']} on {f.symbol}")
                _journal(store, account, f.symbol, f"cancelled unknown order {f.data['client_id']}")
        except (LedgerError, ExchangeError) as e:
            out.remaining.append({"symbol": f.symbol, "issue": f"{f.kind}: {type(e).__name__}: {e}"})


async def reconcile_account(store: "Store", gw: "Gateway", account: str, *, apply: bool,
                            cancel_unknown: bool = False) -> tuple[AccountReconcile, AccountAudit]:
    """Proposals for every finding; with ``apply`` the repairs, then a fresh audit (returned second)."""
    from albra.ledger import intents as I

    out = AccountReconcile(account, applied=apply)
    before = await audit_account(store, gw, account)
    if not before.reachable:
        out.reachable, out.reason = False, before.reason
        return out, before
    out.proposals = [_propose(f, store) for f in before.findings]
    if not apply or not before.findings:
        return out, before
    from albra.store import leases

    try:  # one writer per account: repairs only when no live runner (or other writer) holds the account
        lease = leases.acquire(store, account, "reconcile")
    except leases.LeaseHeld as e:
        out.blocked = (f"not applied: {e}; the runner repairs what its own reconciliation finds — stop it "
                       f"(`systemctl stop albra@{account}`) to apply by hand")
        out.remaining = [{"symbol": p.symbol, "issue": f"{p.kind}: {p.detail}"} for p in out.proposals]
        return out, before
    try:
        return await _apply(store, gw, account, before, cancel_unknown, out)
    finally:
        leases.release(store, lease)


async def _apply(store: "Store", gw: "Gateway", account: str, before: AccountAudit, cancel_unknown: bool,
                 out: AccountReconcile) -> tuple[AccountReconcile, AccountAudit]:
    """The repairs of :func:`reconcile_account`, under the account's write lease."""
    from albra.ledger import intents as I

    for r in await I.resolve_unresolved(store, gw, account, now_ms=_now_ms()):
        out.actions.append(f"intent {r.client_id}: {r.before} → {r.after}"
                           + (f", {r.fills_applied} fill(s)" if r.fills_applied else ""))
    await _settle_stale_protection(store, gw, account, set(before.open_algo_ids), out)
    symbols = {f.symbol for f in before.findings if f.kind in ("position", "missing_stop")}
    trades = await _apply_trades(store, gw, account, symbols, out)
    await _fix_positions(store, gw, account, trades, out)
    mid = await audit_account(store, gw, account, with_pnl=False)  # protection is judged on the repaired legs
    await _fix_orders(store, gw, mid, account, cancel_unknown, out)
    after = await audit_account(store, gw, account, with_pnl=False)
    out.still_found = [f.as_dict() for f in after.findings if f.kind != "unknown_order" or cancel_unknown]
    return out, after


async def reconcile_accounts(settings: Any, store: "Store", accounts: list[str], *, apply: bool,
                             cancel_unknown: bool = False) -> list[tuple[AccountReconcile, AccountAudit]]:
    """Accounts one after another (each repair writes the shared store; the exchange reads are the slow part)."""
    from albra.runbook.connect import Unreachable, account_gateway, close_quietly

    results = []
    for a in accounts:
        gw = account_gateway(settings, a)
        if isinstance(gw, Unreachable):
            rec = AccountReconcile(a, reachable=gw.kind == "paper", reason=gw.reason, config_error=gw.is_config)
            results.append((rec, AccountAudit(a, reachable=rec.reachable, reason=gw.reason,
                                              config_error=gw.is_config)))
            continue
        try:
            from albra.exchange.errors import ExchangeError

            try:
                results.append(await reconcile_account(store, gw, a, apply=apply, cancel_unknown=cancel_unknown))
            except ExchangeError as e:
                from albra.runbook.connect import classify_failure

                reason = classify_failure(a, e).reason + " (repairs stopped here; run reconcile again)"
                results.append((AccountReconcile(a, reachable=False, reason=reason, applied=apply),
                                AccountAudit(a, reachable=False, reason=reason)))
        finally:
            await close_quietly(gw, store)
    return results


def exit_code(results: list[tuple[AccountReconcile, AccountAudit]]) -> int:
    """2 misconfigured (keys not set); else 3 unreachable; else without --apply 1 when anything was found; with
    --apply 1 when anything remains."""
    if any(r.config_error for r, _ in results):
        return 2
    if any(not r.reachable for r, _ in results):
        return 3
    if any((r.remaining or r.still_found) if r.applied else r.proposals for r, _ in results):
        return 1
    return 0
