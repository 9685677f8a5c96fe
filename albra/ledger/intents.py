"""Write-ahead order intents (invariant 1, docs/adr/0004-client-ids.md).

The order of operations is what makes orders safe across crashes, timeouts and 5xx answers:

1. :func:`record_intent` (or :func:`record_entry`, which also creates the pending leg) commits an
   ``order_intents`` row in state ``pending`` with the deterministic client id, BEFORE anything is sent.
   Recording the same client id again returns the stored intent: the caller sends nothing new for it.
2. The order manager (:mod:`albra.orders`, the only sender) marks it :func:`mark_sent`, sends it, and records what came back with :func:`mark_outcome`
   (or :func:`mark_unknown` when the placement's result was not seen).
3. :func:`albra.orders.resolution.resolve_unresolved` runs on start-up, before anything else: every intent still ``pending``, ``sent``
   or ``unknown`` is looked up on the exchange by its client id. Found → its outcome is recorded and the fills of
   a regular order are applied. Not found → ``not_found``; an entry's pending leg becomes ``cancelled``. A
   protective order found open is linked to its leg when it is the leg's newest generation
   (:func:`albra.ledger.protection.link_protection`). It never re-sends anything: whether to try again (with the
   next generation of the id) is the engine's decision.

Intent states: ``pending → sent → open → filled | canceled | expired``; ``rejected``; ``unknown`` (placement
result not seen) and ``not_found`` (the exchange positively does not know the id). An algo order that fired
(``TRIGGERED``) is recorded as ``filled``: for a conditional order that means "it fired"; its child market order's
executions arrive through the trade history and :func:`albra.ledger.fills.apply_fill`.

Exits are reduce-only (invariant 3): an intent bound to a leg that trades against the leg's direction must be
``reduce_only`` in one-way mode, and in hedge mode must carry the leg's position side (Binance rejects
``reduceOnly`` there; a SELL on the LONG side can only reduce). Anything else is refused here, before it can be sent.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from operator import attrgetter
from decimal import Decimal
from typing import Any, Sequence

from albra.exchange.client_ids import PURPOSES
from albra.exchange.types import OrderRequest, OrderResult
from albra.ledger import legs as L
from albra.ledger.errors import IllegalTransition, IntentConflict, LedgerError, UnknownLeg
from albra.model import D, Direction, OrderStatus, OrderType, PositionMode, PositionSide, Side
from albra.store.db import LEG_INTENTS, Store, batched, cached_row, defer_write, memo_of, remember

#: purposes whose order closes the whole leg: recording one moves an open leg to ``closing``.
CLOSING_PURPOSES = frozenset({"exit", "close", "emergency"})
#: purposes of protective (conditional) orders.
PROTECTIVE_PURPOSES = frozenset({"stop_loss", "take_profit"})
UNRESOLVED = ("pending", "sent", "unknown")
TERMINAL = frozenset({"filled", "canceled", "rejected", "expired", "not_found"})
_NEXT: dict[str, frozenset[str]] = {
    "pending": frozenset({"sent", "unknown", "not_found", "open", "filled", "canceled", "rejected", "expired"}),
    "sent": frozenset({"unknown", "not_found", "open", "filled", "canceled", "rejected", "expired"}),
    "unknown": frozenset({"not_found", "open", "filled", "canceled", "rejected", "expired"}),
    # an open conditional order that fires can still end REJECTED (its child refused at the trigger: Algo Order
    # Update, algo status REJECTED, no child order)
    "open": frozenset({"open", "filled", "canceled", "expired", "rejected"}),
}
_STATUS_TO_STATE = {
    OrderStatus.NEW: "open",
    OrderStatus.PARTIALLY_FILLED: "open",
    OrderStatus.FILLED: "filled",
    OrderStatus.TRIGGERED: "filled",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.EXPIRED: "expired",
}


def _s(v: Decimal | None) -> str | None:
    return None if v is None else format(D(v), "f")


def _dec(v: Any) -> Decimal | None:
    """A stored decimal column: None stays None; text becomes the Decimal of exactly that text (as D does)."""
    if v is None:
        return None
    return Decimal(v) if type(v) is str else D(v)


def _member(enum_cls: Any, v: Any) -> Any:
    """``enum_cls(v)`` through the value map first (same member, no metaclass call); unknown values still raise."""
    m = enum_cls._value2member_map_.get(v)
    return m if m is not None else enum_cls(v)


@dataclass(frozen=True, slots=True)
class Intent:
    """An order intent as stored."""

    client_id: str
    account: str
    strategy: str
    symbol: str
    purpose: str
    leg_id: str | None
    side: Side
    position_side: PositionSide
    order_type: OrderType
    qty: Decimal | None
    price: Decimal | None
    trigger_price: Decimal | None
    reduce_only: bool
    close_position: bool
    is_algo: bool
    candle_ts: int | None
    state: str
    exchange_order_id: str | None
    filled_qty: Decimal
    avg_price: Decimal | None
    error: str | None
    created_ms: int
    updated_ms: int

    @property
    def unresolved(self) -> bool:
        return self.state in UNRESOLVED

    def request(self) -> OrderRequest:
        """The order exactly as it was recorded (what the engine sends for this intent)."""
        return OrderRequest(self.client_id, self.symbol, self.side, self.order_type, self.qty, self.position_side,
                            self.price, self.trigger_price, self.reduce_only, self.close_position)

    @classmethod
    def from_row(cls, r: dict) -> "Intent":
        # enum members by value and Decimal straight from the stored text: the same objects as Side(v) and D(v),
        # without their call overhead (this runs for every intent read, thousands of times per backtest)
        return cls(r["client_id"], r["account"], r["strategy"], r["symbol"], r["purpose"], r["leg_id"],
                   _member(Side, r["side"]), _member(PositionSide, r["position_side"]),
                   _member(OrderType, r["order_type"]), _dec(r["qty"]), _dec(r["price"]), _dec(r["trigger_price"]),
                   bool(r["reduce_only"]), bool(r["close_position"]), bool(r["is_algo"]), r["candle_ts"], r["state"],
                   r["exchange_order_id"], _dec(r["filled_qty"]), _dec(r["avg_price"]), r["error"], r["created_ms"],
                   r["updated_ms"])


@dataclass(frozen=True, slots=True)
class Resolution:
    """What :func:`resolve_unresolved` found for one intent."""

    client_id: str
    before: str
    after: str
    fills_applied: int
    leg_id: str | None
    leg_state: str | None


def _memo(conn: Any) -> dict[str, Intent] | None:
    """The store's intent cache when it has one (a backtest's single-writer store: :meth:`Store.enable_memo`).
    This module is the only writer of ``order_intents``; every write below puts the row it wrote here, or drops
    the cached copy before re-reading (a new writer of the table must do one of the two)."""
    m = memo_of(conn)
    return None if m is None else m.setdefault("intents", {})


def _remember(conn: Any, intent: Intent) -> Intent:
    m = _memo(conn)
    if m is not None:
        remember(m, intent.client_id, intent)
        if intent.exchange_order_id:
            remember(memo_of(conn).setdefault("intent_by_order", {}),  # type: ignore[union-attr]
                     (intent.account, intent.symbol, intent.exchange_order_id), intent.client_id)
    return intent


def by_exchange_order_id(conn: Any, account: str, symbol: str, order_id: str) -> Intent | None:
    """The intent whose recorded exchange order id is ``order_id`` on (account, symbol) — Binance's trade rows name
    the order id, not our client id. A memo store answers from the ids its intents were recorded with (checked
    against the intent itself); anything it does not hold is read from the file."""
    m = memo_of(conn)
    if m is not None and (cid := m.get("intent_by_order", {}).get((account, symbol, order_id))) is not None:
        it = fetch_intent(conn, cid)
        if it is not None and (it.account, it.symbol, it.exchange_order_id) == (account, symbol, order_id):
            return it
    r = conn.execute("SELECT client_id FROM order_intents WHERE account=? AND symbol=? AND exchange_order_id=?",
                     (account, symbol, order_id)).fetchone()
    return None if r is None else fetch_intent(conn, r[0])


def _forget(conn: Any, client_id: str) -> None:
    """After a write whose row is re-read rather than built: drop the cached copy first."""
    m = _memo(conn)
    if m is not None:
        m.pop(client_id, None)


def fetch_intent(conn: sqlite3.Connection, client_id: str) -> Intent | None:
    return cached_row(conn, "intents", "order_intents", "client_id", client_id, Intent.from_row)


def get_intent(store: Store, client_id: str) -> Intent | None:
    if store.memo is not None and (hit := store.memo.get("intents", {}).get(client_id)) is not None:
        return hit
    r = store.query_one("SELECT * FROM order_intents WHERE client_id = ?", (client_id,))
    return None if r is None else Intent.from_row(r)


def _leg_index(conn: Any) -> dict[str, list[str]] | None:
    """A memo store's list of each leg's intent client ids in (created_ms, client_id) order — complete for every leg
    it holds: filled by a full read of the leg's intents, or started empty by the leg's own insert
    (:func:`albra.ledger.legs.insert_leg`), and appended to by :func:`record_intent` (this module is the only
    writer that inserts intents)."""
    m = memo_of(conn)
    return None if m is None else m.setdefault(LEG_INTENTS, {})


def _indexed(conn: Any, intent: Intent) -> None:
    """Add a just-inserted intent to its leg's list when the memo holds that list (in order, else forget the list)."""
    idx = _leg_index(conn)
    if idx is None or intent.leg_id is None or (ids := idx.get(intent.leg_id)) is None:
        return
    last = _memo(conn).get(ids[-1]) if ids else None  # type: ignore[union-attr]
    if ids and (last is None or (last.created_ms, last.client_id) > (intent.created_ms, intent.client_id)):
        idx.pop(intent.leg_id, None)  # out of order (or unknown): the next read rebuilds it from the file
        return
    ids.append(intent.client_id)


