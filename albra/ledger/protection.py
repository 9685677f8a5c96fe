"""Protective orders per leg (invariant 3) and the stop replacement protocol.

Shape of a protective order
---------------------------
Each leg gets its own stop-loss (and take-profit where the strategy has one) as a conditional order on
Binance's algo-order endpoint: STOP_MARKET / TAKE_PROFIT_MARKET **for the leg's quantity**, never
``closePosition`` — a closePosition stop would close every strategy's share of the position. One-way mode:
``positionSide=BOTH`` and ``reduceOnly``; hedge mode: ``positionSide=LONG/SHORT`` and no reduceOnly flag (Binance
rejects it there with -1106; an order against the side's direction can only reduce that side anyway).

Rounding: a trigger price is rounded to the tick **away from the market**, so that it never fires before the
price the strategy chose: a long's stop rounds down and its take-profit up; a short's stop rounds up and its
take-profit down. The cost is at most one tick of extra adverse move on a stop (and one tick more to reach a
take-profit), which we accept over a stop that fires early on noise.

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

from dataclasses import dataclass, field, replace
from decimal import Decimal

from albra.crashpoints import crashpoint
from albra.exchange.client_ids import make_client_id, parse_client_id
from albra.exchange.types import Gateway, OrderRequest
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.ledger.errors import LedgerError
from albra.model import Direction, MarketFilters, OrderStatus, OrderType, PositionSide
from albra.store import journal
from albra.store.db import Store

STOP = "stop_loss"
TAKE_PROFIT = "take_profit"
_FIRED = (OrderStatus.TRIGGERED, OrderStatus.FILLED)


def _candle(leg: L.Leg) -> int:
    return leg.entry_ts if leg.entry_ts is not None else leg.opened_ms


def stop_trigger(leg: L.Leg, price: Decimal, filters: MarketFilters) -> Decimal:
    """Stop price rounded to the tick away from the market (long: down, short: up)."""
    return filters.price_toward(price, up=leg.direction is Direction.SHORT)


def take_profit_trigger(leg: L.Leg, price: Decimal, filters: MarketFilters) -> Decimal:
    """Take-profit price rounded to the tick away from the market (long: up, short: down)."""
    return filters.price_toward(price, up=leg.direction is Direction.LONG)


def _protective(leg: L.Leg, filters: MarketFilters, order_type: OrderType, trigger: Decimal,
                client_id: str) -> OrderRequest:
    if leg.qty <= 0:
        raise LedgerError(f"leg {leg.leg_id} holds no quantity: nothing to protect")
    if filters.floor_qty(leg.qty) != leg.qty:
        raise LedgerError(f"leg {leg.leg_id} qty {leg.qty} is not a multiple of the step {filters.step_size}")
    if leg.qty < filters.min_qty:
        raise LedgerError(f"leg {leg.leg_id} qty {leg.qty} is below the minimum order qty {filters.min_qty}: "
                          "it cannot carry its own stop; close it")
    if trigger <= 0:
        raise LedgerError(f"leg {leg.leg_id}: trigger price must be positive, got {trigger}")
    hedge = leg.position_side is not PositionSide.BOTH
    return OrderRequest(client_id=client_id, symbol=leg.symbol, side=leg.direction.exit_side, order_type=order_type,
                        qty=leg.qty, position_side=leg.position_side, trigger_price=trigger,
                        reduce_only=not hedge, close_position=False)


def stop_request(leg: L.Leg, stop_price: Decimal, filters: MarketFilters, generation: int) -> OrderRequest:
    cid = make_client_id(leg.account, leg.strategy, leg.symbol, _candle(leg), STOP, generation)
    return _protective(leg, filters, OrderType.STOP_MARKET, stop_trigger(leg, stop_price, filters), cid)


def take_profit_request(leg: L.Leg, tp_price: Decimal, filters: MarketFilters, generation: int) -> OrderRequest:
    cid = make_client_id(leg.account, leg.strategy, leg.symbol, _candle(leg), TAKE_PROFIT, generation)
    return _protective(leg, filters, OrderType.TAKE_PROFIT_MARKET, take_profit_trigger(leg, tp_price, filters), cid)


def plan_protection(leg: L.Leg, filters: MarketFilters, *, stop_generation: int = 0,
                    tp_generation: int = 0) -> list[OrderRequest]:
    """The stop-loss (and take-profit, if the leg has one) orders for the leg's current qty. A leg without a
    stop price is an error: every open leg must be protected."""
    if leg.stop_price is None:
        raise LedgerError(f"leg {leg.leg_id} has no stop price: every open leg needs a stop on the exchange")
    if leg.take_profit is not None:
        if (leg.take_profit - leg.stop_price) * leg.direction.sign <= 0:
            raise LedgerError(f"leg {leg.leg_id}: take-profit {leg.take_profit} is not beyond stop {leg.stop_price} "
                              f"for a {leg.direction} leg")
    out = [stop_request(leg, leg.stop_price, filters, stop_generation)]
    if leg.take_profit is not None:
        out.append(take_profit_request(leg, leg.take_profit, filters, tp_generation))
    return out


async def send_intent(store: Store, gateway: Gateway, intent: I.Intent, *, now_ms: int) -> I.Intent:
    """Send a recorded intent and record the outcome. A definite refusal (Fatal) → ``rejected``; anything else
    that is not an answer → ``unknown`` and lookups by client id spaced over a bounded time (a just-accepted order
    is not visible at once; never a re-send)."""
    from albra.exchange.errors import Fatal
    from albra.exchange.resolve import resolve_unknown

    crashpoint("after_intent_commit")
    I.mark_sent(store, intent.client_id, now_ms=now_ms)
    try:
        res = await gateway.place_order(intent.request())
        crashpoint("after_order_sent")
    except Fatal as e:
        return I.mark_rejected(store, intent.client_id, f"{type(e).__name__}: {e}", now_ms=now_ms)
    except Exception as e:  # noqa: BLE001 - outcome unknown: look it up, never re-send
        I.mark_unknown(store, intent.client_id, f"{type(e).__name__}: {e}", now_ms=now_ms)
        where = dict(account=intent.account, strategy=intent.strategy, symbol=intent.symbol, ts=now_ms)
        journal.append(store, "order_outcome_unknown", f"{intent.purpose} {intent.client_id}: outcome unknown "
                       f"({type(e).__name__}: {e}); looking it up by client id", level="WARNING",
                       data={"client_id": intent.client_id, "error": type(e).__name__}, **where)
        found = await resolve_unknown(gateway, intent.symbol, intent.client_id, intent.is_algo)
        if found is None:
            out = I.mark_not_found(store, intent.client_id, now_ms=now_ms, note="placement failed; id unknown")
        else:
            out = I.mark_outcome(store, found, now_ms=now_ms)
        journal.append(store, "order_resolved", f"{intent.purpose} {intent.client_id}: "
                       + ("the exchange does not know it (never placed)" if found is None else
                          f"found on the exchange, {found.status.value} → {out.state}"),
                       level="WARNING" if found is None else "INFO",
                       data={"client_id": intent.client_id, "state": out.state}, **where)
        return out
    return I.mark_outcome(store, res, now_ms=now_ms)


async def cancel_intent(store: Store, gateway: Gateway, intent: I.Intent, *, now_ms: int) -> I.Intent:
    """Cancel an intent's order and record its final state (already final in the ledger: left as is). When the
    cancel finds nothing, the order is looked up to learn whether it fired or was already gone."""
    from albra.exchange.resolve import resolve_unknown

    if intent.state in I.TERMINAL:
        return intent
    res = await gateway.cancel_order(intent.symbol, intent.client_id, intent.is_algo)
    if res is None:
        res = await resolve_unknown(gateway, intent.symbol, intent.client_id, intent.is_algo)
        if res is None:
            return I.mark_gone(store, intent.client_id, now_ms=now_ms, note="gone when cancelled")
    return I.mark_outcome(store, res, now_ms=now_ms)


def live_protective(store: Store, leg_id: str, purpose: str = STOP) -> list[I.Intent]:
    """Protective intents of a leg that may be on the book (open, or not yet resolved), oldest first."""
    return [i for i in I.intents_of_leg(store, leg_id, purpose) if i.state in ("open", *I.UNRESOLVED)]


def generation_of(intent: I.Intent) -> int:
    """The generation encoded in a protective intent's client id (-1 for an id albra did not make): the order in
    which a leg's replacements were made, independent of clock ties and of base-36 string order."""
    p = parse_client_id(intent.client_id)
    return p.generation if p is not None else -1


