"""Invariant 6: closed candles only, each at most once per (strategy, symbol), caught up after a stall,
marks persisted across restarts."""

from __future__ import annotations

from albra.engine.scheduler import CandleScheduler, Track
from albra.store import Store

M15 = 15 * 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def _sched(store, tracks=None):
    return CandleScheduler(store, "acct", tracks or [Track("TFPE", "BTCUSDT", "15m")])


def test_forming_candle_is_never_due(store):
    s = _sched(store)
    # 1 ms before the 00:15 close: only the 23:45 candle (closed at 00:00) is due, not the forming 00:00 one
    due = s.due(T0 + M15 - 1)
    assert [d.ts for d in due] == [T0 - M15]
    due = s.due(T0 + M15)
    assert [d.ts for d in due] == [T0]


def test_each_closed_candle_once_and_catch_up_after_stall(store):
    s = _sched(store)
    first = s.due(T0 + M15)
    s.mark(first[0], T0 + M15)
    assert s.due(T0 + M15 + 5_000) == []  # evaluated: not again
    # the loop stalls for an hour: the four candles it missed are all due, oldest first
    due = s.due(T0 + 5 * M15 + 10)
    assert [d.ts for d in due] == [T0 + M15, T0 + 2 * M15, T0 + 3 * M15, T0 + 4 * M15]
    for d in due:
        s.mark(d, T0 + 5 * M15)
    assert s.due(T0 + 5 * M15 + 10) == []


def test_marks_survive_restart_and_only_move_forward(tmp_path):
    p = tmp_path / "albra.db"
    st = Store.open(p)
    s = _sched(st)
    d = s.due(T0 + M15)[0]
    s.mark(d, T0 + M15)
    s.mark(s.due(T0 + 2 * M15)[0], T0 + 2 * M15)
    s.mark(d, T0 + 3 * M15)  # a late duplicate does not move the mark back
    st.close()
    st2 = Store.open(p)
    s2 = _sched(st2)
    assert [x.ts for x in s2.due(T0 + 3 * M15)] == [T0 + 2 * M15]
    st2.close()


def test_several_tracks_ordered_by_close_time(store):
    tracks = [Track("ZLMACD_ICHIMOKU", "BTCUSDT", "1h"), Track("TFPE", "BTCUSDT", "15m")]
    s = _sched(store, tracks)
    for d in s.due(T0):
        s.mark(d, T0)
    due = s.due(T0 + 4 * M15)
    assert [(d.track.strategy, d.ts) for d in due] == [
        ("TFPE", T0), ("TFPE", T0 + M15), ("TFPE", T0 + 2 * M15), ("TFPE", T0 + 3 * M15), ("ZLMACD_ICHIMOKU", T0)]
    assert [d.close_ms for d in due] == sorted(d.close_ms for d in due)
