"""Backtests on the live pipeline: strategy → risk → execution → ledger against the simulated exchange.

What is shared with ``albra run``: the strategy's ``decide`` (on features from ``prepare``, equal to the live
``evaluate`` by the strategies' no-look-ahead property), pre-trade risk (:mod:`albra.risk`), the
:class:`~albra.engine.executor.Executor` (write-ahead intents, protective algo orders, fills into the ledger)
and the :class:`~albra.sim.exchange.SimExchange` (fees, funding, stops triggering intrabar along the
O→H→L→C path). What differs: candles come from files, the clock is the replay's, the store is a temporary
file, and the async executor is stepped synchronously (its in-process gateway never suspends).

Speed: ``prepare`` runs once per strategy; per base candle the loop does one ``on_candle`` (a couple of
attribute writes when nothing is open), one ``decide`` per strategy whose primary candle closed, and touches
the store only when a decision or a protective order fired. Deterministic: no wall clock, no randomness.
"""

from __future__ import annotations

import tempfile
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from albra.candles import CandleSeries
from albra.engine.executor import Executor, StrategySlot
from albra.engine.risk_limits import risk_limits
from albra.exchange.paper import PaperGateway
from albra.engine.syncrun import run_sync
from albra.model import D, PositionMode
from albra.timefmt import timeframe_ms

ACCOUNT = "backtest"


class BacktestError(ValueError):
    """Bad backtest input (unknown strategy, missing data, wrong timeframe, empty window)."""


@dataclass(frozen=True)
class StrategySpec:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    size_pct: float = 24.0
    leverage: int = 10


@dataclass
class BacktestSetup:
    strategies: Sequence[StrategySpec]
    data: Mapping[str, Sequence[CandleSeries]]  # symbol -> candle series (one or more timeframes)
    start_ms: int | None = None
    end_ms: int | None = None
    balance: Decimal = Decimal("10000")
    position_mode: PositionMode = PositionMode.HEDGE
    funding: Mapping[str, list[tuple[int, float]]] | None = None
    risk: Any = None  # RiskLimits; default = albra's defaults
    store_dir: Path | None = None
    #: a flat funding rate per 8 h for slots the funding history lacks, given on purpose (``--funding-rate``);
    #: None: such a slot pays nothing and is reported (callers refuse a window the history does not cover)
    funding_rate: Decimal | None = None
    #: symbol → where its funding came from (reported in the summary as given)
    funding_sources: Mapping[str, str] = field(default_factory=dict)
    #: the markets (filters, brackets) to simulate, and where they come from; default: the bundled snapshot
    markets: Mapping[str, Any] | None = None
    markets_source: str = ""


@dataclass
class BacktestResult:
    summary: dict[str, Any]
    trades: list[dict[str, Any]]
    candles: int
    seconds: float = 0.0
    curve: Sequence[tuple[int, float]] = field(default_factory=list)  # (ms, equity) per candle time (reports)


def frames_for(strategy_cls: Any, series: Sequence[CandleSeries]) -> dict[str, CandleSeries]:
    """Every timeframe the strategy needs: a given series of that timeframe, else resampled from the finest
    given one (complete buckets only: closed candles)."""
    by_tf = {s.timeframe: s for s in series}
    finest = min(series, key=lambda s: s.interval_ms)
    out: dict[str, CandleSeries] = {}
    for tf in strategy_cls.timeframes:
        if tf in by_tf:
            out[tf] = by_tf[tf]
            continue
        step = timeframe_ms(tf)
        if step < finest.interval_ms or step % finest.interval_ms:
            raise BacktestError(f"{strategy_cls.name} needs {tf} candles of {finest.symbol}; the finest data given is "
                                f"{finest.timeframe}, which cannot be resampled into {tf}")
        out[tf] = finest.resample(tf)
    return out


class _Track:
    """One (strategy, symbol) in the loop: features and the primary bar index of a close time.

    Why arithmetic and not a dict: candle files are continuous, so bar ``i`` opens at ``ts[0] + i·step``; a
    close-time → index dict held one entry per bar (15 MB for three years of 15m candles). A gap in the data
    falls back to a binary search, so the answer is the dict's exactly."""

    __slots__ = ("strategy", "symbol", "feats", "decide", "last_entry", "step", "t0", "n")

    def __init__(self, strategy: Any, symbol: str, feats: Any, step: int) -> None:
        self.strategy = strategy
        self.symbol = symbol
        self.feats = feats
        self.step = step
        self.t0 = feats.ts[0] if len(feats.ts) else 0
        self.n = len(feats.ts)
        self.decide = strategy.decide
        self.last_entry: int | None = None

    def index_of_close(self, close_ms: int) -> int | None:
        """The primary bar closing at ``close_ms``, or None when no bar closes then."""
        open_ms = close_ms - self.step
        i = (open_ms - self.t0) // self.step
        ts = self.feats.ts
        if 0 <= i < self.n and ts[i] == open_ms:
            return i
        j = bisect_left(ts, open_ms)
        return j if j < self.n and ts[j] == open_ms else None