def _newest_open(intents: list[I.Intent]) -> I.Intent | None:
    live = [i for i in intents if i.state == "open"]
    return max(live, key=lambda i: (generation_of(i), i.created_ms)) if live else None


@dataclass(frozen=True, slots=True)
class ProtectionLinks:
    """What :func:`protection_links` finds for one leg and one purpose (stop or take-profit).

    ``newest``: the newest-generation protective intent the exchange holds open (None: none open). ``relink``: the
    leg does not name it (``legs.sl_client_id``/``stop_price`` or ``tp_client_id``/``take_profit`` still name an
    older generation — a replacement was interrupted between its exchange call and its ledger update).
    ``superseded``: older generations still live (open or unresolved) beside it; they must be cancelled, on a shared
    side two live stops can over-close another leg's share. ``missized``: the newest one's qty differs from the
    leg's (a re-size interrupted on either side of the reduce order)."""

    leg_id: str
    purpose: str
    newest: I.Intent | None
    relink: bool
    superseded: tuple[I.Intent, ...]
    missized: bool

    @property
    def settled(self) -> bool:
        return not (self.relink or self.superseded or self.missized)


def protection_links(leg: L.Leg, intents: list[I.Intent], purpose: str = STOP) -> ProtectionLinks:
    """Compare a leg's record of its ``purpose`` order with its live intents (``intents``: the leg's intents, any
    purposes, as :func:`albra.ledger.intents.intents_of_leg` returns them). Pure: no store, no exchange."""
    mine = [i for i in intents if i.purpose == purpose and i.state in ("open", *I.UNRESOLVED)]
    newest = _newest_open(mine)
    if newest is None:
        return ProtectionLinks(leg.leg_id, purpose, None, False, (), False)
    linked, price = ((leg.sl_client_id, leg.stop_price) if purpose == STOP else (leg.tp_client_id, leg.take_profit))
    g = generation_of(newest)
    older = tuple(i for i in mine if i.client_id != newest.client_id and generation_of(i) < g)
    return ProtectionLinks(leg.leg_id, purpose, newest,
                           linked != newest.client_id or price != newest.trigger_price, older,
                           newest.qty is not None and newest.qty != leg.qty)


