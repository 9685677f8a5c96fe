"""ZLMACD_ICHIMOKU -- zero-lag MACD cross confirmed by the Ichimoku cloud, on 1h candles.

Same intent and numbers as the original (reference §3.2). Entry when ADX(14) >= 25 and the long
score reaches 3: ZL-MACD(12/26/9) crosses above its signal on this bar (+1), close above the
cloud (+1), tenkan > kijun (+1), senkou A > senkou B (+0.5). Otherwise the short mirror.
4 h cooldown.

Exits (all on the closed candle; gains are unleveraged price %):

* ``max_loss``: loss >= 2 %. The same level is the exchange stop, so normally the exchange fills
  it intrabar; the candle-close rule is the backstop if a close is beyond it.
* ``trailing_stop``: once the best close since entry is >= +3 %, exit when the close gives back
  10 % from that peak; the trail is also sent as a :class:`MoveStop` whenever it tightens the
  exchange stop.
* ``kijun_touch`` (long: low <= kijun; short: high >= kijun), ``cloud_break`` (close beyond the
  opposite cloud edge), ``opposite_cross`` (ZL-MACD crosses its signal against the leg).
* Partial take-profits at +5/+10/+15 %: 25/35/40 % of the initial size, each once; the last
  closes the remainder.
* After the +5 % partial the stop moves to breakeven + 0.2 % (the original logged this but never
  did it).

Defects fixed / choices:

* The original decided on the still-forming candle; here only closed candles.
* Ichimoku's senkou spans are displaced +26 bars with NaN warm-up (cloud at t from data <= t-26).
* Its SL/TP were computed with a fallback "ATR = 2 % of price" and never used. Here the stop is the
  real ATR: ``close -+ min(1.5 ATR, 2 %)`` from the signal candle, placed on the exchange. No
  exchange take-profit: the original's profit-taking is the partials and the trailing stop, and a
  +10 % TP order would cut the +15 % partial and the trail short.
* Pyramiding and the (discarded) half-Kelly sizing are engine/sizing concerns, not reproduced.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from albra import indicators as ind
from albra.candles import CandleSeries
from albra.model import Direction
from albra.timefmt import HOUR_MS
from albra.strategies._exits import check_partial_levels, partial_exits, partial_tag, tracked_peak
from albra.strategies.base import (Decision, Enter, Exit, Features, LegView, Strategy, cooldown_over,
                             flat_after, tighter_stop)


class ZlmacdIchimoku(Strategy):
    name = "ZLMACD_ICHIMOKU"
    timeframes = ("1h",)
    history = 500  # Ichimoku needs 78 bars; ZLEMA(26) is an EMA of an EMA: let it converge

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        adx_min: float = Field(25.0, ge=0, le=100)
        min_signal_strength: float = Field(3.0, gt=0, le=3.5)
        stop_loss_atr: float = Field(1.5, gt=0)
        stop_loss_max_pct: float = Field(0.02, gt=0, lt=1)
        max_loss_pct: float = Field(0.02, gt=0, lt=1)
        trailing_activation_pct: float = Field(0.03, gt=0)
        trailing_distance_pct: float = Field(0.10, gt=0, lt=1)
        partial_levels: tuple[tuple[float, float], ...] = ((0.05, 0.25), (0.10, 0.35), (0.15, 0.40))
        _check_levels = field_validator("partial_levels")(check_partial_levels)
        breakeven_buffer_pct: float = Field(0.002, ge=0)
        cooldown_hours: float = Field(4.0, ge=0)

    def prepare(self, frames: Mapping[str, CandleSeries]) -> Features:
        self.check_frames(frames)
        s = frames["1h"]
        line, sig, _ = ind.zlmacd(s.close, 12, 26, 9)
        diff = line - sig
        prev = ind.shift(diff, 1)
        ich = ind.ichimoku(s.high, s.low, 9, 26, 52, 26)
        adx, _, _ = ind.adx(s.high, s.low, s.close, 14)
        arrays = {
            "close": s.close, "high": s.high, "low": s.low, "diff": diff, "prev_diff": prev,
            "tenkan": ich["tenkan"], "kijun": ich["kijun"], "senkou_a": ich["senkou_a"],
            "senkou_b": ich["senkou_b"], "cloud_top": ich["cloud_top"],
            "cloud_bottom": ich["cloud_bottom"], "adx": adx,
            "atr": ind.atr(s.high, s.low, s.close, 14),
        }
        return Features.build(s, arrays, positive=("atr",))

    def decide(self, features: Features, i: int, legs: Sequence[LegView],
               last_entry_ts: int | None = None) -> list[Decision]:
        if not features.valid[i]:
            return []
        c = features.cols
        p = self.params
        close = c["close"][i]
        diff, prev = c["diff"][i], c["prev_diff"][i]
        cross_up = prev <= 0 < diff
        cross_down = prev >= 0 > diff
        out: list[Decision] = []
        for leg in legs:
            if features.ts[i] > leg.entry_ts:
                out.extend(self._exits(leg, c, i, cross_up, cross_down))
        if not flat_after(legs, out):
            return out
        if not cooldown_over(features.ts[i], last_entry_ts, int(p.cooldown_hours * HOUR_MS)):
            return out
        adx = c["adx"][i]
        if adx < p.adx_min:
            return out
        top, bottom, tenkan, kijun = c["cloud_top"][i], c["cloud_bottom"][i], c["tenkan"][i], c["kijun"][i]
        a, b = c["senkou_a"][i], c["senkou_b"][i]
        long_parts = [("ZL-MACD cross up", 1.0, cross_up), ("close above cloud", 1.0, close > top),
                      ("tenkan > kijun", 1.0, tenkan > kijun), ("bullish cloud", 0.5, a > b)]
        short_parts = [("ZL-MACD cross down", 1.0, cross_down), ("close below cloud", 1.0, close < bottom),
                       ("tenkan < kijun", 1.0, tenkan < kijun), ("bearish cloud", 0.5, a < b)]
        for direction, parts in ((Direction.LONG, long_parts), (Direction.SHORT, short_parts)):
            score = sum(w for _, w, ok in parts if ok)
            if score >= p.min_signal_strength:
                sign = direction.sign
                dist = min(p.stop_loss_atr * c["atr"][i], p.stop_loss_max_pct * close)
                why = ", ".join(n for n, _, ok in parts if ok)
                out.append(Enter(direction, close - sign * dist, None,
                                 f"ZLMACD_ICHIMOKU {direction.value.lower()}: score {score:g}/3.5 "
                                 f"({why}), ADX {adx:.1f}"))
                break
        return out

    def _exits(self, leg: LegView, c: dict[str, list[float]], i: int, cross_up: bool,
               cross_down: bool) -> list[Decision]:
        p = self.params
        close = c["close"][i]
        long = leg.direction is Direction.LONG
        side = leg.direction.value.lower()
        gain = leg.gain(close)
        out: list[Decision] = []
        stops: list[tuple[float, str]] = []  # candidate stops; the tightest one is sent
        if gain <= -p.max_loss_pct:
            return [Exit(leg.leg_id, 1.0, f"ZLMACD_ICHIMOKU {side}: loss {gain * 100:.2f}% reached "
                         f"the {p.max_loss_pct * 100:g}% maximum", "max_loss")]
        peak = tracked_peak(leg, close, out)
        if leg.gain(peak) >= p.trailing_activation_pct:
            trail = peak * (1 - p.trailing_distance_pct) if long else peak * (1 + p.trailing_distance_pct)
            if (close <= trail) if long else (close >= trail):
                return [Exit(leg.leg_id, 1.0, f"ZLMACD_ICHIMOKU {side}: close {close:.2f} gave back "
                             f"{p.trailing_distance_pct * 100:g}% from peak {peak:.2f}", "trailing_stop")]
            stops.append((trail, f"ZLMACD_ICHIMOKU {side}: trailing {p.trailing_distance_pct * 100:g}% "
                                 f"from peak {peak:.2f}"))
        full: Exit | None = None
        if (c["low"][i] <= c["kijun"][i]) if long else (c["high"][i] >= c["kijun"][i]):
            full = Exit(leg.leg_id, 1.0, f"ZLMACD_ICHIMOKU {side}: price touched kijun {c['kijun'][i]:.2f}",
                        "kijun_touch")
        elif (close < c["cloud_bottom"][i]) if long else (close > c["cloud_top"][i]):
            full = Exit(leg.leg_id, 1.0, f"ZLMACD_ICHIMOKU {side}: close {close:.2f} broke through the cloud",
                        "cloud_break")
        elif cross_down if long else cross_up:
            full = Exit(leg.leg_id, 1.0, f"ZLMACD_ICHIMOKU {side}: ZL-MACD crossed its signal against the leg",
                        "opposite_cross")
        if full is not None:
            return [full]
        partials = partial_exits(leg, gain, p.partial_levels, "ZLMACD_ICHIMOKU")
        out.extend(partials)
        first = partial_tag(p.partial_levels[0][0])
        if first in leg.partial_exits_done or any(x.tag == first for x in partials):
            be = leg.entry_price * (1 + leg.sign * p.breakeven_buffer_pct)
            stops.append((be, f"ZLMACD_ICHIMOKU {side}: stop to breakeven +{p.breakeven_buffer_pct * 100:g}% "
                               f"after the first partial"))
        if stops and not flat_after([leg], out):
            level, why = max(stops) if long else min(stops)
            mv = tighter_stop(leg, level, why)
            if mv:
                out.append(mv)
        return out


__all__ = ["ZlmacdIchimoku"]