def _cached_of_leg(conn: Any, leg_id: str) -> list[Intent] | None:
    """The leg's intents from the memo, or None when it cannot answer for all of them."""
    idx, cache = _leg_index(conn), _memo(conn)
    ids = None if idx is None else idx.get(leg_id)
    if ids is None or cache is None:
        return None
    out = [cache.get(cid) for cid in ids]
    return None if None in out else out  # type: ignore[return-value]


def intents_of_leg(store: Store, leg_id: str, purpose: str | None = None) -> list[Intent]:
    """The leg's intents (of one ``purpose``), oldest first. A backtest's memo store answers from memory (it re-read
    them after every order of a trade)."""
    if store.memo is not None:
        with store._lock:
            c = store._conn
            got = _cached_of_leg(c, leg_id)
            if got is None:
                got = [Intent.from_row(r) for r in store.query(
                    "SELECT * FROM order_intents WHERE leg_id = ? ORDER BY created_ms, client_id", (leg_id,))]
                for it in got:
                    _remember(c, it)
                remember(_leg_index(c), leg_id, [it.client_id for it in got])  # type: ignore[arg-type]
        return got if purpose is None else [it for it in got if it.purpose == purpose]
    sql, params = "SELECT * FROM order_intents WHERE leg_id = ?", [leg_id]
    if purpose is not None:
        sql += " AND purpose = ?"
        params.append(purpose)
    return [Intent.from_row(r) for r in store.query(sql + " ORDER BY created_ms, client_id", tuple(params))]


