"""Intents without a known outcome, settled by looking them up (start-up, every reconciliation round).

A pending/sent/unknown intent is looked up by its client id, spaced over a bounded time (never one lookup: an
order accepted a moment ago is not visible at once), and its outcome recorded; an executed one gets its fills
applied from trade history by its own order ids. Nothing is ever sent here: an intent the exchange positively
does not know was never placed and stays that way (at most once: docs/ops.md "Crash recovery" says why).
"""

from __future__ import annotations

from dataclasses import replace

from albra.exchange import errors as X
from albra.exchange.resolve import await_fills, resolve_unknown
from albra.exchange.types import Gateway
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.ledger.fills import LATE_ENTRY, apply_fill
from albra.ledger.protection import link_protection
from albra.orders.manager import order_fills
from albra.model import OrderStatus
from albra.store import journal
from albra.store.db import Store


async def resolve_unresolved(store: Store, gateway: Gateway, account: str, *, now_ms: int,
                             trade_lookback_ms: int = 600_000) -> list[I.Resolution]:
    """Look up every pending/sent/unknown intent of ``account`` by client id and record what the exchange says.

    Regular orders with executions get their fills applied (trades since the intent's creation minus
    ``trade_lookback_ms`` for clock skew, matched by exchange order id or client id). Nothing is ever sent.
    A failed exchange read leaves that intent — and the other intents of its symbol — unresolved (unknown is not
    empty) and is journaled; the other symbols are still resolved: one unreadable symbol does not stop the round
    (the reconciler leaves a symbol with unresolved intents alone). When every read failed, the last error
    propagates: the exchange is unreachable, not one record.
    """
    out: list[I.Resolution] = []
    failed: dict[str, Exception] = {}
    pending = I.unresolved(store, account)
    for intent in pending:
        if intent.symbol in failed:
            continue
        # spaced lookups: a just-accepted order is not visible at once (one lookup would call it never placed)
        try:
            found = await resolve_unknown(gateway, intent.symbol, intent.client_id, intent.is_algo)
        except X.ExchangeError as e:
            failed[intent.symbol] = e
            journal.append(store, "intent_unresolved", f"{intent.symbol}: looking up {intent.client_id} failed "
                           f"({type(e).__name__}: {e}); the symbol's intents stay unresolved, the others go on",
                           level="WARNING", account=account, strategy=intent.strategy, symbol=intent.symbol,
                           data={"client_id": intent.client_id, "error": type(e).__name__}, ts=now_ms)
            continue
        applied = 0
        if found is None:
            after = I.mark_not_found(store, intent.client_id, now_ms=now_ms,
                                     note=f"exchange does not know this id (was {intent.state})")
        elif found.is_algo and found.status is OrderStatus.TRIGGERED:
            after = intent  # TRIGGERING / TRIGGERED: fired, child not done — not final; a later sync resolves it
        else:
            after = I.mark_outcome(store, found, now_ms=now_ms)
            # the order's own trade rows (a fired conditional's: its child's), never guessed
            trades = await order_fills(gateway, intent, found, lambda: now_ms, lookback_ms=trade_lookback_ms)
            applied = sum(1 for t in trades if apply_fill(store, account, t, now_ms=now_ms).applied)
        if intent.leg_id and intent.purpose in I.PROTECTIVE_PURPOSES and after.state == "open":
            # a replacement interrupted between its placement and its ledger update: the leg names an older
            # generation. Point it at the newest open one (older live ones are the engine's to cancel).
            link_protection(store, intent.leg_id, now_ms=now_ms)
        leg = L.get_leg(store, intent.leg_id) if intent.leg_id else None
        res = I.Resolution(intent.client_id, intent.state, after.state, applied, intent.leg_id,
                         leg.state.value if leg else None)
        journal.append(store, "intent_resolved",
                       f"intent {intent.client_id} ({intent.purpose}) {intent.state} → {after.state}"
                       + (f", {applied} fill(s) applied" if applied else "")
                       + ("; it was never sent (crash before sending) and is not sent now: at most once"
                          if intent.state == "pending" and after.state == "not_found" else ""),
                       level="WARNING" if after.state == "not_found" else "INFO", account=account,
                       strategy=intent.strategy, symbol=intent.symbol,
                       data={"client_id": intent.client_id, "before": intent.state, "after": after.state,
                             "fills": applied, "leg_id": intent.leg_id}, ts=now_ms)
        out.append(res)
    if failed and not out and len(failed) == len({i.symbol for i in pending}):
        raise next(iter(failed.values()))  # nothing could be read at all: the caller's round is skipped
    await apply_answered_entries(store, gateway, account, now_ms=now_ms, lookback_ms=trade_lookback_ms)
    return out


