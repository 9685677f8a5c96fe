"""Protective orders per leg (invariant 3), the pure half: the orders a leg needs and what its live ones are.

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

This module never talks to the exchange: placing, replacing and re-sizing these orders is
:mod:`albra.orders.protection` (the order manager), which also explains the replacement protocol and how an
interrupted replacement is settled through :func:`link_protection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from albra.exchange.client_ids import make_client_id, parse_client_id
from albra.exchange.types import OrderRequest
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.ledger.errors import LedgerError
from albra.model import Direction, MarketFilters, OrderType, PositionSide
from albra.store import journal
from albra.store.db import Store

STOP = "stop_loss"
TAKE_PROFIT = "take_profit"


def candle_of(leg: L.Leg) -> int:
    """The candle that names a leg's orders (its entry candle; its open time for an adopted leg)."""
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
    cid = make_client_id(leg.account, leg.strategy, leg.symbol, candle_of(leg), STOP, generation)
    return _protective(leg, filters, OrderType.STOP_MARKET, stop_trigger(leg, stop_price, filters), cid)


def take_profit_request(leg: L.Leg, tp_price: Decimal, filters: MarketFilters, generation: int) -> OrderRequest:
    cid = make_client_id(leg.account, leg.strategy, leg.symbol, candle_of(leg), TAKE_PROFIT, generation)
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
