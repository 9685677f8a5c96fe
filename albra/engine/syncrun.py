"""Run a coroutine that never suspends, without an event loop.

The executor is ``async`` because live gateways do real I/O. Backtests drive it against an in-process venue
whose coroutines complete without awaiting anything, so stepping the coroutine once gives its result. This
keeps ONE executor for live, paper and backtests at the cost of a coroutine object per call, instead of an
event-loop round trip per candle.
"""

from __future__ import annotations

from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class WouldSuspend(RuntimeError):
    """The coroutine awaited real I/O: it cannot be driven synchronously (use an event loop)."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """The result of ``coro``; raises :class:`WouldSuspend` if it tried to suspend."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise WouldSuspend("coroutine suspended: its gateway does real I/O; run it on an event loop")
