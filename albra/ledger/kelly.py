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
    """Returns of the strategy's closed legs, oldest first (the newest ``limit`` if given).

    Risk asks for this before every entry, so it reads newest first and stops once it has ``limit`` usable legs
    (legs without a positive entry price or entered quantity are skipped, as before) and parses only the five
    columns a return needs: a long backtest would otherwise re-read its whole trade history at every entry. The
    numbers are computed exactly as :attr:`Leg.net_pnl` / (entry price × entered qty) from the stored text."""
    if strategy == L.UNATTRIBUTED:
        return []
    if not limit:
        return _returns(store, account, strategy, None)
    if limit < 0:  # kept as it always behaved: a slice from the oldest end
        return _returns(store, account, strategy, None)[-limit:]
    return _returns(store, account, strategy, limit)


def _returns(store: Store, account: str, strategy: str, limit: int | None) -> list[Decimal]:
    """Newest first (index ``legs_closed_time``, no sort), one query each time: the newest ``limit + 16`` rows
    usually hold ``limit`` usable legs; when they do not (legs without a price), one full read answers instead."""
    sql = ("SELECT realized_pnl, fees, funding, entry_price, qty_initial FROM legs WHERE account=? AND strategy=?"
           " AND state='closed' AND closed_ms IS NOT NULL ORDER BY closed_ms DESC, leg_id DESC")
    if limit:
        page = limit + 16
        rows = store.query_values(sql + " LIMIT ?", (account, strategy, page))
        out = _usable(rows, limit)
        if len(out) == limit or len(rows) < page:
            out.reverse()
            return out
    out = _usable(store.query_values(sql, (account, strategy)), limit)
    out.reverse()
    return out


#: stored column values → that leg's return (None: unusable). Keyed by the values themselves, so a leg whose
#: PnL, fees or funding change later simply has another key: never stale. Bounded: cleared when it grows large.
_RETURNS: dict[tuple, Decimal | None] = {}
_RETURNS_MAX = 200_000


def _return_of(row: tuple) -> Decimal | None:
    realized, fees, funding, entry_s, qty_s = row
    entry = L._dec(entry_s)
    qty = L._dec(qty_s)
    if entry is None or entry <= 0 or qty <= 0:
        return None
    return (L._dec(realized) - L._dec(fees) + L._dec(funding)) / (entry * qty)


def _usable(rows: list[tuple], limit: int | None) -> list[Decimal]:
    out: list[Decimal] = []
    cache = _RETURNS
    for row in rows:
        try:
            r = cache[row]
        except KeyError:
            if len(cache) >= _RETURNS_MAX:
                cache.clear()
            r = cache[row] = _return_of(row)
        except TypeError:  # an unhashable value would be a foreign row: compute without caching
            r = _return_of(row)
        if r is None:
            continue
        out.append(r)
        if limit and len(out) == limit:
            break
    return out
