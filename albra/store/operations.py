"""Operations history: runner uptime segments, exchange call counts by outcome, order placement latencies.

Why a separate record: the ``runners`` table holds only the latest heartbeat, and the resilience layer's counters
live in the runner's memory, so a month later nobody could say how long a runner was down or how often Binance
answered 5xx. These writes are cheap (one UPSERT per heartbeat; call counts are buffered in memory by
:class:`CallRecorder` and written in one transaction per heartbeat) and the monthly review reads them
(``albra.review``). Times are the runner's clock (exchange time, or the replay's clock on paper).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from albra.store.db import Store

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class UptimeSegment:
    name: str
    start_ms: int
    last_ms: int
    clean: bool


class UptimeTracker:
    """One runner's uptime segments. :meth:`start` opens a segment; :meth:`beat` extends it (or opens a new one
    after a gap longer than ``gap_ms``: a hung loop is downtime too); :meth:`stop` closes it cleanly. A crash leaves
    the segment ending at its last heartbeat, which is exactly what the review counts as the run's end."""

    def __init__(self, store: Store, name: str, gap_ms: int | None) -> None:
        self.store = store
        self.name = name
        self.gap_ms = gap_ms
        self.start_ms: int | None = None
        self.last_ms: int | None = None

    def start(self, now_ms: int) -> None:
        self.start_ms = self.last_ms = now_ms
        self.store.execute("INSERT OR REPLACE INTO runner_uptime(name, start_ms, last_ms, clean) VALUES (?,?,?,0)",
                           (self.name, now_ms, now_ms))

    def beat(self, now_ms: int) -> None:
        if self.start_ms is None or self.last_ms is None:
            self.start(now_ms)
            return
        if self.gap_ms is not None and now_ms - self.last_ms > self.gap_ms:
            self.start(now_ms)
            return
        self.last_ms = max(self.last_ms, now_ms)
        self.store.execute("UPDATE runner_uptime SET last_ms=? WHERE name=? AND start_ms=?",
                           (self.last_ms, self.name, self.start_ms))

    def stop(self, now_ms: int) -> None:
        if self.start_ms is None:
            return
        self.last_ms = max(self.last_ms or now_ms, now_ms)
        self.store.execute("UPDATE runner_uptime SET last_ms=?, clean=1 WHERE name=? AND start_ms=?",
                           (self.last_ms, self.name, self.start_ms))


class CallRecorder:
    """Counts exchange calls per (hour, op, outcome) in memory and keeps each placement's latency; :meth:`flush`
    writes them in one transaction. Called from inside exchange calls, so :meth:`record` only appends."""

    def __init__(self, store: Store, account: str) -> None:
        self.store = store
        self.account = account
        self.counts: Counter[tuple[int, str, str]] = Counter()
        self.latencies: list[tuple[int, str, str, float]] = []

    def record(self, ts_ms: int, op: str, placement: bool, outcome: str, ms: float) -> None:
        self.counts[(ts_ms - ts_ms % HOUR_MS, op, outcome)] += 1
        if placement:
            self.latencies.append((ts_ms, op, outcome, round(ms, 3)))

    def flush(self) -> None:
        if not self.counts and not self.latencies:
            return
        counts, lats = self.counts, self.latencies
        self.counts, self.latencies = Counter(), []
        with self.store.tx() as c:
            c.executemany(
                "INSERT INTO exchange_calls(account, hour_ms, op, outcome, n) VALUES (?,?,?,?,?)"
                " ON CONFLICT(account, hour_ms, op, outcome) DO UPDATE SET n = n + excluded.n",
                [(self.account, h, op, out, n) for (h, op, out), n in counts.items()])
            c.executemany("INSERT INTO order_latency(account, ts, op, outcome, ms) VALUES (?,?,?,?,?)",
                          [(self.account, t, op, out, ms) for t, op, out, ms in lats])


def uptime_segments(store: Store, name: str, until_ms: int) -> list[UptimeSegment]:
    """Every segment of runner ``name`` that started before ``until_ms``, oldest first."""
    return [UptimeSegment(r["name"], r["start_ms"], r["last_ms"], bool(r["clean"]))
            for r in store.query("SELECT * FROM runner_uptime WHERE name=? AND start_ms < ? ORDER BY start_ms",
                                 (name, until_ms))]


def call_counts(store: Store, account: str, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
    """(op, outcome, n) summed over the hours of [since, until)."""
    return [dict(r) for r in store.query(
        "SELECT op, outcome, SUM(n) AS n FROM exchange_calls WHERE account=? AND hour_ms >= ? AND hour_ms < ?"
        " GROUP BY op, outcome ORDER BY op, outcome", (account, since_ms - since_ms % HOUR_MS, until_ms))]


def placement_latencies(store: Store, account: str, since_ms: int, until_ms: int) -> list[float]:
    """Every order placement's latency (ms) in [since, until), ascending."""
    return [float(r[0]) for r in store.query_values(
        "SELECT ms FROM order_latency WHERE account=? AND ts >= ? AND ts < ? ORDER BY ms", (account, since_ms,
                                                                                            until_ms))]
