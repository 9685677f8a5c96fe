"""Kelly inputs: the persisted closed legs of one (account, strategy) as trade returns.

A trade's return is its net PnL (price PnL − fees + funding) over its entry notional (entry price × entered
qty), so it does not depend on the leverage used. Legs are read from the store, so the history survives restarts
(invariant 5). UNATTRIBUTED legs belong to no strategy and never feed a Kelly estimate.
"""

from __future__ import annotations

from decimal import Decimal

from albra.ledger import legs as L
from albra.store.db import Store


def trade_returns(store: Store, account: str, strategy: str, limit: int | None = None) -> list[Decimal]:
    """Returns of the strategy's closed legs, oldest first (the newest ``limit`` if given)."""
    if strategy == L.UNATTRIBUTED:
        return []
    rows = store.query("SELECT * FROM legs WHERE account=? AND strategy=? AND state='closed' AND closed_ms IS NOT NULL"
                       " ORDER BY closed_ms, leg_id", (account, strategy))
    out: list[Decimal] = []
    for r in rows:
        leg = L.Leg.from_row(r)
        if leg.entry_price is None or leg.entry_price <= 0 or leg.qty_initial <= 0:
            continue
        out.append(leg.net_pnl / (leg.entry_price * leg.qty_initial))
    return out[-limit:] if limit else out
