"""Time conventions: the store holds UTC epoch milliseconds; people see KST.

Every human-facing timestamp goes through :func:`fmt_kst` so the format is identical in logs,
reports, Telegram and the CLI: ``YYYY-MM-DD HH:MM:SS KST``.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol

KST = timezone(timedelta(hours=9), "KST")
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

TIMEFRAME_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
}


def timeframe_ms(tf: str) -> int:
    """Milliseconds in one candle of ``tf`` (a Binance interval such as ``15m``)."""
    try:
        return TIMEFRAME_MS[tf]
    except KeyError:
        raise ValueError(f"unknown timeframe {tf!r}; known: {', '.join(TIMEFRAME_MS)}") from None


class Clock(Protocol):
    """Injectable clock. Engine, scheduling and risk code take one instead of calling time.time(),
    so tests can drive time without freezegun (which hangs asyncio and ccxt's throttler)."""

    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock UTC epoch milliseconds."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FixedClock:
    """A clock that only moves when told to (tests, backtests)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = int(start_ms)

    def now_ms(self) -> int:
        return self._now

    def set(self, ms: int) -> None:
        self._now = int(ms)

    def advance(self, ms: int) -> None:
        self._now += int(ms)


def now_ms() -> int:
    """Wall-clock UTC epoch ms (for code that has no injected clock: CLI commands)."""
    return time.time_ns() // 1_000_000


def fmt_kst(ms: int | None) -> str:
    """``YYYY-MM-DD HH:MM:SS KST`` for a UTC epoch-ms timestamp ('-' for None)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=KST).strftime("%Y-%m-%d %H:%M:%S KST")


def kst_day_start_ms(ms: int) -> int:
    """UTC epoch ms of 00:00 KST on the KST day containing ``ms`` (daily loss resets here): the same integer day
    as :func:`kst_date`."""
    return _kst_day(ms) * _DAY_MS - _KST_MS


def kst_date(ms: int) -> str:
    """``YYYY-MM-DD`` of the KST day containing ``ms``. KST is a fixed UTC+9 (no daylight saving), so the day is
    an integer division; the text of each day is made once (the ledger asks for every fill and every entry)."""
    return _day_text(_kst_day(ms))


def _kst_day(ms: int) -> int:
    """Days since 1970-01-01 of the KST day containing ``ms`` (KST is a fixed UTC+9)."""
    return (int(ms) + _KST_MS) // _DAY_MS


_KST_MS = 9 * 3_600_000
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1)


@functools.lru_cache(maxsize=4096)
def _day_text(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


def parse_time(value: str) -> int:
    """Parse a date or datetime given by a person into UTC epoch ms.

    Accepts epoch ms digits, ``YYYY-MM-DD`` (00:00 UTC) and ISO datetimes; a naive datetime is UTC.
    """
    v = value.strip()
    if v.isdigit():
        return int(v)
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read time {value!r}: use YYYY-MM-DD, an ISO datetime or epoch ms") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


ClockFn = Callable[[], int]
