"""Resolving an order whose placement outcome is unknown, and reading an account in one go.

``resolve_unknown`` is the only correct reaction to :class:`~albra.exchange.errors.OutcomeUnknown` (ADR 0004):
look the deterministic client id up a few times, spaced out — an order accepted a moment ago can take a short
while to become visible — and never re-send it. A lookup that fails is not "not found": its error propagates
and the intent stays unknown.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from albra.exchange.types import AccountSnapshot, Gateway, OrderResult
from albra.model import Fill, PositionMode

#: Binance's Account Trade List answers at most 7 days from startTime
TRADE_WINDOW_MS = 7 * 86_400_000


async def pause(seconds: float) -> None:
    """Wait between two spaced reads: ``asyncio.sleep`` on an event loop; a plain blocking sleep when the
    coroutine is stepped without one (``albra.engine.syncrun.run_sync``: in-process venues, where nothing else
    runs meanwhile and suspending is not possible)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        time.sleep(seconds)
        return
    await asyncio.sleep(seconds)


async def resolve_unknown(gateway: Gateway, symbol: str, client_id: str, is_algo: bool, *, attempts: int = 3,
                          spacing_s: float = 0.5,
                          sleep: Callable[[float], Awaitable[Any]] = pause) -> OrderResult | None:
    """The order with ``client_id`` if the exchange has it; None only after ``attempts`` spaced lookups each
    positively answered "unknown order" (then the intent may be re-derived with the next generation)."""
    if attempts < 1:
        raise ValueError(f"attempts must be ≥ 1, got {attempts}")
    for i in range(attempts):
        found = await gateway.fetch_order(symbol, client_id, is_algo)
        if found is not None:
            return found
        if i + 1 < attempts:
            await sleep(spacing_s * (i + 1))
    return None


async def trades_since(gateway: Gateway, symbol: str, since: int, now_ms: int, *,
                       limit: int = 1000) -> list[Fill]:
    """Every trade of ``symbol`` from ``since`` to ``now_ms``, paged the way Binance answers: ``userTrades`` gives at
    most 7 days from ``startTime`` (and ``limit`` rows), so a leg older than a week is read window by window —
    one read from its entry would never reach its exit."""
    out: list[Fill] = []
    seen: set[str] = set()
    start = max(0, since)
    while True:
        page = await gateway.fetch_trades(symbol, since=start, limit=limit)
        fresh = [t for t in page if t.trade_id not in seen]
        for t in fresh:
            seen.add(t.trade_id)
        out.extend(fresh)
        if len(page) >= limit and fresh:
            start = max(t.ts for t in page)  # a full page: continue from its last row (same ms re-read, deduped)
            continue
        start += TRADE_WINDOW_MS
        if start > now_ms:
            break
    out.sort(key=lambda t: (t.ts, t.trade_id))
    return out


async def await_fills(gateway: Gateway, symbol: str, since: int, now_ms: Callable[[], int],
                      match: Callable[[Fill], bool], want_qty: Any = None, *, attempts: int = 5,
                      spacing_s: float = 0.1,
                      sleep: Callable[[float], Awaitable[Any]] = pause) -> list[Fill]:
    """The trade rows ``match`` accepts, read until their quantity reaches ``want_qty`` (or, without it, until there
    is one) or ``attempts`` reads spaced 0.1, 0.2, 0.4 … s have been made. Why wait: a fill reaches Binance's trade
    history a little after the order's answer says it filled (REST query delay); one read right after the answer
    would give a leg no fill and no stop. Returns what it found (possibly less than wanted: the caller journals it
    and a later sync applies the rest). A failed read propagates."""
    found: list[Fill] = []
    for i in range(attempts):
        found = [t for t in await trades_since(gateway, symbol, since, now_ms()) if match(t)]
        got = sum((t.qty for t in found), start=type(found[0].qty)(0)) if found else 0
        if found and (want_qty is None or got >= want_qty):
            return found
        if i + 1 < attempts:
            await sleep(spacing_s * (2 ** i))
    return found


async def read_snapshot(gateway: Gateway, symbols: list[str] | None = None) -> AccountSnapshot:
    """Balance, positions, open regular and algo orders and the position mode (for audit/reconcile). Any failed
    read raises; nothing is defaulted."""
    balance = await gateway.fetch_balance()
    positions = await gateway.fetch_positions(symbols)
    mode: PositionMode = await gateway.fetch_position_mode()
    if symbols:
        regular: list[OrderResult] = []
        algo: list[OrderResult] = []
        for s in symbols:
            regular += await gateway.fetch_open_orders(s)
            algo += await gateway.fetch_open_orders(s, algo=True)
    else:
        regular = await gateway.fetch_open_orders()
        algo = await gateway.fetch_open_orders(algo=True)
    return AccountSnapshot(balance=balance, positions=tuple(positions), open_orders=tuple(regular),
                           open_algo_orders=tuple(algo), position_mode=mode, ts=balance.ts)
