"""Position legs: one strategy's share of an (account, symbol, position side) position, and its state machine.

Why a leg and not "the position": Binance nets everything into one position per symbol (one-way mode) or per
side (hedge mode), but several strategies trade one symbol on one account. The ledger keeps each strategy's
share as a leg; per (account, symbol, position side) the legs must add up to the exchange (see
:mod:`albra.ledger.positions`).

State machine (anything else raises :class:`IllegalTransition`, including "moving" to the state it is in)::

    pending ──► open ──► closing ──► closed
       │          │  ◄──────┘ (exit order cancelled/expired, qty left)
       │          └──────────────► closed (a stop/take-profit filled on the exchange)
       ├──► failed     (entry rejected)
       └──► cancelled  (entry never reached the book, or was cancelled unfilled)

closed, failed and cancelled are terminal: a leg is never revived. A fill that arrives for a terminal leg is
recorded unattributed and surfaces in reconciliation (it means the exchange did something the ledger thought
impossible, which a human must look at).

Leg ids are derived from the entry intent's client id (:func:`leg_id_for`), so after a crash between
committing the entry intent and anything else, the engine re-derives the same leg id. Quantities and prices are
Decimal in memory and Decimal strings in the store.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from operator import attrgetter
from decimal import Decimal
from enum import StrEnum
from typing import Any, Iterable, Iterator

from albra.ledger.errors import IllegalTransition, LedgerError, UnknownLeg
from albra.model import D, Direction, PositionMode, PositionSide
from albra.store.db import LEG_INTENTS, LIVE_LEGS, Store, cached_row, execute_unwatched, memo_of, remember

UNATTRIBUTED = "UNATTRIBUTED"


class LegState(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_live(self) -> bool:
        return self in LIVE_STATES

    @property
    def is_terminal(self) -> bool:
        return not ALLOWED[self]


ALLOWED: dict[LegState, frozenset[LegState]] = {
    LegState.PENDING: frozenset({LegState.OPEN, LegState.FAILED, LegState.CANCELLED}),
    LegState.OPEN: frozenset({LegState.CLOSING, LegState.CLOSED}),
    LegState.CLOSING: frozenset({LegState.OPEN, LegState.CLOSED}),
    LegState.CLOSED: frozenset(),
    LegState.FAILED: frozenset(),
    LegState.CANCELLED: frozenset(),
}
LIVE_STATES = (LegState.PENDING, LegState.OPEN, LegState.CLOSING)


def check_transition(frm: LegState | str, to: LegState | str) -> None:
    """Raise :class:`IllegalTransition` unless ``frm → to`` is an edge of the state machine."""
    f, t = LegState(frm), LegState(to)
    if t not in ALLOWED[f]:
        allowed = ", ".join(sorted(ALLOWED[f])) or "nothing (terminal)"
        raise IllegalTransition(f"leg state {f} → {t} is not allowed (from {f}: {allowed})")


def leg_id_for(entry_client_id: str) -> str:
    """The leg id of the leg an entry intent opens: a pure function of the entry's client id."""
    if not entry_client_id:
        raise ValueError("a leg id needs the entry intent's client id")
    return f"leg-{entry_client_id}"


def position_side_for(direction: Direction, mode: PositionMode) -> PositionSide:
    """BOTH in one-way mode; LONG/SHORT (the leg's direction) in hedge mode."""
    if PositionMode(mode) is PositionMode.ONE_WAY:
        return PositionSide.BOTH
    return PositionSide.LONG if Direction(direction) is Direction.LONG else PositionSide.SHORT


def _dec(v: Any) -> Decimal | None:
    """A stored decimal column: None stays None; text becomes the Decimal of exactly that text (as D does)."""
    if v is None:
        return None
    return Decimal(v) if type(v) is str else D(v)


def _member(enum_cls: Any, v: Any) -> Any:
    """``enum_cls(v)`` through the value map first (same member, no metaclass call); unknown values still raise."""
    m = enum_cls._value2member_map_.get(v)
    return m if m is not None else enum_cls(v)


