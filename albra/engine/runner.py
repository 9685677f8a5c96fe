"""``albra run --account NAME``: the trading loop of one account (ADR 0001: one process per account).

Start-up, in this order: store → heartbeat row → gateway (its retries, re-syncs, rate limits and breaker changes
journaled and alerted through :mod:`albra.engine.exchange_events`) (a paper replay account whose in-process exchange was
just built starts a new session: the previous session's ledger is journaled and cleared, ADR 0006) → position mode, margin mode and leverage → markets →
resolve EVERY unresolved order intent by client id (before anything can send) → leg cache, protection check
(every open leg has a live stop) and a first sync → systemd READY → loop.

Loop (one turn ≤ 1 s of wall time): control flags and heartbeat; closed candles due per the scheduler
(exchange time; caught up in order after a stall; never the forming candle) → strategy → executor → mark;
position sync (60 s: stops/TPs that fired close their legs; funding payments since a persisted cursor are
allocated to the legs that held the position, :mod:`albra.engine.funding`), reconciliation (300 s: differences are journaled
and alerted, never overwritten), equity snapshot + MDD/daily anchors (60 s), health checks. The systemd watchdog
is fed only when a turn completed and health checks pass.

Modes: ``live``/``demo`` (ccxt; a ``base_url`` points it at e.g. ``albra sim serve``) evaluate each due candle
with ``Strategy.evaluate`` on candles fetched from the exchange. ``paper`` runs the simulated exchange in-process
over the account's replay files (default: the bundled BTCUSDT 15m) on the replay clock; there the strategy's
features are prepared once over the replay file and ``decide`` is called per closed candle, which equals
``evaluate`` on the closed prefix (the strategies' no-look-ahead property, tested in tests/strategies) and makes a
6-month replay take seconds. ``replay_speed`` 0 steps the clock candle by candle as fast as the loop turns; > 0
runs it at that many times real time. When the replay data is exhausted the run prints a summary and exits 0.

Shutdown on SIGTERM/SIGINT: stop new entries → cancel working entry orders (protective orders stay) → finish the
current turn (bounded by 30 s) → persist (heartbeat ``stopped``) → close the gateway → exit 0. The pid file
``<state_dir>/run-<account>.pid`` (0600, :mod:`albra.engine.pidfile`) exists from start to that exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from albra.engine.executor import Executor, StrategySlot
from albra.engine.health import Health
from albra.engine.reconcile import Reconciler
from albra.engine.risk_limits import refresh_equity, risk_limits
from albra.engine.scheduler import CandleScheduler, Due, Track
from albra.exchange import errors as X
from albra.model import PositionMode
from albra.store import journal, runners
from albra.store.db import Store

log = logging.getLogger("albra.engine.runner")


def _kst(ms: int | None) -> str:
    from albra.timefmt import fmt_kst

    return fmt_kst(ms) if ms is not None else "-"

SYNC_EVERY_S = 60.0
#: a user data stream down longer than this is reported in the runner's health (heartbeat, status, dashboard)
STREAM_DOWN_WARN_S = 60.0
#: while the user data stream of a live account is down, REST polling is all the runner has: poll faster
SYNC_STREAM_DOWN_S = 5.0
RECONCILE_EVERY_S = 300.0
EQUITY_EVERY_S = 60.0
SHUTDOWN_BUDGET_S = 30.0


class RunnerError(RuntimeError):
    """The runner cannot start (bad configuration for this account, unknown strategy, missing data)."""


class WriterBusy(RunnerError):
    """Another live process holds the account's write lease (a second runner, a repair, an emergency shutdown)."""


@dataclass
class ReplayCtx:
    """The in-process exchange of a paper account and the replay that drives it."""

    ex: Any
    replay: Any
    clock: Any
    series: dict[str, Any]
    speed: float
    end_ms: int | None


@dataclass
class RunSummary:
    account: str
    candles: int = 0
    evaluations: int = 0
    trades: int = 0
    wins: int = 0
    pnl: Decimal = Decimal(0)
    equity: Decimal | None = None
    open_legs: int = 0
    refusals: int = 0
    exhausted: bool = False
    stopped_by: str = ""
    fees: Decimal = Decimal(0)        # of the closed legs, in USDT
    funding_paid: Decimal = Decimal(0)  # funding paid (−) or received (+) by the closed legs
    max_drawdown_pct: float | None = None  # peak-to-trough of the account's equity snapshots of this run
    by_strategy: dict = field(default_factory=dict)  # strategy → trades, wins, pnl (net), fees, funding
    extra: dict = field(default_factory=dict)
    #: paper accounts: symbol → where the simulated exchange's funding comes from
    funding: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        q = Decimal("0.01")
        return {"account": self.account, "candles": self.candles, "evaluations": self.evaluations,
                "trades": self.trades, "wins": self.wins, "pnl": format(self.pnl, "f"),
                "equity": None if self.equity is None else format(self.equity, "f"), "open_legs": self.open_legs,
                "refusals": self.refusals, "replay_exhausted": self.exhausted, "stopped_by": self.stopped_by,
                "fees": format(self.fees.quantize(q), "f"), "funding_paid": format(self.funding_paid.quantize(q), "f"),
                "funding": self.funding,
                "max_drawdown_pct": self.max_drawdown_pct,
                "by_strategy": {k: {"trades": v["trades"], "wins": v["wins"],
                                    "pnl": format(v["pnl"].quantize(q), "f"), "fees": format(v["fees"].quantize(q), "f"),
                                    "funding": format(v["funding"].quantize(q), "f")}
                                for k, v in sorted(self.by_strategy.items())}}


def max_drawdown_pct(store: Store, account: str, since_ms: int | None = None) -> float | None:
    """Largest peak-to-trough fall of the account's equity snapshots (since ``since_ms``), in %; None without any."""
    peak = None
    worst = 0.0
    rows = store.query("SELECT equity FROM equity_snapshots WHERE account=? AND ts>=? ORDER BY ts",
                       (account, since_ms or 0))
    for r in rows:
        eq = float(r["equity"])
        if peak is None or eq > peak:
            peak = eq
        elif peak > 0:
            worst = max(worst, (peak - eq) / peak * 100)
    return None if not rows else round(worst, 2)


