"""The strategy contract: closed candles and the strategy's own legs in, decisions out.

A strategy is pure. It does no I/O, reads no clock and talks to no exchange, so the same code runs
live, on paper and in backtests. The engine owns everything stateful (orders, legs, cooldowns,
sizing, risk) and persists it; a strategy only proposes.

How the engine uses a strategy
------------------------------
Live / paper (once per newly *closed* primary candle, invariant 6)::

    decisions = strat.evaluate(frames, legs, last_entry_ts)

``frames`` maps each of ``strat.timeframes`` to a :class:`~albra.candles.CandleSeries` holding
**closed candles only** (use :func:`closed_candles` to drop a forming kline); the primary frame's
last row is the candle that just closed. ``evaluate`` keeps only the last
``history_by_timeframe()[tf]`` rows of each frame, so its cost does not grow with the series.

Backtest (same code, every bar)::

    feats = strat.prepare(frames)              # vectorised, once for the whole series
    for i in range(len(feats)):
        decisions = strat.decide(feats, i, legs, last_entry_ts)

``prepare`` is causal: the features of bar ``i`` only use candles that had closed by bar ``i``'s
close, so ``decide(prepare(full), i)`` equals ``decide(prepare(prefix up to i), i)`` (tested by a
property test). Higher timeframes are aligned onto primary bars with :func:`align_higher`, which
only uses a higher-timeframe candle whose close time is <= the primary candle's close time.

``decide`` reads precomputed Python lists (no pandas), a few microseconds per bar.

Legs and decisions
------------------
``legs`` are this strategy's own open legs on this symbol (:class:`LegView`); the engine builds
them from its ledger. A strategy answers with a list of decisions:

* :class:`Enter` -- open a leg. Always carries ``stop_loss`` (the engine places it on the exchange
  as a reduce-only conditional order, invariant 3) and optionally ``take_profit``. Both are
  computed **once** from the signal candle; the engine stores them with the leg. ``leg_state`` is
  the initial strategy-owned state of the new leg (e.g. the ATR at entry, so later exits use the
  stored value instead of a drifting ATR_now).
* :class:`Exit` -- close ``fraction`` of the leg at market (reduce-only). For a partial exit the
  fraction is of the leg's **initial** quantity (the engine caps it at what remains); ``1.0``
  means everything that remains. ``tag`` names the rule; the engine records partial tags in
  ``LegView.partial_exits_done`` so a partial fires once.
* :class:`MoveStop` -- replace the exchange stop. Strategies only ever *tighten* (long: higher,
  short: lower); use :func:`tighter_stop` to build one. The engine must refuse a loosening move.
* :class:`UpdateLegState` -- merge ``updates`` into the leg's persisted ``state`` (e.g. trailing
  peak). Applied by the engine before the next decision.

Entries happen only when the strategy is flat on the symbol (no legs, or all legs fully exiting
in the same decision list), after the cooldown since ``last_entry_ts``. ``last_entry_ts`` is the
open time (ms) of the bar whose close produced this strategy's last Enter on this symbol; the
engine persists it (invariant 5) and passes it back. ``None`` = no previous entry.

Quantities in :class:`LegView` are ``Decimal`` (straight from the ledger, invariant: Decimal for
what reaches orders); strategies only read them. Prices in decisions are floats (indicator maths):
the engine quantises them to the exchange filters (stops rounded away from the leg with
``MarketFilters.price_toward``).

Warm-up: ``Features.valid[i]`` is False while any input of a decision is NaN (or an ATR is not
yet positive). ``decide`` returns no decision on such a bar.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from albra.model import Direction
from albra.timefmt import timeframe_ms

if TYPE_CHECKING:
    from albra.candles import CandleSeries

LegId = Union[str, int]
StateValue = Union[float, str, int]


class StrategyError(ValueError):
    """A strategy was used wrongly (bad params, missing timeframe, wrong frame)."""


# --- what the engine tells a strategy -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LegView:
    """Read-only view of one open leg of this strategy on this symbol.

    ``entry_ts``: open time (ms) of the bar whose close produced the entry. ``stop_price`` and
    ``take_profit``: the levels currently on the exchange (``take_profit`` None = no TP order).
    ``partial_exits_done``: tags of partial :class:`Exit` decisions already executed. ``state``:
    strategy-owned persisted values (from ``Enter.leg_state`` and :class:`UpdateLegState`).
    """

    leg_id: LegId
    direction: Direction
    entry_price: float
    entry_ts: int
    qty_initial: Decimal
    qty: Decimal
    stop_price: float
    take_profit: float | None = None
    partial_exits_done: frozenset[str] = frozenset()
    state: Mapping[str, StateValue] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def sign(self) -> int:
        return self.direction.sign

    def gain(self, price: float) -> float:
        """Unleveraged price return of the leg at ``price`` (0.05 = +5 % in the leg's favour)."""
        return self.sign * (price - self.entry_price) / self.entry_price


# --- what a strategy answers -----------------------------------------------------------------

def _finite_positive(x: float, what: str) -> None:
    if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
        raise StrategyError(f"{what} must be a finite positive price, got {x!r}")


@dataclass(frozen=True, slots=True)
class Enter:
    """Open a leg at market. ``stop_loss`` is mandatory (placed on the exchange)."""

    direction: Direction
    stop_loss: float
    take_profit: float | None
    reason: str
    tag: str = "entry"
    leg_state: Mapping[str, StateValue] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.direction, Direction):
            raise StrategyError(f"Enter.direction must be a Direction, got {self.direction!r}")
        _finite_positive(self.stop_loss, "Enter.stop_loss")
        if self.take_profit is not None:
            _finite_positive(self.take_profit, "Enter.take_profit")
        object.__setattr__(self, "leg_state", MappingProxyType(dict(self.leg_state)))


