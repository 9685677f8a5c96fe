"""Per-strategy realised PnL per KST day, kept in ``risk_state`` so the daily loss limit survives restarts.

The ledger adds to it in the same transaction as the fill (or funding) that realised the money; risk reads it.
Stored under key :data:`DAILY_REALIZED` at strategy level as ``{"YYYY-MM-DD": "<decimal>", ...}`` (the KST day
of the execution), pruned to the last :data:`KEEP_DAYS` days. The amount is net: price PnL − fees + funding.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from albra.model import D
from albra.store import risk_state
from albra.store.db import Store
from albra.timefmt import kst_date

DAILY_REALIZED = "daily_realized"
KEEP_DAYS = 7


def add(conn: sqlite3.Connection, account: str, strategy: str, ts_ms: int, amount: Decimal, now_ms: int) -> None:
    """Add ``amount`` to the strategy's realised PnL of the KST day containing ``ts_ms`` (inside a tx)."""
    if amount == 0:
        return
    days: dict[str, str] = risk_state.value(conn, account, DAILY_REALIZED, strategy) or {}
    day = kst_date(ts_ms)
    days[day] = format(D(days.get(day, "0")) + amount, "f")
    keep = sorted(days)[-KEEP_DAYS:]
    risk_state.put(None, account, DAILY_REALIZED, {d: days[d] for d in keep}, strategy=strategy, ts=now_ms,  # type: ignore[arg-type]
                   conn=conn)


def realized_on(store: Store, account: str, strategy: str, kst_day: str) -> Decimal:
    """Net realised PnL of ``strategy`` on the KST day ``YYYY-MM-DD`` (0 when nothing was realised)."""
    days = risk_state.get(store, account, DAILY_REALIZED, strategy=strategy, default={}) or {}
    return D(days.get(kst_day, "0"))