def unresolved(store: Store, account: str) -> list[Intent]:
    """Intents of the account whose outcome is not known (pending, sent, unknown), oldest first."""
    rows = store.query("SELECT * FROM order_intents WHERE account = ? AND state IN ('pending', 'sent', 'unknown')"
                       " ORDER BY created_ms, client_id", (account,))
    return [Intent.from_row(r) for r in rows]


def _check_exit_shape(req: OrderRequest, leg: L.Leg, purpose: str) -> None:
    """An order that trades against a leg must be an exit the exchange can only use to reduce."""
    if req.side is not leg.direction.exit_side:
        return
    if req.position_side is not leg.position_side:
        raise LedgerError(f"{purpose} intent {req.client_id}: position side {req.position_side} does not match "
                          f"leg {leg.leg_id} ({leg.position_side})")
    if leg.position_side is PositionSide.BOTH and not (req.reduce_only or req.close_position):
        raise LedgerError(f"{purpose} intent {req.client_id}: exits in one-way mode must be reduce-only")
    if leg.position_side is not PositionSide.BOTH and req.reduce_only:
        raise LedgerError(f"{purpose} intent {req.client_id}: hedge-mode exits carry the position side, not "
                          f"reduceOnly (Binance rejects it with -1106)")


def record_intent(store: Store, req: OrderRequest, *, account: str, strategy: str, purpose: str,
                  candle_ts: int | None, now_ms: int, leg_id: str | None = None,
                  conn: sqlite3.Connection | None = None) -> Intent:
    """Commit the write-ahead row for ``req`` (state ``pending``) and return it. Idempotent on the client id:
    a second call returns the stored intent unchanged (its state tells the caller whether it was sent); a second
    call with different content raises :class:`IntentConflict`."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown intent purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    if req.qty is None and not req.close_position:
        raise ValueError(f"intent {req.client_id}: an order without close_position needs a qty")
    if req.qty is not None and req.qty <= 0:
        raise ValueError(f"intent {req.client_id}: qty must be positive, got {req.qty}")
    if conn is None:
        with store.tx() as c:
            return record_intent(store, req, account=account, strategy=strategy, purpose=purpose,
                                 candle_ts=candle_ts, now_ms=now_ms, leg_id=leg_id, conn=c)
    def same_or_conflict(existing: Intent) -> Intent:
        mine = (account, strategy, req.symbol, purpose, leg_id, req.side, req.order_type)
        theirs = (existing.account, existing.strategy, existing.symbol, existing.purpose, existing.leg_id,
                  existing.side, existing.order_type)
        if mine != theirs:
            raise IntentConflict(f"client id {req.client_id} is already recorded for {theirs}; refusing {mine}")
        return existing

    m = _memo(conn)
    if m is not None and (known := m.get(req.client_id)) is not None:
        return same_or_conflict(known)
    leg = None
    if leg_id is not None:
        leg = L.fetch_leg(conn, leg_id)
        if leg is None:
            raise UnknownLeg(f"intent {req.client_id}: no leg {leg_id!r}")
        if (leg.account, leg.symbol) != (account, req.symbol):
            raise LedgerError(f"intent {req.client_id} for {account}/{req.symbol} names leg {leg_id} of "
                              f"{leg.account}/{leg.symbol}")
        _check_exit_shape(req, leg, purpose)
    built = type(now_ms) is int and (candle_ts is None or type(candle_ts) is int) and all(
        type(v) is str for v in (req.client_id, account, strategy, req.symbol, purpose)) and (
        leg_id is None or type(leg_id) is str)
    if built and batched(conn):  # a backtest's batch: is the id new? (this read runs the kept images first)
        if conn.execute("SELECT 1 FROM order_intents WHERE client_id = ?", (req.client_id,)).fetchone():
            stored = fetch_intent(conn, req.client_id)
            assert stored is not None
            return same_or_conflict(stored)
        if leg is not None and purpose in CLOSING_PURPOSES and leg.state is L.LegState.OPEN:
            L.transition_in(conn, leg.leg_id, L.LegState.CLOSING, now_ms=now_ms)
        new = _built_intent(req, account, strategy, purpose, leg_id, candle_ts, now_ms)
        _keep(conn, new)
        return _recorded(conn, new)
    # the client id is the idempotency key: a second recording of it inserts nothing and returns what is stored
    # (one statement on the normal path, where the id is new: no read first)
    cur = conn.execute(
        "INSERT INTO order_intents(client_id, account, strategy, symbol, purpose, leg_id, side, position_side,"
        " order_type, qty, price, trigger_price, reduce_only, close_position, is_algo, candle_ts, state,"
        " created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'pending',?,?)"
        " ON CONFLICT(client_id) DO NOTHING",
        (req.client_id, account, strategy, req.symbol, purpose, leg_id, req.side.value, req.position_side.value,
         req.order_type.value, _s(req.qty), _s(req.price), _s(req.trigger_price), int(req.reduce_only),
         int(req.close_position), int(req.is_algo), candle_ts, now_ms, now_ms),
    )
    if cur.rowcount == 0:
        stored = fetch_intent(conn, req.client_id)
        assert stored is not None  # the conflict was on this key
        return same_or_conflict(stored)
    if leg is not None and purpose in CLOSING_PURPOSES and leg.state is L.LegState.OPEN:
        L.transition_in(conn, leg.leg_id, L.LegState.CLOSING, now_ms=now_ms)
    if built:  # exactly the row just inserted, parsed as Intent.from_row would parse it (no read-back needed)
        return _recorded(conn, _built_intent(req, account, strategy, purpose, leg_id, candle_ts, now_ms))
    got = fetch_intent(conn, req.client_id)
    assert got is not None
    _indexed(conn, got)
    return got


def _built_intent(req: OrderRequest, account: str, strategy: str, purpose: str, leg_id: str | None,
                  candle_ts: int | None, now_ms: int) -> Intent:
    """The pending intent of ``req`` exactly as its inserted row reads back (Intent.from_row)."""
    def dec(v: str | None) -> Decimal | None:
        return None if v is None else D(v)

    return Intent(req.client_id, account, strategy, req.symbol, purpose, leg_id, Side(req.side.value),
                  PositionSide(req.position_side.value), OrderType(req.order_type.value), dec(_s(req.qty)),
                  dec(_s(req.price)), dec(_s(req.trigger_price)), bool(int(req.reduce_only)),
                  bool(int(req.close_position)), bool(int(req.is_algo)), candle_ts, "pending", None, D("0"), None,
                  None, now_ms, now_ms)


def _recorded(conn: Any, intent: Intent) -> Intent:
    """A just-inserted intent, built as stored: into the memo and its leg's list."""
    _remember(conn, intent)
    _indexed(conn, intent)
    return intent


