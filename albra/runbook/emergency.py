"""``emergency-shutdown``: kill switch on, runners stopped, every order cancelled, every position closed reduce-only,
then verified flat on the exchange — on every account at once.

Why it is shaped like this (ADR 0001: the emergency path depends on neither live runners nor a readable store):

* The store is used when it can be: kill switch first (so a runner that survives or restarts opens nothing),
  write-ahead intents for the close orders, the legs closed from the fills, an incident. Any store failure, at
  open or half-way, is reported and the exchange work carries on — here the exchange is the source of truth.
* Each account is worked in *rounds*: read positions and open orders (regular and algo) → cancel every order on
  every symbol that has one and close every position with reduce-only market orders, all concurrently → read
  again. The account is "verified" only when a complete read shows no order and (unless ``keep_positions``) no
  position. A failed read is never taken for "flat". Rounds are bounded; whatever is left is reported.
* Round one closes each ledger leg with its own order (client id from the leg, so the fill lands on the leg and the
  strategy's PnL is right); whatever the legs do not cover — or later rounds — is closed per position side.
* A placement whose outcome is unknown is looked up by its client id, never re-sent; the next round re-reads the
  position and sends a *new* id (next generation) only for what is still open. Reduce-only makes a stray duplicate
  harmless anyway: it cannot open or flip a position.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from albra.timefmt import fmt_kst, now_ms as _now_ms

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.exchange.types import ExchangePosition, Gateway, OrderResult
    from albra.store.db import Store

EMERGENCY_STRATEGY = "EMERGENCY"
DEFAULT_ROUNDS = 6
#: the pause after a failed read grows with the round (``pause_s × round``) but stops at one second: each read is
#: already retried with back-off inside the gateway, an open breaker is waited out on its own (1 s cool-down in the
#: emergency profile), and the weight limiter paces by the exchange's count — idling longer only delays the flat
MAX_ROUND_PAUSE_S = 1.0


@dataclass
class CloseOrder:
    client_id: str
    symbol: str
    position_side: str
    side: str
    qty: str
    leg_id: str | None
    status: str
    filled: str = "0"
    avg_price: str | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class AccountOutcome:
    """One account's emergency: what was there, what was sent, whether it is verified flat (and order-free)."""

    account: str
    status: str = "not_verified"  # flat | frozen | not_verified | unreachable | not_handled | skipped
    reason: str = ""
    positions_before: list[dict[str, Any]] = field(default_factory=list)
    orders_before: dict[str, int] = field(default_factory=lambda: {"regular": 0, "algo": 0})
    cancelled_symbols: list[str] = field(default_factory=list)
    close_orders: list[CloseOrder] = field(default_factory=list)
    remaining: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    ledger: list[str] = field(default_factory=list)
    rounds: int = 0
    seconds: float = 0.0
    equity_before: dict[str, str] | None = None   # the exchange's balance at the first read
    equity_after: dict[str, str] | None = None    # … after the flatten (also recorded as an equity snapshot)
    realized: str | None = None                   # realised PnL − USDT fees of the emergency's own closing fills

    @property
    def verified(self) -> bool:
        return self.status in ("flat", "frozen")

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "close_orders"}
        d["close_orders"] = [c.as_dict() for c in self.close_orders]
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class EmergencyReport:
    started_ms: int
    keep_positions: bool
    kill_switch: str = ""
    store_error: str = ""
    runners: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[AccountOutcome] = field(default_factory=list)
    incident_id: str | None = None
    notified: str = ""
    telegram: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 verified flat everywhere; 2 an account not handled because its keys are not set (configuration);
        3 an exchange unreachable; 1 anything else not verified."""
        if any(a.status == "not_handled" for a in self.accounts):
            return 2
        if any(a.status == "unreachable" for a in self.accounts):
            return 3
        if any(not a.verified for a in self.accounts if a.status != "skipped"):
            return 1
        if any(not r["ok"] for r in self.runners):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {"started": fmt_kst(self.started_ms), "keep_positions": self.keep_positions,
                "kill_switch": self.kill_switch, "store_error": self.store_error, "runners": self.runners,
                "accounts": [a.as_dict() for a in self.accounts], "incident_id": self.incident_id,
                "notified": self.notified, "telegram": self.telegram, "seconds": round(self.seconds, 3),
                "exit_code": self.exit_code}


class _StoreGuard:
    """The store while it works: after the first failure it is dropped (and the failure reported), because an
    emergency must not stop on a store problem."""

    def __init__(self, store: "Store | None", error: str = "") -> None:
        self.store = store
        self.error = error

    def run(self, what: str, fn: Callable[["Store"], Any]) -> Any:
        if self.store is None:
            return None
        try:
            return fn(self.store)
        except Exception as e:  # noqa: BLE001 - any store failure: report, continue on the exchange alone
            from albra.ledger.errors import LedgerError

            if isinstance(e, LedgerError):
                raise
            self.error = f"{what}: {type(e).__name__}: {e}"
            self.store = None
            return None


def _pos_dict(p: "ExchangePosition") -> dict[str, Any]:
    return {"symbol": p.symbol, "position_side": p.position_side.value, "qty": str(p.qty),
            "entry_price": str(p.entry_price), "mark_price": str(p.mark_price), "unrealized": str(p.unrealized)}


async def _read(gw: "Gateway") -> tuple[list["ExchangePosition"], list["OrderResult"], list["OrderResult"]]:
    pos, reg, algo = await asyncio.gather(gw.fetch_positions(), gw.fetch_open_orders(None),
                                          gw.fetch_open_orders(None, algo=True))
    return [p for p in pos if p.qty != 0], reg, algo


class _AccountWork:
    def __init__(self, gw: "Gateway", account: str, guard: _StoreGuard, started_ms: int, keep_positions: bool,
                 rounds: int, pause_s: float) -> None:
        self.gw, self.account, self.guard = gw, account, guard
        self.t0, self.keep, self.rounds, self.pause_s = started_ms, keep_positions, rounds, pause_s
        self.out = AccountOutcome(account)
        self.generation: dict[str, int] = {}
        from albra.orders.manager import OrderManager

        # the one sender; the store may be unreadable here (None): closes and cancels go through send_guarded and
        # cancel_all, which keep their bookkeeping behind the guard
        self.om = OrderManager(guard.store, gw, account, self._now)  # type: ignore[arg-type]  # exchange time

    def _now(self) -> int:
        """Exchange time (one clock, :mod:`albra.store.clock`): the gateway's estimate once it has read the exchange,
        else the store's; the wall clock only when neither is known."""
        f = getattr(self.gw, "exchange_now", None)
        if f is not None and getattr(self.gw, "_time_synced", False):
            try:
                return int(f())
            except Exception:  # noqa: BLE001 - a clock estimate must never stop the emergency
                pass
        from albra.store.clock import exchange_now

        got = self.guard.run("clock", lambda s: exchange_now(s, self.account))
        return int(got) if got is not None else _now_ms()

    async def _balance(self) -> Any:
        """The account's balance, or None when it cannot be read (never a reason to stop the emergency)."""
        from albra.exchange.errors import ExchangeError

        try:
            return await self.gw.fetch_balance()
        except ExchangeError as e:
            self.out.errors.append(f"balance read failed: {type(e).__name__}: {str(e)[:200]}")
            return None

    async def _snapshot_after(self) -> None:
        """The post-flatten truth (issue 14): equity, positions and the realised result of the flatten, recorded as
        an equity snapshot on the exchange's clock so every view (status, dashboard, /balance, /pnl, the incident
        report) shows the account as it is now — not the figures of before the shutdown."""
        bal = await self._balance()
        if bal is None:
            return
        # after the incident opened, whatever two estimates of a clock that stands still (a drill server at speed 0)
        # say: the report's "after" is the first snapshot at or after the opening
        ts = max(self._now(), self.t0 + 1)
        self.out.equity_after = _bal_dict(bal)
        self.guard.run("equity snapshot", lambda s: s.execute(
            "INSERT INTO equity_snapshots(account, ts, wallet, unrealized, equity, available) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT(account, ts) DO UPDATE SET wallet=excluded.wallet, unrealized=excluded.unrealized,"
            " equity=excluded.equity, available=excluded.available",
            (self.account, ts, format(bal.wallet, "f"), format(bal.unrealized, "f"), format(bal.equity, "f"),
             format(bal.available, "f"))))
        self.guard.run("journal", lambda s: _journal(
            s, "equity_after_emergency", f"after the emergency: equity {bal.equity} USDT (wallet {bal.wallet}, "
            f"unrealised {bal.unrealized}), {len(self.out.remaining.get('positions', []))} position(s) left, realised "
            f"by the flatten {self.out.realized or '0'} USDT", self.account, level="WARNING",
            data={"equity_before": self.out.equity_before, "equity_after": self.out.equity_after,
                  "realized": self.out.realized}))

    async def run(self) -> AccountOutcome:
        from albra.exchange.errors import AuthFailed, ExchangeError

        t = time.monotonic()
        last_read: tuple | None = None
        first_read = True
        markets_loaded = False
        for rnd in range(1, self.rounds + 1):
            self.out.rounds = rnd
            try:
                if rnd == 1 or not markets_loaded:
                    # markets once, up front: concurrent orders would otherwise each load them (exchangeInfo)
                    (positions, regular, algo), _, bal = await asyncio.gather(_read(self.gw), self.gw.load_markets(),
                                                                               self._balance())
                    markets_loaded = True
                    if bal is not None and self.out.equity_before is None:
                        self.out.equity_before = _bal_dict(bal)
                else:
                    positions, regular, algo = await _read(self.gw)
            except ExchangeError as e:
                self.out.errors.append(f"round {rnd}: read failed: {type(e).__name__}: {str(e)[:200]}")
                if isinstance(e, AuthFailed):
                    from albra.runbook.connect import classify_failure

                    self.out.status, self.out.reason = "unreachable", classify_failure(self.account, e).reason
                    break
                from albra.exchange.errors import CircuitOpen

                wait = e.retry_in_s if isinstance(e, CircuitOpen) else 0.0
                await asyncio.sleep(max(min(self.pause_s * rnd, MAX_ROUND_PAUSE_S), wait))
                continue
            last_read = (positions, regular, algo)
            if first_read:
                first_read = False
                self.out.positions_before = [_pos_dict(p) for p in positions]
                self.out.orders_before = {"regular": len(regular), "algo": len(algo)}
            if not regular and not algo and (self.keep or not positions):
                if not self.keep:
                    # "verified flat" needs a second, independent read to agree: one read answering an empty list
                    # is not proof (it may be wrong, or behind the fills)
                    why = await self._second_read_disagrees()
                    if why:
                        self.out.errors.append(f"round {rnd}: not yet verified: {why}")
                        await asyncio.sleep(min(self.pause_s * rnd, MAX_ROUND_PAUSE_S))
                        continue
                self.out.status = "frozen" if self.keep and positions else "flat"
                self.out.remaining = {"positions": [_pos_dict(p) for p in positions], "orders": 0}
                break
            jobs: list[Awaitable[Any]] = [self._cancel(s, "regular") for s in sorted({o.symbol for o in regular})]
            algo_symbols = {o.symbol for o in algo}
            if self.keep:
                jobs += [self._cancel(s, "algo") for s in sorted(algo_symbols)]
            else:
                # a stop or take-profit is cancelled only where the position is confirmed gone by both the position
                # read and the account's own read: a wrong empty read never strips a live position of its stop
                held = {p.symbol for p in positions} | await self._account_position_symbols(algo_symbols)
                jobs += [self._cancel(s, "algo") for s in sorted(algo_symbols - held)]
                jobs += self._close_jobs(positions, first_round=(rnd == 1))
            await asyncio.gather(*jobs)
        else:
            if last_read is None:
                self.out.status = "unreachable"
                self.out.reason = self.out.reason or "no read of the account succeeded"
        if self.out.status == "not_verified" and last_read is not None:
            positions, regular, algo = last_read
            self.out.remaining = {"positions": [_pos_dict(p) for p in positions],
                                  "orders": len(regular) + len(algo)}
            self.out.reason = (f"still {len(positions)} position(s) and {len(regular) + len(algo)} order(s) after "
                               f"{self.out.rounds} round(s)")
        if self.out.verified and not self.keep:
            await self._settle_ledger()
        if last_read is not None:
            await self._snapshot_after()
        self.out.seconds = time.monotonic() - t
        return self.out

    async def _account_position_symbols(self, fallback: set[str]) -> set[str]:
        """Symbols the account endpoint (the second source) shows a position on; ``fallback`` (treat them all as
        held) when it cannot be read or does not report positions."""
        from albra.exchange.errors import ExchangeError

        try:
            bal = await self.gw.fetch_balance()
        except ExchangeError as e:
            self.out.errors.append(f"account read failed ({type(e).__name__}); protective orders kept this round")
            return set(fallback)
        if bal.positions is None:
            return set(fallback)
        return {sym for sym, _side, _amt in bal.positions}

    async def _second_read_disagrees(self) -> str:
        """Why the account is not verified flat yet ("" when it is): the account endpoint must show no position,
        and a second read of positions and open orders (after a pause) must still show nothing."""
        from albra.exchange.errors import ExchangeError

        await asyncio.sleep(self.pause_s)
        try:
            bal = await self.gw.fetch_balance()
            positions, regular, algo = await _read(self.gw)
        except ExchangeError as e:
            return f"confirming read failed: {type(e).__name__}"
        if bal.positions:
            return f"the account read still shows {len(bal.positions)} position(s)"
        if positions or regular or algo:
            return (f"a second read shows {len(positions)} position(s) and {len(regular) + len(algo)} order(s)")
        return ""

    async def _cancel(self, symbol: str, kinds: str = "both") -> None:
        from albra.exchange.errors import ExchangeError

        try:
            await self.om.cancel_all(symbol, kinds)
            if symbol not in self.out.cancelled_symbols:
                self.out.cancelled_symbols.append(symbol)
            what = {"both": "regular and algo", "regular": "regular", "algo": "algo (protective)"}[kinds]
            self.guard.run("journal", lambda s: _journal(s, "orders_cancelled", f"all {what} orders on "
                                                         f"{symbol} cancelled", self.account, symbol))
        except ExchangeError as e:
            self.out.errors.append(f"cancel {symbol}: {type(e).__name__}: {str(e)[:200]}")

    def _close_jobs(self, positions: list["ExchangePosition"], first_round: bool) -> list[Awaitable[Any]]:
        jobs: list[Awaitable[Any]] = []
        legs_by_side = self._legs_by_side() if first_round else {}
        for p in positions:
            key = (p.symbol, p.position_side.value)
            remaining = abs(p.qty)
            direction_long = p.qty > 0
            for leg in legs_by_side.get(key, []):
                if (leg.direction.value == "LONG") != direction_long or leg.qty <= 0 or remaining <= 0:
                    continue
                q = min(leg.qty, remaining)
                remaining -= q
                jobs.append(self._close(p.symbol, p.position_side, direction_long, q, leg=leg))
            if remaining > 0:
                jobs.append(self._close(p.symbol, p.position_side, direction_long, remaining, leg=None))
        return jobs

    def _legs_by_side(self) -> dict[tuple[str, str], list[Any]]:
        from albra.ledger import legs as L

        got = self.guard.run("read legs", lambda s: L.live_legs(s, self.account))
        out: dict[tuple[str, str], list[Any]] = {}
        for leg in got or []:
            out.setdefault((leg.symbol, leg.position_side.value), []).append(leg)
        return out

    async def _close(self, symbol: str, pside: Any, is_long: bool, qty: Decimal, leg: Any | None) -> None:
        """One reduce-only market order for ``qty`` of the (symbol, position side), through a write-ahead intent
        when the store works. Unknown outcome → looked up by client id; never re-sent."""
        from albra.exchange.client_ids import make_client_id
        from albra.exchange.types import OrderRequest
        from albra.model import OrderType, PositionSide, Side

        hedge = pside is not PositionSide.BOTH
        strategy = leg.strategy if leg is not None else f"{EMERGENCY_STRATEGY}-{pside.value}"
        gkey = leg.leg_id if leg is not None else f"{symbol}/{pside.value}"
        gen = self.generation.get(gkey, 0)
        self.generation[gkey] = gen + 1
        cid = make_client_id(self.account, strategy, symbol, self.t0, "emergency", gen)
        req = OrderRequest(cid, symbol, Side.SELL if is_long else Side.BUY, OrderType.MARKET, qty, pside,
                           reduce_only=not hedge)
        rec = CloseOrder(cid, symbol, pside.value, req.side.value, format(qty, "f"), leg.leg_id if leg else None,
                         "pending")
        self.out.close_orders.append(rec)
        self.om.store = self.guard.store  # dropped by the guard after a store failure
        sent = await self.om.send_guarded(req, strategy=strategy, purpose="emergency", candle_ts=self.t0,
                                          leg_id=leg.leg_id if leg else None, db=self.guard.run)
        rec.status, rec.error = sent.status, sent.error
        res = sent.result
        if res is None:
            if sent.status in ("rejected", "unknown"):
                self.out.errors.append(f"close {symbol} {pside.value} {qty}: {sent.error}"[:300])
            return
        rec.filled = format(res.filled_qty, "f")
        rec.avg_price = None if res.avg_price is None else format(res.avg_price, "f")
        self.guard.run("journal", lambda s: _journal(
            s, "position_closed", f"emergency close {req.side.value} {qty} {symbol} ({pside.value}) → "
            f"{res.status.value} {res.filled_qty} @ {res.avg_price}", self.account, symbol,
            strategy=leg.strategy if leg else "", data={"client_id": cid}))

    async def _settle_ledger(self) -> None:
        """Apply the emergency fills to the legs (PnL per strategy) and close legs on sides now flat."""
        from albra.exchange.errors import ExchangeError
        from albra.ledger import legs as L
        from albra.ledger.errors import LedgerError
        from albra.ledger.fills import apply_fill
        from albra.ledger.positions import close_missing

        if self.guard.store is None:
            return
        order_ids = {}
        for c in self.out.close_orders:
            if c.status in ("FILLED", "PARTIALLY_FILLED"):
                order_ids.setdefault(c.symbol, set()).add(c.client_id)
        live = self.guard.run("read legs", lambda s: L.live_legs(s, self.account)) or []
        symbols = sorted(set(order_ids) | {g.symbol for g in live})
        if not symbols:
            return
        from albra.exchange.resolve import pause
        from albra.ledger import intents as I

        exch_ids: set[str] = set()
        for sym, cids in order_ids.items():
            for cid in cids:
                it = self.guard.run("read intent", lambda s: I.get_intent(s, cid))
                if it is not None and it.exchange_order_id:
                    exch_ids.add(it.exchange_order_id)
        # the close fills reach trade history a little after the answers: read until every one is there (bounded:
        # 5 reads over ~1.5 s; what is still missing is left for `albra reconcile`, never guessed)
        for attempt in range(5):
            try:
                trades = dict(zip(symbols, await asyncio.gather(*(self.gw.fetch_trades(s) for s in symbols))))
            except ExchangeError as e:
                self.out.ledger.append(f"trade history unreadable ({type(e).__name__}); legs left for "
                                       "`albra reconcile`")
                return
            seen = {str(f.order_id) for fills in trades.values() for f in fills}
            if exch_ids <= seen:
                break
            await pause(0.1 * 2 ** attempt)
        applied = 0
        closing = [f for fills in trades.values() for f in fills if str(f.order_id) in exch_ids]
        if closing:  # realised by the flatten, fees in USDT included (the exchange's own figures)
            fee_usdt = sum((f.fee for f in closing if (f.extra.get("commission_asset") or "USDT") == "USDT"), Decimal(0))
            self.out.realized = format(sum((f.realized_pnl for f in closing), Decimal(0)) - fee_usdt, "f")
        for sym, fills in trades.items():
            for f in fills:
                if str(f.order_id) in exch_ids:
                    r = self.guard.run("apply fill", lambda s: apply_fill(s, self.account, f, now_ms=self._now()))
                    applied += 1 if r is not None and r.applied else 0
        if applied:
            self.out.ledger.append(f"{applied} emergency fill(s) applied to their legs")
        for leg in self.guard.run("read legs", lambda s: L.live_legs(s, self.account)) or []:
            try:
                self.guard.run("close leg", lambda s: close_missing(s, self.account, leg, trades.get(leg.symbol, []),
                                                                     now_ms=self._now()))
                self.out.ledger.append(f"leg {leg.leg_id} closed from the trade history")
            except LedgerError as e:
                self.out.ledger.append(f"leg {leg.leg_id} left open in the ledger: {e}; run `albra reconcile`")


