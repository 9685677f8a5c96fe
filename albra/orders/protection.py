"""Placing, replacing and re-sizing a leg's protective orders (invariant 3), through the order manager.

The orders themselves (one stop and an optional take-profit per leg, for the leg's quantity, reduce-only, trigger
rounded away from the market) are described in :mod:`albra.ledger.protection`, which builds them.

Replacing a stop: why there are two procedures
----------------------------------------------
Binance cannot amend an algo order, so a replacement is "place new" + "cancel old" in some order. Let q be the
leg's qty and Q the exchange position on the leg's (symbol, position side). Requirements: never two live stops
that could over-close, never none. With cancel/place alone both cannot hold in general:

* place-then-cancel: for one round trip two stops of q are live. If the price crosses both, up to 2q is closed.
  Reduce-only (one-way) and the side bound (hedge) cap what a stop can close at Q, so when **Q = q** (the leg is
  alone on its side) the second stop finds nothing to reduce and expires: no over-close, and coverage never drops.
  When other legs share the side (Q > q) the second stop would close q of *another strategy's* share.
* cancel-then-place: never over-closes, but for one round trip the leg has no stop.

Neither order is safe in every case, so :func:`replace_stop` picks per case:

1. **Alone on its side** — no other live leg on (account, symbol, position side) in the ledger AND the exchange's
   position on that side equals the leg's qty (read right before, so an untracked manual position counts as
   "shared"): **place new, then cancel old**. Over-close is impossible (shown above) and there is always a stop.
   If the old stop turns out to have fired in the window, the new one is cancelled at once (the leg is closing).
2. **Shared side**: **cancel old, then place new**. Over-close of another leg is impossible; the residual risk is a
   gap of one cancel+place round trip (tens of ms against Binance) with this leg unprotected. If the new stop is
   refused (e.g. -2021 "would immediately trigger": the price crossed it meanwhile) the result is ``unprotected``,
   journaled CRITICAL, and the engine must close the leg with a reduce-only market exit. A new stop whose
   placement was lost (dropped connection, 5xx, junk answer) is first looked up by client id — it may be on the
   book; only if the exchange positively does not know it is it placed once more, with the next generation; only
   if that fails too is the leg ``unprotected``. If the process dies inside
   the gap, the leg has no live stop intent; :func:`protection_gaps` reports it on start-up and the engine
   re-protects it before trading (:func:`protect_leg`).

Interrupted replacements. The leg is pointed at a new order (``set_protection``) only after the exchange accepted
it. A crash (or a lost answer) between the placement and that update leaves the new generation open on the
exchange while the leg still names the old one — cancelled already (shared side) or still live (alone on its side).
Once the new intent resolves to open (start-up resolution, the periodic sync, reconciliation),
:func:`link_protection` points the leg at the newest open generation (id and trigger) and the engine cancels any
older generation still live (:func:`protection_links` says which) and re-sizes a newest order whose qty is not the
leg's. Everything that follows protective orders follows all of a leg's live intents (:func:`live_protective`),
never only the id the leg names, so a fill of any generation is attributed to its leg.

The same two cases govern re-sizing after a partial exit (:func:`resize_protection`, stop and take-profit): the
engine shrinks the protection to the qty the leg will keep BEFORE sending the reduce order, so on a shared side the
leg's orders never exceed its share even between the reduce's fill and the resize.

Before either, a new stop the mark price has already crossed is refused without touching anything (``crossed``):
the old stop stays and the engine exits the leg. Every order goes through a write-ahead intent; each replacement
uses the next generation of the ``stop_loss`` client id, so ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from albra.crashpoints import crashpoint
from albra.exchange.types import OrderRequest
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.ledger.errors import LedgerError
from albra.ledger.protection import (STOP, TAKE_PROFIT, candle_of, generation_of, live_protective, stop_request,
                                     stop_trigger, take_profit_request, take_profit_trigger)
from albra.model import MarketFilters
from albra.orders.manager import OrderManager
from albra.store import journal


async def protect_leg(om: OrderManager, leg_id: str, filters: MarketFilters) -> list[I.Intent]:
    """Place whatever protective orders the leg lacks (stop always; take-profit if it has one), each through a
    write-ahead intent with the next generation, and record the live client ids on the leg."""
    store, now_ms = om.store, om.now_ms()
    leg = L.require_leg(store, leg_id)
    if leg.state not in (L.LegState.OPEN, L.LegState.CLOSING):
        raise LedgerError(f"leg {leg_id} is {leg.state}: only open legs are protected")
    wanted: list[tuple[str, Decimal]] = []
    if not live_protective(store, leg_id, STOP):
        if leg.stop_price is None:
            raise LedgerError(f"leg {leg_id} has no stop price: every open leg needs a stop on the exchange")
        wanted.append((STOP, leg.stop_price))
    if leg.take_profit is not None and not live_protective(store, leg_id, TAKE_PROFIT):
        wanted.append((TAKE_PROFIT, leg.take_profit))
    done: list[I.Intent] = []
    for purpose, price in wanted:
        intent = await place_protective(om, leg, purpose, price, filters)
        if intent.state != "open":
            journal.append(store, "protection_failed", f"{purpose} for leg {leg_id} ended {intent.state}: "
                           f"{intent.error or ''}", level="CRITICAL", account=leg.account, strategy=leg.strategy,
                           symbol=leg.symbol, data={"client_id": intent.client_id}, ts=now_ms)
        done.append(intent)
    return done


async def place_protective(om: OrderManager, leg: L.Leg, purpose: str, price: Decimal,
                           filters: MarketFilters) -> I.Intent:
    """Place one stop (``purpose`` STOP) or take-profit for ``leg`` as given — which may be the in-memory leg of an
    entry whose answer said filled before its trade rows reached the ledger (the stop goes out on the answer, so
    the naked window is one round trip) — with the next generation's client id through a write-ahead intent. When
    the exchange holds it open, the leg is pointed at it. Returns the recorded intent (``open`` or not)."""
    store = om.store
    gen = I.next_generation(store, leg.leg_id, purpose)
    req = (stop_request if purpose == STOP else take_profit_request)(leg, price, filters, gen)
    intent = I.record_intent(store, req, account=leg.account, strategy=leg.strategy, purpose=purpose,
                             candle_ts=candle_of(leg), now_ms=om.now_ms(), leg_id=leg.leg_id)
    intent = await om.place(intent)
    if intent.state == "open":
        if purpose == STOP:
            L.set_protection(store, leg.leg_id, now_ms=om.now_ms(), stop_price=req.trigger_price,
                             sl_client_id=req.client_id)
        else:
            L.set_protection(store, leg.leg_id, now_ms=om.now_ms(), take_profit=req.trigger_price,
                             tp_client_id=req.client_id)
    return intent


@dataclass(frozen=True, slots=True)
class StopReplacement:
    """Outcome of :func:`replace_stop`.

    ``status``: ``replaced``; ``unchanged`` (same price after rounding); ``crossed`` (mark already beyond the new
    stop, nothing touched — exit the leg); ``new_not_placed`` (alone-on-side case: the new stop failed, the old
    one still protects the leg); ``old_fired`` (the old stop fired during the swap; the new one was cancelled or
    never sent — the leg is closing through the fill); ``unprotected`` (shared-side case: old cancelled, new refused
    or lost — CRITICAL, exit the leg now)."""

    status: str
    protocol: str
    old_client_id: str | None
    new_client_id: str | None
    stop_price: Decimal
    detail: str = ""


def _exchange_side_qty(positions, leg: L.Leg) -> Decimal:
    total = Decimal(0)
    for p in positions:
        if p.symbol == leg.symbol and p.position_side is leg.position_side:
            total += p.qty
    return total


async def replace_stop(om: OrderManager, leg_id: str, new_stop: Decimal, filters: MarketFilters, *,
                       mark_price: Decimal | None = None) -> StopReplacement:
    """Move a leg's stop to ``new_stop`` following the protocol in the module docstring."""
    return await _replace_protective(om, leg_id, STOP, new_stop, filters, mark_price=mark_price)


