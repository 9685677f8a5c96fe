"""Catch-up after downtime with a maximum signal age (invariant 6: "never old news").

A runner that was down (a crash, an outage, a 4-day emergency) finds many closed candles it has not evaluated. It
must bring each strategy up to date on them in order — cooldowns, trailing levels, per-leg state and the last
evaluated candle all move as if it had been running — but an *entry* decided on a candle that closed long ago is old
news: the price has moved, the stop the strategy chose may already be past (the exchange then rejects it), and the
operator sees a burst of market orders for signals hours or days old. So:

* a candle is **fresh** when it is among the newest ``max_signal_age_bars`` closed candles of its timeframe at the
  moment it is evaluated (default 1: only the newest); its decisions run as usual;
* on a **stale** candle entries are dropped and journaled (``entry_skipped_stale``, with the signal's age), exits
  run at once at market — they only ever reduce risk — and say so (``catch_up_exit``), per-leg state updates are
  applied, and stop moves are coalesced per leg (only the last one matters; a trail of 90 replacements would be 180
  orders for nothing) and applied before the track's next fresh candle or at the end of the pass;
* candles older than the history the exchange can give (the strategy's warm-up plus the gap exceed one klines
  request) are **re-seeded**: skipped with one journal row saying how many and from when, so evaluation resumes on
  the candles that can be evaluated properly instead of waiting forever for a candle it cannot fetch.

This module classifies; the runner (``albra.engine.runner.Runner.evaluate_due``) fetches, evaluates and hands the
kept decisions to the executor. Order sending stays in the executor / order manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from albra.engine.scheduler import Due, last_closed_open
from albra.store.runners import duration_text
from albra.strategies.base import Decision, Enter, Exit, MoveStop

#: klines per request on Binance USDⓈ-M: the most history one fetch can give a catch-up
MAX_FETCH = 1500


def is_fresh(due: Due, now_ms: int, max_age_bars: int) -> bool:
    """True when ``due`` is among the newest ``max_age_bars`` closed candles of its timeframe at ``now_ms``."""
    newest = last_closed_open(now_ms, due.track.interval_ms)
    return due.ts > newest - max_age_bars * due.track.interval_ms


def age_text(due: Due, now_ms: int) -> str:
    """How old the candle's signal is: time since it closed."""
    return duration_text(now_ms - due.close_ms)


@dataclass
class StaleSplit:
    """A stale candle's decisions sorted by what happens to them."""

    apply_now: list[Decision] = field(default_factory=list)   # exits and leg-state updates: run at once
    skipped: list[Enter] = field(default_factory=list)         # entries: journaled, never sent
    moves: list[MoveStop] = field(default_factory=list)        # stop moves: coalesced per leg


def split_stale(decisions: Sequence[Decision]) -> StaleSplit:
    out = StaleSplit()
    for d in decisions:
        if isinstance(d, Enter):
            out.skipped.append(d)
        elif isinstance(d, MoveStop):
            out.moves.append(d)
        else:
            out.apply_now.append(d)
    return out


def exits_of(decisions: Sequence[Decision]) -> list[Exit]:
    return [d for d in decisions if isinstance(d, Exit)]


@dataclass
class TrackCatchUp:
    """What one track's catch-up did, for the journal and the alert."""

    strategy: str
    symbol: str
    candles: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    entries_skipped: int = 0
    exits_applied: int = 0
    moves_applied: int = 0
    reseeded: int = 0

    def seen(self, due: Due) -> None:
        self.candles += 1
        self.first_ts = due.ts if self.first_ts is None else min(self.first_ts, due.ts)
        self.last_ts = due.ts if self.last_ts is None else max(self.last_ts, due.ts)


class PendingMoves:
    """The last stop move per leg decided on stale candles, waiting to be applied once."""

    def __init__(self) -> None:
        self._by_track: dict[tuple[str, str], dict[str, tuple[int, MoveStop]]] = {}

    def add(self, key: tuple[str, str], candle_ts: int, moves: Sequence[MoveStop]) -> None:
        legs = self._by_track.setdefault(key, {})
        for m in moves:
            legs[str(m.leg_id)] = (candle_ts, m)

    def drop_leg(self, key: tuple[str, str], leg_id: str) -> None:
        self._by_track.get(key, {}).pop(leg_id, None)

    def take(self, key: tuple[str, str]) -> list[tuple[int, MoveStop]]:
        return list(self._by_track.pop(key, {}).values())

    def keys(self) -> list[tuple[str, str]]:
        return list(self._by_track)