class Curve(Sequence[tuple[int, float]]):
    """The equity curve as two packed arrays (16 bytes a point instead of a tuple of two objects, ~100):
    a sequence of ``(ts_ms, equity)`` pairs for :mod:`albra.metrics` and the HTML report."""

    def __init__(self) -> None:
        self.ts = array("q")
        self.eq = array("d")

    def append(self, point: tuple[int, float]) -> None:
        self.ts.append(point[0])
        self.eq.append(point[1])

    def __len__(self) -> int:
        return len(self.ts)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return list(zip(self.ts[i], self.eq[i]))
        return (self.ts[i], self.eq[i])

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.ts, self.eq)


def run_backtest(setup: BacktestSetup, progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Replay the setup's candles through the pipeline; returns the summary and the closed trades."""
    import time as _time

    from albra.sim.exchange import SimExchange
    from albra.sim.realism import Realism
    from albra.store import Store
    from albra.strategies import registry

    t0 = _time.perf_counter()
    if not setup.strategies:
        raise BacktestError("no strategy given")
    names = [registry.get(s.name).name for s in setup.strategies]
    if len(set(names)) != len(names):
        raise BacktestError(f"strategy listed twice: {names}")
    funding = dict(setup.funding or {})
    # the replay's clock stands still while the engine decides: the realistic exchange's rules, no timing gaps
    ex = SimExchange(dict(setup.markets) if setup.markets is not None else None, funding=funding, now_ms=0,
                     realism=Realism.replay(), default_funding_rate=setup.funding_rate)
    ex.add_account(ACCOUNT, setup.balance, setup.position_mode)
    tmp = tempfile.TemporaryDirectory(prefix="albra-bt-", dir=setup.store_dir)
    store = Store.open(Path(tmp.name) / "backtest.db", memo=True)
    with store._lock:  # a throwaway file: durability buys nothing here, commits are the ledger's main cost
        store._conn.execute("PRAGMA synchronous = OFF")
        # one writer, one file nobody else opens: the rollback journal kept in memory instead of the WAL the shared
        # live store needs for its readers (every ledger tx is still a savepoint that rolls back all or nothing)
        store._conn.execute("PRAGMA journal_mode = MEMORY").fetchone()
    store.enable_memo()  # only this run writes the file: the ledger answers re-reads of what it wrote from memory
    try:
        with store.batch():  # one commit for the whole run; every ledger tx() stays all-or-nothing (a savepoint)
            return _run(setup, store, ex, names, progress, t0)
    finally:
        store.close()
        tmp.cleanup()


def _run(setup: BacktestSetup, store: Any, ex: Any, names: list[str],
         progress: Callable[[int, int], None] | None, t0: float) -> BacktestResult:
    """The replay loop proper (inside the store batch that :func:`run_backtest` opened)."""
    import time as _time

    from albra.config import RiskLimits
    from albra.strategies import registry

    base: dict[str, CandleSeries] = {}
    tracks: list[_Track] = []
    slots = []
    for spec in setup.strategies:
        cls = registry.get(spec.name)
        strat = cls(dict(spec.params))
        slots.append(StrategySlot(cls.name, spec.size_pct, spec.leverage))
        for sym, series in setup.data.items():
            if not series:
                raise BacktestError(f"no candles for {sym}")
            frames = frames_for(cls, series)
            end = setup.end_ms
            if end is not None:
                frames = {tf: s.slice(None, end) for tf, s in frames.items()}
            feats = strat.prepare(frames)
            tracks.append(_Track(strat, sym, feats, timeframe_ms(cls.timeframes[0])))
            finest = min(series, key=lambda s: s.interval_ms)
            base[sym] = finest.slice(setup.start_ms, setup.end_ms)
            if len(base[sym]) == 0:
                raise BacktestError(f"{sym}: no candles in the requested window")
            ex.spec(sym)
            ex.set_leverage(ACCOUNT, sym, spec.leverage)
    risk = setup.risk or RiskLimits()
    limits = risk_limits(risk)
    gw = PaperGateway(ACCOUNT, ex)
    filters = run_sync(gw.load_markets())
    execu = Executor(store, gw, ACCOUNT, setup.position_mode, filters, slots, lambda _s: limits, lambda: ex.now,
                     alerts=False, journal_decisions=False, journal_min_level="WARNING")
    fired = [False]

    def listen(kind: str, obj: object) -> None:
        if kind == "liquidation" or (kind == "algo" and getattr(obj, "status", "") != "NEW"
                                     and getattr(obj, "status", "") != "CANCELED"):
            fired[0] = True

    ex.listeners.append(listen)
    steps = {s.interval_ms for s in base.values()}
    if len(steps) > 1:
        raise BacktestError("every symbol's finest candles must share one interval (got "
                            + ", ".join(f"{sym} {s.timeframe}" for sym, s in base.items()) + ")")
    step = steps.pop()
    # one timeline over every symbol's base candles: at each time T every symbol's candle is fed to the exchange
    # before any decision at T's close, so risk values every open leg at T's prices and the clock never steps back.
    # Packed: the sorted union of open times, and per symbol its candle index at each of them (-1: none)
    import numpy as np

    times = np.unique(np.concatenate([s.ts for s in base.values()]))
    rows: list[tuple[str, Any, Any, Any, Any, Any]] = []  # symbol, index per time, O, H, L, C
    for sym, s in base.items():
        pos = np.searchsorted(times, s.ts)
        idx = np.full(len(times), -1, dtype=np.int64)
        idx[pos] = np.arange(len(s.ts))
        rows.append((sym, array("q", idx.tobytes()), *(array("d", np.ascontiguousarray(x, dtype=np.float64)
                                                                  .tobytes()) for x in (s.open, s.high, s.low,
                                                                                         s.close))))
    times_l = array("q", times.astype(np.int64).tobytes())
    del times
    by_sym: dict[str, list[_Track]] = {}
    for tr in tracks:
        by_sym.setdefault(tr.symbol, []).append(tr)
    acct = ex.account(ACCOUNT)
    total = sum(len(s) for s in base.values())
    # starts at the balance at the first candle's open, so the first day's and month's returns are whole
    curve = Curve()
    curve.append((times_l[0], float(setup.balance)))
    last_close: dict[str, float] = {}
    legs_cache: list[tuple[str, float, float]] = []
    legs_version = -1
    on_candle = ex.on_candle
    curve_ts, curve_eq = curve.ts.append, curve.eq.append
    wallet: Decimal | None = None  # the wallet object last converted: it only changes on fills and funding
    wallet_f = 0.0
    n = 0
    for k, ts in enumerate(times_l):
        ex.now = ts
        here = []
        for sym, idx, o, h, lo, c in rows:
            j = idx[k]
            if j < 0:
                continue
            close = c[j]
            on_candle(sym, ts, o[j], h[j], lo[j], close)
            last_close[sym] = close
            here.append((sym, close))
        close_ms = ts + step
        ex.now = close_ms  # decisions happen at the candles' close
        if fired[0]:
            fired[0] = False
            run_sync(execu.sync_protective([sym for sym, _ in here]))
        for sym, close in here:
            for tr in by_sym[sym]:
                i = tr.index_of_close(close_ms)
                if i is None:
                    continue
                views = execu.views(tr.strategy.name, sym)
                decisions = tr.decide(tr.feats, i, views, tr.last_entry)
                if decisions:
                    entered = run_sync(execu.handle(tr.strategy.name, sym, tr.feats.ts[i], decisions, close))
                    if entered:
                        tr.last_entry = tr.feats.ts[i]
                    if fired[0]:
                        fired[0] = False
                        run_sync(execu.sync_protective([sym]))
        # equity curve at T's close (floats: statistics only, never orders)
        if acct.wallet is not wallet:
            wallet = acct.wallet
            wallet_f = float(wallet)
        if execu.has_open_legs():
            if execu.legs_version != legs_version:
                legs_version = execu.legs_version
                legs_cache = [(g.symbol, float(g.qty) * g.direction.sign, float(g.entry_price or 0))
                              for g in execu.open_legs()]
            eq = wallet_f + sum(q * (last_close[s] - e) for s, q, e in legs_cache)
        else:
            eq = wallet_f
        curve_ts(close_ms - 1)  # the last ms of the candle: its day and month own this point
        curve_eq(eq)
        n += len(here)
        if progress is not None and (n & 4095) < len(here):
            progress(n, total)
    if progress is not None:
        progress(total, total)
    result = _collect(store, ex, gw, setup, names, curve, total, execu)
    result.seconds = _time.perf_counter() - t0
    return result


def _collect(store: Any, ex: Any, gw: PaperGateway, setup: BacktestSetup, names: list[str],
             curve: Curve, total: int, execu: Executor) -> BacktestResult:
    from collections import Counter

    from albra import metrics
    from albra.ledger import legs as L
    from albra.ledger.fills import allocate_funding

    # funding rows only: the rest of the income history (fees, realised PnL) is already in the ledger
    incomes = run_sync(gw.fetch_income(income_type="FUNDING_FEE", limit=10**9))
    allocate_funding(store, ACCOUNT, incomes, now_ms=ex.now)
    trades: list[dict[str, Any]] = []
    for leg in L.iter_legs(store, ACCOUNT, states=[L.LegState.CLOSED]):
        pnl = leg.realized_pnl - leg.fees + leg.funding
        trades.append({
            "strategy": leg.strategy, "symbol": leg.symbol, "side": leg.direction.value,
            "quantity": format(leg.qty_initial, "f"), "entry_time": leg.opened_ms, "exit_time": leg.closed_ms,
            "entry_price": format(leg.entry_price or Decimal(0), "f"),
            "exit_price": format(leg.exit_price or Decimal(0), "f"),
            "pnl": format(pnl.quantize(Decimal("0.00000001")), "f"), "fees": format(leg.fees, "f"),
            "funding": format(leg.funding, "f"), "exit_reason": leg.close_reason or "",
        })
    trades.sort(key=lambda t: (t["exit_time"], t["entry_time"], t["strategy"]))
    funding_total = sum((r.amount for r in incomes if r.income_type == "FUNDING_FEE"), Decimal(0))
    acct = ex.account(ACCOUNT)
    open_legs = len(execu.open_legs())

    def block(ts: list[dict[str, Any]]) -> dict[str, Any]:
        pnls = [D(t["pnl"]) for t in ts]
        wins = sum(1 for p in pnls if p > 0)
        floats = [float(p) for p in pnls]
        pf, ex_ = metrics.profit_factor(floats), metrics.expectancy(floats)
        return {"trades": len(ts), "wins": wins, "win_rate": round(wins / len(ts), 4) if ts else 0.0,
                "profit_factor": None if pf is None else round(pf, 4),
                "expectancy": None if ex_ is None else round(ex_, 4),
                "pnl": format(sum(pnls, Decimal(0)).quantize(Decimal("0.01")), "f"),
                "fees": format(sum((D(t["fees"]) for t in ts), Decimal(0)).quantize(Decimal("0.01")), "f"),
                "funding": format(sum((D(t["funding"]) for t in ts), Decimal(0)).quantize(Decimal("0.01")), "f")}

    per = {n: block([t for t in trades if t["strategy"] == n]) for n in names}
    total_block = block(trades)
    numbers = ex.account_numbers(acct)
    held = [(t["entry_time"], t["exit_time"]) for t in trades]
    held += [(g.opened_ms, ex.now) for g in execu.open_legs()]
    perf = metrics.summary(curve, [float(t["pnl"]) for t in trades], held)
    total_block.update({
        "start_balance": format(setup.balance, "f"),
        "end_equity": format(numbers["margin_balance"].quantize(Decimal("0.01")), "f"),
        **{k: v for k, v in perf.items() if k not in ("profit_factor", "expectancy")},
        "monthly_returns_pct": {m: round(r * 100, 2) for m, r in metrics.monthly_returns(curve).items()},
        "exit_reasons": dict(sorted(Counter(t["exit_reason"] or "open" for t in trades).items())),
        "funding_paid_total": format(funding_total.quantize(Decimal("0.01")), "f"),
        "open_legs_at_end": open_legs,
        "candles": total,
    })
    funding_used, markets_used = _sources(ex, setup)
    for t in trades:
        t["funding_source"] = funding_used[t["symbol"]]["source"]
        t["filters"] = markets_used[t["symbol"]]["filters"]
    return BacktestResult({"strategies": per, "total": total_block, "funding": funding_used,
                           "markets": markets_used}, trades, total, curve=curve)


def _sources(ex: Any, setup: BacktestSetup) -> tuple[dict[str, Any], dict[str, Any]]:
    """Which funding and which market filters the run used, per symbol (the summary states both)."""
    from albra.sim.markets import DEFAULT_MARKETS

    funding: dict[str, Any] = {}
    markets: dict[str, Any] = {}
    for sym in setup.data:
        rows = (setup.funding or {}).get(sym) or []
        src = setup.funding_sources.get(sym) or ("history given" if rows else "none")
        flat = ex.funding_defaulted.get(sym, 0)
        if flat:
            src += f"; {flat} settlement(s) at the flat rate {setup.funding_rate} given with --funding-rate"
        funding[sym] = {"source": src, "rows": len(rows), "flat_rate": None if setup.funding_rate is None
                        else format(setup.funding_rate, "f"), "settlements_at_flat_rate": flat,
                        "settlements_without_rate": sum(1 for s, _ in ex.funding_missing if s == sym)}
        spec = ex.spec(sym)
        f = spec.filters
        markets[sym] = {"source": setup.markets_source
                        or f"bundled Binance exchangeInfo snapshot ({DEFAULT_MARKETS.info.date})",
                        "filters": f"tick {f.tick_size} step {f.step_size} min qty {f.min_qty} "
                                   f"min notional {f.min_notional}",
                        "max_leverage": spec.max_leverage}
    return funding, markets

