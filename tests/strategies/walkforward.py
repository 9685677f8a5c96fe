"""A minimal walk-forward driver for tests and benchmarks (not the engine).

It runs ``prepare`` once and ``decide`` on every bar, keeping at most one synthetic leg: an Enter
opens it at the signal candle's close, the leg's exchange stop / take-profit are checked against
each later bar's range (stop first, the pessimistic order), and Exit / MoveStop / UpdateLegState
decisions are applied. It counts signals and trades so behaviour changes are noticed; it does
not size, charge fees or model slippage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

from albra.candles import CandleSeries
from albra.model import Direction
from albra.strategies.base import Enter, Exit, LegView, MoveStop, Strategy, UpdateLegState


@dataclass
class WalkResult:
    decisions: list[tuple[int, object]] = field(default_factory=list)
    entries: int = 0
    longs: int = 0
    shorts: int = 0
    exits_by_tag: dict[str, int] = field(default_factory=dict)
    trades: int = 0

    def count(self, tag: str) -> None:
        self.exits_by_tag[tag] = self.exits_by_tag.get(tag, 0) + 1


def walk(strategy: Strategy, frames: Mapping[str, CandleSeries], start: int = 0,
         end: int | None = None) -> WalkResult:
    feats = strategy.prepare(frames)
    s = frames[strategy.primary]
    high, low, close, ts = s.high.tolist(), s.low.tolist(), s.close.tolist(), s.ts.tolist()
    res = WalkResult()
    leg: LegView | None = None
    remaining = 1.0  # of the initial qty
    last_entry_ts: int | None = None
    seq = 0
    stop = len(feats) if end is None else end
    for i in range(start, stop):
        if leg is not None and ts[i] > leg.entry_ts:
            if leg.direction is Direction.LONG:
                hit_sl = low[i] <= leg.stop_price
                hit_tp = leg.take_profit is not None and high[i] >= leg.take_profit
            else:
                hit_sl = high[i] >= leg.stop_price
                hit_tp = leg.take_profit is not None and low[i] <= leg.take_profit
            if hit_sl or hit_tp:
                res.count("exchange_stop" if hit_sl else "exchange_tp")
                res.trades += 1
                leg = None
        legs = [leg] if leg is not None else []
        for d in strategy.decide(feats, i, legs, last_entry_ts):
            res.decisions.append((i, d))
            if isinstance(d, Enter):
                if leg is not None:
                    raise AssertionError(f"bar {i}: {strategy.name} entered while a leg is open")
                seq += 1
                leg = LegView(seq, d.direction, close[i], ts[i], Decimal(1), Decimal(1),
                              d.stop_loss, d.take_profit, frozenset(), dict(d.leg_state))
                remaining = 1.0
                last_entry_ts = ts[i]
                res.entries += 1
                if d.direction is Direction.LONG:
                    res.longs += 1
                else:
                    res.shorts += 1
            elif leg is None or d.leg_id != leg.leg_id:
                raise AssertionError(f"bar {i}: decision {d} for a leg that is not open")
            elif isinstance(d, Exit):
                res.count(d.tag)
                remaining -= d.fraction
                if d.is_full or remaining <= 1e-9:
                    res.trades += 1
                    leg = None
                else:
                    leg = dataclasses.replace(leg, partial_exits_done=leg.partial_exits_done | {d.tag},
                                              qty=Decimal(str(round(remaining, 9))))
            elif isinstance(d, MoveStop):
                tighter = (d.new_stop > leg.stop_price if leg.direction is Direction.LONG
                           else d.new_stop < leg.stop_price)
                if not tighter:
                    raise AssertionError(f"bar {i}: {d} loosens stop {leg.stop_price}")
                leg = dataclasses.replace(leg, stop_price=d.new_stop)
            elif isinstance(d, UpdateLegState):
                leg = dataclasses.replace(leg, state={**leg.state, **d.updates})
    return res
