"""``reconcile``: explain every difference between ledger and exchange and, with ``apply``, repair it.

This is the cure for the original's "POSITION_SYNC_ERROR every five minutes": its reconciler compared per-record
sizes with one net position, "repaired" by doing nothing, and so never converged. Plan, then apply:

* **Plan** (always): the audit's findings, each with its likely cause and the repair proposed. Nothing is changed.
* **Apply** (``--apply``, only while no runner holds the account's write lease): one round of the same reconciler
  the runner runs every 300 s (:mod:`albra.engine.reconcile`: unresolved intents looked up by id; protective
  orders gone from the book settled by their own ids — fired, cancelled, expired; legs the exchange no longer holds
  closed from the trade history; an excess adopted as an UNATTRIBUTED leg with an incident and an alert; missing,
  duplicate or mis-sized stops repaired through the order manager; open orders of closed legs swept), then orders
  nobody in albra placed are cancelled only with ``cancel_unknown``, and a fresh audit says what remains.

Nothing is guessed: when the exchange is smaller than the legs and neither a fired stop nor a single leg of
exactly the missing size explains it, the difference is reported for a person ("needs operator").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from albra.runbook.audit import AccountAudit, Finding, audit_account

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
    if f.kind == "missing_stop" and d.get("strategy") == "UNATTRIBUTED":
        return Proposal(f.kind, f.symbol, f.detail, "a position albra did not open (a manual trade, or one adopted "
                        "from the exchange) has no stop", "albra will not guess a stop for it: close it "
                        "(`albra emergency-shutdown --account …`) or place a stop on the exchange by hand")
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


async def reconcile_account(store: "Store", gw: "Gateway", account: str, *, apply: bool,
                            cancel_unknown: bool = False) -> tuple[AccountReconcile, AccountAudit]:
    """Proposals for every finding; with ``apply`` the repairs, then a fresh audit (returned second)."""
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
    """The repairs of :func:`reconcile_account`, under the account's write lease: one round of the runner's own
    reconciler (:class:`albra.engine.reconcile.Reconciler` — the one reconciler, so the CLI and the runner match
    fills, close, adopt, protect and sweep the same way), then the operator's explicit extra: orders nobody in
    albra placed are cancelled only with ``cancel_unknown``."""
    from albra.engine.reconcile import standalone_reconciler

    rec = await standalone_reconciler(store, gw, account, actor="reconcile")
    rep = await rec.round()
    if rep is None:
        out.remaining.append({"symbol": "", "issue": "reconciliation round skipped: an exchange read failed "
                                                     "(nothing changed; run reconcile again)"})
    else:
        out.actions += rep.actions()
        out.remaining += [{"symbol": p.split(" ", 1)[0], "issue": p} for p in rep.problems]
    if cancel_unknown:
        from albra.exchange.errors import ExchangeError

        for f in before.findings:
            if f.kind != "unknown_order":
                continue
            try:
                await rec.executor.om.cancel_foreign(f.symbol, f.data["client_id"], bool(f.data["is_algo"]))
                out.actions.append(f"cancelled unknown order {f.data['client_id']} on {f.symbol}")
            except ExchangeError as e:
                out.remaining.append({"symbol": f.symbol, "issue": f"unknown_order: {type(e).__name__}: {e}"})
    after = await audit_account(store, gw, account, with_pnl=False)
    out.still_found = [f.as_dict() for f in after.findings if f.kind != "unknown_order" or cancel_unknown]
    return out, after


def alerts_after(store: "Store", rowid: int) -> list[str]:
    """Event ids of alerts queued after outbox row ``rowid`` (what this command raised)."""
    return [r["event_id"] for r in store.query("SELECT event_id FROM alerts WHERE rowid > ? AND status='queued'"
                                               " ORDER BY rowid", (rowid,))]


def outbox_mark(store: "Store") -> int:
    r = store.query_one("SELECT COALESCE(MAX(rowid), 0) AS n FROM alerts")
    return int(r["n"]) if r else 0


async def deliver_raised(settings: Any, store: "Store", mark: int, timeout_s: float = 10.0) -> str:
    """Deliver now the alerts this command queued (an adopted position is CRITICAL): a command's alert must not wait
    for a runner or the bot to drain the outbox. '' when it raised none."""
    raised = alerts_after(store, mark)
    if not raised:
        return ""
    from albra.runbook.alert_now import deliver_now

    summary, _ = await deliver_now(settings, store, raised[0], timeout_s)
    return f"{len(raised)} alert(s) raised: {summary}"


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