def link_protection(store: Store, leg_id: str, *, now_ms: int, actor: str = "") -> list[ProtectionLinks]:
    """Point the leg at its newest open protective orders (client id and trigger) where it names an older one.

    Why: every replacement (stop move, re-size, re-protection) sends the next generation and only then records it
    on the leg. A crash between the two — or a lost answer resolved later by client id — leaves the new order open
    on the exchange while the leg still names the old one; whatever follows the leg's ids would then treat the new
    order's fill as unattributed. Start-up resolution, the periodic sync and reconciliation call this after an
    intent resolves to open. It only writes the ledger (journaled ``protection_linked``); cancelling the older
    generations still live is the caller's (it needs the exchange). Returns what it found per purpose that was not
    settled."""
    leg = L.get_leg(store, leg_id)
    if leg is None or leg.state not in (L.LegState.OPEN, L.LegState.CLOSING) or leg.qty <= 0:
        return []
    intents = I.intents_of_leg(store, leg_id)
    out: list[ProtectionLinks] = []
    for purpose in (STOP, TAKE_PROFIT):
        pl = protection_links(leg, intents, purpose)
        if pl.settled:
            continue
        out.append(pl)
        if not pl.relink or pl.newest is None:
            continue
        new = pl.newest
        if purpose == STOP:
            previous = leg.sl_client_id
            L.set_protection(store, leg_id, now_ms=now_ms, stop_price=new.trigger_price, sl_client_id=new.client_id)
        else:
            previous = leg.tp_client_id
            L.set_protection(store, leg_id, now_ms=now_ms, take_profit=new.trigger_price, tp_client_id=new.client_id)
        journal.append(store, "protection_linked",
                       f"leg {leg_id} {purpose} linked to its newest live order {new.client_id} @ {new.trigger_price}"
                       f" (it named {previous}; a replacement was interrupted before the ledger recorded it)",
                       level="WARNING", account=leg.account, strategy=leg.strategy, symbol=leg.symbol,
                       data={"leg_id": leg_id, "purpose": purpose, "client_id": new.client_id, "previous": previous,
                             "trigger": str(new.trigger_price),
                             "superseded": [i.client_id for i in pl.superseded]}, ts=now_ms, actor=actor)
    return out