def record_entry(store: Store, req: OrderRequest, *, account: str, strategy: str, direction: Direction,
                 position_mode: PositionMode, candle_ts: int, now_ms: int, stop_price: Decimal | None = None,
                 take_profit: Decimal | None = None, entry_reason: str = "") -> tuple[Intent, L.Leg]:
    """Record an entry intent and the pending leg it opens, in one transaction (leg id from the client id).
    Idempotent like :func:`record_intent`."""
    direction = Direction(direction)
    pside = L.position_side_for(direction, position_mode)
    if req.side is not direction.entry_side:
        raise LedgerError(f"entry {req.client_id}: a {direction} entry is a {direction.entry_side}, not {req.side}")
    if req.position_side is not pside:
        raise LedgerError(f"entry {req.client_id}: position side must be {pside} in {position_mode} mode, "
                          f"got {req.position_side}")
    if req.reduce_only or req.close_position:
        raise LedgerError(f"entry {req.client_id}: an entry cannot be reduce-only or close-position")
    leg_id = L.leg_id_for(req.client_id)
    with store.tx() as c:
        leg = L.insert_leg(c, leg_id=leg_id, account=account, symbol=req.symbol, strategy=strategy,
                           direction=direction, position_side=pside, now_ms=now_ms, entry_ts=candle_ts,
                           stop_price=stop_price, take_profit=take_profit, entry_reason=entry_reason)
        intent = record_intent(store, req, account=account, strategy=strategy, purpose="entry",
                               candle_ts=candle_ts, now_ms=now_ms, leg_id=leg_id, conn=c)
    return intent, leg


