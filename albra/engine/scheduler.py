"""Candle-close scheduling on exchange time, with persisted marks (invariant 6).

For every (strategy, symbol, primary timeframe) an account runs, the scheduler answers "which closed candles
have not been evaluated yet?" from the ``candle_marks`` table and the exchange's clock:

* a candle opening at ``ts`` is closed once exchange time ``now >= ts + interval`` — never earlier, so the
  forming candle is never evaluated (the original ZLMACD decided on it);
* every closed candle after the mark is due, oldest first, so a runner that was down or stalled catches up on
  the candles it missed instead of skipping to the newest (the original skipped ~50 % of hours); how an old
  candle's decisions are treated (entries never sent past the maximum signal age, exits at once) is
  :mod:`albra.engine.catch_up`'s;
* with no mark yet (first start) only the newest closed candle is due: a strategy does not "catch up" on
  history it never traded.

Crash safety: the mark of a candle is written in the SAME transaction as the write-ahead intents its decisions
produced (``Executor`` calls :func:`set_mark` with the open connection), or alone when it produced none. So
after a crash either both the intents and the mark exist (the intents are resolved by client id at start-up,
the candle is not re-evaluated) or neither does (the candle is evaluated again; intents derived from the same
candle get the same deterministic client ids, so nothing is sent twice). Intents that follow from a fill (the
protective stop of an entry) carry the entry candle's id and are re-derived on restart from the open leg.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from albra.store.db import Store
from albra.timefmt import timeframe_ms

MAX_CATCH_UP = 2_000  # candles evaluated in one catch-up pass at most (a week of 5m candles)


@dataclass(frozen=True, slots=True)
class Track:
    """One (strategy, symbol, timeframe) the account evaluates."""

    strategy: str
    symbol: str
    timeframe: str

    @property
    def interval_ms(self) -> int:
        return timeframe_ms(self.timeframe)


@dataclass(frozen=True, slots=True)
class Due:
    """A closed candle (open time ``ts``) of ``track`` not evaluated yet."""

    track: Track
    ts: int

    @property
    def close_ms(self) -> int:
        return self.ts + self.track.interval_ms


def last_closed_open(now_ms: int, interval_ms: int) -> int:
    """Open time of the newest candle that has closed at exchange time ``now_ms``."""
    return (now_ms // interval_ms) * interval_ms - interval_ms


def get_mark(store: Store, account: str, track: Track) -> int | None:
    r = store.query_one(
        "SELECT last_ts FROM candle_marks WHERE account=? AND strategy=? AND symbol=? AND timeframe=?",
        (account, track.strategy, track.symbol, track.timeframe))
    return None if r is None else int(r["last_ts"])


def set_mark(conn: Any, account: str, track: Track, ts: int, now_ms: int) -> None:
    """Record ``ts`` as evaluated inside the caller's transaction. Marks only move forward: an older ``ts``
    (a duplicate delivery) leaves the mark where it is."""
    conn.execute(
        "INSERT INTO candle_marks(account, strategy, symbol, timeframe, last_ts, updated_ms) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(account, strategy, symbol, timeframe) DO UPDATE SET"
        " last_ts=MAX(candle_marks.last_ts, excluded.last_ts), updated_ms=excluded.updated_ms",
        (account, track.strategy, track.symbol, track.timeframe, int(ts), int(now_ms)))


class CandleScheduler:
    """Which closed candles each track still has to evaluate, from the persisted marks and exchange time."""

    def __init__(self, store: Store, account: str, tracks: Iterable[Track],
                 max_catch_up: int = MAX_CATCH_UP) -> None:
        self.store = store
        self.account = account
        self.tracks = list(tracks)
        if len({(t.strategy, t.symbol) for t in self.tracks}) != len(self.tracks):
            raise ValueError("a (strategy, symbol) pair is scheduled twice")
        self.max_catch_up = max_catch_up
        self._dropped: dict[Track, tuple[int, int]] = {}

    def due(self, now_ms: int) -> list[Due]:
        """Every closed, not yet evaluated candle of every track, ordered by close time (then strategy,
        symbol) so several strategies see the market in the same order as it happened."""
        out: list[Due] = []
        for tr in self.tracks:
            step = tr.interval_ms
            newest = last_closed_open(now_ms, step)
            mark = get_mark(self.store, self.account, tr)
            if mark is None:
                first = newest
            else:
                first = mark + step
                if first % step:
                    raise ValueError(f"candle mark {mark} of {tr} is not on a {tr.timeframe} boundary")
            if first > newest:
                continue
            oldest = newest - (self.max_catch_up - 1) * step
            if first < oldest:  # more than one pass can evaluate: the runner journals what was re-seeded
                self._dropped[tr] = (first, (oldest - first) // step)
                first = oldest
            out.extend(Due(tr, ts) for ts in range(first, newest + 1, step))
        out.sort(key=lambda d: (d.close_ms, d.track.strategy, d.track.symbol))
        return out

    def take_dropped(self) -> dict[Track, tuple[int, int]]:
        """Per track (first dropped candle, how many) that :meth:`due` left out as beyond one pass; once."""
        out, self._dropped = self._dropped, {}
        return out

    def next_close_ms(self, now_ms: int) -> int:
        """Exchange time at which the next candle of any track closes (to sleep until)."""
        return min(((now_ms // t.interval_ms) + 1) * t.interval_ms for t in self.tracks)

    def mark(self, due: Due, now_ms: int, conn: Any | None = None) -> None:
        """Mark ``due`` evaluated (in ``conn``'s transaction when given)."""
        if conn is not None:
            set_mark(conn, self.account, due.track, due.ts, now_ms)
        else:
            with self.store.tx() as c:
                set_mark(c, self.account, due.track, due.ts, now_ms)