@dataclass(frozen=True, slots=True)
class Exit:
    """Close part or all of a leg at market (reduce-only). ``fraction`` of the INITIAL qty for
    partials; 1.0 = all that remains."""

    leg_id: LegId
    fraction: float
    reason: str
    tag: str

    def __post_init__(self) -> None:
        if not (0.0 < self.fraction <= 1.0):
            raise StrategyError(f"Exit.fraction must be in (0, 1], got {self.fraction!r}")

    @property
    def is_full(self) -> bool:
        return self.fraction >= 1.0


@dataclass(frozen=True, slots=True)
class MoveStop:
    """Replace the leg's exchange stop with ``new_stop`` (always tighter than the current one)."""

    leg_id: LegId
    new_stop: float
    reason: str

    def __post_init__(self) -> None:
        _finite_positive(self.new_stop, "MoveStop.new_stop")


@dataclass(frozen=True, slots=True)
class UpdateLegState:
    """Merge ``updates`` into the leg's persisted strategy state."""

    leg_id: LegId
    updates: Mapping[str, StateValue]

    def __post_init__(self) -> None:
        object.__setattr__(self, "updates", MappingProxyType(dict(self.updates)))


Decision = Union[Enter, Exit, MoveStop, UpdateLegState]


def tighter_stop(leg: LegView, candidate: float, reason: str) -> MoveStop | None:
    """A :class:`MoveStop` to ``candidate`` if it tightens the leg's stop, else None."""
    if not math.isfinite(candidate) or candidate <= 0:
        return None
    if leg.direction is Direction.LONG and candidate > leg.stop_price:
        return MoveStop(leg.leg_id, candidate, reason)
    if leg.direction is Direction.SHORT and candidate < leg.stop_price:
        return MoveStop(leg.leg_id, candidate, reason)
    return None


def flat_after(legs: Sequence[LegView], decisions: Sequence[Decision]) -> bool:
    """True if no leg stays open once ``decisions`` are executed (every leg fully exited)."""
    closing = {d.leg_id for d in decisions if isinstance(d, Exit) and d.is_full}
    return all(leg.leg_id in closing for leg in legs)