def _bal_dict(bal: Any) -> dict[str, str]:
    return {"equity": format(bal.equity, "f"), "wallet": format(bal.wallet, "f"),
            "unrealized": format(bal.unrealized, "f"), "available": format(bal.available, "f")}


def _journal(store: "Store", kind: str, message: str, account: str, symbol: str = "", strategy: str = "",
             data: dict | None = None, level: str = "WARNING") -> None:
    from albra.store import journal

    journal.append(store, kind, message, level=level, account=account, symbol=symbol, strategy=strategy,
                   data=data or {}, actor="emergency-shutdown")


def open_store_guarded(db_path: Path) -> tuple["Store | None", str]:
    """The store, or None and why not (never raises: the emergency carries on without it)."""
    from albra.store import Store

    try:
        return Store.open(db_path, create=False), ""
    except Exception as e:  # noqa: BLE001 - unreadable for any reason: say so, continue
        return None, f"{type(e).__name__}: {e}"


def stop_runners(settings: "Settings", accounts: list[str], guard: _StoreGuard, timeout_s: float) -> list[dict]:
    """Stop every targeted account's runner concurrently (threads: systemctl and signals block)."""
    from concurrent.futures import ThreadPoolExecutor

    from albra.runbook.runner_control import stop_runner

    infos: dict[str, Any] = {}
    rows = guard.run("read runners", lambda s: __import__("albra.store.runners", fromlist=["get_all"]).get_all(s))
    for r in rows or []:
        if r.name.startswith("run:"):
            infos[r.name[4:]] = r
    with ThreadPoolExecutor(max_workers=max(1, len(accounts))) as pool:
        futs = [pool.submit(stop_runner, a, settings.paths.state_dir, getattr(infos.get(a), "pid", None),
                            getattr(infos.get(a), "host", None), timeout_s=timeout_s) for a in accounts]
        results = [f.result() for f in futs]
    for r in results:
        guard.run("journal", lambda s: _journal(s, "runner_stopped" if r.ok else "runner_stop_failed",
                                                f"runner {r.account}: {r.detail}", r.account,
                                                level="WARNING" if r.ok else "CRITICAL"))
    return [r.as_dict() for r in results]