async def resize_protection(om: OrderManager, leg_id: str, filters: MarketFilters, *,
                            qty: Decimal | None = None) -> list[StopReplacement]:
    """After a partial exit: re-size the leg's stop (and take-profit) to its remaining qty at the same prices,
    with the same two-case protocol as :func:`replace_stop` — alone on its side: place the smaller order, then
    cancel the old one; shared side: cancel, then place — so there is never a moment with two orders that together
    could close more than the side holds for this leg (another leg's share). Returns the stop's result first, then
    the take-profit's (the take-profit only once the stop is in place: a leg whose stop could not be re-sized is
    the caller's to exit).

    ``qty`` sizes the orders for what the leg is about to hold (default: what it holds): the engine shrinks the
    protection BEFORE sending a partial exit, so on a shared side the stops never sum to more than the position,
    not even between the exit's fill and the resize; if the exit then fills less, it re-sizes to the leg's qty."""
    leg = L.require_leg(om.store, leg_id)
    if leg.stop_price is None:
        raise LedgerError(f"leg {leg_id} has no stop price: every open leg needs a stop on the exchange")
    out = [await _replace_protective(om, leg_id, STOP, leg.stop_price, filters, qty=qty)]
    if out[0].status in ("replaced", "unchanged") and leg.take_profit is not None:
        out.append(await _replace_protective(om, leg_id, TAKE_PROFIT, leg.take_profit, filters, qty=qty))
    return out


