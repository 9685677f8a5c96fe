"""MOMENTUM -- breakout in a strong directional trend, on 15m candles.

Same intent and numbers as the original (reference §3.3). All conditions must hold on the closed
candle: ADX(14) >= 35; |+DI - -DI| >= 15 (the larger DI gives the direction); volume >= 2.0 x its
20-bar average; momentum accelerating (below); long needs Donchian(20) position >= 0.9, short
<= 0.1; channel width >= 8 % of price. 4 h cooldown. SL 2 ATR, TP 6 ATR from the signal candle.

Exits:

* ``adx_drop``: ADX < 24.5 (trend exhausted).
* ``di_reversal``: the opposite DI becomes the larger one (long: -DI > +DI). The original compared
  the side against a lower-case string, so it never fired.
* Trailing ratchet (a :class:`MoveStop`): starts at the entry stop; once the best close is
  >= 1.5 ATR in profit, the stop trails 1.5 ATR behind it, advancing in whole 0.5 ATR steps
  (at +1.5 ATR: breakeven; +2.0 ATR: entry + 0.5 ATR; ...). ATR is the one stored at entry
  (the original read an ATR column the klines did not have, so the stop never moved).
  ``trailing_stop`` exits at the close if a close is already beyond the ratcheted level.

Choices where the original was ambiguous:

* Acceleration ("x 1.5"; as coded it passed only for acceleration <= 0 or NaN): the 10-bar rate of
  change must point in the trade's direction and its size must be >= 1.5 x the mean size over
  the previous 20 bars.
* The 4h frame the original fetched was unused for signals, so MOMENTUM declares 15m only.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from albra import indicators as ind
from albra.candles import CandleSeries
from albra.model import Direction
from albra.timefmt import HOUR_MS
from albra.strategies._exits import tracked_peak
from albra.strategies.base import (Decision, Enter, Exit, Features, LegView, Strategy, cooldown_over,
                             flat_after, tighter_stop)

ENTRY_ATR = "entry_atr"


class Momentum(Strategy):
    name = "MOMENTUM"
    timeframes = ("15m",)
    history = 300

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        adx_min: float = Field(35.0, ge=0, le=100)
        di_diff_min: float = Field(15.0, ge=0)
        volume_ratio_min: float = Field(2.0, ge=0)
        acceleration_min: float = Field(1.5, ge=0)
        position_long_min: float = Field(0.9, ge=0, le=1)
        position_short_max: float = Field(0.1, ge=0, le=1)
        channel_width_min: float = Field(0.08, ge=0)
        stop_loss_atr: float = Field(2.0, gt=0)
        take_profit_atr: float = Field(6.0, gt=0)
        trailing_start_atr: float = Field(1.5, gt=0)
        trailing_step_atr: float = Field(0.5, gt=0)
        exit_adx_below: float = Field(24.5, ge=0, le=100)
        cooldown_hours: float = Field(4.0, ge=0)

    ROC_BARS = 10
    ROC_MEAN = 20

    def prepare(self, frames: Mapping[str, CandleSeries]) -> Features:
        self.check_frames(frames)
        s = frames["15m"]
        c = s.close
        adx, pdi, ndi = ind.adx(s.high, s.low, c, 14)
        up, lo, _ = ind.donchian(s.high, s.low, 20)
        width = up - lo
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = np.where(width > 0, (c - lo) / width, 0.5)
            pos[np.isnan(width)] = np.nan
            roc = c / ind.shift(c, self.ROC_BARS) - 1.0
            mean_abs = ind.shift(ind.sma(np.abs(roc), self.ROC_MEAN), 1)
            accel = np.where(mean_abs > 0, np.abs(roc) / mean_abs, 0.0)
            accel[np.isnan(mean_abs)] = np.nan
            vol_ratio = s.volume / ind.sma(s.volume, 20)
            vol_ratio[~np.isfinite(vol_ratio)] = np.nan
        arrays = {
            "close": c, "adx": adx, "pdi": pdi, "ndi": ndi, "pos": pos, "width_pct": width / c,
            "roc": roc, "accel": accel, "vol_ratio": vol_ratio,
            "atr": ind.atr(s.high, s.low, c, 14),
        }
        return Features.build(s, arrays, positive=("atr",))

    def decide(self, features: Features, i: int, legs: Sequence[LegView],
               last_entry_ts: int | None = None) -> list[Decision]:
        if not features.valid[i]:
            return []
        c = features.cols
        p = self.params
        out: list[Decision] = []
        for leg in legs:
            if features.ts[i] > leg.entry_ts:
                out.extend(self._exits(leg, c, i))
        if not flat_after(legs, out):
            return out
        if not cooldown_over(features.ts[i], last_entry_ts, int(p.cooldown_hours * HOUR_MS)):
            return out
        adx, pdi, ndi = c["adx"][i], c["pdi"][i], c["ndi"][i]
        if adx < p.adx_min or abs(pdi - ndi) < p.di_diff_min:
            return out
        direction = Direction.LONG if pdi > ndi else Direction.SHORT
        long = direction is Direction.LONG
        pos, width = c["pos"][i], c["width_pct"][i]
        roc, accel, vol = c["roc"][i], c["accel"][i], c["vol_ratio"][i]
        if (vol < p.volume_ratio_min or width < p.channel_width_min
                or accel < p.acceleration_min or (roc <= 0 if long else roc >= 0)
                or (pos < p.position_long_min if long else pos > p.position_short_max)):
            return out
        close, atr = c["close"][i], c["atr"][i]
        sign = direction.sign
        out.append(Enter(
            direction, close - sign * p.stop_loss_atr * atr, close + sign * p.take_profit_atr * atr,
            f"MOMENTUM {direction.value.lower()}: ADX {adx:.1f}, +DI {pdi:.1f} / -DI {ndi:.1f}, "
            f"volume x{vol:.1f}, ROC {roc * 100:+.2f}% (x{accel:.1f} its mean), DC position {pos:.2f}, "
            f"width {width * 100:.1f}%",
            leg_state={ENTRY_ATR: atr},
        ))
        return out

    def _exits(self, leg: LegView, c: dict[str, list[float]], i: int) -> list[Decision]:
        p = self.params
        side = leg.direction.value.lower()
        long = leg.direction is Direction.LONG
        adx, pdi, ndi, close = c["adx"][i], c["pdi"][i], c["ndi"][i], c["close"][i]
        if adx < p.exit_adx_below:
            return [Exit(leg.leg_id, 1.0, f"MOMENTUM {side}: ADX {adx:.1f} fell below {p.exit_adx_below:g}",
                         "adx_drop")]
        if (ndi > pdi) if long else (pdi > ndi):
            return [Exit(leg.leg_id, 1.0, f"MOMENTUM {side}: DI reversed (+DI {pdi:.1f}, -DI {ndi:.1f})",
                         "di_reversal")]
        out: list[Decision] = []
        peak = tracked_peak(leg, close, out)
        atr = leg.state.get(ENTRY_ATR)
        if not isinstance(atr, (int, float)) or not atr > 0:
            return out  # a leg without its entry ATR (not opened by this strategy): no ratchet
        profit_atr = leg.sign * (peak - leg.entry_price) / atr
        if profit_atr >= p.trailing_start_atr:
            steps = math.floor(profit_atr / p.trailing_step_atr + 1e-9) * p.trailing_step_atr
            level = leg.entry_price + leg.sign * (steps - p.trailing_start_atr) * atr
            if (close <= level) if long else (close >= level):
                return [Exit(leg.leg_id, 1.0, f"MOMENTUM {side}: close {close:.2f} beyond the trailing "
                             f"stop {level:.2f}", "trailing_stop")]
            locked = steps - p.trailing_start_atr
            mv = tighter_stop(leg, level, f"MOMENTUM {side}: peak +{profit_atr:.2f} ATR, stop ratcheted to "
                              + (f"entry +{locked:g} ATR" if locked > 0 else "breakeven"))
            if mv:
                out.append(mv)
        return out