@dataclass(frozen=True, slots=True)
class ProtectionGap:
    """A live leg whose stops are not exactly one: ``missing`` (none live) or ``extra`` (older ones still live)."""

    leg_id: str
    symbol: str
    missing: bool
    extra: list[str] = field(default_factory=list)


def protection_gaps(store: Store, account: str) -> list[ProtectionGap]:
    """Legs holding qty with no live stop, or with more than one (the newest is kept, older ones listed)."""
    out: list[ProtectionGap] = []
    for leg in L.live_legs(store, account):
        if leg.qty <= 0:
            continue
        live = sorted(live_protective(store, leg.leg_id, STOP), key=lambda i: (generation_of(i), i.created_ms))
        if not live:
            out.append(ProtectionGap(leg.leg_id, leg.symbol, True))
        elif len(live) > 1:
            out.append(ProtectionGap(leg.leg_id, leg.symbol, False, [i.client_id for i in live[:-1]]))
    return out


async def protect_leg(store: Store, gateway: Gateway, leg_id: str, filters: MarketFilters, *,
                      now_ms: int) -> list[I.Intent]:
    """Place whatever protective orders the leg lacks (stop always; take-profit if it has one), each through a
    write-ahead intent with the next generation, and record the live client ids on the leg."""
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
        gen = I.next_generation(store, leg_id, purpose)
        req = (stop_request if purpose == STOP else take_profit_request)(leg, price, filters, gen)
        intent = I.record_intent(store, req, account=leg.account, strategy=leg.strategy, purpose=purpose,
                                 candle_ts=_candle(leg), now_ms=now_ms, leg_id=leg_id)
        intent = await send_intent(store, gateway, intent, now_ms=now_ms)
        if intent.state == "open":
            if purpose == STOP:
                L.set_protection(store, leg_id, now_ms=now_ms, stop_price=req.trigger_price,
                                 sl_client_id=req.client_id)
            else:
                L.set_protection(store, leg_id, now_ms=now_ms, take_profit=req.trigger_price,
                                 tp_client_id=req.client_id)
        else:
            journal.append(store, "protection_failed", f"{purpose} for leg {leg_id} ended {intent.state}: "
                           f"{intent.error or ''}", level="CRITICAL", account=leg.account, strategy=leg.strategy,
                           symbol=leg.symbol, data={"client_id": intent.client_id}, ts=now_ms)
        done.append(intent)
    return done


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


async def replace_stop(store: Store, gateway: Gateway, leg_id: str, new_stop: Decimal, filters: MarketFilters, *,
                       now_ms: int, mark_price: Decimal | None = None) -> StopReplacement:
    """Move a leg's stop to ``new_stop`` following the protocol in the module docstring."""
    return await _replace_protective(store, gateway, leg_id, STOP, new_stop, filters, now_ms=now_ms,
                                     mark_price=mark_price)


