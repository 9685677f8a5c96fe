"""Funding payments in the live and paper runner: FUNDING_FEE income rows → the legs that held the position.

Backtests allocate funding once at the end of the replay; a runner cannot wait for an end, so its periodic sync
(and start-up) calls :func:`sync_funding`: read the exchange's FUNDING_FEE rows since a cursor persisted in
``risk_state`` (key ``funding_cursor``, so a restart neither loses nor double-counts a payment) and hand them to
:func:`albra.ledger.fills.allocate_funding`, which records each row once (by tran id) and spreads it over the legs
open at its time. The cursor is the newest row's time and the read is inclusive of it: a row at the cursor
time that arrives late is still read, and one read twice is ignored by its tran id. With no cursor yet the read
starts at the oldest live leg's opening (nothing earlier can belong to a leg the runner holds).

A failed read raises (unknown is not empty): the cursor stays and the next sync reads the same window again.
"""

from __future__ import annotations

from typing import Any

from albra.ledger import legs as L
from albra.ledger.fills import FundingAllocation, allocate_funding
from albra.store import risk_state
from albra.store.db import Store

FUNDING_CURSOR = "funding_cursor"  # {"ts": ms of the newest FUNDING_FEE row read}
PAGE = 1000


async def sync_funding(store: Store, gateway: Any, account: str, *, now_ms: int) -> list[FundingAllocation]:
    """Allocate every FUNDING_FEE row newer than the cursor; returns the allocations of rows seen for the first
    time (an empty list when there were none)."""
    cur = risk_state.get(store, account, FUNDING_CURSOR)
    if cur is not None:
        since = int(cur["ts"])
    else:
        live = L.live_legs(store, account)
        since = min((g.opened_ms for g in live), default=now_ms)
    out: list[FundingAllocation] = []
    newest = since
    while True:
        rows = await gateway.fetch_income(since=since, income_type="FUNDING_FEE", limit=PAGE)
        rows = [r for r in rows if r.income_type == "FUNDING_FEE"]
        if rows:
            out.extend(allocate_funding(store, account, rows, now_ms=now_ms))
            newest = max(newest, max(r.ts for r in rows))
        if len(rows) < PAGE or newest == since:
            break
        since = newest  # a full page: read on from its newest row (inclusive; repeats are ignored by tran id)
    if cur is None or newest != int(cur["ts"]):
        risk_state.put(store, account, FUNDING_CURSOR, {"ts": newest}, ts=now_ms)
    return out