async def emergency_shutdown(settings: "Settings", accounts: list[str], *, keep_positions: bool = False,
                             rounds: int = DEFAULT_ROUNDS, stop_timeout_s: float = 10.0, pause_s: float = 0.3,
                             actor: str = "cli", gateway_for: Callable[[str], Any] | None = None,
                             telegram_timeout_s: float = 10.0, all_accounts: bool | None = None) -> EmergencyReport:
    """The whole procedure (module docstring). ``gateway_for`` opens an account's gateway (tests may pass their
    own); by default :func:`albra.runbook.connect.account_gateway` (the factory's emergency profile). The CRITICAL
    alert is queued, then delivered to Telegram from here when it is configured, within ``telegram_timeout_s``
    (:func:`albra.runbook.alert_now.deliver_now`; never blocks or fails the shutdown). ``all_accounts`` turns the
    global kill switch on (default: when ``accounts`` are every configured account); otherwise each account in
    ``accounts`` gets its own, and the other accounts keep trading."""
    from albra.runbook.connect import Unreachable, account_gateway, close_quietly

    if all_accounts is None:
        all_accounts = set(accounts) >= set(settings.accounts)
    t = time.monotonic()
    store, err = open_store_guarded(settings.db_path)
    guard = _StoreGuard(store, err)
    opener = gateway_for or (lambda a: account_gateway(settings, a, emergency=True))
    gws: dict[str, Any] = {a: opener(a) for a in accounts}  # built only: nothing is sent yet
    from albra.store.clock import exchange_now

    # one clock: the incident opens at the exchange's time (the runners' rows, fills and snapshots are on it); when
    # no process ever measured it (no runner ran), one bounded server-time read first — a few ms, at most 1 s
    await _learn_clock(guard, gws)
    started = guard.run("clock", lambda s: exchange_now(s))
    rep = EmergencyReport(started_ms=int(started) if started is not None else _now_ms(), keep_positions=keep_positions)
    if store is None:
        rep.kill_switch = f"NOT SET — store unreadable ({err}); continuing on the exchange"
    else:
        from albra.store import flags

        # the kill switch covers exactly the accounts this shutdown acts on: every account (global) by default,
        # only the named ones when the operator named some
        scopes = [""] if all_accounts else list(accounts)
        why = "emergency-shutdown" + (" (keep positions)" if keep_positions else "")
        was = guard.run("kill switch", lambda s: all(
            (f := flags.kill_switch(s, a or None)) is not None and f.account == a for a in scopes))
        for scope in scopes:
            guard.run("kill switch", lambda s, scope=scope: flags.set_kill_switch(s, True, reason=why, actor=actor,
                                                                                  account=scope))
        where = "every account" if all_accounts else ", ".join(accounts)
        rep.kill_switch = (("already on; refreshed" if was else "set") + f" for {where}") if guard.store else \
            f"NOT SET — {guard.error}; continuing on the exchange"
    # one writer per account: preempt every account's write lease first, so a runner still alive (systemd-managed or
    # started by hand) stops sending at its next heartbeat even before its signal arrives
    from albra.store import leases

    held = {a: guard.run("write lease", lambda s, a=a: leases.acquire(s, a, "emergency-shutdown", preempt=True,
                                                                      ttl_ms=10 * 60_000)) for a in accounts}
    rep.runners = await asyncio.to_thread(stop_runners, settings, accounts, guard, stop_timeout_s)

    async def one(a: str) -> AccountOutcome:
        gw = gws[a]
        if isinstance(gw, Unreachable):
            status = "skipped" if gw.kind == "paper" else "not_handled" if gw.is_config else "unreachable"
            return AccountOutcome(a, status=status, reason=gw.reason)
        try:
            return await _AccountWork(gw, a, guard, rep.started_ms, keep_positions, rounds, pause_s).run()
        finally:
            await close_quietly(gw, guard.store)

    try:
        rep.accounts = list(await asyncio.gather(*(one(a) for a in accounts)))
    finally:
        for lease in held.values():
            if lease is not None:
                guard.run("write lease", lambda s, lease=lease: leases.release(s, lease))
    rep.seconds = time.monotonic() - t
    rep.store_error = guard.error
    _record(guard, rep, actor)
    rep.notified, event_id = _notify(settings, guard, rep)
    if event_id is not None and guard.store is not None:
        # the runners are stopped: nothing else drains the outbox unless `albra bot` runs — send it now (bounded)
        from albra.runbook.alert_now import deliver_now

        rep.notified, outcomes = await deliver_now(settings, guard.store, event_id, telegram_timeout_s)
        rep.telegram = [o.as_dict() for o in outcomes]
    return rep


