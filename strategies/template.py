"""TEMPLATE: a moving-average cross -- the example to copy when writing a strategy.

Copy this file to ``strategies/mystrat.py``, rename the class and ``name``, change the logic.
It registers itself by being in the package (no list to edit); select it in the config by name.

Rules (the original template's example logic): on the 1h chart, go long when SMA 10 crosses above
SMA 20 and short when it crosses below. Stop-loss 2 % and take-profit 4 % from the signal candle's
close, placed on the exchange by the engine. An open leg is also closed at candle close when the
averages cross back (an example of a candle-close :class:`Exit`). 4 h cooldown between entries.

What a strategy must do (see ``strategies/base.py``):

* ``prepare`` computes every input for every bar at once, causally, and returns
  :class:`Features`; mark a bar invalid while any input is still warming up.
* ``decide`` reads plain lists at bar ``i`` and returns decisions; no I/O, no clock, no pandas.
* Every :class:`Enter` carries a stop-loss; exits use values stored at entry.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from albra import indicators as ind
from albra.candles import CandleSeries
from albra.model import Direction
from albra.optimize.space import FloatRange, IntRange
from albra.timefmt import HOUR_MS
from albra.strategies.base import (Decision, Enter, Exit, Features, LegView, Strategy, cooldown_over,
                             flat_after)


class MaCrossTemplate(Strategy):
    name = "TEMPLATE"
    timeframes = ("1h",)
    history = 60  # SMA 20 needs 20 bars; a cross needs the previous bar too

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        stop_loss_pct: float = Field(0.02, gt=0, lt=1, description="SL distance, fraction of price")
        take_profit_pct: float = Field(0.04, gt=0, description="TP distance, fraction of price")
        cooldown_hours: float = Field(4.0, ge=0)

    # ranges `albra optimize` searches (checked against Params)
    search_space = {
        "stop_loss_pct": FloatRange(0.005, 0.05),
        "take_profit_pct": FloatRange(0.01, 0.10),
        "cooldown_hours": IntRange(0, 12),
    }

    FAST, SLOW = 10, 20

    def prepare(self, frames: Mapping[str, CandleSeries]) -> Features:
        self.check_frames(frames)
        s = frames[self.primary]
        fast = ind.sma(s.close, self.FAST)
        slow = ind.sma(s.close, self.SLOW)
        diff = fast - slow
        prev = ind.shift(diff, 1)
        return Features.build(s, {"close": s.close, "diff": diff, "prev_diff": prev,
                                  "fast": fast, "slow": slow})

    def decide(self, features: Features, i: int, legs: Sequence[LegView],
               last_entry_ts: int | None = None) -> list[Decision]:
        if not features.valid[i]:
            return []
        c = features.cols
        diff, prev, close = c["diff"][i], c["prev_diff"][i], c["close"][i]
        up = prev <= 0 < diff
        down = prev >= 0 > diff
        out: list[Decision] = []
        for leg in legs:
            if features.ts[i] <= leg.entry_ts:
                continue
            against = down if leg.direction is Direction.LONG else up
            if against:
                out.append(Exit(leg.leg_id, 1.0, f"TEMPLATE {leg.direction.value.lower()}: "
                                f"SMA{self.FAST} crossed back over SMA{self.SLOW}", "opposite_cross"))
        if not (up or down) or not flat_after(legs, out):
            return out
        p = self.params
        if not cooldown_over(features.ts[i], last_entry_ts, int(p.cooldown_hours * HOUR_MS)):
            return out
        d = Direction.LONG if up else Direction.SHORT
        sl = close * (1 - d.sign * p.stop_loss_pct)
        tp = close * (1 + d.sign * p.take_profit_pct)
        out.append(Enter(d, sl, tp, f"TEMPLATE {d.value.lower()}: SMA{self.FAST} {c['fast'][i]:.2f} "
                         f"crossed {'above' if up else 'below'} SMA{self.SLOW} {c['slow'][i]:.2f}"))
        return out


__all__ = ["MaCrossTemplate"]
