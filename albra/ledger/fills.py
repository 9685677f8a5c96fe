"""Fills drive legs: every execution the exchange reports changes exactly one leg, in the same transaction as
the fill row is written, so the ledger can never hold a fill without its effect or an effect without its fill.

:func:`apply_fill` is idempotent on (account, symbol, trade id): the engine can feed it the same trade history
again after a restart. How a fill finds its leg, in order:

1. the fill's client id is an intent's client id;
2. ``fill.extra["algo_client_id"]`` / ``["parent_client_id"]`` names an intent (a gateway that knows which
   conditional order a child market order came from should say so there: the child's order id is never an
   intent's recorded id, so this tag is the child's only link);
3. the fill's exchange order id is an intent's recorded exchange order id (Binance's userTrades rows carry the
   order id but not the client id);
4. the ``orders`` table maps the exchange order id to a client id;
5. a fired stop/take-profit whose child was not tagged (a restart lost the link): the one live protective order of
   a live leg on that (symbol, position side, side) whose trigger price is exactly the fill's price. Never "the
   only stop on that side" at any price — a manual sell on a leg's side is not that leg's stop-out.
A fill no rule attributes (a manual order, another bot) is still recorded, with no leg, and journaled; the
position sums then show the difference and reconciliation adopts it explicitly. Nothing is guessed.

Effects: a fill on the leg's entry side adds to ``qty`` and ``qty_initial`` and moves the average entry price (a
pending leg becomes open); a fill on the exit side reduces ``qty``, adds ``(price − entry) × qty × sign`` to
``realized_pnl`` and updates the volume-weighted ``exit_price``; at zero the leg is closed with the intent's
purpose as the close reason. Fees (positive = paid) accumulate in ``fees``. An exit larger than the leg closes
the leg and journals the excess as an error (the excess is not this leg's: reconciliation will show it).

Funding: :func:`allocate_funding` spreads FUNDING_FEE income rows over the legs that held the position side.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Sequence

from albra.exchange.types import IncomeRow
from albra.exchange.fees import fee_asset, fee_in_quote
from albra.ledger import daily_pnl
from albra.ledger import legs as L
from albra.ledger.intents import PROTECTIVE_PURPOSES, Intent, by_exchange_order_id, fetch_intent, mark_filled_late
from albra.model import D, Fill, PositionSide
from albra.store import journal
from albra.store.db import Store

_Q = Decimal("0.00000001")


#: :attr:`FillResult.note` of a fill that reopened a leg whose entry had been given up: protect the leg now
LATE_ENTRY = "late_entry"


@dataclass(frozen=True, slots=True)
class FillResult:
    """What :func:`apply_fill` did. ``applied`` is False for a fill already in the ledger (nothing changed)."""

    applied: bool
    leg_id: str | None
    client_id: str | None
    realized: Decimal = Decimal(0)
    leg_state: str | None = None
    note: str = ""


def _s(v: Decimal) -> str:
    return format(v, "f")


def _attribute(conn: sqlite3.Connection, account: str, fill: Fill) -> Intent | None:
    def own(it: Intent | None) -> Intent | None:
        return it if it is not None and it.account == account and it.symbol == fill.symbol else None

    if fill.client_id:
        it = own(fetch_intent(conn, fill.client_id))
        if it:
            return it
    for key in ("algo_client_id", "parent_client_id"):
        cid = (fill.extra or {}).get(key)
        if cid:
            it = own(fetch_intent(conn, str(cid)))
            if it:
                return it
    if fill.order_id:
        it = by_exchange_order_id(conn, account, fill.symbol, str(fill.order_id))
        if it is not None:
            return own(it)
    if fill.order_id:
        r = conn.execute("SELECT client_id FROM orders WHERE account=? AND exchange_order_id=? AND client_id IS NOT"
                         " NULL", (account, str(fill.order_id))).fetchone()
        if r:
            it = own(fetch_intent(conn, r[0]))
            if it:
                return it
    # Last, a fired stop/take-profit whose child was not tagged (a restart lost the algo → child link): only a live
    # protective order of a live leg on that (symbol, position side, side) whose trigger price IS the fill's price
    # — never "the only stop on that side" at any price: a manual trade there is not a stop-out.
    rows = conn.execute(
        "SELECT i.client_id, i.trigger_price FROM order_intents i JOIN legs g ON g.leg_id = i.leg_id"
        " WHERE i.account=? AND i.symbol=? AND i.position_side=? AND i.side=? AND i.purpose IN (?, ?)"
        " AND i.state IN ('open', 'filled', 'sent', 'unknown') AND g.state IN ('open', 'closing')",
        (account, fill.symbol, fill.position_side.value, fill.side.value, *sorted(PROTECTIVE_PURPOSES))).fetchall()
    at_price = [r for r in rows if r[1] is not None and D(r[1]) == fill.price]
    if len(at_price) == 1:
        return fetch_intent(conn, at_price[0][0])
    return None


def _insert_fill(conn: sqlite3.Connection, account: str, fill: Fill, leg_id: str | None) -> bool:
    """Write the fill row; False when (account, symbol, trade id) is already there (the fill was applied before —
    the trade id is the idempotency key, so the insert itself is the check)."""
    return conn.execute(
        "INSERT INTO fills(account, symbol, trade_id, exchange_order_id, client_id, leg_id, side, position_side,"
        " price, qty, fee, fee_asset, fee_quote, realized_pnl, ts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(account, symbol, trade_id) DO NOTHING",
        (account, fill.symbol, str(fill.trade_id), str(fill.order_id), fill.client_id or None, leg_id,
         fill.side.value, fill.position_side.value, _s(fill.price), _s(fill.qty), _s(fill.fee),
         fee_asset(fill), _s(fee_in_quote(fill)), _s(fill.realized_pnl), fill.ts),
    ).rowcount == 1


def _already(fill: Fill) -> FillResult:
    return FillResult(False, None, fill.client_id or None, note="already applied")


def _unattributed(store: Store, conn: sqlite3.Connection, account: str, fill: Fill, why: str, level: str,
                  client_id: str | None = None) -> FillResult:
    if not _insert_fill(conn, account, fill, None):
        return _already(fill)
    journal.append(store, "fill_unattributed", f"fill {fill.trade_id} {fill.side} {fill.qty} {fill.symbol} "
                   f"@ {fill.price}: {why}", level=level, account=account, symbol=fill.symbol,
                   data={"trade_id": fill.trade_id, "order_id": fill.order_id, "client_id": fill.client_id},
                   ts=fill.ts, conn=conn)
    return FillResult(True, None, client_id, note=why)


def apply_fill(store: Store, account: str, fill: Fill, *, now_ms: int | None = None,
               close_reason: str | None = None) -> FillResult:
    """Apply one exchange execution to the ledger (idempotent on (account, symbol, trade id)). A fill that closes
    its leg records ``close_reason`` (a strategy's exit tag, at most 200 characters) or else the order's purpose."""
    if fill.qty <= 0 or fill.price <= 0:
        raise ValueError(f"fill {fill.trade_id}: qty and price must be positive (qty {fill.qty}, price {fill.price})")
    if not fill.trade_id:
        raise ValueError("a fill needs the exchange's trade id (idempotency key)")
    now = fill.ts if now_ms is None else now_ms
    fee = fee_in_quote(fill)  # fees in their asset are valued at the fill's minute (BNB burn); never BNB as USDT
    with store.tx() as c:
        # every path below writes the fill row before anything else, and a row already there means "applied before"
        # (the one path that writes first, a late entry's recovery, checks on its own)
        intent = _attribute(c, account, fill)
        if intent is None or intent.leg_id is None:
            return _unattributed(store, c, account, fill, "no order intent of this account matches it", "WARNING",
                                 intent.client_id if intent else None)
        leg = L.fetch_leg(c, intent.leg_id)
        assert leg is not None  # foreign key
        if leg.position_side is not fill.position_side:
            return _unattributed(store, c, account, fill, f"position side {fill.position_side} does not match leg "
                                 f"{leg.leg_id} ({leg.position_side})", "ERROR", intent.client_id)
        increasing = fill.side is leg.direction.entry_side
        recovered = False
        if (increasing and leg.state is L.LegState.CANCELLED and intent.purpose == "entry"
                and intent.state == "not_found" and leg.close_reason == L.GIVEN_UP_REASON):
            # an entry given up as never placed executed after all (Binance's -1007 case): its leg takes the fill
            if c.execute("SELECT 1 FROM fills WHERE account=? AND symbol=? AND trade_id=?",
                         (account, fill.symbol, str(fill.trade_id))).fetchone():
                return _already(fill)
            leg = L.reopen_given_up(c, leg.leg_id, now_ms=now)
            intent = mark_filled_late(c, intent, now_ms=now, order_id=str(fill.order_id),
                                      note="executed after it was given up as not found")
            recovered = True
            journal.append(store, "late_entry_recovered", f"entry {intent.client_id} was given up as never placed "
                           f"but executed: fill {fill.trade_id} {fill.qty} {fill.symbol} @ {fill.price} reopens leg "
                           f"{leg.leg_id}; it must be protected now", level="CRITICAL", account=account,
                           strategy=leg.strategy, symbol=fill.symbol,
                           data={"leg_id": leg.leg_id, "client_id": intent.client_id, "trade_id": fill.trade_id},
                           ts=fill.ts, conn=c)
        if increasing and leg.state not in (L.LegState.PENDING, L.LegState.OPEN):
            return _unattributed(store, c, account, fill, f"entry-side fill for leg {leg.leg_id} which is "
                                 f"{leg.state}", "ERROR", intent.client_id)
        if not increasing and leg.state not in (L.LegState.OPEN, L.LegState.CLOSING):
            return _unattributed(store, c, account, fill, f"exit-side fill for leg {leg.leg_id} which is "
                                 f"{leg.state}", "ERROR", intent.client_id)
        if not _insert_fill(c, account, fill, leg.leg_id):
            return _already(fill)
        realized = Decimal(0)
        # one UPDATE per fill: the quantities and, when the fill moves it, the leg's state (checked as transition_in
        # checks it)
        if increasing:
            new_qty = leg.qty + fill.qty
            avg = ((leg.entry_price or Decimal(0)) * leg.qty + fill.price * fill.qty) / new_qty
            moved = (L.transition_cols(leg, L.LegState.OPEN, new_qty, now_ms=now)
                     if leg.state is L.LegState.PENDING else {})
            leg = L.update_leg(c, leg, qty=_s(new_qty), qty_initial=_s(leg.qty_initial + fill.qty),
                               entry_price=_s(avg), fees=_s(leg.fees + fee), **{"updated_ms": now, **moved})
        else:
            close_qty = min(fill.qty, leg.qty)
            excess = fill.qty - close_qty
            entry = leg.entry_price or Decimal(0)
            realized = (fill.price - entry) * close_qty * leg.direction.sign
            exited_before = leg.qty_initial - leg.qty
            exit_px = ((leg.exit_price or Decimal(0)) * exited_before + fill.price * close_qty) / (
                exited_before + close_qty) if close_qty > 0 else leg.exit_price
            new_qty = leg.qty - close_qty
            held = leg.qty
            moved = (L.transition_cols(leg, L.LegState.CLOSED, new_qty, now_ms=now,
                                       close_reason=(close_reason or intent.purpose)[:200]) if new_qty == 0 else {})
            leg = L.update_leg(c, leg, qty=_s(new_qty), realized_pnl=_s(leg.realized_pnl + realized),
                               fees=_s(leg.fees + fee), exit_price=None if exit_px is None else _s(exit_px),
                               **{"updated_ms": now, **moved})
            if excess > 0:
                journal.append(store, "fill_over_close", f"fill {fill.trade_id} exits {fill.qty} but leg "
                               f"{leg.leg_id} held {held}: {excess} is not this leg's", level="ERROR",
                               account=account, strategy=leg.strategy, symbol=fill.symbol,
                               data={"trade_id": fill.trade_id, "excess": str(excess)}, ts=fill.ts, conn=c)
        daily_pnl.add(c, account, leg.strategy, fill.ts, realized - fee, now)
        return FillResult(True, leg.leg_id, intent.client_id, realized, leg.state.value,
                          note=LATE_ENTRY if recovered else "")


@dataclass(frozen=True, slots=True)
class FundingAllocation:
    """How one funding payment (or a pair paid at the same time on both hedge sides) was spread over legs."""

    symbol: str
    ts: int
    amount: Decimal
    shares: dict[str, Decimal] = field(default_factory=dict)
    unallocated: Decimal = Decimal(0)
    note: str = ""


def _legs_at(conn: sqlite3.Connection, account: str, symbol: str, ts: int) -> list[L.Leg]:
    cur = conn.execute("SELECT * FROM legs WHERE account=? AND symbol=? AND opened_ms <= ? AND state IN"
                       " ('open', 'closing', 'closed') AND (closed_ms IS NULL OR closed_ms > ?)",
                       (account, symbol, ts, ts))
    cols = [d[0] for d in cur.description]
    return [L.Leg.from_row(dict(zip(cols, r))) for r in cur.fetchall()]


def _weight(leg: L.Leg) -> Decimal:
    return leg.qty if leg.qty > 0 else leg.qty_initial


def _spread(amount: Decimal, legs: Sequence[L.Leg]) -> dict[str, Decimal]:
    total = sum((_weight(g) for g in legs), Decimal(0))
    out: dict[str, Decimal] = {}
    if total <= 0:
        return out
    left = amount
    for i, g in enumerate(legs):
        share = left if i == len(legs) - 1 else (amount * _weight(g) / total).quantize(_Q)
        out[g.leg_id] = share
        left -= share
    return out


def allocate_funding(store: Store, account: str, rows: Sequence[IncomeRow], *, now_ms: int,
                     rates: Mapping[tuple[str, int], Decimal] | None = None) -> list[FundingAllocation]:
    """Record FUNDING_FEE income rows (idempotent on tran id) and add each to the legs that held the position.

    Legs are those open at the payment time on the symbol; shares are pro rata by quantity (current open qty, or
    the entered qty for a leg closed since). Binance's income rows carry no position side, so when legs hold both
    hedge sides at once the payments of one timestamp are matched to sides: by the funding rate's sign when
    ``rates[(symbol, ts)]`` is given (longs pay a positive rate), else by size (the larger payment belongs to the
    side with the larger quantity). What cannot be matched stays unallocated and is journaled, never guessed.
    Amounts are signed as on the exchange: negative = paid. Other income types are ignored here.
    """
    fresh: dict[tuple[str, int], list[IncomeRow]] = {}
    out: list[FundingAllocation] = []
    with store.tx() as c:
        for r in rows:
            if r.income_type != "FUNDING_FEE":
                continue
            cur = c.execute("INSERT OR IGNORE INTO income(account, tran_id, income_type, amount, asset, symbol, ts)"
                            " VALUES (?,?,?,?,?,?,?)", (account, str(r.tran_id), r.income_type, _s(r.amount),
                                                        r.asset, r.symbol, r.ts))
            if cur.rowcount:
                fresh.setdefault((r.symbol, r.ts), []).append(r)
        for (symbol, ts), group in sorted(fresh.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            held = _legs_at(c, account, symbol, ts)
            sides: dict[PositionSide, list[L.Leg]] = {}
            for g in held:
                sides.setdefault(g.position_side, []).append(g)
            total = sum((r.amount for r in group), Decimal(0))
            shares: dict[str, Decimal] = {}
            note = ""
            if not held:
                note = "no leg held the position"
            elif len(sides) == 1:
                shares = _spread(total, held)
            else:
                long_legs, short_legs = sides.get(PositionSide.LONG, []), sides.get(PositionSide.SHORT, [])
                rate = (rates or {}).get((symbol, ts))
                if len(group) == 2 and rate is not None and rate != 0:
                    long_row = next((r for r in group if (r.amount < 0) == (rate > 0)), None)
                    short_row = next((r for r in group if r is not long_row), None)
                    if long_row is not None and short_row is not None and (long_row.amount < 0) != (short_row.amount < 0):
                        shares = {**_spread(long_row.amount, long_legs), **_spread(short_row.amount, short_legs)}
                    else:
                        note = "funding rows do not match the rate's sign on both sides"
                elif len(group) == 2:
                    ql = sum((_weight(g) for g in long_legs), Decimal(0))
                    qs = sum((_weight(g) for g in short_legs), Decimal(0))
                    big, small = sorted(group, key=lambda r: abs(r.amount), reverse=True)
                    if ql == qs or abs(big.amount) == abs(small.amount):
                        note = "both hedge sides hold the same size: cannot tell which payment is whose"
                    else:
                        bl, sl = (long_legs, short_legs) if ql > qs else (short_legs, long_legs)
                        shares = {**_spread(big.amount, bl), **_spread(small.amount, sl)}
                else:
                    note = f"{len(group)} funding row(s) for two hedge sides: cannot match them to sides"
            for leg_id, share in shares.items():
                leg = L.fetch_leg(c, leg_id)
                assert leg is not None
                c.execute("UPDATE legs SET funding=?, updated_ms=? WHERE leg_id=?",
                          (_s(leg.funding + share), now_ms, leg_id))
                daily_pnl.add(c, account, leg.strategy, ts, share, now_ms)
            left = total - sum(shares.values(), Decimal(0))
            if left != 0 or (note and not shares):
                journal.append(store, "funding_unallocated", f"funding {left} (of {len(group)} row(s)) on {symbol} not allocated to a leg: "
                               f"{note}", level="WARNING", account=account, symbol=symbol,
                               data={"ts": ts, "amount": str(left)}, ts=now_ms, conn=c)
            out.append(FundingAllocation(symbol, ts, total, shares, left, note))
    return out