async def _learn_clock(guard: _StoreGuard, gws: dict[str, Any], timeout_s: float = 1.0) -> None:
    """Measure the exchange clock of the accounts the store has no measurement for (bounded; never fails)."""
    from albra.runbook.connect import Unreachable
    from albra.store.clock import record_offset, wall_ms

    if guard.store is None:
        return
    known = {r["account"] for r in guard.run("clock", lambda s: s.query("SELECT account FROM clock_offsets")) or []}
    todo = {a: gw for a, gw in gws.items() if a not in known and not isinstance(gw, Unreachable)}
    if not todo:
        return

    async def one(a: str, gw: Any) -> None:
        w0 = wall_ms()
        t = await gw.server_time()
        guard.run("clock", lambda s: record_offset(s, a, int(t), wall=(w0 + wall_ms()) // 2))

    try:
        await asyncio.wait_for(asyncio.gather(*(one(a, g) for a, g in todo.items()), return_exceptions=True),
                               timeout_s)
    except asyncio.TimeoutError:
        pass


def _record(guard: _StoreGuard, rep: EmergencyReport, actor: str) -> None:
    from albra.store import incidents

    details = {"accounts": {a.account: {"status": a.status, "reason": a.reason, "positions_before":
                                        a.positions_before, "closed": [c.as_dict() for c in a.close_orders],
                                        "equity_before": a.equity_before, "equity_after": a.equity_after,
                                        "realized_by_flatten": a.realized, "positions_after":
                                        a.remaining.get("positions", []),
                                        "seconds": round(a.seconds, 3)} for a in rep.accounts},
               "runners": rep.runners, "keep_positions": rep.keep_positions, "seconds": round(rep.seconds, 3)}
    bad = [a.account for a in rep.accounts if not a.verified and a.status != "skipped"]
    if bad:
        details["unverified"] = bad
    errors = [e for a in rep.accounts for e in a.errors]
    if errors:
        details["errors"] = errors[:50]
    title = ("emergency shutdown" + (" (positions kept)" if rep.keep_positions else "") +
             (" — VERIFIED" if not bad else f" — NOT verified on {', '.join(bad)}"))
    inc = guard.run("open incident", lambda s: incidents.open_incident(
        s, "emergency_shutdown", title, severity="CRITICAL", opened_by=f"emergency-shutdown ({actor})",
        details=details, ts=rep.started_ms))
    if inc is not None:
        rep.incident_id = inc.incident_id
        guard.run("journal", lambda s: __import__("albra.store.journal", fromlist=["append"]).append(
            s, "emergency_shutdown", f"{title} in {rep.seconds:.1f}s", level="CRITICAL", actor="emergency-shutdown",
            incident_id=inc.incident_id, data={"exit_code": rep.exit_code}))


def _notify(settings: "Settings", guard: _StoreGuard, rep: EmergencyReport) -> tuple[str, str | None]:
    """Queue the CRITICAL alert in the outbox; (what happened, its event id when Telegram should get it). With no
    store there is nowhere to queue it (say so)."""
    if guard.store is None:
        return "not queued: store unavailable (tell the operator channel by hand)", None
    from albra.notify import AlertEvent, emit, make_event_id

    lines = {a.account: f"{a.status}" + (f" ({a.reason})" if a.reason else "") for a in rep.accounts}
    ev = AlertEvent(make_event_id("emergency_shutdown", rep.started_ms), "emergency_shutdown",
                    message=f"Emergency shutdown {'(positions kept) ' if rep.keep_positions else ''}finished in "
                            f"{rep.seconds:.1f}s" + (f"; incident {rep.incident_id}" if rep.incident_id else ""),
                    ts=rep.started_ms, details=lines)
    got = guard.run("notify", lambda s: emit(s, ev))
    if got is None:
        return f"not queued: {guard.error}", None
    if not settings.telegram.enabled:
        return "recorded in the outbox (Telegram disabled in config)", None
    return f"queued for Telegram ({got.level.value}, {got.status})", got.event_id