def _json(v: Any, empty: str, kind: type) -> Any:
    """``json.loads(v)``, with the column's default (an empty list/object) built directly (a fresh one each time,
    so callers may still mutate what they get)."""
    return kind() if v == empty else json.loads(v)


@dataclass(frozen=True, slots=True)
class Leg:
    """A leg as stored. ``qty`` is the open quantity (unsigned); ``qty_initial`` everything ever entered."""

    leg_id: str
    account: str
    symbol: str
    strategy: str
    direction: Direction
    position_side: PositionSide
    state: LegState
    qty: Decimal
    qty_initial: Decimal
    entry_price: Decimal | None
    entry_ts: int | None
    exit_price: Decimal | None
    realized_pnl: Decimal
    fees: Decimal
    funding: Decimal
    stop_price: Decimal | None
    take_profit: Decimal | None
    sl_client_id: str | None
    tp_client_id: str | None
    partial_exits: list
    strategy_state: dict
    entry_reason: str
    close_reason: str | None
    opened_ms: int
    closed_ms: int | None
    updated_ms: int

    @property
    def signed_qty(self) -> Decimal:
        """Quantity signed like Binance's positionAmt (short < 0)."""
        return self.qty * self.direction.sign

    @property
    def net_pnl(self) -> Decimal:
        """Realized PnL minus fees plus funding (funding is signed: negative = paid)."""
        return self.realized_pnl - self.fees + self.funding

    @classmethod
    def from_row(cls, r: dict) -> "Leg":
        # same values as Direction(v), D(v), json.loads(v), minus their call overhead (runs for every leg read)
        return cls(
            r["leg_id"], r["account"], r["symbol"], r["strategy"], _member(Direction, r["direction"]),
            _member(PositionSide, r["position_side"]), _member(LegState, r["state"]), _dec(r["qty"]),
            _dec(r["qty_initial"]), _dec(r["entry_price"]), r["entry_ts"], _dec(r["exit_price"]),
            _dec(r["realized_pnl"]), _dec(r["fees"]), _dec(r["funding"]), _dec(r["stop_price"]),
            _dec(r["take_profit"]), r["sl_client_id"], r["tp_client_id"], _json(r["partial_exits"], "[]", list),
            _json(r["strategy_state"], "{}", dict), r["entry_reason"], r["close_reason"], r["opened_ms"],
            r["closed_ms"], r["updated_ms"],
        )


_LEG_FIELDS = attrgetter(*(f.name for f in fields(Leg)))
_LEG_AT = {f.name: i for i, f in enumerate(fields(Leg))}


def _s(v: Decimal | None) -> str | None:
    return None if v is None else format(D(v), "f")


def fetch_leg(conn: sqlite3.Connection, leg_id: str) -> Leg | None:
    """Read a leg through an open connection (inside a transaction). On a backtest's memo store
    (:meth:`Store.enable_memo`) a leg read since its last write is answered from memory: every write to ``legs``
    drops the row's cached copy (the store's connection watches them), and a Leg is immutable."""
    return cached_row(conn, "legs", "legs", "leg_id", leg_id, Leg.from_row)


#: how each column a leg write sets reads back into a :class:`Leg` field (exactly as :meth:`Leg.from_row` parses it)
_AS_STORED: dict[str, Any] = {
    **{c: _dec for c in ("qty", "qty_initial", "entry_price", "exit_price", "realized_pnl", "fees", "funding",
                         "stop_price", "take_profit")},
    **{c: (lambda v: v) for c in ("sl_client_id", "tp_client_id", "entry_reason", "close_reason", "entry_ts",
                                  "opened_ms", "closed_ms", "updated_ms")},
    "state": lambda v: _member(LegState, v),
    "partial_exits": lambda v: _json(v, "[]", list),
    "strategy_state": lambda v: _json(v, "{}", dict),
}


_LIVE_STATES = ("pending", "open", "closing")


def _remember_leg(conn: Any, leg: Leg) -> Leg:
    """Put ``leg`` (exactly the row as stored) in a backtest memo store's leg cache, and keep the account's set of
    live leg ids (when the memo holds it) in step with its state; no-op on a live store."""
    m = memo_of(conn)
    if m is not None:
        remember(m.setdefault("legs", {}), leg.leg_id, leg)
        live = m.setdefault(LIVE_LEGS, {}).get(leg.account)
        if live is not None:
            if leg.state.value in _LIVE_STATES:
                live[leg.leg_id] = None
            else:
                live.pop(leg.leg_id, None)
    return leg