def build_gateway(settings: Any, account: str, on_event: Any = None,
                  on_call: Any = None) -> tuple[Any, ReplayCtx | None]:
    """The account's gateway, always through :func:`albra.exchange.factory.gateway_for`; for a paper account
    also the replay that drives its in-process exchange (taken from the paper gateway). ``on_event`` receives the
    resilience layer's events of a live/demo gateway (the runner passes its
    :class:`~albra.engine.exchange_events.ExchangeEventSink`; the in-process paper exchange has no network)."""
    from albra.exchange.factory import gateway_for
    from albra.timefmt import parse_time

    acc = settings.account(account)
    if acc.mode.value == "paper" and acc.paper_feed == "live":
        from albra.exchange.client import is_loopback

        try:  # orders to the in-process exchange, the market from Binance (or the local server)
            gw = gateway_for(account, acc, test_mode=is_loopback(acc.base_url), on_event=on_event)
        except (ValueError, OSError) as e:
            raise RunnerError(f"account {account}: {e}") from None
        return gw, None
    if acc.mode.value == "paper":
        try:
            gw = gateway_for(account, acc, data_dir=settings.paths.data_dir)
        except (ValueError, OSError) as e:
            raise RunnerError(f"account {account}: {e}") from None
        if not gw.replay.series:
            raise RunnerError(f"account {account} has no enabled strategy with a symbol")
        end = parse_time(acc.replay_end) if acc.replay_end else None
        return gw, ReplayCtx(gw.ex, gw.replay, gw.clock, dict(gw.replay.series), float(acc.replay_speed), end)
    secrets = settings.require_secrets(account)
    from albra.exchange.client import is_loopback

    local = is_loopback(acc.base_url)  # a local exchange (albra sim serve): ccxt's own throttler off
    gw = gateway_for(account, acc, secrets, state_dir=settings.paths.state_dir, test_mode=local, on_event=on_event,
                     on_call=on_call)
    return gw, None


def build_paper(settings: Any, account: str) -> tuple[Any, ReplayCtx]:
    """Paper account: the :class:`~albra.exchange.paper.PaperGateway` and its replay (tests drive both)."""
    gw, ctx = build_gateway(settings, account)
    if ctx is None:
        raise RunnerError(f"account {account} is not a paper account")
    return gw, ctx


