"""One clock for the store: exchange time, everywhere a time is stored or compared (issue 14, ADR 0015).

Runners stamp what they write with the exchange's time (candles, fills, equity snapshots); commands and the bot used
to stamp with the wall clock. Against an exchange whose clock is not the wall clock — a drill on ``albra sim serve``
started in the past, or a real server a few seconds off — incident timelines dropped the runner's rows, "loss since
the incident" read 0 and equity curves were empty. So every process that reads the exchange records the offset
(exchange − wall) here, and every process stamps rows with :func:`exchange_now` — the wall clock plus the latest
offset for the account (or of any account). The journal keeps the wall time too (``wall_ms``), for forensics.

Reads are cached for a second per process: the journal asks on every append.
"""

from __future__ import annotations

import time as _time
from typing import Any

from albra.store.db import Store

#: a new offset is written only when it moved by more than this (or the last write is older than REFRESH_MS)
TOLERANCE_MS = 250
REFRESH_MS = 60_000
_CACHE_S = 1.0
_cache: dict[tuple[str, str], tuple[float, int | None]] = {}


def wall_ms() -> int:
    return _time.time_ns() // 1_000_000


def record_offset(store: Store, account: str, exchange_ms: int, wall: int | None = None, conn: Any = None) -> int:
    """Record that the exchange of ``account`` read ``exchange_ms`` at wall time ``wall``; returns the offset.
    Written for the account and as the global latest (''), only when it changed or went stale."""
    w = wall_ms() if wall is None else wall
    off = int(exchange_ms) - w
    prev = _read(store, account)
    row = store.query_one("SELECT measured_ms FROM clock_offsets WHERE account=?", (account,))
    if prev is not None and abs(prev - off) <= TOLERANCE_MS and row is not None and w - row["measured_ms"] < REFRESH_MS:
        return off
    sql = ("INSERT INTO clock_offsets(account, offset_ms, measured_ms) VALUES (?,?,?) ON CONFLICT(account) DO UPDATE"
           " SET offset_ms=excluded.offset_ms, measured_ms=excluded.measured_ms")
    if conn is not None:
        conn.execute(sql, (account, off, w))
        conn.execute(sql, ("", off, w))
    else:
        with store.tx() as c:
            c.execute(sql, (account, off, w))
            c.execute(sql, ("", off, w))
    for k in [k for k in _cache if k[0] == str(store.path)]:
        _cache.pop(k, None)
    return off


def _read(store: Store, account: str) -> int | None:
    key = (str(store.path), account)
    hit = _cache.get(key)
    now = _time.monotonic()
    if hit is not None and now - hit[0] < _CACHE_S:
        return hit[1]
    try:
        r = store.query_one("SELECT offset_ms FROM clock_offsets WHERE account=?", (account,))
    except Exception:  # noqa: BLE001 - a store without the table (never migrated read-only copy): wall time
        r = None
    val = None if r is None else int(r["offset_ms"])
    _cache[key] = (now, val)
    return val


def offset_ms(store: Store, account: str = "") -> int:
    """exchange − wall for ``account`` (its own measurement, else the latest of any account, else 0)."""
    if account:
        own = _read(store, account)
        if own is not None:
            return own
    latest = _read(store, "")
    return 0 if latest is None else latest


def exchange_now(store: Store, account: str = "") -> int:
    """The exchange's time now as best known in this store (wall time when no process ever measured it)."""
    return wall_ms() + offset_ms(store, account)


def to_wall(store: Store, exchange_ms: int, account: str = "") -> int:
    """An exchange time converted back to the wall clock (for comparisons with wall-clock heartbeats)."""
    return exchange_ms - offset_ms(store, account)


class StoreClock:
    """A :class:`albra.timefmt.Clock` reading the store's exchange time (the bot's clock: its flags, journal rows and
    "today" are on the exchange's time like everything else)."""

    def __init__(self, store: Store, account: str = "") -> None:
        self.store = store
        self.account = account

    def now_ms(self) -> int:
        return exchange_now(self.store, self.account)