def update_leg(conn: sqlite3.Connection, leg: Leg, **cols: Any) -> Leg:
    """Write ``cols`` (values as stored: text for decimals and JSON, ints for times) to the leg just read as ``leg``,
    inside an open transaction, and return the leg as it now stands.

    Why it builds the result instead of reading it back: every ledger step re-read the leg it had just written
    (~8 reads per backtest trade). The new leg is ``leg`` with exactly these columns replaced, each parsed as
    :meth:`Leg.from_row` parses it — the same value a read would give — and a backtest's memo store keeps it, so
    the next step's read is answered from memory. The one writer per account (the write lease) is what makes
    ``leg`` still current inside the transaction."""
    cur = execute_unwatched(conn, f"UPDATE legs SET {', '.join(f'{k} = ?' for k in cols)} WHERE leg_id = ?",
                            (*cols.values(), leg.leg_id))  # the memo is kept by _remember_leg below
    if cur.rowcount != 1:
        raise UnknownLeg(f"no leg {leg.leg_id!r} in the ledger")
    vals = list(_LEG_FIELDS(leg))  # by position: dataclasses.replace is slow
    for k, v in cols.items():
        vals[_LEG_AT[k]] = _AS_STORED[k](v)
    return _remember_leg(conn, Leg(*vals))


def get_leg(store: Store, leg_id: str) -> Leg | None:
    if store.memo is not None:
        with store._lock:
            return fetch_leg(store._conn, leg_id)
    r = store.query_one("SELECT * FROM legs WHERE leg_id = ?", (leg_id,))
    return None if r is None else Leg.from_row(r)


def require_leg(store: Store, leg_id: str) -> Leg:
    leg = get_leg(store, leg_id)
    if leg is None:
        raise UnknownLeg(f"no leg {leg_id!r} in the ledger")
    return leg


def live_legs(store: Store, account: str, symbol: str | None = None) -> list[Leg]:
    """Legs in pending/open/closing for an account (optionally one symbol), oldest first. A backtest's memo store
    answers from the account's set of live leg ids, read once and then kept by the leg writers (any other write
    to the table empties it: the next call reads it again)."""
    if store.memo is not None:
        with store._lock:
            c = store._conn
            part = store.memo.setdefault(LIVE_LEGS, {})
            ids = part.get(account)
            if ids is None:
                ids = part[account] = dict.fromkeys(r[0] for r in c.execute(
                    "SELECT leg_id FROM legs WHERE account = ? AND state IN ('pending', 'open', 'closing')",
                    (account,)).fetchall())
            got = [fetch_leg(c, i) for i in list(ids)]
        out = [g for g in got if g is not None and (symbol is None or g.symbol == symbol)]
        return sorted(out, key=lambda g: (g.opened_ms, g.leg_id))
    sql = "SELECT * FROM legs WHERE account = ? AND state IN ('pending', 'open', 'closing')"
    params: list[Any] = [account]
    if symbol is not None:
        sql += " AND symbol = ?"
        params.append(symbol)
    return [Leg.from_row(r) for r in store.query(sql + " ORDER BY opened_ms, leg_id", tuple(params))]


def _legs_sql(account: str, strategy: str | None, states: Iterable[LegState | str] | None) -> tuple[str, tuple]:
    sql, params = "SELECT * FROM legs WHERE account = ?", [account]
    if strategy is not None:
        sql += " AND strategy = ?"
        params.append(strategy)
    if states is not None:
        st = [LegState(s).value for s in states]
        sql += f" AND state IN ({','.join('?' * len(st))})"
        params.extend(st)
    return sql + " ORDER BY opened_ms, leg_id", tuple(params)


def legs_of(store: Store, account: str, strategy: str | None = None,
            states: Iterable[LegState | str] | None = None) -> list[Leg]:
    return [Leg.from_row(r) for r in store.query(*_legs_sql(account, strategy, states))]