async def _replace_protective(om: OrderManager, leg_id: str, purpose: str, new_price: Decimal,
                              filters: MarketFilters, *, mark_price: Decimal | None = None,
                              qty: Decimal | None = None) -> StopReplacement:
    """Replace the leg's live ``purpose`` order (stop or take-profit) by one at ``new_price`` for the leg's current
    qty, choosing place-then-cancel or cancel-then-place as the module docstring explains."""

    store, now_ms = om.store, om.now_ms()
    leg = L.require_leg(store, leg_id)
    what = "stop" if purpose == STOP else "take-profit"
    kind = "stop" if purpose == STOP else "take_profit"
    if leg.state not in (L.LegState.OPEN, L.LegState.CLOSING) or leg.qty <= 0:
        raise LedgerError(f"leg {leg_id} is {leg.state} with qty {leg.qty}: no {what} to replace")
    held = leg.qty  # what the side holds for this leg now (``qty``: what the new order is sized for)
    if qty is not None:
        if not 0 < qty <= leg.qty:
            raise LedgerError(f"leg {leg_id}: protection for {qty} but the leg holds {leg.qty}")
        leg = replace(leg, qty=qty)
    trigger = (stop_trigger if purpose == STOP else take_profit_trigger)(leg, new_price, filters)
    live = live_protective(store, leg_id, purpose)
    old = max(live, key=lambda i: (generation_of(i), i.created_ms)) if live else None
    if old is not None and old.trigger_price == trigger and old.qty == leg.qty:
        return StopReplacement("unchanged", "none", old.client_id, old.client_id, trigger)
    if purpose == STOP and mark_price is not None and (mark_price - trigger) * leg.direction.sign <= 0:
        journal.append(store, "stop_crossed", f"new stop {trigger} for leg {leg_id} is already crossed by mark "
                       f"{mark_price}; old stop kept", level="WARNING", account=leg.account, strategy=leg.strategy,
                       symbol=leg.symbol, data={"stop": str(trigger), "mark": str(mark_price)}, ts=now_ms)
        return StopReplacement("crossed", "none", old.client_id if old else None, None, trigger,
                               "mark price already beyond the new stop: exit the leg")
    others = [g for g in L.live_legs(store, leg.account, leg.symbol)
              if g.leg_id != leg_id and g.position_side is leg.position_side]
    positions = await om.gw.fetch_positions([leg.symbol])
    alone = not others and abs(_exchange_side_qty(positions, leg)) == held
    gen = I.next_generation(store, leg_id, purpose)
    req = (stop_request if purpose == STOP else take_profit_request)(leg, new_price, filters, gen)

    def record(r: OrderRequest = req) -> I.Intent:
        return I.record_intent(store, r, account=leg.account, strategy=leg.strategy, purpose=purpose,
                               candle_ts=candle_of(leg), now_ms=now_ms, leg_id=leg_id)

    def protect(cid: str) -> None:
        if purpose == STOP:
            L.set_protection(store, leg_id, now_ms=now_ms, stop_price=trigger, sl_client_id=cid)
        else:
            L.set_protection(store, leg_id, now_ms=now_ms, take_profit=trigger, tp_client_id=cid)

    def log(res: StopReplacement, level: str = "INFO") -> StopReplacement:
        journal.append(store, f"{kind}_replaced" if res.status == "replaced" else f"{kind}_{res.status}",
                       f"leg {leg_id} {what} → {trigger} for {leg.qty} ({res.protocol}): {res.status}"
                       + (f" — {res.detail}" if res.detail else ""), level=level, account=leg.account,
                       strategy=leg.strategy, symbol=leg.symbol,
                       data={"old": res.old_client_id, "new": res.new_client_id, kind: str(trigger),
                             "qty": str(leg.qty)}, ts=now_ms)
        return res

    if alone or old is None:
        protocol = "place_then_cancel"
        new = await om.place(record())
        if new.state != "open":
            return log(StopReplacement("new_not_placed", protocol, old.client_id if old else None, new.client_id,
                                       trigger, f"new {what} ended {new.state}: {new.error or ''}; old {what} kept"),
                       "ERROR" if old or purpose != STOP else "CRITICAL")
        if old is not None:
            crashpoint("mid_stop_replace")  # new placed, old not yet cancelled
            if await om.cancel(old):  # it fired in the window: its fills are applied, the leg is closing
                await om.cancel(new)
                return log(StopReplacement("old_fired", protocol, old.client_id, new.client_id, trigger,
                                           f"old {what} fired during the swap; new {what} cancelled"), "WARNING")
        protect(new.client_id)
        return log(StopReplacement("replaced", protocol, old.client_id if old else None, new.client_id, trigger))

    protocol = "cancel_then_place"
    if await om.cancel(old):
        return log(StopReplacement("old_fired", protocol, old.client_id, None, trigger,
                                   f"old {what} fired before it could be cancelled; new {what} not sent"), "WARNING")
    crashpoint("mid_stop_replace")  # old cancelled, new not yet placed
    new = await om.place(record())
    if new.state == "not_found":
        # the placement was lost (dropped, 5xx, junk) and the lookup by id says it never reached the book: not a
        # refusal, so one more try with the next generation (a fresh id: ids are never reused) before giving up
        lost = new
        retry = (stop_request if purpose == STOP else take_profit_request)(leg, new_price, filters,
                                                                           I.next_generation(store, leg_id, purpose))
        journal.append(store, f"{kind}_replace_retried", f"leg {leg_id}: new {what} {lost.client_id} was lost "
                       f"({lost.error or 'not on the exchange'}); placing {retry.client_id} once more",
                       level="WARNING", account=leg.account, strategy=leg.strategy, symbol=leg.symbol,
                       data={"lost": lost.client_id, "new": retry.client_id}, ts=now_ms)
        new = await om.place(record(retry))
    if new.state != "open":
        return log(StopReplacement("unprotected" if purpose == STOP else "new_not_placed", protocol, old.client_id,
                                   new.client_id, trigger,
                                   f"old {what} cancelled, new {what} ended {new.state}: {new.error or ''}; "
                                   + ("exit the leg reduce-only now" if purpose == STOP else
                                      "the stop still protects the leg")),
                   "CRITICAL" if purpose == STOP else "ERROR")
    protect(new.client_id)
    return log(StopReplacement("replaced", protocol, old.client_id, new.client_id, trigger))