def cooldown_over(bar_ts: int, last_entry_ts: int | None, cooldown_ms: int) -> bool:
    """True if at least ``cooldown_ms`` separate the last entry bar from this bar."""
    return last_entry_ts is None or bar_ts - last_entry_ts >= cooldown_ms


# --- candles -> features -----------------------------------------------------------------------

def closed_candles(series: "CandleSeries", now_ms: int) -> "CandleSeries":
    """``series`` without trailing candles that had not closed at ``now_ms`` (exchange time).

    A candle opening at ``ts`` closes at ``ts + interval``; Binance's kline endpoints return the
    forming candle last, and strategies must never see it (the original ZLMACD decided on it).
    """
    n = len(series)
    close_times = series.ts + series.interval_ms
    keep = int(np.searchsorted(close_times, now_ms, side="right"))
    return series if keep == n else series.take(0, keep)


def align_higher(primary: "CandleSeries", higher: "CandleSeries") -> np.ndarray:
    """For each primary bar, the index of the last higher-timeframe candle that had closed by
    the primary bar's close time, or -1 if none. Never the candle still forming at that time."""
    p_close = primary.ts + primary.interval_ms
    h_close = higher.ts + higher.interval_ms
    return np.searchsorted(h_close, p_close, side="right").astype(np.int64) - 1