def iter_legs(store: Store, account: str, strategy: str | None = None,
              states: Iterable[LegState | str] | None = None) -> Iterator[Leg]:
    """:func:`legs_of` one leg at a time (a long backtest's thousands of closed legs, without holding them all)."""
    for r in store.stream(*_legs_sql(account, strategy, states)):
        yield Leg.from_row(r)


def insert_leg(conn: sqlite3.Connection, *, leg_id: str, account: str, symbol: str, strategy: str,
               direction: Direction, position_side: PositionSide, now_ms: int, state: LegState = LegState.PENDING,
               qty: Decimal = Decimal(0), entry_price: Decimal | None = None, entry_ts: int | None = None,
               stop_price: Decimal | None = None, take_profit: Decimal | None = None,
               entry_reason: str = "") -> Leg:
    """Create a leg inside an open transaction; re-inserting the same leg id returns the existing leg if it
    describes the same (account, symbol, strategy, direction, side), and raises otherwise."""
    direction, position_side, state = Direction(direction), PositionSide(position_side), LegState(state)
    if (position_side is PositionSide.LONG and direction is not Direction.LONG) or (
            position_side is PositionSide.SHORT and direction is not Direction.SHORT):
        raise LedgerError(f"leg {leg_id}: a {direction} leg cannot live on the {position_side} position side")
    if qty < 0:
        raise LedgerError(f"leg {leg_id}: negative qty {qty}")
    # the leg id is the idempotency key: inserting an existing leg inserts nothing (no read first on the normal path)
    cur = conn.execute(
        "INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty, qty_initial,"
        " entry_price, entry_ts, stop_price, take_profit, entry_reason, opened_ms, updated_ms)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(leg_id) DO NOTHING",
        (leg_id, account, symbol, strategy, direction.value, position_side.value, state.value, _s(qty), _s(qty),
         _s(entry_price), entry_ts, _s(stop_price), _s(take_profit), entry_reason, now_ms, now_ms),
    )
    if cur.rowcount == 1:
        if (m := memo_of(conn)) is not None:  # a new leg has no intents yet: its memo list starts empty
            remember(m.setdefault(LEG_INTENTS, {}), leg_id, [])
    else:
        existing = fetch_leg(conn, leg_id)
        assert existing is not None  # the conflict was on this key
        same = (existing.account, existing.symbol, existing.strategy, existing.direction, existing.position_side)
        if same != (account, symbol, strategy, direction, position_side):
            raise LedgerError(f"leg {leg_id} already exists for {same}, not for "
                              f"{(account, symbol, strategy, direction, position_side)}")
        return existing
    if type(now_ms) is int and (entry_ts is None or type(entry_ts) is int) and all(
            type(v) is str for v in (leg_id, account, symbol, strategy, entry_reason)):
        # exactly the row just inserted, parsed as Leg.from_row would parse it (no read-back needed)
        q = D(_s(qty))
        return _remember_leg(conn, Leg(
            leg_id, account, symbol, strategy, direction, position_side, state, q, D(_s(qty)), _dec(_s(entry_price)),
            entry_ts, None, D("0"), D("0"), D("0"), _dec(_s(stop_price)), _dec(_s(take_profit)), None, None, [], {},
            entry_reason, None, now_ms, None, now_ms))
    leg = fetch_leg(conn, leg_id)
    assert leg is not None
    return _remember_leg(conn, leg)  # the row as read: into the memo's live set too


#: the close reason an entry given up as never placed leaves on its leg (``_after_final`` in the intents module)
GIVEN_UP_REASON = "entry not_found"