async def apply_answered_entries(store: Store, gateway: Gateway, account: str, *, now_ms: int,
                                  lookback_ms: int) -> None:
    """Entries whose answer was recorded (filled) but whose trade rows never reached their leg — a crash between
    the answer and the rows (the stop goes out on the answer, the rows a moment later): apply the rows now, found
    by the entry's exchange order id, so the leg opens instead of the position being adopted as unattributed."""
    rows = store.query("SELECT i.client_id FROM order_intents i JOIN legs g ON g.leg_id = i.leg_id WHERE i.account = ?"
                       " AND i.purpose = 'entry' AND i.state = 'filled' AND g.state = 'pending'", (account,))
    for r in rows:
        intent = I.get_intent(store, r["client_id"])
        if intent is None or not intent.exchange_order_id:
            continue
        oid = str(intent.exchange_order_id)
        trades = await await_fills(gateway, intent.symbol, max(0, intent.created_ms - lookback_ms), lambda: now_ms,
                                   lambda t: str(t.order_id) == oid, intent.filled_qty or None)
        applied = sum(1 for t in trades if apply_fill(store, account, t, now_ms=now_ms).applied)
        journal.append(store, "entry_fills_applied", f"entry {intent.client_id}: {applied} fill(s) of its recorded "
                       "answer applied at resolution (they had not reached the leg)", level="WARNING",
                       account=account, strategy=intent.strategy, symbol=intent.symbol,
                       data={"client_id": intent.client_id, "fills": applied}, ts=now_ms)


#: how long an entry given up as never placed is looked up again: Binance's -1007 ("execution status unknown")
#: and timed-out orders can execute after the answer; the spaced lookups that gave it up cover seconds, this
#: covers the rest. One lookup per given-up entry per reconciliation round (they are rare).
GIVEN_UP_RECHECK_MS = 3_600_000


async def recheck_given_up_entries(store: Store, gateway: Gateway, account: str, *, now_ms: int,
                                   window_ms: int = GIVEN_UP_RECHECK_MS) -> list[str]:
    """Look up once more every entry recorded ``not_found`` in the last ``window_ms``; one the exchange now shows
    executed gets its fills applied by its order id, which reopens its leg (:func:`albra.ledger.fills.apply_fill`,
    journaled CRITICAL). Returns the leg ids reopened; the caller protects them at once (the reconciler's
    protection step does, in the same round). A failed lookup propagates (the round is skipped, nothing changed)."""
    rows = store.query("SELECT i.client_id FROM order_intents i JOIN legs g ON g.leg_id = i.leg_id WHERE"
                       " i.account = ? AND i.purpose = 'entry' AND i.state = 'not_found' AND g.state = 'cancelled'"
                       " AND g.close_reason = ? AND i.updated_ms >= ?", (account, L.GIVEN_UP_REASON,
                                                                       now_ms - window_ms))
    reopened: list[str] = []
    for r in rows:
        intent = I.get_intent(store, r["client_id"])
        if intent is None:
            continue
        found = await gateway.fetch_order(intent.symbol, intent.client_id, False)
        if found is None or found.filled_qty <= 0:
            continue
        trades = await order_fills(gateway, intent, found, lambda: now_ms, lookback_ms=60_000)
        # trade rows carry the order id, not our client id, and the given-up intent never learned the order id:
        # the lookup by client id just tied the two, so the rows are tagged with the client id they belong to
        results = [apply_fill(store, account, replace(t, client_id=t.client_id or intent.client_id), now_ms=now_ms)
                   for t in trades]
        if any(res.note == LATE_ENTRY for res in results) and intent.leg_id:
            reopened.append(intent.leg_id)
    return reopened
