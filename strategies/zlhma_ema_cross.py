"""ZLHMA_EMA_CROSS -- EMA 50/200 cross confirmed by a zero-lag Hull MA, on 1h candles.

Same intent and numbers as the original (reference §3.4). Entry when ADX(14) >= 25 and the score
reaches 2.5: EMA50 crosses EMA200 on this candle (+2.0, sets the direction), ZLHMA(14) rising
(long) / falling (short) over the last 3 bars (+1.0), close above / below the ZLHMA (+0.5). So the
cross is required plus at least one confirmation. 4 h cooldown. SL 1.5 ATR and TP 5 ATR from the
signal candle, placed on the exchange (the original's live positions had **no** stop: its exit
function always raised and the error was swallowed).

Exits, all working here:

* ``ema_cross``: EMA50 crosses EMA200 against the leg. The opposite cross is also an entry
  signal, so when it confirms the strategy exits and enters the other way on the same candle
  (the original's "opposite signal exit + immediate reverse entry"); the cooldown still applies.
* ``zlhma_cross``: the close crosses the ZLHMA against the leg (long: previous close >= ZLHMA,
  this close < ZLHMA).
* Trailing: once the best close since entry is >= +5 %, the stop trails 2 % behind it
  (:class:`MoveStop`; ``trailing_stop`` exits at the close if a close is already beyond it). These
  are the numbers production really ran (hard-coded); the config's 3 %/10 % were ignored -- set
  ``trailing_activation_pct``/``trailing_distance_pct`` to use others.
* Partial take-profits at +5/+10/+15 %: 25/35/40 % of the initial size, each once; the last closes
  the remainder.

Defects fixed / choices: ZLHMA is ``HMA + (HMA - HMA 6 bars earlier)`` as in the original, causal;
ADX and ATR are Wilder's (the original used simple rolling means and filled NaN with 0, which
let warm-up rows through). "Rising over 3 bars" = three consecutive higher ZLHMA values
(z[t] > z[t-1] > z[t-2] > z[t-3]). Sizing (quarter-Kelly) and the per-symbol daily-loss
suspension belong to the engine.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from albra import indicators as ind
from albra.candles import CandleSeries
from albra.model import Direction
from albra.timefmt import HOUR_MS
from albra.strategies._exits import check_partial_levels, partial_exits, tracked_peak
from albra.strategies.base import (Decision, Enter, Exit, Features, LegView, Strategy, cooldown_over,
                             flat_after, tighter_stop)


class ZlhmaEmaCross(Strategy):
    name = "ZLHMA_EMA_CROSS"
    timeframes = ("1h",)
    history = 1500  # EMA200's seed must fade (alpha 2/201): crosses are sensitive to it

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        adx_min: float = Field(25.0, ge=0, le=100)
        min_score: float = Field(2.5, gt=0, le=3.5)
        stop_loss_atr: float = Field(1.5, gt=0)
        take_profit_atr: float = Field(5.0, gt=0)
        trailing_activation_pct: float = Field(0.05, gt=0)
        trailing_distance_pct: float = Field(0.02, gt=0, lt=1)
        partial_levels: tuple[tuple[float, float], ...] = ((0.05, 0.25), (0.10, 0.35), (0.15, 0.40))
        cooldown_hours: float = Field(4.0, ge=0)

        _check_levels = field_validator("partial_levels")(check_partial_levels)

    def prepare(self, frames: Mapping[str, CandleSeries]) -> Features:
        self.check_frames(frames)
        s = frames["1h"]
        c = s.close
        z = ind.zlhma(c, 14, 6)
        e50, e200 = ind.ema(c, 50), ind.ema(c, 200)
        diff = e50 - e200
        adx, _, _ = ind.adx(s.high, s.low, c, 14)
        arrays = {
            "close": c, "prev_close": ind.shift(c, 1), "zlhma": z, "z1": ind.shift(z, 1),
            "z2": ind.shift(z, 2), "z3": ind.shift(z, 3), "ema50": e50, "ema200": e200,
            "diff": diff, "prev_diff": ind.shift(diff, 1), "adx": adx,
            "atr": ind.atr(s.high, s.low, c, 14),
        }
        return Features.build(s, arrays, positive=("atr",))

    def decide(self, features: Features, i: int, legs: Sequence[LegView],
               last_entry_ts: int | None = None) -> list[Decision]:
        if not features.valid[i]:
            return []
        c = features.cols
        p = self.params
        diff, prev = c["diff"][i], c["prev_diff"][i]
        cross_up = prev <= 0 < diff
        cross_down = prev >= 0 > diff
        out: list[Decision] = []
        for leg in legs:
            if features.ts[i] > leg.entry_ts:
                out.extend(self._exits(leg, c, i, cross_up, cross_down))
        if not (cross_up or cross_down) or not flat_after(legs, out):
            return out
        if not cooldown_over(features.ts[i], last_entry_ts, int(p.cooldown_hours * HOUR_MS)):
            return out
        adx = c["adx"][i]
        if adx < p.adx_min:
            return out
        direction = Direction.LONG if cross_up else Direction.SHORT
        long = cross_up
        close, z, z1, z2, z3 = c["close"][i], c["zlhma"][i], c["z1"][i], c["z2"][i], c["z3"][i]
        parts = [("EMA50/200 cross " + ("up" if long else "down"), 2.0, True),
                 ("ZLHMA " + ("rising" if long else "falling"), 1.0,
                  (z > z1 > z2 > z3) if long else (z < z1 < z2 < z3)),
                 ("close " + ("above" if long else "below") + " ZLHMA", 0.5, close > z if long else close < z)]
        score = sum(w for _, w, ok in parts if ok)
        if score < p.min_score:
            return out
        atr = c["atr"][i]
        sign = direction.sign
        out.append(Enter(
            direction, close - sign * p.stop_loss_atr * atr, close + sign * p.take_profit_atr * atr,
            f"ZLHMA_EMA_CROSS {direction.value.lower()}: score {score:g}/3.5 "
            f"({', '.join(n for n, _, ok in parts if ok)}), ADX {adx:.1f}",
            leg_state={"entry_atr": atr},
        ))
        return out

    def _exits(self, leg: LegView, c: dict[str, list[float]], i: int, cross_up: bool,
               cross_down: bool) -> list[Decision]:
        p = self.params
        side = leg.direction.value.lower()
        long = leg.direction is Direction.LONG
        close, z = c["close"][i], c["zlhma"][i]
        if cross_down if long else cross_up:
            return [Exit(leg.leg_id, 1.0, f"ZLHMA_EMA_CROSS {side}: EMA50 crossed EMA200 against the leg",
                         "ema_cross")]
        prev_close, z1 = c["prev_close"][i], c["z1"][i]
        if (prev_close >= z1 and close < z) if long else (prev_close <= z1 and close > z):
            return [Exit(leg.leg_id, 1.0, f"ZLHMA_EMA_CROSS {side}: close {close:.2f} crossed the ZLHMA "
                         f"{z:.2f} against the leg", "zlhma_cross")]
        out: list[Decision] = []
        peak = tracked_peak(leg, close, out)
        if leg.gain(peak) >= p.trailing_activation_pct:
            trail = peak * (1 - p.trailing_distance_pct) if long else peak * (1 + p.trailing_distance_pct)
            if (close <= trail) if long else (close >= trail):
                return [Exit(leg.leg_id, 1.0, f"ZLHMA_EMA_CROSS {side}: close {close:.2f} gave back "
                             f"{p.trailing_distance_pct * 100:g}% from peak {peak:.2f}", "trailing_stop")]
        else:
            trail = float("nan")
        partials = partial_exits(leg, leg.gain(close), p.partial_levels, "ZLHMA_EMA_CROSS")
        out.extend(partials)
        if trail == trail and not flat_after([leg], out):
            mv = tighter_stop(leg, trail, f"ZLHMA_EMA_CROSS {side}: trailing {p.trailing_distance_pct * 100:g}% "
                              f"from peak {peak:.2f}")
            if mv:
                out.append(mv)
        return out


__all__ = ["ZlhmaEmaCross"]
