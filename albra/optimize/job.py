"""One search job as plain data (stored in the study, so a worker on another machine needs only the storage URL
and the study name), and the evaluation of one parameter set on one window: a real backtest.

Objectives (all maximised): ``profit`` (net PnL in USDT), ``sharpe``, ``calmar`` (from :mod:`albra.metrics` on
the run's equity curve). A run with fewer than ``min_trades`` trades, or whose objective is undefined (no
volatility, no drawdown), scores nothing: it is recorded as pruned, never as a best.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

OBJECTIVES = ("profit", "sharpe", "calmar")


@dataclass(frozen=True)
class Job:
    strategy: str
    data: dict[str, list[str]]  # symbol -> candle files
    funding: dict[str, str]  # symbol -> funding file ("" = simulator default)
    objective: str = "profit"
    min_trades: int = 10
    balance: str = "10000"
    size_pct: float = 24.0
    leverage: int = 10
    position_mode: str = "hedge"
    risk: dict[str, Any] | None = None  # albra.config.RiskLimits as a dict; None = defaults
    fixed: dict[str, Any] = field(default_factory=dict)  # params not searched, given with --param
    strategy_path: str = ""  # ALBRA_STRATEGY_PATH the job was created with

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Job":
        return cls(**d)


@dataclass(frozen=True)
class Score:
    value: float | None  # None: pruned (too few trades or undefined objective)
    trades: int
    pnl: float
    summary: dict[str, Any]
    why: str = ""


@lru_cache(maxsize=8)
def _series(path: str, symbol: str) -> Any:
    from albra.candles import load_candles

    return load_candles(path, symbol=symbol)


@lru_cache(maxsize=8)
def _funding(path: str) -> Any:
    from albra.candles import load_funding

    return load_funding(path)


def evaluate(job: Job, params: dict[str, Any], start_ms: int, end_ms: int) -> Score:
    """Backtest ``params`` (plus the job's fixed ones) on ``[start_ms, end_ms)`` and score it."""
    from albra.config import RiskLimits
    from albra.engine.backtest import BacktestSetup, StrategySpec, run_backtest
    from albra.model import PositionMode

    data = {s: [_series(p, s) for p in paths] for s, paths in job.data.items()}
    funding = {s: _funding(p) for s, p in job.funding.items() if p}
    risk = RiskLimits.model_validate(job.risk) if job.risk is not None else None
    setup = BacktestSetup([StrategySpec(job.strategy, {**job.fixed, **params}, job.size_pct, job.leverage)], data,
                          start_ms, end_ms, Decimal(job.balance), PositionMode(job.position_mode), funding, risk)
    res = run_backtest(setup)
    tot = res.summary["total"]
    n = int(tot["trades"])
    pnl = float(tot["pnl"])
    if n < job.min_trades:
        return Score(None, n, pnl, tot, f"{n} trades < --min-trades {job.min_trades}")
    value = pnl if job.objective == "profit" else tot[job.objective]
    if value is None:
        return Score(None, n, pnl, tot, f"{job.objective} undefined")
    return Score(float(value), n, pnl, tot)