def _set_state(conn: sqlite3.Connection, intent: Intent, state: str, now_ms: int, **cols: Any) -> Intent:
    """Move an intent to ``state`` (checked against the state machine) writing ``cols`` too. On a backtest's memo
    store inside its batch the row is not written now: its new image is kept (:func:`_keep`)."""
    if intent.state in TERMINAL:
        if state != intent.state:
            raise IllegalTransition(f"intent {intent.client_id} is {intent.state} (final); cannot become {state}")
    elif state not in _NEXT[intent.state]:
        raise IllegalTransition(f"intent {intent.client_id}: {intent.state} → {state} is not allowed")
    built = type(now_ms) is int and all(k in _AS_STORED and (v is None or type(v) is str) for k, v in cols.items())
    if built and batched(conn):
        written = True  # kept below, once built: ``intent`` was read from the memo or the file, so the row exists
    else:
        sets = ["state = ?", "updated_ms = ?"] + [f"{k} = ?" for k in cols]
        written = conn.execute(f"UPDATE order_intents SET {', '.join(sets)} WHERE client_id = ?",
                               (state, now_ms, *cols.values(), intent.client_id)).rowcount == 1
    if written and built:
        # the row is exactly the intent with these columns replaced: build it instead of reading it back (the
        # values are str/None into TEXT columns and an int into an INTEGER one, so SQLite stores them unchanged)
        out = _INTENT_FIELDS(intent)  # the fields in order; replaced by position (dataclasses.replace is slow)
        vals = list(out)
        vals[_INTENT_AT["state"]] = state
        vals[_INTENT_AT["updated_ms"]] = now_ms
        for k, v in cols.items():
            vals[_INTENT_AT[k]] = _AS_STORED[k](v)
        out = Intent(*vals)
        if batched(conn):
            _keep(conn, out)
        return _remember(conn, out)
    _forget(conn, intent.client_id)  # re-read what SQLite stored, then remember that
    out = fetch_intent(conn, intent.client_id)
    assert out is not None
    return out


