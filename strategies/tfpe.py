"""TFPE -- trend-following pullback entry on 15m candles with a 4h Donchian trend filter.

Same intent and numbers as the original (reference §3.1): the 4h Donchian(20) trend picks the side,
a 15m pullback scored on 7 conditions triggers the entry when at least 4 hold and ADX(15m) >= 25;
SL 1.5 ATR, TP 5 ATR from the signal candle; 4 h cooldown between signals.

Score (each condition counts 1, max 7):

1. momentum: |20-bar % change| > 2.0 %;
2. fibonacci: retracement within [0.382, 0.786] of the swing range -- uptrend
   (swing_high - close)/range, downtrend (close - swing_low)/range;
3. RSI/position (sets the direction): 4h uptrend -> long if DC position < 0.3 and RSI <= 40, or
   0.4 <= position <= 0.6 and RSI <= 45; 4h downtrend -> short if position > 0.7 and RSI >= 60,
   or 0.4 <= position <= 0.6 and RSI >= 55;
4. RSI extreme: when the 4h channel width < 5 % of price, RSI < 30 -> long, RSI > 70 -> short
   (overrides the direction of 3);
5. |close - EMA12| / close <= 1.5 %;  6. volume / SMA20(volume) >= 1.5;
7. position bonus: long and position < 0.3, or short and position > 0.7.

A signal needs a direction and score >= 4.

Defects of the original fixed here, and choices where it was ambiguous:

* Swing high/low were a *centred* rolling window (future bars in backtests). Here they are the
  trailing 20-bar high/low (``swing_window``), known at the bar's close.
* The 4h row used was the one *in progress*; here it is the last 4h candle closed by the 15m
  candle's close (:func:`~strategies.base.align_higher`).
* Exits recomputed SL/TP from ATR_now each check (levels drifted); here SL/TP are computed once
  from the signal candle and live on the exchange; TFPE has no other exit rule (as the original).
* The market-regime adjustments (threshold +-1, SL/TP/size multipliers from a BTC 4h regime) are
  not reproduced: they mixed sizing into the signal, and the regime alert was noise. Defaults =
  the NORMAL regime. Sizing (24 %, Kelly, MDD) is the engine's.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from albra import indicators as ind
from albra.candles import CandleSeries
from albra.model import Direction
from albra.optimize.space import FloatRange, IntRange
from albra.timefmt import HOUR_MS
from albra.strategies.base import (Decision, Enter, Features, LegView, Strategy, align_higher,
                             cooldown_over, take_aligned)


class TFPE(Strategy):
    name = "TFPE"
    timeframes = ("15m", "4h")
    history = 400  # Wilder ADX/ATR/RSI converge well within 400 bars
    higher_history = {"4h": 40}  # Donchian 20 on closed 4h candles + the 400 x 15m span (25 bars)

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        adx_min: float = Field(25.0, ge=0, le=100)
        signal_threshold: int = Field(4, ge=1, le=7)
        stop_loss_atr: float = Field(1.5, gt=0)
        take_profit_atr: float = Field(5.0, gt=0)
        cooldown_hours: float = Field(4.0, ge=0)
        momentum_min_pct: float = Field(2.0, ge=0)
        fib_min: float = Field(0.382, ge=0, le=1)
        fib_max: float = Field(0.786, ge=0, le=1)
        ema_distance_max: float = Field(0.015, gt=0)
        volume_ratio_min: float = Field(1.5, ge=0)
        rsi_extreme_width_max: float = Field(0.05, gt=0)

    # ranges `albra optimize` searches (checked against Params)
    search_space = {
        "adx_min": FloatRange(15.0, 40.0, step=1.0),
        "signal_threshold": IntRange(3, 6),
        "stop_loss_atr": FloatRange(0.8, 3.0, step=0.1),
        "take_profit_atr": FloatRange(2.0, 8.0, step=0.5),
        "cooldown_hours": FloatRange(0.0, 12.0, step=1.0),
    }

    WINDOW = 14
    DC = 20
    SWING = 20
    MOMENTUM_BARS = 20

    def prepare(self, frames: Mapping[str, CandleSeries]) -> Features:
        self.check_frames(frames)
        s, h4 = frames["15m"], frames["4h"]
        c = s.close
        adx, pdi, ndi = ind.adx(s.high, s.low, c, self.WINDOW)
        up, lo, _ = ind.donchian(s.high, s.low, self.DC)
        width = up - lo
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = np.where(width > 0, (c - lo) / width, 0.5)
            pos[np.isnan(width)] = np.nan
        sw_hi, sw_lo, _ = ind.donchian(s.high, s.low, self.SWING)
        ema12 = ind.ema(c, 12)
        momentum = np.abs(c / ind.shift(c, self.MOMENTUM_BARS) - 1.0) * 100.0
        vol_ratio = s.volume / ind.sma(s.volume, 20)
        h_up, h_lo, h_mid = ind.donchian(h4.high, h4.low, self.DC)
        idx = align_higher(s, h4)
        h_close = take_aligned(h4.close, idx)
        h_mid_a = take_aligned(h_mid, idx)
        h_width = take_aligned((h_up - h_lo) / h4.close, idx)
        trend = np.where(h_close > h_mid_a, 1.0, -1.0)
        trend[np.isnan(h_mid_a)] = np.nan
        with np.errstate(invalid="ignore"):
            vol_ok = np.isfinite(vol_ratio)
        arrays = {
            "close": c, "adx": adx, "rsi": ind.rsi(c, self.WINDOW), "ema12": ema12,
            "atr": ind.atr(s.high, s.low, c, self.WINDOW), "momentum": momentum,
            "vol_ratio": np.where(vol_ok, vol_ratio, np.nan), "pos": pos,
            "swing_high": sw_hi, "swing_low": sw_lo, "trend": trend, "htf_width": h_width,
        }
        return Features.build(s, arrays, positive=("atr",))

    def decide(self, features: Features, i: int, legs: Sequence[LegView],
               last_entry_ts: int | None = None) -> list[Decision]:
        # TFPE's only exits are its exchange SL/TP: with a leg open there is nothing to decide.
        if legs or not features.valid[i]:
            return []
        p = self.params
        if not cooldown_over(features.ts[i], last_entry_ts, int(p.cooldown_hours * HOUR_MS)):
            return []
        c = features.cols
        adx = c["adx"][i]
        if adx < p.adx_min:
            return []
        close, rsi, pos, trend = c["close"][i], c["rsi"][i], c["pos"][i], c["trend"][i]
        met: list[str] = []
        direction: Direction | None = None
        if c["momentum"][i] > p.momentum_min_pct:
            met.append("momentum")
        rng = c["swing_high"][i] - c["swing_low"][i]
        if rng > 0:
            fib = ((c["swing_high"][i] - close) / rng if trend > 0 else (close - c["swing_low"][i]) / rng)
            if p.fib_min <= fib <= p.fib_max:
                met.append("fib")
        mid_band = 0.4 <= pos <= 0.6
        if trend > 0 and ((pos < 0.3 and rsi <= 40) or (mid_band and rsi <= 45)):
            direction = Direction.LONG
            met.append("rsi/pos")
        elif trend < 0 and ((pos > 0.7 and rsi >= 60) or (mid_band and rsi >= 55)):
            direction = Direction.SHORT
            met.append("rsi/pos")
        if c["htf_width"][i] < p.rsi_extreme_width_max:
            if rsi < 30:
                direction = Direction.LONG
                met.append("rsi_extreme")
            elif rsi > 70:
                direction = Direction.SHORT
                met.append("rsi_extreme")
        if abs(close - c["ema12"][i]) / close <= p.ema_distance_max:
            met.append("ema")
        if c["vol_ratio"][i] >= p.volume_ratio_min:
            met.append("volume")
        if (direction is Direction.LONG and pos < 0.3) or (direction is Direction.SHORT and pos > 0.7):
            met.append("position")
        if direction is None or len(met) < p.signal_threshold:
            return []
        atr = c["atr"][i]
        sign = direction.sign
        sl = close - sign * p.stop_loss_atr * atr
        tp = close + sign * p.take_profit_atr * atr
        reason = (f"TFPE {direction.value.lower()}: score {len(met)}/7 ({', '.join(met)}), "
                  f"ADX {adx:.1f}, RSI {rsi:.1f}, 4h trend {'up' if trend > 0 else 'down'}")
        return [Enter(direction, sl, tp, reason, leg_state={"entry_atr": atr})]
