"""Decisions → risk → write-ahead intent → exchange → fills → ledger → protective orders; journaled and alerted.

One executor per account, used unchanged by the live/paper runner and by backtests (driven synchronously there,
see :mod:`albra.engine.syncrun`). Rules it enforces:

* **Write-ahead, deterministic ids (invariant 1).** Every order is recorded (``albra.ledger.intents``) with a
  client id from (account, strategy, symbol, candle, purpose, generation) before it is sent. Recording an id
  that exists returns the stored intent and nothing is sent, so re-evaluating a candle after a crash cannot
  duplicate an order. ``OutcomeUnknown`` → the id is looked up (``fetch_order``), never re-sent.
* **Protection (invariant 3).** After an entry fills, a reduce-only STOP_MARKET (and TAKE_PROFIT_MARKET when the
  strategy set one) for exactly the leg's quantity goes to the algo endpoints. If the stop cannot be placed (it
  would trigger at once), the leg is closed at market: no leg stays naked. Stop moves and re-sizes go through the ledger's
  two-case protocol (:mod:`albra.orders.protection`: alone on its side → place then cancel; shared side → cancel
  then place). A partial exit shrinks the protection to the qty the leg keeps BEFORE sending the reduce (so on a
  shared side the stops never sum to more than the position) and re-sizes it to the leg's qty if the reduce filled
  otherwise. A full exit alone on its side closes first, then cancels the leg's protective orders (the position
  stays protected until it is gone); on a shared side it cancels them first, then closes.
* **Exits are reduce-only**: one-way mode sends ``reduceOnly``; hedge mode sends the leg's position side.
* **Legs per strategy (invariant 4)**: several strategies stack same-direction legs on one side; in hedge mode an
  opposite leg uses the other side; in one-way mode risk refuses it (:func:`albra.risk.evaluate_entry`, which
  journals every refusal with its rule; the executor alerts it).
* **Risk state is fresh at every entry**: the balance read for sizing also refreshes the persisted peak, daily
  anchor and MDD level, with transfers from the income history (:func:`albra.engine.risk_limits.refresh_equity`).

Leg views are cached in memory per (strategy, symbol) and refreshed from the store whenever the executor changes
a leg, so the per-candle cost of a strategy with open legs is a dict lookup, not a query.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Iterable, Sequence

from albra.crashpoints import armed, crashpoint
from albra.engine.risk_limits import refresh_equity
from albra.exchange import errors as X
from albra.exchange.client_ids import MAX_GENERATION, make_client_id
from albra.exchange.resolve import resolve_unknown
from albra.exchange.types import Gateway, OrderRequest, OrderResult
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.orders.manager import OrderManager
from albra.orders.protection import place_protective, protect_leg, replace_stop, resize_protection
from albra.risk import EntryRequest, RiskLimits, evaluate_entry
from albra.model import D, Direction, MarketFilters, OrderStatus, OrderType, PositionMode, PositionSide, Side
from albra.store import journal
from albra.store.db import Store
from albra.strategies.base import Decision, Enter, Exit, LegView, MoveStop, UpdateLegState

log = logging.getLogger("albra.engine")


@dataclass(frozen=True)
class StrategySlot:
    """How an account runs one strategy: its name, sizing and leverage."""

    name: str
    size_pct: float
    leverage: int


@dataclass
class ClosedTrade:
    """A leg that closed, for summaries (backtest) and alerts."""

    leg_id: str
    strategy: str
    symbol: str
    direction: Direction
    qty: Decimal
    entry_ts_ms: int
    exit_ts_ms: int
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    fees: Decimal
    funding: Decimal
    exit_reason: str


@dataclass
class ExecStats:
    orders_sent: int = 0
    refusals: int = 0
    errors: int = 0
    closed: list[ClosedTrade] = field(default_factory=list)


def _view(leg: L.Leg) -> LegView:
    """What a strategy sees of a leg. ``stop_price`` is the stop as it stands on the exchange (the quantised
    trigger of the live stop, which every writer of ``legs.stop_price`` records), so a strategy comparing its
    wanted stop against it sees what the exchange will do."""
    return LegView(leg.leg_id, leg.direction, float(leg.entry_price or 0), int(leg.entry_ts or 0), leg.qty_initial,
                   leg.qty, float(leg.stop_price or 0), None if leg.take_profit is None else float(leg.take_profit),
                   frozenset(leg.partial_exits), MappingProxyType(dict(leg.strategy_state)))


class Executor:
    """Executes one account's strategy decisions against a gateway and keeps the ledger in step."""

    def __init__(self, store: Store, gateway: Gateway, account: str, position_mode: PositionMode,
                 filters: dict[str, MarketFilters], slots: Iterable[StrategySlot],
                 limits_for: Callable[[str], RiskLimits], now_ms: Callable[[], int], alerts: bool = True,
                 journal_decisions: bool = True, journal_min_level: str = "DEBUG") -> None:
        """``limits_for(strategy)`` gives the strategy's effective :class:`albra.risk.RiskLimits` on this account
        (the account's own limits for ``""``); see :func:`albra.engine.risk_limits.risk_limits`.

        ``journal_min_level``: the executor's journal rows below it are not written. A backtest passes WARNING: its
        store is deleted when the run ends, so routine INFO rows (a leg closed, an order resolved) are read by
        nobody, while the ledger itself (intents, legs, fills, risk state) is written exactly as live."""
        self.store = store
        self.gw = gateway
        self.account = account
        self.mode = PositionMode(position_mode)
        self.filters = filters
        self.slots = {s.name: s for s in slots}
        self.limits_for = limits_for
        self.now_ms = now_ms
        self.alerts = alerts
        # Alert event ids dedup across processes; "" = as derived. A paper replay session after a reset sets it so
        # its alerts are not swallowed as duplicates of the previous session's (docs/adr/0006-paper-sessions.md).
        self.event_scope = ""
        self.journal_decisions = journal_decisions
        if journal_min_level not in journal.LEVELS:
            raise ValueError(f"journal_min_level must be one of {journal.LEVELS}, got {journal_min_level!r}")
        self._journal_from = journal.LEVELS.index(journal_min_level)
        self.entries_blocked = False  # set at shutdown: no new entries, exits/stops keep working
        self.stats = ExecStats()
        # every order of the account goes through the order manager (the one sender), journaled and alerted here
        self.om = OrderManager(store, gateway, account, now_ms, journal=self._journal, alert=self._alert,
                               stats=self.stats)
        self._reported_closed: set[str] = set()
        self._legs: dict[tuple[str, str], list[L.Leg]] = {}
        self._views: dict[tuple[str, str], list[LegView]] = {}
        self.legs_version = 0  # bumped whenever the cached live legs change (a backtest's equity curve keys on it)
        self.reload_legs()

    # ------------------------------------------------------------------ leg cache
    def reload_legs(self) -> None:
        """Re-read every live leg of the account from the store (start-up, after a sync)."""
        self._legs.clear()
        self._views.clear()
        self.legs_version += 1
        for leg in L.live_legs(self.store, self.account):
            if leg.state is L.LegState.PENDING:
                continue
            self._legs.setdefault((leg.strategy, leg.symbol), []).append(leg)
        for k, v in self._legs.items():
            self._views[k] = [_view(g) for g in v]

    def _refresh(self, leg_id: str) -> L.Leg:
        leg = L.require_leg(self.store, leg_id)
        self.legs_version += 1
        key = (leg.strategy, leg.symbol)
        lst = [g for g in self._legs.get(key, []) if g.leg_id != leg_id]
        if leg.state in (L.LegState.OPEN, L.LegState.CLOSING) and leg.qty > 0:
            lst.append(leg)
            lst.sort(key=lambda g: (g.opened_ms, g.leg_id))
        if lst:
            self._legs[key] = lst
            self._views[key] = [_view(g) for g in lst]
        else:
            self._legs.pop(key, None)
            self._views.pop(key, None)
        return leg

    def views(self, strategy: str, symbol: str) -> list[LegView]:
        return self._views.get((strategy, symbol), [])

    def open_legs(self) -> list[L.Leg]:
        return [g for lst in self._legs.values() for g in lst]

    def has_open_legs(self) -> bool:
        return bool(self._legs)

    # ------------------------------------------------------------------ journal / alerts
    def _journal(self, kind: str, message: str, *, level: str = "INFO", strategy: str = "", symbol: str = "",
                 data: dict | None = None) -> None:
        if journal.LEVELS.index(level) < self._journal_from:
            return
        if armed("mid_journal_write"):  # the crash suite's point: inside the append's transaction, before commit
            with self.store.tx() as c:
                journal.append(self.store, kind, message, level=level, account=self.account, strategy=strategy,
                               symbol=symbol, data=data, ts=self.now_ms(), conn=c)
                crashpoint("mid_journal_write")
            return
        journal.append(self.store, kind, message, level=level, account=self.account, strategy=strategy,
                       symbol=symbol, data=data, ts=self.now_ms())

    def _alert(self, kind: str, event_id: str, message: str, **kw: Any) -> None:
        if not self.alerts:
            return
        from albra.notify import AlertEvent, emit

        from albra.notify.kinds import UnknownAlertKind

        if self.event_scope:  # a new paper replay session repeats the ids of the last one: scope them
            event_id = f"{self.event_scope}:{event_id}"
        try:
            emit(self.store, AlertEvent(event_id=event_id, kind=kind, message=message, account=self.account,
                                        ts=self.now_ms(), **kw))
        except UnknownAlertKind:
            raise  # a programming error (a kind missing from the table): loud under tests and ALBRA_DEV
        except Exception as e:  # an alert must never stop trading; the journal keeps the fact
            log.error("alert %s could not be queued: %s", kind, e, exc_info=True)

    # ------------------------------------------------------------------ sending (the order manager)
    @property
    def lookup_spacing_s(self) -> float:
        """Spacing of the lookups that resolve an unknown outcome (the order manager's)."""
        return self.om.lookup_spacing_s

    @lookup_spacing_s.setter
    def lookup_spacing_s(self, v: float) -> None:
        self.om.lookup_spacing_s = v

    @property
    def fill_spacing_s(self) -> float:
        return self.om.fill_spacing_s

    @fill_spacing_s.setter
    def fill_spacing_s(self, v: float) -> None:
        self.om.fill_spacing_s = v

    def _filters(self, symbol: str) -> MarketFilters:
        try:
            return self.filters[symbol]
        except KeyError:
            raise X.BadSymbol(f"{symbol}: no market filters loaded") from None

    def _stop_price(self, f: MarketFilters, direction: Direction, price: float) -> Decimal:
        # rounded away from the leg: a long's stop down, a short's up (never tighter than asked)
        return f.price_toward(D(price), up=direction is Direction.SHORT)

    # ------------------------------------------------------------------ decisions
    async def handle(self, strategy: str, symbol: str, candle_ts: int, decisions: Sequence[Decision],
                     price: float) -> list[str]:
        """Execute one candle's decisions of one strategy on one symbol; returns the ids of legs entered.
        Exchange errors on one decision are journaled and do not stop the others (exits must still run when an
        entry is refused)."""
        if self.journal_decisions and decisions:
            self._journal("decisions", f"{strategy} {symbol}: {len(decisions)} decision(s) on candle {candle_ts}",
                          level="DEBUG", strategy=strategy, symbol=symbol,
                          data={"candle_ts": candle_ts, "decisions": [type(d).__name__ for d in decisions]})
        order = sorted(decisions, key=lambda d: (0 if isinstance(d, UpdateLegState) else 1 if isinstance(d, Exit)
                                                 else 2 if isinstance(d, MoveStop) else 3))
        exit_n: dict[str, int] = {}
        entered: list[str] = []
        for d in order:
            try:
                if isinstance(d, UpdateLegState):
                    self._update_state(d)
                elif isinstance(d, Exit):
                    k = exit_n.get(str(d.leg_id), 0)
                    exit_n[str(d.leg_id)] = k + 1
                    seq = sum(exit_n.values()) - 1  # this exit's place among all of the candle's exits
                    await self.exit(str(d.leg_id), d.fraction, d.tag, d.reason, candle_ts, k, seq=seq)
                elif isinstance(d, MoveStop):
                    await self.move_stop(str(d.leg_id), d.new_stop, d.reason)
                elif isinstance(d, Enter):
                    leg_id = await self.enter(strategy, symbol, candle_ts, d, price)
                    if leg_id is not None:
                        entered.append(leg_id)
            except X.ExchangeError as e:
                self.stats.errors += 1
                self._journal("execution_error", f"{type(d).__name__} for {strategy} {symbol}: {e}", level="ERROR",
                              strategy=strategy, symbol=symbol, data={"error": type(e).__name__})
        return entered

    def _update_state(self, d: UpdateLegState) -> None:
        leg = L.require_leg(self.store, str(d.leg_id))
        st = dict(leg.strategy_state)
        st.update(d.updates)
        self.store.execute("UPDATE legs SET strategy_state=?, updated_ms=? WHERE leg_id=?",
                           (json.dumps(st, sort_keys=True), self.now_ms(), leg.leg_id))
        self._refresh(leg.leg_id)

    async def enter(self, strategy: str, symbol: str, candle_ts: int, d: Enter, price: float) -> str | None:
        """Risk, then the entry order, then its protection. Returns the leg id or None when refused."""
        slot = self.slots[strategy]
        f = self._filters(symbol)
        px = D(price)
        if self.entries_blocked:
            self._refuse(strategy, symbol, candle_ts, "shutdown", "runner is shutting down")
            return None
        cid = make_client_id(self.account, strategy, symbol, candle_ts, "entry", 0)
        existing = I.get_intent(self.store, cid)
        if existing is None:
            now = self.now_ms()
            bal = await self.gw.fetch_balance()
            limits = self.limits_for(strategy)
            await refresh_equity(self.store, self.gw, self.account, self.limits_for(""), now, balance=bal)
            stop = self._stop_price(f, d.direction, d.stop_loss)
            live = L.live_legs(self.store, self.account)
            dec = evaluate_entry(self.store, limits, EntryRequest(
                self.account, strategy, symbol, d.direction, px, stop, D(slot.size_pct), self.mode, f, bal,
                live, now, await self._marks(symbol, px, live)))
            if not dec.allowed:  # evaluate_entry journaled it (kind risk_refused, with the rule)
                self._refuse(strategy, symbol, candle_ts, dec.rule, dec.reason, journaled=True)
                return None
            pside = L.position_side_for(d.direction, self.mode)
            req = OrderRequest(cid, symbol, d.direction.entry_side, OrderType.MARKET, dec.qty, pside)
            intent, leg = I.record_entry(self.store, req, account=self.account, strategy=strategy,
                                         direction=d.direction, position_mode=self.mode, candle_ts=candle_ts,
                                         now_ms=self.now_ms(), stop_price=stop,
                                         take_profit=None if d.take_profit is None else f.round_price(D(d.take_profit)),
                                         entry_reason=d.reason[:500])
            if d.leg_state:
                self.store.execute("UPDATE legs SET strategy_state=? WHERE leg_id=?",
                                   (json.dumps(dict(d.leg_state), sort_keys=True), leg.leg_id))
        else:
            intent = existing
        leg_id = intent.leg_id
        assert leg_id is not None
        try:
            res = await self.om.send(intent)
        except X.Fatal:
            return None
        if res is None:
            intent = I.get_intent(self.store, cid) or intent
            if intent.state in ("filled", "open"):
                res = await self.gw.fetch_order(symbol, cid, False)
        pending = self._refresh(leg_id)
        if (res is not None and res.status is OrderStatus.FILLED and res.filled_qty > 0
                and pending.sl_client_id is None):
            # the answer itself says filled: the stop goes out now, sized to the answer — the trade rows (fees,
            # trade ids) reach history a moment later and are applied after it (the naked window is one round trip)
            crashpoint("after_entry_fill")
            await self.protect(replace(pending, qty=res.filled_qty, state=L.LegState.OPEN), entry=(intent, res))
        if res is not None:
            await self.om.apply_fills(intent, res)
        leg = self._refresh(leg_id)
        if leg.state is L.LegState.OPEN and leg.qty > 0:
            self._alert("leg_opened", f"leg_opened:{leg_id}", d.reason, strategy=strategy, symbol=symbol,
                        side=leg.direction.value, size=leg.qty,
                        prices={"entry": leg.entry_price or 0, "stop": leg.stop_price or 0,
                                **({"take_profit": leg.take_profit} if leg.take_profit is not None else {})})
            if leg.sl_client_id is None:  # the answer did not say filled (lost, looked up): protect now
                await self.protect(leg)
        return leg_id

    async def _marks(self, symbol: str, px: Decimal, live: list[L.Leg]) -> dict[str, Decimal]:
        """Mark prices for valuing every open leg before an entry: the entry's own price, and the exchange's marks
        for the other symbols legs are open on (one positions read, only when there are such legs) — without
        them a strategy holding a leg on another symbol could never enter again."""
        marks = {symbol: px}
        if any(g.symbol != symbol for g in live):
            for p in await self.gw.fetch_positions():
                if p.symbol != symbol and p.mark_price and p.mark_price > 0:
                    marks.setdefault(p.symbol, p.mark_price)
        return marks

    def _refuse(self, strategy: str, symbol: str, candle_ts: int, rule: str, reason: str,
                journaled: bool = False) -> None:
        self.stats.refusals += 1
        if not journaled:
            self._journal("risk_refused", f"{strategy} {symbol} entry refused ({rule}): {reason}", level="WARNING",
                          strategy=strategy, symbol=symbol, data={"rule": rule, "reason": reason,
                                                                  "candle_ts": candle_ts})
        self._alert("risk_refused", f"risk_refused:{self.account}:{strategy}:{symbol}:{candle_ts}",
                    f"entry refused ({rule}): {reason}", strategy=strategy, symbol=symbol)

    # ------------------------------------------------------------------ protection
    def _exit_shape(self, leg: L.Leg) -> tuple[Side, PositionSide, bool]:
        reduce_only = leg.position_side is PositionSide.BOTH
        return leg.direction.exit_side, leg.position_side, reduce_only

    async def protect(self, leg: L.Leg, entry: tuple[I.Intent, OrderResult] | None = None) -> None:
        """Place the leg's stop (and take-profit) sized to the leg — ``leg`` may be the in-memory leg of an entry
        whose answer said filled (its trade rows follow; ``entry`` is that intent and answer). A stop the exchange
        refuses (or that cannot be built: a qty below the exchange's minimum) closes the leg: no leg stays naked.
        Before such a close the entry's own fills are applied, so the leg is open in the ledger when its close
        fills: a close fill for a still-pending leg would be unattributed, the ledger would keep the leg, and a
        later exit of it would sell another leg's share (found by the 200-step fault soak)."""
        from albra.ledger.errors import LedgerError

        if leg.stop_price is None:
            await self._emergency_close(leg, "no stop price recorded")
            return
        f = self._filters(leg.symbol)
        try:
            sl = await place_protective(self.om, leg, "stop_loss", leg.stop_price, f)
            why = sl.error or f"stop order {sl.state}"
        except LedgerError as e:
            sl, why = None, str(e)
        if sl is None or sl.state != "open":
            self._alert("unprotected_leg", f"unprotected_leg:{leg.leg_id}",
                        f"stop for {leg.leg_id} could not be placed ({why}); closing the leg at market",
                        strategy=leg.strategy, symbol=leg.symbol)
            if entry is not None and L.require_leg(self.store, leg.leg_id).state is L.LegState.PENDING:
                await self.om.apply_fills(*entry)
                stored = L.require_leg(self.store, leg.leg_id)
                if stored.state is L.LegState.OPEN:
                    leg = stored
            await self._emergency_close(leg, f"stop could not be placed: {why}")
            return
        if leg.take_profit is not None:
            tp = await place_protective(self.om, leg, "take_profit", leg.take_profit, f)
            if tp.state != "open":
                self._journal("take_profit_failed", f"take-profit for {leg.leg_id} not placed: "
                              f"{tp.error or tp.state}", level="WARNING", strategy=leg.strategy, symbol=leg.symbol)
        self._refresh(leg.leg_id)

    async def reprotect(self, leg_id: str, lost_client_id: str, purpose: str, why: str) -> bool:
        """A protective order the ledger held live left the exchange without firing (cancelled by hand, expired,
        unknown to the exchange); its intent is already final. Journal it, alert it, and give the leg what it lacks
        (:func:`albra.orders.protection.protect_leg`); a stop that cannot be re-placed closes the leg reduce-only at
        market. Returns whether the leg has a live stop afterwards (False also when it was closed)."""
        leg = L.require_leg(self.store, leg_id)
        msg = f"{purpose} {lost_client_id} of {leg_id} is no longer on the exchange ({why})"
        self._journal("protective_vanished", msg + "; re-protecting the leg", level="ERROR", strategy=leg.strategy,
                      symbol=leg.symbol, data={"client_id": lost_client_id, "purpose": purpose, "why": why,
                                               "leg_id": leg_id})
        if purpose == "stop_loss":
            self._alert("unprotected_leg", f"unprotected_leg:{leg_id}:{lost_client_id}",
                        msg + "; placing a new stop", strategy=leg.strategy, symbol=leg.symbol,
                        side=leg.direction.value, size=leg.qty)
        else:
            self._alert("reconcile_difference", f"protective_vanished:{lost_client_id}",
                        msg + "; placing it again", strategy=leg.strategy, symbol=leg.symbol)
        if leg.state not in (L.LegState.OPEN, L.LegState.CLOSING) or leg.qty <= 0:
            self._refresh(leg_id)
            return False
        from albra.ledger.errors import LedgerError
        from albra.ledger.protection import STOP, live_protective

        problem = ""
        try:
            await protect_leg(self.om, leg_id, self._filters(leg.symbol))
        except LedgerError as e:
            problem = str(e)
        if live_protective(self.store, leg_id, STOP):
            self._journal("leg_reprotected", f"{leg_id}: protective orders re-placed after {lost_client_id} "
                          "vanished", level="WARNING", strategy=leg.strategy, symbol=leg.symbol,
                          data={"leg_id": leg_id, "sl_client_id": L.require_leg(self.store, leg_id).sl_client_id})
            self._refresh(leg_id)
            return True
        self._alert("unprotected_leg", f"unprotected_leg:{leg_id}:{lost_client_id}:close",
                    f"stop for {leg_id} could not be re-placed ({problem or 'refused'}); closing the leg at market",
                    strategy=leg.strategy, symbol=leg.symbol)
        await self._emergency_close(L.require_leg(self.store, leg_id),
                                    f"stop vanished and could not be re-placed: {problem or 'refused'}")
        return False

    async def _emergency_close(self, leg: L.Leg, why: str) -> None:
        side, pside, ro = self._exit_shape(leg)
        cid = make_client_id(self.account, leg.strategy, leg.symbol, int(leg.entry_ts or 0), "close",
                             I.next_generation(self.store, leg.leg_id, "close"))
        req = OrderRequest(cid, leg.symbol, side, OrderType.MARKET, leg.qty, pside, reduce_only=ro)
        intent = I.record_intent(self.store, req, account=self.account, strategy=leg.strategy, purpose="close",
                                 candle_ts=leg.entry_ts, now_ms=self.now_ms(), leg_id=leg.leg_id)
        self._journal("leg_force_closed", f"{leg.leg_id} closed at market: {why}", level="ERROR",
                      strategy=leg.strategy, symbol=leg.symbol)
        try:
            res = await self.om.send(intent)
        except X.Fatal as e:
            # refused (e.g. -2022: nothing left to reduce — the position went away behind the ledger's back): the
            # leg stays as it is, flagged; reconciliation settles it against the exchange's position
            self._alert("unprotected_leg", f"unprotected_leg:{leg.leg_id}:close_refused",
                        f"closing {leg.leg_id} at market was refused ({e}); reconciliation compares it with the "
                        f"exchange's position", strategy=leg.strategy, symbol=leg.symbol)
            return
        if res is not None:
            await self.om.apply_fills(intent, res)
        await self._after_reduce(leg.leg_id, "unprotected")

    async def _cancel_protective(self, leg: L.Leg, keep: set[str] = frozenset()) -> None:
        """Cancel every live protective intent of the leg except ``keep``."""
        for purpose in ("stop_loss", "take_profit"):
            for it in I.intents_of_leg(self.store, leg.leg_id, purpose):
                if it.client_id in keep or it.state not in ("open", "sent", "unknown", "pending"):
                    continue
                await self.om.cancel(it)

    async def move_stop(self, leg_id: str, new_stop: float, reason: str) -> None:
        leg = L.require_leg(self.store, leg_id)
        if leg.state is not L.LegState.OPEN or leg.qty <= 0:
            return
        f = self._filters(leg.symbol)
        new = self._stop_price(f, leg.direction, new_stop)
        old = leg.stop_price  # the exchange's stop: every writer records the quantised trigger it placed
        if old is not None and ((leg.direction is Direction.LONG and new <= old)
                                or (leg.direction is Direction.SHORT and new >= old)):
            # quantises to the current stop (a trailing strategy re-asking for the level it has) or looser: a
            # no-op by contract (stops only tighten), not worth a warning on every candle
            log.debug("%s: stop move to %s (asked %s) does not tighten the stop %s; nothing to do", leg_id, new,
                      new_stop, old)
            return
        r = await replace_stop(self.om, leg_id, new, f)
        if r.status == "unprotected":  # shared side: old cancelled, new refused — close reduce-only now
            self._alert("unprotected_leg", f"unprotected_leg:{leg_id}:{r.new_client_id}",
                        f"stop move to {new} left {leg_id} without a stop ({r.detail}); closing it",
                        strategy=leg.strategy, symbol=leg.symbol)
            await self._emergency_close(L.require_leg(self.store, leg_id), f"stop move failed: {r.detail}")
            return
        if r.status == "old_fired":
            await self.sync_protective([leg.symbol])
            return
        leg = self._refresh(leg_id)
        if r.status == "replaced":
            self._alert("stop_moved", f"stop_moved:{leg_id}:{new}", reason, strategy=leg.strategy,
                        symbol=leg.symbol, side=leg.direction.value, size=leg.qty,
                        prices={"old stop": old or 0, "new stop": leg.stop_price or new})

    async def _resize_protection(self, leg: L.Leg, qty: Decimal | None = None) -> bool:
        """Re-size the leg's stop (and take-profit) to ``qty`` (default: what it holds) through the ledger's
        two-case protocol (:func:`albra.orders.protection.resize_protection`). Returns False when the leg is no
        longer protected-and-open afterwards (its stop fired in the swap, or it was closed at market because the
        new stop was refused on a shared side) — the caller must not go on with a partial exit then."""
        from albra.ledger.errors import LedgerError

        try:
            results = await resize_protection(self.om, leg.leg_id, self._filters(leg.symbol), qty=qty)
        except LedgerError as e:
            self._journal("stop_resize_failed", f"{leg.leg_id}: protection not re-sized ({e})", level="ERROR",
                          strategy=leg.strategy, symbol=leg.symbol)
            return True  # nothing was touched: the old orders still protect the leg
        st = results[0]
        if st.status == "old_fired":
            await self.sync_protective([leg.symbol])
            return False
        if st.status == "unprotected" or (st.status == "new_not_placed" and st.old_client_id is None):
            self._alert("unprotected_leg", f"unprotected_leg:{leg.leg_id}:{st.new_client_id}",
                        f"re-sizing the stop of {leg.leg_id} left it without one ({st.detail}); closing it",
                        strategy=leg.strategy, symbol=leg.symbol)
            await self._emergency_close(L.require_leg(self.store, leg.leg_id), f"stop re-size failed: {st.detail}")
            return False
        self._refresh(leg.leg_id)
        return True

    # ------------------------------------------------------------------ exits
    async def exit(self, leg_id: str, fraction: float, tag: str, reason: str, candle_ts: int, k: int = 0, *,
                   seq: int | None = None) -> None:
        """Close ``fraction`` of the leg's initial qty (1.0: all of it) reduce-only at market. ``k``: the leg's
        k-th exit on this candle; ``seq``: this exit's place among all exits decided on the candle (names the
        order of a leg older than the id's generation range, see :meth:`_exit_client_id`). A reduce or exit the
        exchange never received (looked up: not found) is sent once more under the next id."""
        leg = L.require_leg(self.store, leg_id)
        if leg.state is not L.LegState.OPEN or leg.qty <= 0:
            return
        f = self._filters(leg.symbol)
        if fraction >= 1.0:
            qty = leg.qty
        else:
            qty = min(f.floor_qty(leg.qty_initial * D(fraction)), leg.qty)
            if leg.qty - qty < f.min_qty:
                qty = leg.qty  # never leave dust the exchange cannot close
        if qty <= 0:
            # nothing the exchange can execute at its step: the partial is recorded as done (with nothing closed),
            # so a strategy that fires it until it is done does not re-issue it on every candle
            if tag not in leg.partial_exits:
                self._journal("exit_too_small", f"{leg_id}: {fraction:.0%} of {leg.qty_initial} rounds to 0 at the "
                              f"exchange's step {f.step_size} ({tag}); recorded as done, nothing closed",
                              level="WARNING", strategy=leg.strategy, symbol=leg.symbol)
                self.store.execute("UPDATE legs SET partial_exits=?, updated_ms=? WHERE leg_id=?",
                                   (json.dumps(list(leg.partial_exits) + [tag]), self.now_ms(), leg_id))
                self._refresh(leg_id)
            return
        full = qty >= leg.qty
        if full and any(g.leg_id != leg_id and g.position_side is leg.position_side
                        for g in L.live_legs(self.store, self.account, leg.symbol)):
            # a side shared with other legs: this leg's stop and take-profit leave the book BEFORE its reduce-only
            # market order, so none of them can fire in between and sell another leg's share
            await self._cancel_protective(leg)
            leg = self._refresh(leg_id)
            if leg.state is not L.LegState.OPEN or leg.qty <= 0:
                return  # one of them fired meanwhile: its fill closed the leg
            qty = leg.qty
        if not full and not await self._resize_protection(leg, leg.qty - qty):
            return  # shrink the stop first (never more stop than position on a shared side); it fired or failed
        side, pside, ro = self._exit_shape(leg)
        cid = self._exit_client_id(leg, candle_ts, "exit" if full else "reduce", k, seq)
        req = OrderRequest(cid, leg.symbol, side, OrderType.MARKET, qty, pside, reduce_only=ro)
        intent = I.record_intent(self.store, req, account=self.account, strategy=leg.strategy,
                                 purpose="exit" if full else "reduce", candle_ts=candle_ts, now_ms=self.now_ms(),
                                 leg_id=leg_id)
        try:
            res = await self.om.send(intent)
        except X.ExchangeError:
            if not full:  # the reduce did not happen: protection back to what the leg holds
                await self._resize_protection(self._refresh(leg_id))
            raise
        if res is not None:  # a fill that closes the leg records the strategy's tag as why (not the purpose)
            await self.om.apply_fills(intent, res, close_reason=tag or None)
        elif (after := I.get_intent(self.store, cid)) is not None and after.state == "not_found":
            # the exchange positively does not know it (a lost request, looked up over a bounded time): nothing
            # reduced the position, so once more under a fresh id — an exit the strategy decided is not dropped
            cid = await self._resend_exit(leg, req, cid, tag)
        moved = self._refresh(leg_id)
        if moved.state is leg.state and moved.qty == leg.qty:
            # nothing executed: the order was never placed (resolved not found), refused, or is still unknown — not
            # a partial exit; say so, and put the protection back to what the leg holds
            after = I.get_intent(self.store, cid)
            state = after.state if after is not None else "unknown"
            self._journal("exit_not_done", f"{'exit' if full else 'reduce'} {cid} of {leg_id} did not execute "
                          f"({state}); the leg is unchanged ({leg.qty})", level="ERROR", strategy=leg.strategy,
                          symbol=leg.symbol, data={"client_id": cid, "state": state, "tag": tag})
            self._alert("exit_failed", f"exit_failed:{cid}", f"{tag}: the {'exit' if full else 'reduce'} order did "
                        f"not execute ({state}); {leg.qty} {leg.symbol} still open", strategy=leg.strategy,
                        symbol=leg.symbol, side=leg.direction.value, size=leg.qty)
            if not full:
                await self._resize_protection(moved)
            return
        if not full:
            done = list(leg.partial_exits) + [tag]
            self.store.execute("UPDATE legs SET partial_exits=?, updated_ms=? WHERE leg_id=?",
                               (json.dumps(done), self.now_ms(), leg_id))
        await self._after_reduce(leg_id, tag, reason)

    async def _resend_exit(self, leg: L.Leg, lost: OrderRequest, lost_cid: str, tag: str) -> str:
        """Send a lost exit (or reduce) once more as a ``close`` order of the leg (the next generation of its close
        ids, never a reused id); returns the new client id. Refused or lost again: the caller reports it."""
        cid = make_client_id(self.account, leg.strategy, leg.symbol, int(leg.entry_ts or leg.opened_ms), "close",
                             I.next_generation(self.store, leg.leg_id, "close"))
        req = replace(lost, client_id=cid)
        intent = I.record_intent(self.store, req, account=self.account, strategy=leg.strategy, purpose="close",
                                 candle_ts=leg.entry_ts, now_ms=self.now_ms(), leg_id=leg.leg_id)
        self._journal("exit_resent", f"{tag}: {lost_cid} never reached the exchange; sending it once more as {cid}",
                      level="WARNING", strategy=leg.strategy, symbol=leg.symbol,
                      data={"lost": lost_cid, "client_id": cid, "leg_id": leg.leg_id})
        try:
            res = await self.om.send(intent)
        except X.ExchangeError:
            return cid  # journaled and alerted by the order manager; the caller reports the leg unchanged
        if res is not None:
            await self.om.apply_fills(intent, res)
        return cid

    def _exit_client_id(self, leg: L.Leg, candle_ts: int, purpose: str, k: int, seq: int | None = None) -> str:
        """Deterministic per (leg, decision candle): the leg's entry candle names the leg (as its stops do), the
        minutes from entry to the deciding candle the attempt — so two legs of one strategy exiting on the same
        candle never share an id, and re-evaluating the candle after a crash derives the same id. Beyond the
        generation range (a leg older than ~32 days) the deciding candle names the attempt instead, numbered by
        the exit's place among all of the candle's exits (``seq``), so two old legs of one strategy and symbol
        exiting on one candle do not share an id either."""
        entry = int(leg.entry_ts if leg.entry_ts is not None else leg.opened_ms)
        gen = (candle_ts - entry) // 60_000 + k
        if 0 <= gen <= MAX_GENERATION:
            return make_client_id(self.account, leg.strategy, leg.symbol, entry, purpose, gen)
        return make_client_id(self.account, leg.strategy, leg.symbol, candle_ts, purpose, k if seq is None else seq)

    async def _after_reduce(self, leg_id: str, tag: str, reason: str = "") -> None:
        leg = self._refresh(leg_id)
        if leg.state is L.LegState.CLOSED:
            if tag and leg.close_reason in ("exit", "reduce"):
                # the fill closed it under the order's purpose; the strategy's tag says why (kijun_touch, …)
                leg = L.set_close_reason(self.store, leg_id, tag)
            await self._cancel_protective(leg)
            self._closed(leg, tag)
        elif leg.state in (L.LegState.OPEN, L.LegState.CLOSING) and leg.qty > 0:
            self._alert("partial_exit", f"partial_exit:{leg_id}:{tag}", reason or tag, strategy=leg.strategy,
                        symbol=leg.symbol, side=leg.direction.value, size=leg.qty)
            await self._resize_protection(leg)  # to what the leg holds (unchanged when the reduce filled as sized)

    def _closed(self, leg: L.Leg, reason: str) -> None:
        """Report a closed leg once (the stream's event and a REST sync can both see the same close)."""
        if leg.leg_id in self._reported_closed:
            return
        self._reported_closed.add(leg.leg_id)
        pnl = leg.realized_pnl - leg.fees + leg.funding
        tr = ClosedTrade(leg.leg_id, leg.strategy, leg.symbol, leg.direction, leg.qty_initial, leg.opened_ms,
                         leg.closed_ms or self.now_ms(), leg.entry_price or Decimal(0), leg.exit_price or Decimal(0),
                         pnl, leg.fees, leg.funding, reason)
        self.stats.closed.append(tr)
        self._journal("leg_closed", f"{leg.leg_id} closed ({reason}): PnL {pnl:.4f} USDT", strategy=leg.strategy,
                      symbol=leg.symbol, data={"pnl": str(pnl), "reason": reason})
        self._alert("leg_closed", f"leg_closed:{leg.leg_id}", f"closed ({reason})", strategy=leg.strategy,
                    symbol=leg.symbol, side=leg.direction.value, size=leg.qty_initial,
                    prices={"entry": leg.entry_price or 0, "exit": leg.exit_price or 0}, pnl=pnl)

    # ------------------------------------------------------------------ sync with the exchange
    async def sync_protective(self, symbols: Iterable[str] | None = None) -> int:
        """Look up every live protective order of the open legs — every live intent of each leg, not only the ids
        the leg names (an interrupted replacement can leave a newer generation the leg does not name yet); a fired
        stop/TP closes (or reduces) its leg with the realised PnL, and the sibling order is cancelled. Then the leg
        is settled (:meth:`settle_protection`). Returns how many legs changed."""
        changed = 0
        for leg in list(self.open_legs()):
            if symbols is not None and leg.symbol not in symbols:
                continue
            intents = I.intents_of_leg(self.store, leg.leg_id)
            fired = False
            touched = False
            for it in intents:
                if it.purpose not in I.PROTECTIVE_PURPOSES or it.state not in ("open", "sent", "unknown"):
                    continue
                cid, purpose = it.client_id, it.purpose
                res = await resolve_unknown(self.gw, leg.symbol, cid, True, spacing_s=self.lookup_spacing_s)
                if res is None:
                    I.mark_gone(self.store, cid, now_ms=self.now_ms(), note="protective order vanished")
                    await self._protective_lost(leg.leg_id, cid, purpose, "the exchange does not know it any more")
                    changed += 1
                    touched = True
                    continue
                if res.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                    if it.state != "open":  # a placement whose answer was lost: it is on the book
                        I.mark_outcome(self.store, res, now_ms=self.now_ms())
                        touched = True
                    continue
                if res.status is OrderStatus.TRIGGERED:
                    # TRIGGERING / TRIGGERED: fired, its child not done yet — not final on Binance; FINISHED says
                    # when (the next sync), and only the child's fills say whether it filled
                    continue
                touched = True
                if res.status is not OrderStatus.FILLED:
                    I.mark_outcome(self.store, res, now_ms=self.now_ms())
                    # cancelled (by hand?), expired or rejected without firing: the leg lost that order
                    await self._protective_lost(leg.leg_id, cid, purpose, f"the exchange says {res.status.value}")
                    changed += 1
                    continue
                if not await self.om.record_fired(it, res):
                    await self._protective_lost(leg.leg_id, cid, purpose,
                                                "it fired but its child order executed nothing (FINISHED, 0 filled)")
                    changed += 1
                    continue
                after = self._refresh(leg.leg_id)
                kind = "stop_triggered" if purpose == "stop_loss" else "take_profit_hit"
                self._alert(kind, f"{kind}:{leg.leg_id}:{cid}", f"{purpose} fired at {res.avg_price}",
                            strategy=leg.strategy, symbol=leg.symbol, side=leg.direction.value,
                            size=res.filled_qty)
                if after.state is L.LegState.CLOSED:
                    await self._cancel_protective(after)
                    self._closed(after, purpose)
                changed += 1
                fired = True
                break
            if not fired and (touched or self._unsettled(leg, intents)):
                if await self.settle_protection(leg.leg_id):
                    changed += 1
        return changed

    def _unsettled(self, leg: L.Leg, intents: list[I.Intent]) -> bool:
        """Whether the leg's record of its protective orders disagrees with its live intents (cheap: no query)."""
        from albra.ledger.protection import STOP, TAKE_PROFIT, protection_links

        return not all(protection_links(leg, intents, p).settled for p in (STOP, TAKE_PROFIT))

    async def _protective_lost(self, leg_id: str, cid: str, purpose: str, why: str) -> None:
        """A live protective intent ended without firing. If another generation of the same purpose is still live
        (the lost one was superseded by an interrupted replacement) nothing is missing: journaled only. Otherwise
        the leg lost its order: :meth:`reprotect`."""
        from albra.ledger.protection import live_protective

        if live_protective(self.store, leg_id, purpose):
            leg = L.require_leg(self.store, leg_id)
            self._journal("protective_superseded_gone", f"{purpose} {cid} of {leg_id} is no longer on the exchange "
                          f"({why}); a newer generation still protects the leg", level="WARNING",
                          strategy=leg.strategy, symbol=leg.symbol,
                          data={"client_id": cid, "purpose": purpose, "why": why, "leg_id": leg_id})
            return
        await self.reprotect(leg_id, cid, purpose, why)

    async def settle_protection(self, leg_id: str) -> bool:
        """Make the leg's record of its protective orders match what is live, after an interrupted replacement:
        link the newest open generation to the leg (:func:`albra.ledger.protection.link_protection`), cancel every
        older generation still live (one that fired meanwhile has its fills applied and may close the leg), and
        re-size a newest order whose qty is not the leg's (through the two-case protocol). Returns whether anything
        changed."""
        from albra.ledger.protection import link_protection

        found = link_protection(self.store, leg_id, now_ms=self.now_ms())
        if not found:
            return False
        for pl in found:
            for old in pl.superseded:
                fired = await self.om.cancel(old)
                leg = self._refresh(leg_id)
                self._journal("protection_superseded", f"{pl.purpose} {old.client_id} of {leg_id} cancelled: "
                              f"superseded by {pl.newest.client_id if pl.newest else '?'}"
                              + (" (it had fired)" if fired else ""), level="WARNING", strategy=leg.strategy,
                              symbol=leg.symbol, data={"client_id": old.client_id, "leg_id": leg_id,
                                                       "newest": pl.newest.client_id if pl.newest else None})
                if leg.state is L.LegState.CLOSED:
                    await self._cancel_protective(leg)
                    self._closed(leg, pl.purpose)
                    return True
        leg = self._refresh(leg_id)
        if leg.state is L.LegState.OPEN and leg.qty > 0 and any(pl.missized for pl in found):
            await self._resize_protection(leg)
        return True

    async def cancel_pending_entries(self) -> int:
        """Shutdown step: cancel entry orders still working (protective orders stay)."""
        return await self.om.cancel_entries()