def reopen_given_up(conn: sqlite3.Connection, leg_id: str, *, now_ms: int) -> Leg:
    """Put a leg whose entry was given up as never placed back to ``pending``, inside an open transaction.

    Why this one edge out of a final state: Binance documents that an order answered with -1007 ("execution status
    unknown") or a timeout may execute after all, and the lookups that called it "not found" are bounded. When its
    fill shows up, the position exists; the leg that carries the strategy, the stop price and the take-profit is
    the right owner, so it takes the fill (and is protected at once by the caller) instead of the position being
    adopted later as unattributed and unprotected. Only a cancelled leg with no quantity whose entry was given up
    qualifies; anything else raises :class:`IllegalTransition`."""
    leg = fetch_leg(conn, leg_id)
    if leg is None:
        raise UnknownLeg(f"no leg {leg_id!r} in the ledger")
    if leg.state is not LegState.CANCELLED or leg.qty != 0 or leg.close_reason != GIVEN_UP_REASON:
        raise IllegalTransition(f"leg {leg_id} is {leg.state} ({leg.close_reason}); only a leg whose entry was "
                                "given up as never placed can be reopened")
    conn.execute("UPDATE legs SET state = ?, updated_ms = ?, closed_ms = NULL, close_reason = NULL WHERE leg_id = ?",
                 (LegState.PENDING.value, now_ms, leg_id))
    out = fetch_leg(conn, leg_id)
    assert out is not None
    return out


def transition_in(conn: sqlite3.Connection, leg_id: str, to: LegState | str, *, now_ms: int,
                  close_reason: str | None = None) -> Leg:
    """Move a leg to ``to`` inside an open transaction (raises :class:`IllegalTransition`)."""
    leg = fetch_leg(conn, leg_id)
    if leg is None:
        raise UnknownLeg(f"no leg {leg_id!r} in the ledger")
    return update_leg(conn, leg, **transition_cols(leg, to, leg.qty, now_ms=now_ms, close_reason=close_reason))


def transition_cols(leg: Leg, to: LegState | str, qty: Decimal, *, now_ms: int,
                    close_reason: str | None = None) -> dict[str, Any]:
    """The columns that move ``leg`` (holding ``qty`` by then) to ``to``, checked against the state machine (raises
    :class:`IllegalTransition`). For a writer that changes the leg's quantities and state in one UPDATE (a fill)."""
    to = LegState(to)
    check_transition(leg.state, to)
    if to is LegState.CLOSED and qty != 0:
        raise IllegalTransition(f"leg {leg.leg_id} cannot close with qty {qty} still open")
    cols: dict[str, Any] = {"state": to.value, "updated_ms": int(now_ms)}
    if to.is_terminal:
        cols["closed_ms"] = int(now_ms)
    if close_reason is not None:
        cols["close_reason"] = str(close_reason)
    return cols


def transition(store: Store, leg_id: str, to: LegState | str, *, now_ms: int,
               close_reason: str | None = None) -> Leg:
    """Move a leg to ``to`` in its own transaction (raises :class:`IllegalTransition`)."""
    with store.tx() as c:
        return transition_in(c, leg_id, to, now_ms=now_ms, close_reason=close_reason)


def set_close_reason(store: Store, leg_id: str, reason: str) -> Leg:
    """Name why a closed leg closed (the strategy's exit tag rather than the order's purpose): what backtests,
    reports and the journal show as its exit reason."""
    with store.tx() as c:
        leg = fetch_leg(c, leg_id)
        if leg is None:
            raise UnknownLeg(f"no leg {leg_id!r} in the ledger")
        if leg.state is not LegState.CLOSED:
            return leg
        return update_leg(c, leg, close_reason=reason[:200])


def set_protection(store: Store, leg_id: str, *, now_ms: int, stop_price: Decimal | None = None,
                   sl_client_id: str | None = None, take_profit: Decimal | None = None,
                   tp_client_id: str | None = None, conn: sqlite3.Connection | None = None) -> None:
    """Record which protective orders (client ids and prices) currently guard a leg. ``None`` leaves a field."""
    if conn is None:
        with store.tx() as c:
            set_protection(store, leg_id, now_ms=now_ms, stop_price=stop_price, sl_client_id=sl_client_id,
                           take_profit=take_profit, tp_client_id=tp_client_id, conn=c)
        return
    leg = fetch_leg(conn, leg_id)
    if leg is None:
        raise UnknownLeg(f"no leg {leg_id!r} in the ledger")
    given = {"stop_price": _s(stop_price), "sl_client_id": sl_client_id, "take_profit": _s(take_profit),
             "tp_client_id": tp_client_id}
    update_leg(conn, leg, **{k: v for k, v in given.items() if v is not None}, updated_ms=int(now_ms))