def take_aligned(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` with NaN where ``idx`` is -1 (no closed higher candle yet)."""
    out = np.full(idx.shape, np.nan)
    ok = idx >= 0
    out[ok] = np.asarray(values, dtype=np.float64)[idx[ok]]
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Features:
    """Precomputed per-bar inputs of ``decide`` for one symbol, as plain Python lists (fast
    indexed reads in the per-bar loop). ``ts[i]`` is the open time of primary bar ``i``."""

    symbol: str
    timeframe: str
    ts: list[int]
    cols: dict[str, list[float]]
    valid: list[bool]

    def __len__(self) -> int:
        return len(self.ts)

    def __getitem__(self, name: str) -> list[float]:
        try:
            return self.cols[name]
        except KeyError:
            raise KeyError(f"no feature column {name!r}; have {sorted(self.cols)}") from None

    def row(self, i: int) -> dict[str, float]:
        """All columns at bar ``i`` (for tests and debugging, not the hot path)."""
        return {k: v[i] for k, v in self.cols.items()}

    @classmethod
    def build(cls, primary: "CandleSeries", arrays: Mapping[str, np.ndarray],
              positive: Sequence[str] = (), extra_valid: np.ndarray | None = None) -> "Features":
        """Features from numpy columns. A bar is valid when every column is finite, every column
        named in ``positive`` is > 0 (ATR warm-up/flat data), and ``extra_valid`` holds."""
        n = len(primary)
        valid = np.ones(n, dtype=bool)
        for name, a in arrays.items():
            if a.shape != (n,):
                raise StrategyError(f"feature {name!r} has shape {a.shape}, expected ({n},)")
            valid &= np.isfinite(a)
        with np.errstate(invalid="ignore"):
            for name in positive:
                valid &= arrays[name] > 0
        if extra_valid is not None:
            valid &= extra_valid
        return cls(primary.symbol, primary.timeframe, primary.ts.tolist(),
                   {k: np.asarray(v, dtype=np.float64).tolist() for k, v in arrays.items()},
                   valid.tolist())


# --- the strategy base class ------------------------------------------------------------------

class Strategy(ABC):
    """Base class of every strategy. Subclasses set the class attributes and implement
    :meth:`prepare` and :meth:`decide`; see the module docstring for the contract.

    Class attributes:

    * ``name`` -- unique registry name (case-insensitive lookup), e.g. ``"TFPE"``.
    * ``timeframes`` -- Binance intervals, primary first, e.g. ``("15m", "4h")``.
    * ``Params`` -- a pydantic model whose defaults are the strategy's numbers; it must forbid
      unknown keys (``model_config = ConfigDict(extra="forbid")``) so a typo in the config is
      an error.
    * ``history`` -- primary bars ``evaluate`` keeps: enough for every indicator to be valid and
      for seeded EMAs/Wilder averages to converge (their start-up effect decays geometrically).
    * ``higher_history`` -- bars kept per higher timeframe (default: the span of ``history``
      primary bars plus one).
    * ``search_space`` -- optional ranges ``albra optimize`` searches, declared next to ``Params``
      (``albra.optimize.space``: ``IntRange``, ``FloatRange``, ``Choice``), checked against ``Params``.
    """

    name: ClassVar[str]
    timeframes: ClassVar[tuple[str, ...]]
    history: ClassVar[int]
    higher_history: ClassVar[Mapping[str, int]] = {}
    search_space: ClassVar[Mapping[str, Any]] = {}

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None) -> None:
        P = type(self).Params
        if P.model_config.get("extra") != "forbid":
            raise StrategyError(f"{self.name}.Params must forbid unknown keys (extra='forbid')")
        if params is None:
            self.params = P()
        elif isinstance(params, P):
            self.params = params
        elif isinstance(params, Mapping):
            try:
                self.params = P.model_validate(dict(params))
            except ValidationError as e:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or '(params)'}: {err['msg']}"
                    for err in e.errors()
                )
                raise StrategyError(f"strategy {self.name}: invalid params: {problems}") from None
        else:
            raise StrategyError(
                f"strategy {self.name}: params must be a mapping or {P.__name__}, got {type(params).__name__}"
            )

    # --- declared shape --------------------------------------------------------------------
    @property
    def primary(self) -> str:
        return self.timeframes[0]

    @classmethod
    def history_by_timeframe(cls) -> dict[str, int]:
        """Bars of each timeframe that :meth:`evaluate` keeps (bounded live cost)."""
        out = {cls.timeframes[0]: int(cls.history)}
        p_ms = timeframe_ms(cls.timeframes[0])
        for tf in cls.timeframes[1:]:
            default = -(-cls.history * p_ms // timeframe_ms(tf)) + 1
            out[tf] = int(cls.higher_history.get(tf, default))
        return out

    def check_frames(self, frames: Mapping[str, "CandleSeries"]) -> None:
        """Every declared timeframe present, labelled right, one symbol."""
        symbols = set()
        for tf in self.timeframes:
            if tf not in frames:
                raise StrategyError(f"strategy {self.name} needs a {tf} frame; got {sorted(frames)}")
            s = frames[tf]
            if s.timeframe != tf:
                raise StrategyError(f"strategy {self.name}: frame {tf!r} holds {s.timeframe} candles")
            symbols.add(s.symbol)
        if len(symbols) > 1:
            raise StrategyError(f"strategy {self.name}: frames of different symbols {sorted(symbols)}")

    # --- the contract ------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, frames: Mapping[str, "CandleSeries"]) -> Features:
        """All indicators for every primary bar, vectorised and causal (closed candles only)."""

    @abstractmethod
    def decide(self, features: Features, i: int, legs: Sequence[LegView],
               last_entry_ts: int | None = None) -> list[Decision]:
        """Decisions for primary bar ``i`` given this strategy's open legs on the symbol."""

    def evaluate(self, frames: Mapping[str, "CandleSeries"], legs: Sequence[LegView] = (),
                 last_entry_ts: int | None = None) -> list[Decision]:
        """Live path: decide on the last closed primary candle using a bounded window."""
        self.check_frames(frames)
        hist = self.history_by_timeframe()
        window = {}
        for tf in self.timeframes:
            s = frames[tf]
            n = len(s)
            window[tf] = s.take(max(0, n - hist[tf]), n)
        feats = self.prepare(window)
        if len(feats) == 0:
            return []
        return self.decide(feats, len(feats) - 1, legs, last_entry_ts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
