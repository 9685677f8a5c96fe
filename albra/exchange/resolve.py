"""Resolving an order whose placement outcome is unknown, and reading an account in one go.

``resolve_unknown`` is the only correct reaction to :class:`~albra.exchange.errors.OutcomeUnknown` (ADR 0004):
look the deterministic client id up a few times, spaced out — an order accepted a moment ago can take a short
while to become visible — and never re-send it. A lookup that fails is not "not found": its error propagates
and the intent stays unknown.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from albra.exchange.types import AccountSnapshot, Gateway, OrderResult
from albra.model import PositionMode


async def resolve_unknown(gateway: Gateway, symbol: str, client_id: str, is_algo: bool, *, attempts: int = 3,
                          spacing_s: float = 0.5,
                          sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> OrderResult | None:
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
