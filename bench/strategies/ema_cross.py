"""BENCH_EMA_CROSS: the equal-work strategy of ``bench/bench_vs_freqtrade.py`` (not shipped with albra).

EMA 20 / EMA 50 of the 15m close. When EMA 20 crosses above EMA 50: close any short leg and go long; crosses
below: close any long leg and go short (reverse on cross). Stop-loss 0.6 % from the signal candle's close, no
take-profit, no cooldown. Its freqtrade twin is ``bench/freqtrade/EmaCross.py`` (same EMA: pandas ``ewm``,
``adjust=False``, NaN until 20 / 50 values), so both sides enter on the same candles.

Loaded through ``ALBRA_STRATEGY_PATH=bench/strategies`` (the registry's external strategy folders).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from albra import indicators as ind
from albra.candles import CandleSeries
from albra.model import Direction
from albra.optimize.space import FloatRange, IntRange
from albra.strategies.base import Decision, Enter, Exit, Features, LegView, Strategy


class BenchEmaCross(Strategy):
    name = "BENCH_EMA_CROSS"
    timeframes = ("15m",)
    history = 400

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        fast: int = Field(20, ge=2)
        slow: int = Field(50, ge=3)
        stop_loss_pct: float = Field(0.006, gt=0, lt=1)
        #: False: the same indicators and candles, no decision — the bench's baseline for the cost of a trade
        trade: bool = True

    search_space = {"fast": IntRange(5, 40), "slow": IntRange(30, 120), "stop_loss_pct": FloatRange(0.003, 0.03)}

    def prepare(self, frames: Mapping[str, CandleSeries]) -> Features:
        self.check_frames(frames)
        s = frames[self.primary]
        diff = ind.ema(s.close, self.params.fast) - ind.ema(s.close, self.params.slow)
        return Features.build(s, {"close": s.close, "diff": diff, "prev": ind.shift(diff, 1)})

    def decide(self, features: Features, i: int, legs: Sequence[LegView],
               last_entry_ts: int | None = None) -> list[Decision]:
        if not features.valid[i] or not self.params.trade:
            return []
        c = features.cols
        diff, prev = c["diff"][i], c["prev"][i]
        up, down = prev <= 0 < diff, prev >= 0 > diff
        if not (up or down):
            return []
        d = Direction.LONG if up else Direction.SHORT
        out: list[Decision] = [Exit(g.leg_id, 1.0, "BENCH_EMA_CROSS reverse on cross", "opposite_cross")
                               for g in legs if g.direction is not d]
        close = c["close"][i]
        out.append(Enter(d, close * (1 - d.sign * self.params.stop_loss_pct), None,
                         f"BENCH_EMA_CROSS {d.value.lower()}: EMA{self.params.fast} crossed "
                         f"{'above' if up else 'below'} EMA{self.params.slow}"))
        return out
