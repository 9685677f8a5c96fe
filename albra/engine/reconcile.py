"""The runner's reconciliation round (start-up and every 300 s): ledger against exchange, repaired only
explicitly (invariants 2, 3 and 4).

One round, in this order:

1. Read the exchange's open conditional orders and then its positions. A failed read skips the whole round and
   journals why: unknown is not empty, nothing is changed from a read that did not complete.
2. Resolve every order intent without a known outcome by its client id (never re-sent).
3. Protective orders the ledger believes live but the exchange no longer lists are looked up by client id: a
   fired stop/take-profit closes (or reduces) its leg through its fills; a cancelled, expired or vanished one is
   recorded as final (``canceled`` with a note when the exchange no longer knows it — an order once open never
   becomes "not found"), journaled, alerted, and the leg is re-protected at once
   (:meth:`~albra.engine.executor.Executor.reprotect`; refused → closed reduce-only at market).
4. :func:`~albra.ledger.positions.compare_positions` per (symbol, position side). A leg the exchange no longer
   holds is closed with :func:`~albra.ledger.positions.close_missing` (exit and PnL from the trade history; with
   no trade it is left open and alerted — a missing read must not look like a close); its protective orders are
   cancelled.
5. Compare again; an exchange excess becomes an explicit ``UNATTRIBUTED`` leg
   (:func:`~albra.ledger.positions.adopt_unattributed`: journal + incident) and an alert. Never a silent overwrite.
   Symbols with intents still unresolved are only reported: their intents may explain the difference.
6. An interrupted replacement is settled first (:meth:`~albra.engine.executor.Executor.settle_protection`: the leg
   is pointed at its newest open generation, older live ones are cancelled, a mis-sized one re-sized); then
   :func:`~albra.ledger.protection.protection_gaps`: a leg without a live stop gets one
   (:func:`~albra.orders.protection.protect_leg`; refused → the leg is closed reduce-only), older duplicate stops
   are cancelled. An unattributed leg has no stop price: its adoption alert and incident say so, and the operator
   protects or closes it (it is not re-reported every round).

A second round right after a first finds nothing to do (tested): that is what "converges" means here — the
replaced system's reconciler re-reported the same difference every five minutes forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from albra.crashpoints import crashpoint
from albra.exchange import errors as X
from albra.exchange.resolve import resolve_unknown
from albra.orders.protection import protect_leg
from albra.orders.resolution import recheck_given_up_entries, resolve_unresolved
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.ledger.errors import LedgerError
from albra.ledger.positions import Difference, adopt_unattributed, close_missing, compare_positions
from albra.ledger.protection import STOP, TAKE_PROFIT, live_protective, protection_gaps
from albra.model import MarketFilters, OrderStatus
from albra.store import journal
from albra.store.db import Store

log = logging.getLogger("albra.engine.reconcile")


@dataclass
class RoundReport:
    """What one round found and did. ``clean`` means the ledger already equalled the exchange and every open leg
    had exactly one live stop."""

    differences: list[Difference] = field(default_factory=list)
    protective_updated: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    extra_cancelled: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # legs reopened by an entry that executed after it was given up

    @property
    def clean(self) -> bool:
        return not (self.differences or self.protective_updated or self.closed or self.adopted or self.protected
                    or self.extra_cancelled or self.problems or self.recovered)

    def actions(self) -> list[str]:
        """What the round changed, one line each (the CLI prints them)."""
        return ([f"leg {g} reopened: its entry, given up as never placed, executed after all" for g in self.recovered]
                + [f"protective order {c} settled from the exchange (fired, cancelled, expired or gone)"
                 for c in self.protective_updated]
                + [f"leg {g} closed from the trade history (the exchange no longer holds it)" for g in self.closed]
                + [f"adopted as UNATTRIBUTED leg {g} (incident opened, alerted)" for g in self.adopted]
                + [f"protective order {c} placed" for c in self.protected]
                + [f"cancelled {c} (duplicate or orphaned protective order)" for c in self.extra_cancelled])

    def as_dict(self) -> dict[str, Any]:
        return {"differences": [d.as_dict() for d in self.differences], "protective_updated": self.protective_updated,
                "closed": self.closed, "adopted": self.adopted, "protected": self.protected,
                "extra_cancelled": self.extra_cancelled, "problems": self.problems, "recovered": self.recovered}


class Reconciler:
    """Reconciliation rounds for one account. ``executor`` supplies fill application and the alert path."""

    def __init__(self, store: Store, gateway: Any, account: str, executor: Any, filters: dict[str, MarketFilters],
                 now_ms: Callable[[], int], actor: str = "") -> None:
        self.store = store
        self.gw = gateway
        self.account = account
        self.executor = executor
        self.filters = filters
        self.now_ms = now_ms
        self.actor = actor
        self._repairs = 0

    def _journal(self, kind: str, message: str, level: str = "INFO", **data: Any) -> None:
        journal.append(self.store, kind, message, level=level, account=self.account, data=data or None,
                       ts=self.now_ms(), actor=self.actor)

    def _repaired(self) -> None:
        """Called after each repair; the round's first one is the ``mid_reconcile`` crash point."""
        if not self._repairs:
            crashpoint("mid_reconcile")
        self._repairs += 1

    async def round(self) -> RoundReport | None:
        """One round; None when a read failed and the round was skipped."""
        self._repairs = 0
        try:
            open_algos = await self.gw.fetch_open_orders(None, algo=True)
            await resolve_unresolved(self.store, self.gw, self.account, now_ms=self.now_ms())
            rep = RoundReport()
            # entries given up as never placed that executed after all (-1007): their legs reopen with the fills
            # here, before positions are compared (else the position would be adopted as unattributed), and the
            # protection step below places their stops in this same round
            rep.recovered = await recheck_given_up_entries(self.store, self.gw, self.account, now_ms=self.now_ms())
            if rep.recovered:
                self.executor.reload_legs()
                self._repaired()
            await self._check_protective({o.client_id for o in open_algos}, rep)
            positions = await self.gw.fetch_positions()
            await self._repair_positions(positions, rep)
            await self._repair_protection(rep)
            await self._sweep_orphans(open_algos, rep)
        except X.ExchangeError as e:
            self._journal("reconcile_skipped", f"reconciliation skipped: exchange read failed ({e}); nothing "
                          "changed (unknown is not empty)", "WARNING", error=type(e).__name__)
            return None
        if not rep.clean:
            self._journal("reconcile_round", f"reconciliation: {len(rep.differences)} difference(s), closed "
                          f"{len(rep.closed)}, adopted {len(rep.adopted)}, stops placed {len(rep.protected)}, "
                          f"problems {len(rep.problems)}", "ERROR" if rep.problems or rep.adopted else "WARNING",
                          **rep.as_dict())
            self.executor._alert("reconcile_difference", f"reconcile:{self.account}:{self.now_ms()}",
                                 "; ".join([f"{d.symbol} {d.position_side.value}: ledger {d.ledger_qty}, exchange "
                                            f"{d.exchange_qty} ({d.likely_cause})" for d in rep.differences]
                                           + rep.problems) or "protective orders repaired")
        return rep

    # ------------------------------------------------------------------ step 3
    async def _check_protective(self, open_ids: set[str], rep: RoundReport) -> None:
        for leg in L.live_legs(self.store, self.account):
            for purpose in (STOP, TAKE_PROFIT):
                for it in live_protective(self.store, leg.leg_id, purpose):
                    if it.client_id in open_ids:
                        continue
                    # spaced lookups: an order placed a moment ago is not visible at once (never one lookup)
                    res = await resolve_unknown(self.gw, it.symbol, it.client_id, True,
                                                spacing_s=self.executor.lookup_spacing_s)
                    if res is None:
                        I.mark_gone(self.store, it.client_id, now_ms=self.now_ms(),
                                    note="protective order not on the exchange at reconciliation")
                        rep.protective_updated.append(it.client_id)
                        self._repaired()
                        await self._reprotect(leg.leg_id, it.client_id, purpose,
                                              "the exchange does not know it any more", rep)
                        continue
                    if res.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                        continue  # listed after our read of the open orders: live
                    if res.status is OrderStatus.TRIGGERED:
                        continue  # TRIGGERING / TRIGGERED: fired, child not done — not final (a later round)
                    rep.protective_updated.append(it.client_id)
                    self._repaired()
                    if res.status is not OrderStatus.FILLED:
                        I.mark_outcome(self.store, res, now_ms=self.now_ms())
                        await self._reprotect(leg.leg_id, it.client_id, purpose,
                                              f"the exchange says {res.status.value}", rep)
                        continue
                    if not await self.executor.om.record_fired(it, res):
                        await self._reprotect(leg.leg_id, it.client_id, purpose,
                                              "it fired but its child order executed nothing", rep)
                        continue
                    after = L.require_leg(self.store, leg.leg_id)
                    if after.state is L.LegState.CLOSED:
                        await self.executor._cancel_protective(after)
                        self.executor._closed(after, purpose)
                    break

    async def _reprotect(self, leg_id: str, cid: str, purpose: str, why: str, rep: RoundReport) -> None:
        """A live protective order that left the exchange without firing: re-protect now (the executor's path,
        shared with the periodic sync), so a later step of this round sees the leg protected."""
        if live_protective(self.store, leg_id, purpose):  # a superseded generation: a newer one protects the leg
            await self.executor._protective_lost(leg_id, cid, purpose, why)
            return
        ok = await self.executor.reprotect(leg_id, cid, purpose, why)
        after = L.require_leg(self.store, leg_id)
        placed = [i.client_id for i in live_protective(self.store, leg_id, purpose) if i.client_id != cid]
        if ok:
            rep.protected.extend(placed)
        elif after.state is L.LegState.CLOSED:
            rep.closed.append(leg_id)
            rep.problems.append(f"{leg_id}: {purpose} {cid} vanished and could not be re-placed; leg closed")

    # ------------------------------------------------------------------ steps 4 and 5
    def _compare(self, positions: list) -> list[Difference]:
        pending = I.unresolved(self.store, self.account)
        return compare_positions(L.live_legs(self.store, self.account), positions,
                                 unresolved_by_symbol=I.unresolved_by_symbol(pending))

    async def _repair_positions(self, positions: list, rep: RoundReport) -> None:
        diffs = self._compare(positions)
        rep.differences = diffs
        if not diffs:
            return
        trades_cache: dict[str, list] = {}
        for d in diffs:
            if d.unresolved_intents:
                rep.problems.append(f"{d.symbol} {d.position_side.value}: {d.unresolved_intents} unresolved intent(s);"
                                    " difference left for the next round")
                continue
            ledger, exch = d.ledger_qty, d.exchange_qty
            flipped = ledger != 0 and exch != 0 and (ledger > 0) != (exch > 0)
            short = abs(ledger) - (Decimal(0) if flipped else abs(exch))
            if ledger == 0 or short <= 0:
                continue  # an excess: adopted after the closes below
            legs = sorted((g for g in L.live_legs(self.store, self.account, d.symbol)
                           if g.position_side is d.position_side and g.qty > 0),
                          key=lambda g: (g.opened_ms, g.leg_id), reverse=True)
            for leg in legs:
                if leg.qty > short:
                    break
                if d.symbol not in trades_cache:
                    since = min(g.opened_ms for g in legs)
                    trades_cache[d.symbol] = await self.gw.fetch_trades(d.symbol, since=max(0, since - 60_000))
                try:
                    closed = close_missing(self.store, self.account, leg, trades_cache[d.symbol],
                                           now_ms=self.now_ms())
                except LedgerError as e:
                    rep.problems.append(f"{leg.leg_id}: {e}")
                    continue
                rep.closed.append(leg.leg_id)
                self._repaired()
                short -= leg.qty
                await self.executor._cancel_protective(closed)
                self.executor._closed(closed, "missing_on_exchange")
            if short > 0:
                rep.problems.append(f"{d.symbol} {d.position_side.value}: the exchange holds {short} less than the "
                                    "legs and no whole leg explains it (a partial close by hand?); left for the "
                                    "operator (`albra reconcile`)")
        for d in self._compare(positions):
            if d.unresolved_intents:
                continue
            try:
                leg = adopt_unattributed(self.store, self.account, d, now_ms=self.now_ms())
            except LedgerError:
                continue  # a shortfall already reported above
            rep.adopted.append(leg.leg_id)
            self._repaired()
            self.executor._alert("unattributed_leg", f"unattributed_leg:{leg.leg_id}",
                                 f"{d.symbol} {d.position_side.value}: exchange {d.exchange_qty}, legs "
                                 f"{d.ledger_qty}; adopted {leg.direction.value} {leg.qty} as {leg.leg_id} "
                                 f"({d.likely_cause}). It has no stop: protect or close it by hand.",
                                 symbol=d.symbol, side=leg.direction.value, size=leg.qty)

    # ------------------------------------------------------------------ step 6
    async def _sweep_orphans(self, open_algos: list, rep: RoundReport) -> None:
        """Every open conditional order of ours whose leg is no longer live is cancelled and journaled. Why: a
        closed leg's stop left on the book (a crash right after its exit was sent) protects nothing and, on a side
        shared with other legs, can only sell another strategy's share when it fires."""
        for o in open_algos:
            it = I.get_intent(self.store, o.client_id)
            if it is None or it.account != self.account or it.purpose not in I.PROTECTIVE_PURPOSES:
                continue  # not this account's protective order: audit lists unknown orders, it does not touch them
            leg = L.get_leg(self.store, it.leg_id) if it.leg_id else None
            if leg is not None and leg.state in (L.LegState.OPEN, L.LegState.CLOSING, L.LegState.PENDING):
                continue
            await self.executor.om.cancel_orphan(it)
            rep.extra_cancelled.append(o.client_id)
            self._repaired()
            self._journal("orphan_cancelled", f"{it.purpose} {o.client_id} was still live for leg {it.leg_id} "
                          f"({leg.state.value if leg else 'unknown'}); cancelled", "ERROR",
                          client_id=o.client_id, leg_id=it.leg_id, symbol=o.symbol)

    async def _repair_protection(self, rep: RoundReport) -> None:
        for leg in L.live_legs(self.store, self.account):
            if leg.state not in (L.LegState.OPEN, L.LegState.CLOSING) or leg.qty <= 0:
                continue
            if await self.executor.settle_protection(leg.leg_id):  # an interrupted replacement: link, cancel older
                after = L.require_leg(self.store, leg.leg_id)
                rep.protective_updated.append(after.sl_client_id or leg.leg_id)
                self._repaired()
        for gap in protection_gaps(self.store, self.account):
            leg = L.require_leg(self.store, gap.leg_id)
            if gap.extra:
                for cid in gap.extra:
                    it = I.get_intent(self.store, cid)
                    if it is not None:
                        await self.executor.om.cancel(it)
                        rep.extra_cancelled.append(cid)
                        self._repaired()
                continue
            if leg.strategy == L.UNATTRIBUTED:
                continue  # adopted with an alert and an incident saying it has no stop: the operator decides
            if leg.stop_price is None:
                rep.problems.append(f"{leg.leg_id} ({leg.strategy}) has no stop on the exchange and no stop price")
                self.executor._alert("unprotected_leg", f"unprotected_leg:{leg.leg_id}",
                                     f"{leg.leg_id}: {leg.qty} {leg.symbol} without a stop; protect or close it",
                                     strategy=leg.strategy, symbol=leg.symbol)
                continue
            f = self.filters.get(leg.symbol)
            if f is None:
                rep.problems.append(f"{leg.leg_id}: no market filters for {leg.symbol}")
                continue
            try:
                placed = await protect_leg(self.executor.om, leg.leg_id, f)
            except LedgerError as e:
                placed = []
                rep.problems.append(f"{leg.leg_id}: {e}")
            stop_ok = any(i.purpose == STOP and i.state == "open" for i in placed)
            rep.protected.extend(i.client_id for i in placed if i.state == "open")
            self._repaired()
            if not stop_ok:
                self.executor._alert("unprotected_leg", f"unprotected_leg:{leg.leg_id}:reconcile",
                                     f"stop for {leg.leg_id} could not be re-placed; closing the leg at market",
                                     strategy=leg.strategy, symbol=leg.symbol)
                await self.executor._emergency_close(L.require_leg(self.store, leg.leg_id),
                                                     "stop could not be re-placed at reconciliation")
                rep.problems.append(f"{leg.leg_id}: stop refused; leg closed at market")
            self.executor._refresh(leg.leg_id)


async def standalone_reconciler(store: Store, gateway: Any, account: str, *, actor: str) -> Reconciler:
    """A reconciler for ``account`` outside its runner (``albra reconcile --apply``, under the write lease): an
    executor without strategies (it opens nothing; it settles fills, re-protects and closes through the order
    manager exactly as the runner's does), the exchange's position mode and filters."""
    from albra.config import RiskLimits
    from albra.engine.executor import Executor
    from albra.engine.risk_limits import risk_limits
    from albra.timefmt import now_ms

    mode = await gateway.fetch_position_mode()
    filters = await gateway.load_markets()
    limits = risk_limits(RiskLimits())
    executor = Executor(store, gateway, account, mode, filters, [], lambda _s: limits, now_ms)
    return Reconciler(store, gateway, account, executor, filters, now_ms, actor=actor)