#: the order_intents row written from an intent's image (every column; the key's row keeps its rowid)
_COLUMNS = ("client_id", "account", "strategy", "symbol", "purpose", "leg_id", "side", "position_side", "order_type",
            "qty", "price", "trigger_price", "reduce_only", "close_position", "is_algo", "candle_ts", "state",
            "exchange_order_id", "filled_qty", "avg_price", "error", "created_ms", "updated_ms")
_UPSERT = (f"INSERT INTO order_intents({', '.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})"
           f" ON CONFLICT(client_id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in _COLUMNS[1:])}")


def _row(it: Intent) -> tuple:
    """The intent as its row stores it (text for decimals, 0/1 for flags): what from_row reads back as ``it``."""
    def t(v: Decimal | None) -> str | None:
        return None if v is None else format(v, "f")

    return (it.client_id, it.account, it.strategy, it.symbol, it.purpose, it.leg_id, it.side.value,
            it.position_side.value, it.order_type.value, t(it.qty), t(it.price), t(it.trigger_price),
            int(it.reduce_only), int(it.close_position), int(it.is_algo), it.candle_ts, it.state,
            it.exchange_order_id, t(it.filled_qty), t(it.avg_price), it.error, it.created_ms, it.updated_ms)


def _keep(conn: Any, intent: Intent) -> None:
    """Inside a backtest's batch: keep the intent's row image instead of writing each change (an order's intent is
    recorded, marked sent and answered within one call of the paper gateway — three writes of one row). The image
    is written before any statement that names the table, at the commit, or replaced by the next change
    (:func:`albra.store.db.defer_write`, which also follows rollbacks)."""
    defer_write(conn, "order_intents", intent.client_id, _UPSERT, _row(intent))


_INTENT_FIELDS = attrgetter(*(f.name for f in fields(Intent)))
_INTENT_AT = {f.name: i for i, f in enumerate(fields(Intent))}
#: how each column _set_state may write reads back into an Intent field (as Intent.from_row parses it)
_AS_STORED: dict[str, Any] = {
    "exchange_order_id": lambda v: v, "error": lambda v: v, "filled_qty": lambda v: D(v),
    "avg_price": lambda v: None if v is None else D(v),
}


def _require(conn: sqlite3.Connection, client_id: str) -> Intent:
    it = fetch_intent(conn, client_id)
    if it is None:
        raise LedgerError(f"no order intent with client id {client_id!r}")
    return it


def mark_sent(store: Store, client_id: str, *, now_ms: int) -> Intent:
    """The order is about to go on the wire (call right before sending)."""
    if store.memo is not None and batched(store._conn):
        # a backtest's batch: one kept row image (or one statement), nothing to roll back — no savepoint around it
        with store._lock:
            return _set_state(store._conn, _require(store._conn, client_id), "sent", now_ms)
    with store.tx() as c:
        return _set_state(c, _require(c, client_id), "sent", now_ms)


def mark_unknown(store: Store, client_id: str, error: str, *, now_ms: int) -> Intent:
    """The placement's result was not seen (timeout, 5xx, junk): resolve by looking the id up, never re-send."""
    with store.tx() as c:
        return _set_state(c, _require(c, client_id), "unknown", now_ms, error=str(error)[:500])


def _after_final(conn: sqlite3.Connection, intent: Intent, now_ms: int) -> None:
    """Leg consequences of an order that ended: an entry that never filled closes its pending leg; a full exit
    that ended without emptying the leg puts the leg back to ``open`` (unless another exit is still working)."""
    if intent.leg_id is None or intent.state not in TERMINAL:
        return
    leg = L.fetch_leg(conn, intent.leg_id)
    if leg is None:
        return
    if intent.purpose == "entry" and leg.state is L.LegState.PENDING and leg.qty == 0 and intent.filled_qty == 0:
        if intent.state == "rejected":
            L.transition_in(conn, leg.leg_id, L.LegState.FAILED, now_ms=now_ms, close_reason="entry rejected")
        elif intent.state in ("canceled", "expired", "not_found"):
            L.transition_in(conn, leg.leg_id, L.LegState.CANCELLED, now_ms=now_ms,
                            close_reason=f"entry {intent.state}")
    elif (intent.purpose in CLOSING_PURPOSES and leg.state is L.LegState.CLOSING and leg.qty > 0
          and intent.state != "filled"):
        others = conn.execute(
            "SELECT COUNT(*) FROM order_intents WHERE leg_id = ? AND client_id != ? AND purpose IN"
            " ('exit', 'close', 'emergency') AND state IN ('pending', 'sent', 'unknown', 'open')",
            (leg.leg_id, intent.client_id)).fetchone()[0]
        if not others:
            L.transition_in(conn, leg.leg_id, L.LegState.OPEN, now_ms=now_ms)


