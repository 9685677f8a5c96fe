"""One account's order lifecycle: send a recorded intent, resolve an unknown outcome, cancel, apply fills.

Why one class: the same lifecycle used to be written three times (executor, ledger protection, emergency) with
three answers to "the placement's answer was lost" — one of them a single lookup that called a just-accepted order
"never placed" and sent a second stop. Here there is one answer for every order:

* **Write-ahead.** The caller records the intent (``albra.ledger.intents``) before :meth:`OrderManager.submit`;
  an intent that is not ``pending`` is never sent again (a re-evaluated candle after a crash resolves it instead).
* **Unknown outcome** (timeout, 5xx, dropped connection, -1007): the intent is marked ``unknown`` and looked up by
  client id, spaced over a bounded time (an order accepted a moment ago is not visible at once on Binance: "REST
  query delays" on the User Data Streams page). Only positively "unknown order" on every lookup makes it
  ``not_found``; a failed lookup leaves it unknown for the reconciler and the event stream to settle. Never
  re-sent under the same id.
* **Refusal** (Fatal: -2021, -2022, -4164 …): recorded ``rejected``, journaled, alerted; :meth:`submit` re-raises
  it for callers that act on it, :meth:`place` returns the recorded intent instead.
* **Fills** come from trade history matched by the order's own ids (a fired conditional's trades by its child
  order id), read until they are all there (bounded), never guessed from price and side.
* **Cancel** of a protective order that answers "unknown": it fired or is not visible yet — spaced lookups; a
  fired one (TRIGGERING/TRIGGERED are not final) waits, bounded, for FINISHED and then its child's fills say
  whether it executed.

Journal and alert hooks are the caller's (the executor passes its own, so every order of a runner is journaled
with the crash suite's journal point and alerted); :class:`~albra.orders.manager.OrderManager` itself never
decides what a leg should do next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

from albra.crashpoints import crashpoint
from albra.exchange import errors as X
from albra.exchange.resolve import await_fills, pause, resolve_unknown
from albra.exchange.types import Gateway, OrderRequest, OrderResult
from albra.ledger import intents as I
from albra.ledger.fills import apply_fill
from albra.model import Fill, OrderStatus
from albra.store import journal as J
from albra.store.db import Store

log = logging.getLogger("albra.orders")

#: the kinds ``cancel_all`` takes: regular orders, algo (conditional) orders, or both
CANCEL_KINDS = ("both", "regular", "algo")


class JournalFn(Protocol):
    def __call__(self, kind: str, message: str, *, level: str = "INFO", strategy: str = "", symbol: str = "",
                 data: dict | None = None) -> None: ...


class Counters(Protocol):
    orders_sent: int
    errors: int


@dataclass(frozen=True, slots=True)
class GuardedSend:
    """What :meth:`OrderManager.send_guarded` learned: ``status`` is the exchange's order status value, or
    ``rejected`` / ``unknown`` / ``not_found``; ``error`` the refusal or failure text."""

    status: str
    result: OrderResult | None = None
    error: str = ""


class OrderManager:
    """Sends, resolves and cancels one account's orders (module docstring). ``journal``/``alert`` default to a
    plain journal line and no alert."""

    def __init__(self, store: Store, gateway: Gateway, account: str, now_ms: Callable[[], int], *,
                 journal: JournalFn | None = None, alert: Callable[..., None] | None = None,
                 stats: Counters | None = None) -> None:
        self.store = store
        self.gw = gateway
        self.account = account
        self.now_ms = now_ms
        self._journal_fn = journal
        self._alert_fn = alert
        self.stats = stats
        # spacing of the lookups that resolve an unknown outcome (3 lookups: 0, +s, +2s) and of the reads that wait
        # for an answered fill to reach trade history (0.1, 0.2, 0.4, 0.8 s): Binance's REST views lag its answers
        self.lookup_spacing_s = 0.5
        self.fill_spacing_s = 0.1

    # ------------------------------------------------------------------ hooks
    def _journal(self, kind: str, message: str, *, level: str = "INFO", strategy: str = "", symbol: str = "",
                 data: dict | None = None) -> None:
        if self._journal_fn is not None:
            self._journal_fn(kind, message, level=level, strategy=strategy, symbol=symbol, data=data)
            return
        J.append(self.store, kind, message, level=level, account=self.account, strategy=strategy, symbol=symbol,
                 data=data, ts=self.now_ms())

    def _alert(self, kind: str, event_id: str, message: str, **kw: Any) -> None:
        if self._alert_fn is not None:
            self._alert_fn(kind, event_id, message, **kw)

    def _count(self, name: str) -> None:
        if self.stats is not None:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # ------------------------------------------------------------------ sending
    async def send(self, intent: I.Intent) -> OrderResult | None:
        """Send a recorded intent once. Returns the exchange's view, or None when it is not (yet) known."""
        return (await self.submit(intent))[0]

    async def submit(self, intent: I.Intent) -> tuple[OrderResult | None, I.Intent | None]:
        """:meth:`send`, plus the intent as its placement answer was recorded (None on any other path). An intent
        already sent (``sent``/``unknown``) is resolved, never sent again; one with an outcome is left alone.
        Raises :class:`~albra.exchange.errors.Fatal` after recording the refusal, and a retryable
        :class:`~albra.exchange.errors.ExchangeError` (429, an open breaker) after marking the intent unknown."""
        if intent.state != "pending":
            if intent.state in ("sent", "unknown"):
                return await self.resolve(intent), None
            return None, None  # already has an outcome: never sent twice
        crashpoint("after_intent_commit")
        I.mark_sent(self.store, intent.client_id, now_ms=self.now_ms())
        self._count("orders_sent")
        try:
            res = await self.gw.place_order(intent.request())
            crashpoint("after_order_sent")
        except X.OutcomeUnknown as e:
            I.mark_unknown(self.store, intent.client_id, str(e), now_ms=self.now_ms())
            self._journal("order_outcome_unknown", f"{intent.purpose} {intent.client_id}: outcome unknown ({e}); "
                          "looking it up by client id", level="WARNING", strategy=intent.strategy,
                          symbol=intent.symbol, data={"client_id": intent.client_id, "error": type(e).__name__})
            self._alert("order_unknown", f"order_unknown:{intent.client_id}",
                        f"{intent.purpose} {intent.client_id}: outcome unknown, looking it up by client id",
                        strategy=intent.strategy, symbol=intent.symbol)
            crashpoint("order_unknown_before_lookup")
            return await self.resolve(I.get_intent(self.store, intent.client_id) or intent), None
        except X.Fatal as e:
            self._count("errors")
            I.mark_rejected(self.store, intent.client_id, f"{type(e).__name__}: {e}", now_ms=self.now_ms())
            self._journal("order_rejected", f"{intent.purpose} {intent.client_id} rejected: {e}", level="ERROR",
                          strategy=intent.strategy, symbol=intent.symbol,
                          data={"client_id": intent.client_id, "code": e.code})
            self._alert("order_rejected", f"order_rejected:{intent.client_id}",
                        f"{intent.purpose} order rejected: {e}", strategy=intent.strategy, symbol=intent.symbol)
            raise
        except X.ExchangeError as e:
            # retryable but not retried for a placement (429/418, a breaker refusing, -1021 past its retry): most
            # likely nothing was placed, but only a lookup by id can say — the reconciler resolves it
            I.mark_unknown(self.store, intent.client_id, str(e), now_ms=self.now_ms())
            self._journal("order_outcome_unknown", f"{intent.purpose} {intent.client_id}: placement failed ({e}); "
                          "left for resolution by client id", level="WARNING", strategy=intent.strategy,
                          symbol=intent.symbol, data={"client_id": intent.client_id, "error": type(e).__name__})
            raise
        return res, I.mark_outcome(self.store, res, now_ms=self.now_ms())

    async def place(self, intent: I.Intent) -> I.Intent:
        """:meth:`submit` for callers that read the outcome from the recorded intent (``open``, ``filled``,
        ``rejected``, ``not_found``, ``unknown``) instead of catching exchange errors."""
        try:
            _, recorded = await self.submit(intent)
        except X.ExchangeError:
            recorded = None
        if recorded is not None:
            return recorded
        return I.get_intent(self.store, intent.client_id) or intent

    async def resolve(self, intent: I.Intent) -> OrderResult | None:
        """What happened to an intent, by its client id (never by sending it again): lookups spaced over a bounded
        time, never one. A failed lookup leaves the intent unresolved (unknown is not "not found")."""
        try:
            found = await resolve_unknown(self.gw, intent.symbol, intent.client_id, intent.is_algo,
                                          spacing_s=self.lookup_spacing_s)
        except X.ExchangeError as e:
            self._journal("intent_unresolved", f"{intent.client_id}: lookup failed ({e}); stays unresolved",
                          level="WARNING", strategy=intent.strategy, symbol=intent.symbol)
            return None
        if found is None:
            I.mark_not_found(self.store, intent.client_id, now_ms=self.now_ms(), note="lookup after unknown outcome")
            self._journal("order_resolved", f"{intent.purpose} {intent.client_id}: the exchange does not know it "
                          "(never placed)", level="WARNING", strategy=intent.strategy, symbol=intent.symbol,
                          data={"client_id": intent.client_id, "state": "not_found"})
            return None
        after = I.mark_outcome(self.store, found, now_ms=self.now_ms())
        self._journal("order_resolved", f"{intent.purpose} {intent.client_id}: found on the exchange, "
                      f"{found.status.value} → {after.state}", level="INFO", strategy=intent.strategy,
                      symbol=intent.symbol, data={"client_id": intent.client_id, "state": after.state})
        return found

    # ------------------------------------------------------------------ fills
    async def apply_fills(self, intent: I.Intent, res: OrderResult, close_reason: str | None = None) -> int:
        """Apply the trades of ``res`` to the ledger (:func:`order_fills`). Returns how many rows it found.
        ``close_reason``: why the leg closed if these fills close it (a strategy's exit tag; default the purpose)."""
        trades = await order_fills(self.gw, intent, res, self.now_ms, lookback_ms=60_000,
                                   spacing_s=self.fill_spacing_s, attempts=7 if res.actual_order_id else 5)
        for t in trades:
            apply_fill(self.store, self.account, t, now_ms=self.now_ms(), close_reason=close_reason)
        if not trades and not res.is_algo and res.filled_qty > 0:
            self._journal("fills_missing", f"{intent.client_id} reports {res.filled_qty} filled but no trade row "
                          f"matched yet; the next sync applies it", level="WARNING", strategy=intent.strategy,
                          symbol=intent.symbol)
        return len(trades)

    async def record_fired(self, intent: I.Intent, res: OrderResult) -> bool:
        """A protective order the exchange reports FINISHED (or filled): apply its child's fills, then record it.
        FINISHED means filled *or* its child was cancelled/expired in the matching engine — the child's fills tell
        which (read before the intent is recorded, so a crash in between re-reads them); with nothing executed it
        is recorded EXPIRED. Returns whether it executed."""
        if await self.apply_fills(intent, res) == 0 and res.is_algo:
            I.mark_outcome(self.store, replace(res, status=OrderStatus.EXPIRED), now_ms=self.now_ms())
            return False
        I.mark_outcome(self.store, res, now_ms=self.now_ms())
        return True

    # ------------------------------------------------------------------ cancelling
    async def cancel(self, intent: I.Intent) -> bool:
        """Cancel one intent's order and record its final state; a ``pending`` one (never sent) is marked not
        found, one already final is left as is. Returns whether it had fired (its fills are then applied; a
        fired order whose child is still working stays open for the next sync)."""
        if intent.state in I.TERMINAL:
            return intent.state == "filled"
        if intent.state == "pending":
            I.mark_not_found(self.store, intent.client_id, now_ms=self.now_ms(), note="superseded before sending")
            return False
        res = await self.gw.cancel_order(intent.symbol, intent.client_id, intent.is_algo)
        if res is None:  # unknown to the cancel: fired, or not visible yet — spaced lookups, never one
            res = await resolve_unknown(self.gw, intent.symbol, intent.client_id, intent.is_algo,
                                        spacing_s=self.lookup_spacing_s)
            if res is None:
                I.mark_gone(self.store, intent.client_id, now_ms=self.now_ms(), note="gone at cancel")
                return False
        for i in range(5):  # fired: TRIGGERING / TRIGGERED are not final — wait (bounded) for FINISHED
            if res.status is not OrderStatus.TRIGGERED:
                break
            await pause(0.1 * 2 ** i)
            res = await resolve_unknown(self.gw, intent.symbol, intent.client_id, intent.is_algo,
                                        spacing_s=self.lookup_spacing_s) or res
        if res.status is OrderStatus.TRIGGERED:
            return True  # fired, its child still working: the intent stays open for the next sync to settle
        if res.status is OrderStatus.FILLED or (res.filled_qty > 0 and not res.is_algo):
            return await self.record_fired(intent, res)
        I.mark_outcome(self.store, res, now_ms=self.now_ms())
        return False

    async def cancel_orphan(self, intent: I.Intent) -> OrderResult | None:
        """Cancel an order of ours the exchange lists open although its leg is gone (the reconciler's orphan
        sweep) — whatever the ledger believes of it: a final intent with a live order means the ledger is wrong,
        and a stop of a closed leg can only sell another strategy's share when it fires."""
        res = await self.gw.cancel_order(intent.symbol, intent.client_id, intent.is_algo)
        if intent.state not in I.TERMINAL and res is not None:
            I.mark_outcome(self.store, res, now_ms=self.now_ms())
        return res

    async def cancel_entries(self) -> int:
        """Shutdown step: cancel the account's entry orders still working (protective orders stay)."""
        n = 0
        for r in self.store.query("SELECT client_id FROM order_intents WHERE account=? AND purpose='entry' AND"
                                  " state IN ('open', 'sent', 'unknown')", (self.account,)):
            it = I.get_intent(self.store, r["client_id"])
            if it is None:
                continue
            res = await self.gw.cancel_order(it.symbol, it.client_id, False)
            if res is not None:
                I.mark_outcome(self.store, res, now_ms=self.now_ms())
                n += 1
        return n

    async def cancel_foreign(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        """Cancel an order albra has no intent for (placed by hand or by another bot), on the operator's explicit
        request (``reconcile --apply --cancel-unknown``); journaled."""
        res = await self.gw.cancel_order(symbol, client_id, is_algo)
        self._journal("foreign_order_cancelled", f"cancelled unknown order {client_id} on {symbol}", level="WARNING",
                      symbol=symbol, data={"client_id": client_id, "is_algo": is_algo})
        return res

    async def cancel_all(self, symbol: str, kinds: str = "both") -> None:
        """Cancel every order of ``kinds`` on ``symbol`` (emergency: one request per kind). Errors propagate."""
        if kinds not in CANCEL_KINDS:
            raise ValueError(f"kinds must be one of {CANCEL_KINDS}, got {kinds!r}")
        await self.gw.cancel_all(symbol, kinds)

    # ------------------------------------------------------------------ emergency closes
    async def send_guarded(self, req: OrderRequest, *, strategy: str, purpose: str, candle_ts: int,
                           leg_id: str | None, db: Callable[[str, Callable[[Store], Any]], Any],
                           lookups: int = 2, spacing_s: float = 0.2) -> GuardedSend:
        """Send one order whose bookkeeping may fail (emergency-shutdown: the exchange is the source of truth and
        a broken store must not stop a close). ``db(what, fn)`` runs ``fn(store)`` and swallows a store failure
        (reporting it); the lifecycle is the same as :meth:`submit`: write-ahead, an unknown outcome looked up by
        client id (fewer, shorter lookups: the next round re-reads the position anyway), never re-sent."""
        from albra.ledger.errors import LedgerError

        now = self.now_ms()
        error = ""
        try:
            db("record intent", lambda s: I.record_intent(s, req, account=self.account, strategy=strategy,
                                                          purpose=purpose, candle_ts=candle_ts, now_ms=now,
                                                          leg_id=leg_id))
            db("mark sent", lambda s: I.mark_sent(s, req.client_id, now_ms=now))
        except LedgerError as e:  # e.g. the leg moved on meanwhile: close without binding to it
            error = f"intent not recorded ({e}); sent unbound"
        self._count("orders_sent")
        try:
            res = await self.gw.place_order(req)
        except X.Fatal as e:
            msg = f"{type(e).__name__}: {str(e)[:200]}"
            db("mark rejected", lambda s: I.mark_rejected(s, req.client_id, msg, now_ms=self.now_ms()))
            return GuardedSend("rejected", None, msg)
        except X.ExchangeError as e:
            msg = f"{type(e).__name__}: {str(e)[:200]}"
            db("mark unknown", lambda s: I.mark_unknown(s, req.client_id, msg, now_ms=self.now_ms()))
            try:
                found = await resolve_unknown(self.gw, req.symbol, req.client_id, False, attempts=lookups,
                                              spacing_s=spacing_s)
            except X.ExchangeError as e2:
                return GuardedSend("unknown", None, f"outcome unknown and lookup failed: {e2}"[:300])
            if found is None:
                db("mark not found", lambda s: I.mark_not_found(s, req.client_id, now_ms=self.now_ms(),
                                                                 note=f"{purpose} never reached the book"))
                return GuardedSend("not_found", None, msg)
            res = found
        db("mark outcome", lambda s: I.mark_outcome(s, res, now_ms=self.now_ms()))
        return GuardedSend(res.status.value, res, error)


async def order_fills(gateway: Gateway, intent: I.Intent, res: OrderResult, now_ms: Callable[[], int], *,
                      lookback_ms: int, spacing_s: float = 0.1, attempts: int = 5) -> list[Fill]:
    """The trade rows of one order, read until they are all there (bounded), ready for the ledger.

    Binance's trade rows name the order id, not our client id: a regular order's rows are matched by its client id
    or exchange order id; a fired conditional order's rows carry its child order's id (``actual_order_id``) and are
    tagged here with the algo's client id, so the ledger attributes them exactly (never by guessing from price and
    side). The rows reach trade history a little after the answer (REST query delay); a fired conditional's child
    is waited for longer by its callers, since finding nothing means "its child executed nothing". Nothing to read
    (no fill, or a conditional order without a child): an empty list, no request."""
    child = res.actual_order_id if res.is_algo else None
    if not child and (res.is_algo or res.filled_qty <= 0):
        return []  # nothing executed, or a conditional order without a child: no rows of its own exist

    def mine(t: Fill) -> bool:
        if child:
            return t.order_id == child
        return t.client_id == intent.client_id or bool(res.exchange_id and t.order_id == res.exchange_id)

    trades = await await_fills(gateway, intent.symbol, max(0, intent.created_ms - lookback_ms), now_ms, mine,
                               res.filled_qty if res.filled_qty > 0 else None, spacing_s=spacing_s,
                               attempts=attempts)
    if child:
        trades = [replace(t, extra={**(t.extra or {}), "algo_client_id": intent.client_id}) for t in trades]
    return trades