async def resize_protection(store: Store, gateway: Gateway, leg_id: str, filters: MarketFilters, *,
                            now_ms: int, qty: Decimal | None = None) -> list[StopReplacement]:
    """After a partial exit: re-size the leg's stop (and take-profit) to its remaining qty at the same prices,
    with the same two-case protocol as :func:`replace_stop` — alone on its side: place the smaller order, then
    cancel the old one; shared side: cancel, then place — so there is never a moment with two orders that together
    could close more than the side holds for this leg (another leg's share). Returns the stop's result first, then
    the take-profit's (the take-profit only once the stop is in place: a leg whose stop could not be re-sized is
    the caller's to exit).

    ``qty`` sizes the orders for what the leg is about to hold (default: what it holds): the engine shrinks the
    protection BEFORE sending a partial exit, so on a shared side the stops never sum to more than the position,
    not even between the exit's fill and the resize; if the exit then fills less, it re-sizes to the leg's qty."""
    leg = L.require_leg(store, leg_id)
    if leg.stop_price is None:
        raise LedgerError(f"leg {leg_id} has no stop price: every open leg needs a stop on the exchange")
    out = [await _replace_protective(store, gateway, leg_id, STOP, leg.stop_price, filters, now_ms=now_ms, qty=qty)]
    if out[0].status in ("replaced", "unchanged") and leg.take_profit is not None:
        out.append(await _replace_protective(store, gateway, leg_id, TAKE_PROFIT, leg.take_profit, filters,
                                             now_ms=now_ms, qty=qty))
    return out


async def _replace_protective(store: Store, gateway: Gateway, leg_id: str, purpose: str, new_price: Decimal,
                              filters: MarketFilters, *, now_ms: int, mark_price: Decimal | None = None,
                              qty: Decimal | None = None) -> StopReplacement:
    """Replace the leg's live ``purpose`` order (stop or take-profit) by one at ``new_price`` for the leg's current
    qty, choosing place-then-cancel or cancel-then-place as the module docstring explains."""

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
    positions = await gateway.fetch_positions([leg.symbol])
    alone = not others and abs(_exchange_side_qty(positions, leg)) == held
    gen = I.next_generation(store, leg_id, purpose)
    req = (stop_request if purpose == STOP else take_profit_request)(leg, new_price, filters, gen)

    def record(r: OrderRequest = req) -> I.Intent:
        return I.record_intent(store, r, account=leg.account, strategy=leg.strategy, purpose=purpose,
                               candle_ts=_candle(leg), now_ms=now_ms, leg_id=leg_id)

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
        new = await send_intent(store, gateway, record(), now_ms=now_ms)
        if new.state != "open":
            return log(StopReplacement("new_not_placed", protocol, old.client_id if old else None, new.client_id,
                                       trigger, f"new {what} ended {new.state}: {new.error or ''}; old {what} kept"),
                       "ERROR" if old or purpose != STOP else "CRITICAL")
        if old is not None:
            crashpoint("mid_stop_replace")  # new placed, old not yet cancelled
            old_after = await cancel_intent(store, gateway, old, now_ms=now_ms)
            if old_after.state == "filled":
                await cancel_intent(store, gateway, new, now_ms=now_ms)
                return log(StopReplacement("old_fired", protocol, old.client_id, new.client_id, trigger,
                                           f"old {what} fired during the swap; new {what} cancelled"), "WARNING")
        protect(new.client_id)
        return log(StopReplacement("replaced", protocol, old.client_id if old else None, new.client_id, trigger))

    protocol = "cancel_then_place"
    old_after = await cancel_intent(store, gateway, old, now_ms=now_ms)
    if old_after.state == "filled":
        return log(StopReplacement("old_fired", protocol, old.client_id, None, trigger,
                                   f"old {what} fired before it could be cancelled; new {what} not sent"), "WARNING")
    crashpoint("mid_stop_replace")  # old cancelled, new not yet placed
    new = await send_intent(store, gateway, record(), now_ms=now_ms)
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
        new = await send_intent(store, gateway, record(retry), now_ms=now_ms)
    if new.state != "open":
        return log(StopReplacement("unprotected" if purpose == STOP else "new_not_placed", protocol, old.client_id,
                                   new.client_id, trigger,
                                   f"old {what} cancelled, new {what} ended {new.state}: {new.error or ''}; "
                                   + ("exit the leg reduce-only now" if purpose == STOP else
                                      "the stop still protects the leg")),
                   "CRITICAL" if purpose == STOP else "ERROR")
    protect(new.client_id)
    return log(StopReplacement("replaced", protocol, old.client_id, new.client_id, trigger))