def mark_outcome(store: Store, result: OrderResult, *, now_ms: int) -> Intent:
    """Record what the exchange says about the intent's order (placement answer or a lookup)."""
    state = _STATUS_TO_STATE[OrderStatus(result.status)]
    with store.tx() as c:
        intent = _require(c, result.client_id)
        if result.symbol != intent.symbol or result.side is not intent.side:
            raise IntentConflict(f"exchange order {result.exchange_id} for {result.client_id} is a {result.side} on "
                                 f"{result.symbol}, the intent is a {intent.side} on {intent.symbol}")
        out = _set_state(c, intent, state, now_ms, exchange_order_id=result.exchange_id,
                         filled_qty=_s(result.filled_qty), avg_price=_s(result.avg_price))
        _after_final(c, out, now_ms)
        return out


def mark_rejected(store: Store, client_id: str, error: str, *, now_ms: int) -> Intent:
    """The exchange answered the placement with a definite refusal (a Fatal error): nothing is on the book."""
    with store.tx() as c:
        out = _set_state(c, _require(c, client_id), "rejected", now_ms, error=str(error)[:500])
        _after_final(c, out, now_ms)
        return out


def mark_not_found(store: Store, client_id: str, *, now_ms: int, note: str = "") -> Intent:
    """The exchange positively does not know the id: the order never reached the book."""
    with store.tx() as c:
        out = _set_state(c, _require(c, client_id), "not_found", now_ms, error=note or None)
        _after_final(c, out, now_ms)
        return out


def mark_filled_late(conn: sqlite3.Connection, intent: Intent, *, now_ms: int, order_id: str,
                     note: str) -> Intent:
    """An intent recorded ``not_found`` whose order executed after all (a fill names it): ``filled``, with the
    exchange order id and a note. The one way out of a final state, for the same reason as
    :func:`albra.ledger.legs.reopen_given_up`: the lookups that said "not found" are bounded, Binance's -1007 is not."""
    if intent.state != "not_found":
        raise IllegalTransition(f"intent {intent.client_id} is {intent.state}; only a not_found one can turn up late")
    conn.execute("UPDATE order_intents SET state = 'filled', updated_ms = ?, exchange_order_id = COALESCE(?, "
                 "exchange_order_id), error = ? WHERE client_id = ?", (now_ms, order_id or None, note[:500],
                                                                      intent.client_id))
    _forget(conn, intent.client_id)
    out = fetch_intent(conn, intent.client_id)
    assert out is not None
    return out


def mark_gone(store: Store, client_id: str, *, now_ms: int, note: str) -> Intent:
    """The exchange no longer knows (or lists) an order. For an intent without a known outcome that means it never
    reached the book (``not_found``). For one recorded ``open`` it was on the book and left it without a fill we saw
    — cancelled by hand, expired, purged from the exchange's history — so it ends ``canceled`` with ``note`` (an
    order once open cannot become "never existed"). A final intent is returned unchanged."""
    with store.tx() as c:
        it = _require(c, client_id)
        if it.state in TERMINAL:
            return it
        if it.state == "open":
            out = _set_state(c, it, "canceled", now_ms, error=f"gone from the exchange: {note}"[:500])
        else:
            out = _set_state(c, it, "not_found", now_ms, error=note or None)
        _after_final(c, out, now_ms)
        return out


def next_generation(store: Store, leg_id: str, purpose: str) -> int:
    """The generation for the next intent of ``purpose`` on a leg (0 for the first): one more than every
    generation already recorded, so a replacement never reuses an id."""
    if store.memo is not None:
        return len(intents_of_leg(store, leg_id, purpose))
    r = store.query_one("SELECT COUNT(*) AS n FROM order_intents WHERE leg_id = ? AND purpose = ?", (leg_id, purpose))
    return int(r["n"]) if r else 0


def unresolved_by_symbol(intents: Sequence[Intent]) -> dict[str, int]:
    """Count of unresolved intents per symbol (reconciliation uses it to explain differences)."""
    out: dict[str, int] = {}
    for i in intents:
        if i.unresolved:
            out[i.symbol] = out.get(i.symbol, 0) + 1
    return out