class Runner:
    """One account's trading loop."""

    def __init__(self, settings: Any, account: str, *, gateway: Any = None, replay: ReplayCtx | None = None,
                 store: Store | None = None, notifier: Any = None, max_candles: int | None = None,
                 until_ms: int | None = None, wall: Callable[[], float] = time.monotonic,
                 announce: Callable[[str], None] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> None:
        """``announce`` receives the one-line notices an operator must see at start-up (a paper session reset);
        by default they are logged. ``progress(done_ms, total_ms)`` follows a paper replay (exchange time covered
        of the whole window) — the command draws its progress bar from it."""
        from albra.systemd import Notifier
        from albra.strategies import registry

        self.settings = settings
        self.account = account
        self.acc = settings.account(account)
        self.gw = gateway
        self.replay = replay
        self.store = store
        self.notifier = notifier or Notifier()
        self.max_candles = max_candles
        self.until_ms = until_ms
        self.wall = wall
        self.announce = announce or (lambda msg: log.warning("%s", msg))
        self.paper_reset: Any = None  # the previous paper session's summary when this run reset it
        self.progress = progress
        self._replay_span: tuple[int, int] | None = None  # (first, last) exchange ms of a paper replay
        self._since_ex: int | None = None  # exchange time this run started at (its summary's drawdown window)
        self.health = Health(monotonic=wall)
        self.stop = asyncio.Event()
        self.stopped_by = ""
        self.summary = RunSummary(account)
        self.strategies: dict[str, Any] = {}
        self.entries: dict[str, Any] = {}
        for st in self.acc.strategies:
            if not st.enabled:
                continue
            cls = registry.get(st.name)
            if cls.timeframes[0] != st.timeframe:
                raise RunnerError(f"accounts.{account}: strategy {st.name} runs on {cls.timeframes[0]} candles, "
                                  f"the config says timeframe = {st.timeframe!r}")
            self.strategies[cls.name] = cls(st.params)
            self.entries[cls.name] = st
        if not self.strategies:
            raise RunnerError(f"account {account} has no enabled strategy")
        self.tracks = [Track(name, sym, self.entries[name].timeframe)
                       for name in self.strategies for sym in self.entries[name].symbols]
        self._features: dict[tuple[str, str], tuple[Any, dict[int, int]]] = {}
        self._last_entry: dict[tuple[str, str], int | None] = {}
        self.executor: Executor | None = None
        self.scheduler: CandleScheduler | None = None
        self._t_sync = self._t_rec = self._t_eq = self._t_beat = -1e18
        self._clock: tuple[int, float] | None = None  # live: (exchange time read, monotonic time of the read)
        self.reconciler: Reconciler | None = None
        self.exchange_events: Any = None  # the gateway's event sink (journal + alerts), when the runner built it
        self.calls: Any = None  # exchange calls by outcome and placement latencies (albra.store.operations)
        self.uptime: Any = None  # this runner's uptime segments (albra.store.operations)
        self.lease: Any = None  # the account's write lease (albra.store.leases), held from run() to its end
        self.stream: Any = None  # the user data stream (albra.exchange.user_stream) of a live/local account
        self._stream_task: asyncio.Task | None = None
        self._stream_stop = asyncio.Event()
        self._dirty: set[str] = set()  # symbols an event says changed: their protection is synced at once
        self._stream_fills: list[Any] = []  # executions pushed by the stream, applied on arrival (under the lock)
        self._recovered: list[str] = []  # legs a late entry fill reopened: protected on the event (under the lock)
        self._fill_lock = asyncio.Lock()
        self._child_of: dict[str, str] = {}  # a fired algo's child order id → the algo's client id (ALGO_UPDATE ai)
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ helpers
    @property
    def name(self) -> str:
        return f"run:{self.account}"

    def now_ms(self) -> int:
        """Exchange time. Live: the server time read at the start of the turn plus the wall time since, so a
        replaying server at any speed (``albra sim serve --speed N``) is followed and a candle is never taken
        as closed before the exchange says so (real time only ever under-estimates an accelerated clock)."""
        if self.replay is not None:
            return int(self.replay.ex.now)
        if self._clock is not None:
            t, at = self._clock
            return t + int((time.monotonic() - at) * 1000)
        now = getattr(self.gw, "exchange_now", None)
        return int(now()) if now is not None else int(time.time() * 1000)

    async def _sync_exchange_clock(self) -> None:
        t = await self._timed(self.gw.server_time())
        self._clock = (int(t), time.monotonic())
        if self.store is not None:  # one clock: what the bot and commands stamp their rows with (ADR 0015)
            from albra.store.clock import record_offset

            record_offset(self.store, self.account, int(t))

    def limits(self, strategy: str = "") -> Any:
        """Effective :class:`albra.risk.RiskLimits` of a strategy on this account ("" = the account's)."""
        entry = self.entries.get(strategy) if strategy else None
        return risk_limits(self.settings.effective_risk(self.account, entry))

    def _journal(self, kind: str, msg: str, level: str = "INFO", strategy: str = "", symbol: str = "",
                 **data: Any) -> None:
        journal.append(self.store, kind, msg, level=level, account=self.account, data=data, ts=self.now_ms(),
                       actor=self.name, strategy=strategy, symbol=symbol)

    async def _timed(self, coro: Any) -> Any:
        t = time.perf_counter()
        try:
            out = await coro
        except X.ExchangeError:
            self.health.record(False, (time.perf_counter() - t) * 1000)
            raise
        self.health.record(True, (time.perf_counter() - t) * 1000)
        return out

    # ------------------------------------------------------------------ start-up
    async def start(self) -> None:
        from albra.orders.resolution import resolve_unresolved

        if self.store is None:
            self.store = Store.open(self.settings.db_path)
        started = int(time.time() * 1000)
        runners.beat(self.store, self.name, "starting", {"mode": self.acc.mode.value}, started_ms=started)
        if self.gw is None:
            from albra.engine.exchange_events import ExchangeEventSink

            from albra.store.operations import CallRecorder

            self.exchange_events = ExchangeEventSink(self.store, self.account, now_ms=self.now_ms, actor=self.name)
            self.calls = CallRecorder(self.store, self.account)
            self.gw, self.replay = build_gateway(
                self.settings, self.account, on_event=self.exchange_events,
                on_call=lambda op, placement, outcome, ms: self.calls.record(self.now_ms(), op, placement, outcome,
                                                                             ms))
            self.summary.funding = dict(getattr(self.gw, "funding_sources", None) or {})
            if self.replay is not None:
                first = int(self.replay.clock.now_ms())
                if self.until_ms is not None and self.until_ms <= first:
                    # refused before the reset: a run that would evaluate nothing must not clear the last session
                    raise RunnerError(f"--until {_kst(self.until_ms)} is not after the replay start {_kst(first)}: "
                                      f"nothing would run (the previous paper session is kept)")
            if self.acc.mode.value == "paper":
                self._new_paper_session()
        if self.replay is None:
            await self._sync_exchange_clock()
        self._since_ex = self.now_ms()
        mode = PositionMode(self.acc.position_mode)
        await self._timed(self.gw.set_position_mode(mode))
        lev: dict[str, int] = {}
        for name, st in self.entries.items():
            for sym in st.symbols:
                if sym in lev and lev[sym] != st.leverage:
                    self._journal("leverage_conflict", f"{sym}: {name} wants {st.leverage}x, {lev[sym]}x already "
                                  f"set by another strategy (Binance has one leverage per symbol)", "WARNING")
                    continue
                lev[sym] = st.leverage
        for sym, lv in lev.items():
            await self._timed(self.gw.setup_symbol(sym, lv, self.acc.margin_mode))
        filters = await self._timed(self.gw.load_markets())
        resolved = await resolve_unresolved(self.store, self.gw, self.account, now_ms=self.now_ms())
        if resolved:
            self._journal("intents_resolved", f"{len(resolved)} unresolved intent(s) resolved at start-up",
                          "WARNING", ids=[r.client_id for r in resolved])
        slots = [StrategySlot(n, e.size_pct, e.leverage) for n, e in self.entries.items()]
        self.executor = Executor(self.store, self.gw, self.account, mode, filters, slots, self.limits, self.now_ms)
        if self.replay is not None:
            sessions = len(self.store.query("SELECT seq FROM journal WHERE kind='paper_session_reset' AND account=?",
                                            (self.account,)))
            self.executor.event_scope = f"paper{sessions}" if sessions else ""
        self.scheduler = CandleScheduler(self.store, self.account, self.tracks)
        self.reconciler = Reconciler(self.store, self.gw, self.account, self.executor, filters, self.now_ms,
                                     actor=self.name)
        # before the first candle: fired stops applied, ledger = exchange, every open leg protected
        await self.executor.sync_protective()
        self.executor.reload_legs()
        await self.reconcile()
        self._t_rec = self.wall()
        if self.replay is not None:
            self._prepare_replay_features()
        await self._periodic(force=True)
        self._start_stream()  # after the start-up sync: its (re)connect resync covers what happened since
        runners.beat(self.store, self.name, "running", {"mode": self.acc.mode.value})
        from albra.store.operations import UptimeTracker

        # a replay's clock jumps many candles per wall second: only a live runner's gaps are downtime
        self.uptime = UptimeTracker(self.store, self.name, None if self.replay is not None else runners.STALE_AFTER_MS)
        self.uptime.start(self.now_ms())
        self._journal("runner_started", f"runner {self.account} started ({self.acc.mode.value}, "
                      f"{self.acc.position_mode.value}, {len(self.tracks)} track(s))")
        self.notifier.ready(f"trading {self.account}")

    def _new_paper_session(self) -> None:
        """The runner just built a fresh in-process paper exchange: an earlier session's ledger in the store
        cannot describe it, so that session is journaled and cleared (docs/adr/0006-paper-sessions.md)."""
        from albra.engine.paper_session import is_paper_replay, reset_paper_session

        if not is_paper_replay(self.acc):
            return
        prev = reset_paper_session(self.store, self.account, self.acc, now_ms=self.now_ms(), actor=self.name)
        self.paper_reset = prev
        if prev is not None:
            from albra.timefmt import fmt_kst

            last = fmt_kst(prev.last_candle_ms) if prev.last_candle_ms is not None else "none"
            self.announce(f"paper account {self.account}: starting a new replay session; the previous session "
                          f"({prev.legs} legs, {prev.open_legs} open, realised PnL {prev.realized_pnl:.2f} USDT, "
                          f"last candle {last}) was cleared from the ledger (journal kept)")

    def _prepare_replay_features(self) -> None:
        from albra.engine.backtest import frames_for

        assert self.replay is not None
        for tr in self.tracks:
            strat = self.strategies[tr.strategy]
            frames = frames_for(type(strat), [self.replay.series[tr.symbol]])
            feats = strat.prepare(frames)
            self._features[(tr.strategy, tr.symbol)] = (feats, {ts: i for i, ts in enumerate(feats.ts)})

    def last_entry(self, strategy: str, symbol: str) -> int | None:
        key = (strategy, symbol)
        if key not in self._last_entry:
            r = self.store.query_one(
                "SELECT MAX(entry_ts) AS t FROM legs WHERE account=? AND strategy=? AND symbol=? AND state IN"
                " ('open', 'closing', 'closed')", (self.account, strategy, symbol))
            self._last_entry[key] = None if r is None or r["t"] is None else int(r["t"])
        return self._last_entry[key]

    # ------------------------------------------------------------------ candles
    async def _decisions(self, due: Due, cache: dict, catching_up: bool = False,
                         span_ms: int = 0) -> tuple[list, float] | str | None:
        """The strategy's decisions on the closed candle ``due``; None: the exchange does not have it yet (retry);
        ``"beyond_history"``: older than the history one klines request gives with the strategy's warm-up (the
        catch-up re-seeds from the candles it can evaluate, :mod:`albra.engine.catch_up`)."""
        strat = self.strategies[due.track.strategy]
        legs = self.executor.views(due.track.strategy, due.track.symbol)
        last = self.last_entry(due.track.strategy, due.track.symbol)
        if self.replay is not None:
            feats, idx = self._features[(due.track.strategy, due.track.symbol)]
            i = idx.get(due.ts)
            if i is None:
                return None
            return strat.decide(feats, i, legs, last), feats.cols["close"][i] if "close" in feats.cols else 0.0
        from albra.candles import CandleSeries
        from albra.engine.catch_up import MAX_FETCH
        from albra.strategies.base import closed_candles
        import numpy as np

        frames = {}
        hist = strat.history_by_timeframe()
        for tf in strat.timeframes:
            key = (due.track.symbol, tf)
            if key not in cache:
                # a catch-up needs the strategy's warm-up before the oldest missed candle (``span_ms`` back from
                # now): the usual history plus the missed span, at most one full request — not a full request for
                # every candle that is one bar late (that made every turn of a stepped clock fetch 1500 candles)
                from albra.timefmt import timeframe_ms

                extra = span_ms // timeframe_ms(tf) + 2 if catching_up else 0
                limit = min(MAX_FETCH, hist[tf] + 50 + extra)
                rows = await self._timed(self.gw.fetch_candles(due.track.symbol, tf, limit=limit))
                rows = [c for c in rows if c.closed]
                cache[key] = CandleSeries(due.track.symbol, tf, np.array([c.ts for c in rows], dtype=np.int64),
                                          *(np.array([getattr(c, f) for c in rows], dtype=np.float64)
                                            for f in ("open", "high", "low", "close", "volume")))
            frames[tf] = closed_candles(cache[key], due.close_ms)
        prim = frames[strat.timeframes[0]]
        series = cache[(due.track.symbol, strat.timeframes[0])]
        if len(series) and due.ts < int(series.ts[0]) + hist[strat.timeframes[0]] * due.track.interval_ms \
                and int(series.ts[-1]) > due.ts:
            return "beyond_history"  # the exchange has newer candles but not this one's warm-up
        if len(prim) == 0 or int(prim.ts[-1]) != due.ts:
            return None
        return strat.evaluate(frames, legs, last), float(prim.close[-1])

    async def evaluate_due(self) -> int:
        """Evaluate every closed candle not evaluated yet, oldest first; returns how many were evaluated.

        After downtime the missed candles are caught up with a maximum signal age (:mod:`albra.engine.catch_up`):
        only fresh candles may open legs; stale ones bring the strategy up to date, run their exits at once and
        coalesce their stop moves; candles beyond the fetchable history are re-seeded (skipped, journaled)."""
        from albra.engine import catch_up as C

        now = self.now_ms()
        dues = self.scheduler.due(now)
        for tr, (first, n) in self.scheduler.take_dropped().items():
            self._journal("catch_up_reseeded", f"{tr.strategy} {tr.symbol}: {n} missed {tr.timeframe} candle(s) from "
                          f"{_kst(first)} are more than a catch-up pass; re-seeded from the newest", "WARNING",
                          strategy=tr.strategy, symbol=tr.symbol, candles=n, first_ts=first)
        if not dues:
            return 0
        if self.executor.has_open_legs():
            # strategies must see the legs as they are: a stop that fired since the last sync closes its leg
            # first (else the strategy's exit for it would be refused by the exchange, reduce-only on nothing,
            # and a paper replay would skip the entry a backtest of the same candles takes on a flat book)
            await self._timed(self.executor.sync_protective())
        max_age = self.settings.runner.max_signal_age_bars
        catching_up = any(not C.is_fresh(d, now, max_age) for d in dues)
        span_ms = max((now - d.ts for d in dues), default=0)  # back to the oldest missed candle
        cache: dict = {}
        n = 0
        blocked: set[tuple[str, str]] = set()
        pending = C.PendingMoves()
        report: dict[tuple[str, str], C.TrackCatchUp] = {}
        for due in dues:
            key = (due.track.strategy, due.track.symbol)
            if key in blocked:
                continue
            got = await self._decisions(due, cache, catching_up, span_ms)
            if got is None:  # not available yet: retry next turn, never skip
                blocked.add(key)
                continue
            fresh = C.is_fresh(due, now, max_age)
            if fresh and key in pending.keys():  # the strategy sees the stop it trailed to while we were down
                await self._apply_moves(due, pending.take(key), report, now)
                got = await self._decisions(due, cache, catching_up, span_ms)
                if not isinstance(got, tuple):
                    blocked.add(key)
                    continue
            if got == "beyond_history":
                rep = report.setdefault(key, C.TrackCatchUp(*key))
                rep.reseeded += 1
                rep.seen(due)
                self.scheduler.mark(due, now)
                continue
            decisions, price = got
            if not fresh:
                rep = report.setdefault(key, C.TrackCatchUp(*key))
                rep.seen(due)
                decisions = self._stale(due, decisions, pending, rep, now)
            if decisions:
                entered = await self.executor.handle(due.track.strategy, due.track.symbol, due.ts, decisions, price)
                if entered:
                    self._last_entry[key] = due.ts
            self.scheduler.mark(due, now)
            n += 1
        for key in pending.keys():
            tr = next(t for t in self.tracks if (t.strategy, t.symbol) == key)
            await self._apply_moves(Due(tr, report[key].last_ts or 0), pending.take(key), report, now)
        for rep in report.values():
            self._report_catch_up(rep, now)
        self.summary.evaluations += n
        return n

    def _stale(self, due: Due, decisions: list, pending: Any, rep: Any, now: int) -> list:
        """A stale candle's decisions: entries journaled and dropped, stop moves put aside (the last per leg wins),
        exits and leg-state updates kept to run now, each exit journaled as applied late at market."""
        from albra.engine import catch_up as C

        split = C.split_stale(decisions)
        key = (due.track.strategy, due.track.symbol)
        age = C.age_text(due, now)
        for e in split.skipped:
            rep.entries_skipped += 1
            self._journal("entry_skipped_stale", f"{due.track.strategy} {due.track.symbol}: {e.direction.value} entry "
                          f"of candle {_kst(due.ts)} NOT sent: the signal is {age} old (max signal age "
                          f"{self.settings.runner.max_signal_age_bars} bar(s))", "WARNING",
                          strategy=due.track.strategy, symbol=due.track.symbol, candle_ts=due.ts,
                          age_ms=now - due.close_ms, direction=e.direction.value, reason=e.reason)
        pending.add(key, due.ts, split.moves)
        for x in C.exits_of(split.apply_now):
            rep.exits_applied += 1
            pending.drop_leg(key, str(x.leg_id))
            self._journal("catch_up_exit", f"{due.track.strategy} {due.track.symbol}: exit of leg {x.leg_id} "
                          f"({x.reason}) decided on candle {_kst(due.ts)}, {age} ago while the runner was down — "
                          f"applied now at market (it reduces risk)", "WARNING", strategy=due.track.strategy,
                          symbol=due.track.symbol, leg_id=str(x.leg_id), candle_ts=due.ts, age_ms=now - due.close_ms)
        return split.apply_now

    async def _apply_moves(self, due: Due, moves: list, report: dict, now: int) -> None:
        """Apply the coalesced stop moves of a track (one per leg still open), each journaled as late."""
        from albra.engine import catch_up as C

        key = (due.track.strategy, due.track.symbol)
        live = {str(v.leg_id) for v in self.executor.views(*key)}
        for candle_ts, m in moves:
            if str(m.leg_id) not in live:
                continue
            rep = report.setdefault(key, C.TrackCatchUp(*key))
            rep.moves_applied += 1
            self._journal("catch_up_stop_move", f"{key[0]} {key[1]}: stop of leg {m.leg_id} → {m.new_stop} "
                          f"({m.reason}), the last trail decided while the runner was down (candle "
                          f"{_kst(candle_ts)}) — applied now", "WARNING", strategy=key[0], symbol=key[1],
                          leg_id=str(m.leg_id), candle_ts=candle_ts, new_stop=m.new_stop)
            await self.executor.handle(key[0], key[1], candle_ts, [m], 0.0)

    def _report_catch_up(self, rep: Any, now: int) -> None:
        if rep.candles == 0:
            return
        parts = [f"{rep.candles} missed candle(s) {_kst(rep.first_ts)} → {_kst(rep.last_ts)} caught up"]
        if rep.reseeded:
            parts.append(f"{rep.reseeded} older than the fetchable history re-seeded (skipped)")
        parts.append(f"{rep.entries_skipped} stale entr{'y' if rep.entries_skipped == 1 else 'ies'} not sent")
        parts.append(f"{rep.exits_applied} exit(s) and {rep.moves_applied} stop move(s) applied now")
        msg = f"{rep.strategy} {rep.symbol}: " + "; ".join(parts)
        self._journal("catch_up", msg, "WARNING", strategy=rep.strategy, symbol=rep.symbol, candles=rep.candles,
                      first_ts=rep.first_ts, last_ts=rep.last_ts, reseeded=rep.reseeded,
                      entries_skipped=rep.entries_skipped, exits_applied=rep.exits_applied,
                      moves_applied=rep.moves_applied)
        self.executor._alert("candles_caught_up", f"catch_up:{self.account}:{rep.strategy}:{rep.symbol}:{rep.last_ts}",
                             msg, strategy=rep.strategy, symbol=rep.symbol)

    # ------------------------------------------------------------------ periodic work
    async def _periodic(self, force: bool = False) -> None:
        t = self.wall()
        if self.replay is not None and self.replay.speed == 0:
            t = self.now_ms() / 1000.0  # replay time drives the cadence when the clock is stepped
        every = SYNC_STREAM_DOWN_S if self.stream is not None and self.stream.state != "up" else SYNC_EVERY_S
        every = getattr(self.gw, "sync_every_s", None) or every  # an in-process exchange is cheap to read
        if force or t - self._t_sync >= every:
            self._t_sync = t
            if self.executor.has_open_legs():
                await self.executor.sync_protective()
            if self.replay is None:
                await self._recheck_given_up()
            await self._sync_funding()
        if force or t - self._t_eq >= EQUITY_EVERY_S:
            self._t_eq = t
            up = await self._timed(refresh_equity(self.store, self.gw, self.account, self.limits(), self.now_ms()))
            for ch in up.changes:
                self.executor._alert("mdd_halt" if ch.halted else "mdd_level_change",
                                     f"mdd_level:{self.account}:{ch.new}:{self.now_ms()}",
                                     f"drawdown {ch.drawdown_pct:.2f}%: MDD level {ch.old} → {ch.new} "
                                     f"(size ×{ch.multiplier})")
            if up.flatten:
                from albra.engine.flatten import flatten_account

                res = await flatten_account(self.executor, reason=f"MDD halt at {up.drawdown_pct:.2f}% drawdown "
                                            "(mdd_flatten_on_halt)", now_ms=self.now_ms(),
                                            incident_id=up.incident_id, actor=self.name)
                self.executor.reload_legs()
                if not res.verified:
                    self._journal("mdd_flatten_unverified", "MDD flatten not verified flat: run `albra "
                                  "emergency-shutdown`", "CRITICAL", remaining=res.remaining, errors=res.errors)
        if force or t - self._t_rec >= RECONCILE_EVERY_S:
            self._t_rec = t
            await self.reconcile()

    async def _recheck_given_up(self) -> None:
        """Entries given up as never placed in the last hour, looked up once more on every REST sync (60 s with the
        stream, 5 s without): one that executed after all (-1007) reopens its leg, which is protected now — the
        stream usually says it first (its fill event names the client id); this bounds the window without it."""
        from albra.orders.resolution import recheck_given_up_entries

        self._recovered += await self._timed(recheck_given_up_entries(self.store, self.gw, self.account,
                                                                      now_ms=self.now_ms()))
        if self._recovered:
            self.executor.reload_legs()
            await self._settle_closed([])

    async def _sync_funding(self) -> None:
        """Funding paid or received since the persisted cursor → the legs that held the position."""
        from albra.engine.funding import sync_funding

        got = await self._timed(sync_funding(self.store, self.gw, self.account, now_ms=self.now_ms()))
        if any(a.shares for a in got):
            self.executor.reload_legs()  # the views carry no funding, but the cached legs do

    async def reconcile(self) -> Any:
        """One reconciliation round (:class:`~albra.engine.reconcile.Reconciler`): differences become explicit
        unattributed legs or closes from the trade history, missing stops are re-placed; a failed read skips the
        round. Returns the round's report (None when skipped)."""
        assert self.reconciler is not None
        report = await self.reconciler.round()
        self.executor.reload_legs()
        return report

    def _heartbeat(self, force: bool = False) -> None:
        t = self.wall()
        if not force and t - self._t_beat < min(1.0, self.settings.runner.heartbeat_s):
            return
        self._t_beat = t
        if self.exchange_events is not None:
            self.exchange_events.tick()  # a breaker open past its threshold opens an incident
        from albra.store import flags

        self._renew_lease()
        blk = flags.kill_switch(self.store)
        problems = self.health.check()
        stream = None if self.stream is None else {"state": self.stream.state, "connects": self.stream.connects,
                                                    "events": self.stream.events}
        if self.stream is not None and self.stream.state != "up":
            down_s = time.monotonic() - self.stream.down_since
            if down_s > STREAM_DOWN_WARN_S:  # a health finding the views show; the watchdog keeps being fed: REST
                # polling (every 5 s meanwhile) keeps the account correct, only slower
                why = self.stream.last_error or "no error seen"
                problems = problems + [f"user data stream down for {down_s:.0f}s ({why}); REST polling every "
                                       f"{SYNC_STREAM_DOWN_S:.0f}s"]
        runners.beat(self.store, self.name, "running", {"kill_switch": blk is not None, "health": problems,
                                                        "candles": self.summary.candles, "stream": stream})
        self._record_operations()
        if self.health.may_feed_watchdog():
            self.notifier.watchdog()

    def _record_operations(self, stopping: bool = False) -> None:
        """Uptime segment and exchange call counts for the monthly review; bookkeeping never stops the loop."""
        try:
            if self.uptime is not None:
                (self.uptime.stop if stopping else self.uptime.beat)(self.now_ms())
            if self.calls is not None:
                self.calls.flush()
        except Exception as e:  # noqa: BLE001 - the store error shows again in the next real write
            log.error("operations bookkeeping failed: %s", e)

    # ------------------------------------------------------------------ user data stream
    def _start_stream(self) -> None:
        """Fills, triggers and cancellations reach the runner as Binance pushes them (ADR 0011): each event marks
        its symbol, and the loop syncs that symbol's legs at once (a take-profit's fill cancels its stop on that
        event, not at the next poll). REST polling goes on beside it; a (re)connect resyncs every symbol."""
        if self.replay is not None or not hasattr(self.gw, "start_user_stream"):
            return
        from albra.exchange.user_stream import UserStream

        self.stream = UserStream(self.gw.start_user_stream, self.gw.keepalive_user_stream, self.gw.user_stream_url,
                                 self._on_stream_event, self._on_stream_connect)
        self._stream_task = asyncio.get_running_loop().create_task(self.stream.run(self._stream_stop))

    async def _on_stream_event(self, ev: Any) -> None:
        if ev.kind == "ALGO_UPDATE" and ev.actual_order_id:
            self._child_of[ev.actual_order_id] = ev.client_id  # before its child's fills (Binance sends it first)
        if ev.kind == "ORDER_TRADE_UPDATE" and ev.execution == "TRADE":
            self._stream_fills.append(ev)
            if self.executor is not None:
                # the fill reaches the ledger on the event itself (one atomic, idempotent store write); what it
                # implies on the exchange (cancelling the closed leg's other protection) waits for the executor's
                # lock, so the loop and the stream never send for one leg at once
                closed = self._record_stream_fills()
                if closed or self._recovered:
                    try:
                        async with self._fill_lock:
                            await self._settle_closed(closed)
                    except X.ExchangeError as e:  # the symbol is marked dirty below: the loop's sync retries
                        self._journal("stream_settle_failed", f"cancelling a closed leg's protection on the event "
                                      f"failed ({e}); the next sync does it", "WARNING")
        if ev.kind == "ORDER_TRADE_UPDATE" and ev.execution in ("TRADE", "CANCELED", "EXPIRED", "CALCULATED"):
            self._dirty.add(ev.symbol)
        elif ev.kind == "ALGO_UPDATE" and ev.status in ("FINISHED", "REJECTED", "EXPIRED", "CANCELED"):
            self._dirty.add(ev.symbol)
        elif ev.kind == "ACCOUNT_UPDATE" and ev.status == "ORDER":
            self._dirty.update(ev.symbols)
        else:
            return
        self._wake.set()

    async def _on_stream_connect(self) -> None:
        """After every (re)connect: everything that happened while the stream was down is read by REST."""
        self._dirty.update(t.symbol for t in self.tracks)
        if self.executor is not None:
            self._dirty.update(g.symbol for g in self.executor.open_legs())
        if self.stream is not None and self.stream.connects > 1:
            # a reconnect: events were missed — the next turn runs the REST sync and a full reconciliation round
            # (open orders, positions, trades since, given-up entries) instead of waiting for their timers
            self._t_sync = self._t_rec = -1e18
        self._journal("stream_connected", f"user data stream up (connection {self.stream.connects}); resyncing "
                      "by REST", "INFO")
        self._wake.set()

    async def _apply_stream_fills(self) -> None:
        """Record the executions the stream pushed and settle the legs they closed (caller holds the lock)."""
        await self._settle_closed(self._record_stream_fills())

    def _record_stream_fills(self) -> list[tuple[str, str]]:
        """Apply the executions the stream pushed to the ledger (idempotent with the REST reads: same trade ids);
        returns (leg id, reason) of every leg they closed. Fees in another asset than the wallet's are left to the
        REST path."""
        from dataclasses import replace as _replace

        from albra.exchange.binance_parse import parse_stream_fill
        from albra.ledger import intents as I
        from albra.ledger import legs as L
        from albra.ledger.fills import LATE_ENTRY, apply_fill

        closed: list[tuple[str, str]] = []
        events, self._stream_fills = self._stream_fills, []
        for ev in events:
            try:
                fill = parse_stream_fill(ev.raw)
            except X.MalformedResponse as e:
                self._journal("stream_malformed", f"ORDER_TRADE_UPDATE not understood: {e}", "WARNING")
                continue
            if fill is None or (fill.extra.get("commission_asset") or "USDT") != "USDT":
                continue
            algo = self._child_of.get(fill.order_id)
            if algo:
                fill = _replace(fill, extra={**fill.extra, "algo_client_id": algo})
            res = apply_fill(self.store, self.account, fill, now_ms=self.now_ms())
            if not res.applied or not res.leg_id:
                continue
            if res.note == LATE_ENTRY:
                self._recovered.append(res.leg_id)
            if L.require_leg(self.store, res.leg_id).state is L.LegState.CLOSED:
                it = I.get_intent(self.store, algo or fill.client_id)
                closed.append((res.leg_id, it.purpose if it is not None else "exit"))
        if events:
            self.executor.reload_legs()
        return closed

    async def _settle_closed(self, closed: list[tuple[str, str]]) -> None:
        """A leg a fill closed: its other protective orders off the book (the sibling), reported once. A leg a
        late entry fill reopened (its entry was given up as never placed, then executed): protected now."""
        from albra.ledger import legs as L

        recovered, self._recovered = self._recovered, []
        for leg_id in recovered:
            leg = L.require_leg(self.store, leg_id)
            if leg.state is L.LegState.OPEN and leg.qty > 0 and leg.sl_client_id is None:
                self.executor._alert("unprotected_leg", f"late_entry:{leg_id}", f"entry of {leg_id} executed after "
                                     f"it was given up as never placed: {leg.qty} {leg.symbol}; placing its stop now",
                                     strategy=leg.strategy, symbol=leg.symbol, side=leg.direction.value, size=leg.qty)
                await self.executor.protect(leg)
        for leg_id, reason in closed:
            leg = L.require_leg(self.store, leg_id)
            await self.executor._cancel_protective(leg)
            self.executor._closed(leg, reason)

    async def _sync_dirty(self) -> None:
        """Stream fills not applied yet, then the legs of every symbol an event marked (caller holds the lock)."""
        if self._stream_fills and self.executor is not None:
            await self._apply_stream_fills()
        if not self._dirty or self.executor is None:
            return
        symbols, self._dirty = set(self._dirty), set()
        if self.executor.has_open_legs():
            await self.executor.sync_protective(symbols)

    async def _stop_stream(self) -> None:
        if self._stream_task is not None:
            self._stream_stop.set()
            try:
                await asyncio.wait_for(self._stream_task, timeout=5)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - shutting down: never block on the stream
                self._stream_task.cancel()
            self._stream_task = None

    def _renew_lease(self) -> None:
        """Renew the account's write lease; when another process took it (emergency shutdown preempts it) this
        runner stops sending at once: entries blocked, the loop told to stop, journaled CRITICAL."""
        from albra.store import leases

        if self.lease is None:
            return
        try:
            self.lease = leases.renew(self.store, self.lease)
        except leases.LeaseLost as e:
            self.lease = None
            if self.executor is not None:
                self.executor.entries_blocked = True
            self.stopped_by = "write lease lost"
            self.stop.set()
            self._journal("lease_lost", f"{e}; this runner stops without sending anything more", "CRITICAL")

    # ------------------------------------------------------------------ loop
    async def loop(self) -> None:
        self._report_progress()
        while not self.stop.is_set():
            try:
                if self.replay is not None and self.replay.speed == 0:
                    nxt = self.replay.replay.step_to_next_close(self.replay.clock)
                    if nxt is None or (self.replay.end_ms is not None and nxt > self.replay.end_ms) or (
                            self.until_ms is not None and nxt > self.until_ms):
                        self.summary.exhausted = True
                        self.stopped_by = "replay exhausted"
                        break
                    self.summary.candles += 1
                    await self.evaluate_due()
                    if self.executor.has_open_legs():
                        await self.executor.sync_protective()
                    await self._periodic()
                    if self.max_candles is not None and self.summary.candles >= self.max_candles:
                        self.stopped_by = "max candles"
                        break
                    self.health.turned()
                    self._heartbeat()
                    if self.summary.candles % 64 == 0:
                        self._report_progress()
                        await asyncio.sleep(0)  # let signals in
                    continue
                async with self._fill_lock:  # one writer of the executor: the loop or a stream event, never both
                    await self._sync_dirty()
                if self.replay is not None:
                    self.replay.replay.sync(self.replay.clock.now_ms())
                else:
                    await self._sync_exchange_clock()
                async with self._fill_lock:
                    await self._sync_dirty()
                    await self.evaluate_due()
                    await self._periodic()
                self.health.turned()
            except X.ExchangeError as e:
                self._journal("loop_error", f"exchange error in the loop: {e}", "ERROR", error=type(e).__name__)
            self._heartbeat()
            if self.until_ms is not None and self.now_ms() >= self.until_ms:
                self.stopped_by = "until"
                break
            self._wake.clear()
            if self._dirty:
                continue  # an event arrived during this turn: sync it now
            stop = asyncio.ensure_future(self.stop.wait())
            wake = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({stop, wake}, timeout=self._sleep_s(), return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            wake.cancel()

    def _report_progress(self, final: bool = False) -> None:
        if self.progress is None or self.replay is None:
            return
        if self._replay_span is None:
            first = int(self.replay.clock.now_ms())
            last = max(int(s.ts[-1]) + int(s.interval_ms) for s in self.replay.series.values())
            for bound in (self.replay.end_ms, self.until_ms):
                if bound is not None:
                    last = min(last, int(bound))
            self._replay_span = (first, max(last, first + 1))
        first, last = self._replay_span
        total = last - first
        self.progress(total if final else min(total, max(0, self.now_ms() - first)), total)

    def _sleep_s(self) -> float:
        if self.replay is not None:
            return 0.05
        now = self.now_ms()
        nxt = self.scheduler.next_close_ms(now)
        return max(0.05, min(1.0, (nxt - now) / 1000 + 0.05))

    async def shutdown(self) -> None:
        """Stop entries → cancel working entry orders → persist → close."""
        self.notifier.stopping(f"stopping {self.account}")
        await self._stop_stream()
        if self.store is not None:
            runners.beat(self.store, self.name, "stopping", {"reason": self.stopped_by})
        if self.executor is not None and self.lease is None and self.stopped_by == "write lease lost":
            self.executor.entries_blocked = True  # another process writes this account now: send nothing more
            await self._fill_summary()
        elif self.executor is not None:
            self.executor.entries_blocked = True
            try:
                n = await asyncio.wait_for(self.executor.cancel_pending_entries(), timeout=SHUTDOWN_BUDGET_S)
                if n:
                    self._journal("entries_cancelled", f"{n} working entry order(s) cancelled at shutdown")
            except (X.ExchangeError, asyncio.TimeoutError) as e:
                self._journal("shutdown_error", f"cancelling entry orders failed: {e}", "ERROR")
            await self._fill_summary()
        if self.store is not None:
            self._record_operations(stopping=True)
            self._journal("runner_stopped", f"runner {self.account} stopped ({self.stopped_by or 'signal'})")
            runners.beat(self.store, self.name, "stopped", {"reason": self.stopped_by})
            self.store.checkpoint()
        if self.gw is not None:
            await self.gw.close()

    async def _fill_summary(self) -> None:
        from albra.ledger import legs as L

        closed = L.legs_of(self.store, self.account, states=[L.LegState.CLOSED])
        s = self.summary
        s.trades = len(closed)
        pnls = [g.realized_pnl - g.fees + g.funding for g in closed]
        s.wins = sum(1 for p in pnls if p > 0)
        s.pnl = sum(pnls, Decimal(0))
        s.open_legs = len(self.executor.open_legs())
        s.refusals = self.executor.stats.refusals
        s.stopped_by = self.stopped_by or "signal"
        s.fees = sum((g.fees for g in closed), Decimal(0))
        s.funding_paid = sum((g.funding for g in closed), Decimal(0))
        s.by_strategy = {}
        for g, p in zip(closed, pnls):
            b = s.by_strategy.setdefault(g.strategy, {"trades": 0, "wins": 0, "pnl": Decimal(0), "fees": Decimal(0),
                                                      "funding": Decimal(0)})
            b["trades"] += 1
            b["wins"] += p > 0
            b["pnl"] += p
            b["fees"] += g.fees
            b["funding"] += g.funding
        s.max_drawdown_pct = max_drawdown_pct(self.store, self.account, self._since_ex)
        self._report_progress(final=self.summary.exhausted)
        try:
            s.equity = (await self.gw.fetch_balance()).equity
        except X.ExchangeError:
            s.equity = None

    async def run(self) -> RunSummary:
        loop = asyncio.get_running_loop()

        def on_signal(sig: int) -> None:
            self.stopped_by = signal.Signals(sig).name
            self.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError):
                pass
        from albra.engine.pidfile import remove_pid_file, write_pid_file
        from albra.store import leases

        if self.store is None:
            self.store = Store.open(self.settings.db_path)
        try:  # one writer per account (invariant 8): before anything is read or sent
            self.lease = leases.acquire(self.store, self.account, self.name)
        except leases.LeaseHeld as e:
            raise WriterBusy(f"{e}; not starting a second writer (stop that one first, or use "
                             f"`albra emergency-shutdown`)") from None
        state_dir = self.settings.paths.state_dir
        write_pid_file(state_dir, self.account)
        try:
            try:
                await self.start()
                await self.loop()
            finally:
                await self.shutdown()
        finally:
            remove_pid_file(state_dir, self.account)
            if self.lease is not None:
                leases.release(self.store, self.lease)
        return self.summary
