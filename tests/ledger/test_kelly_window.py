"""kelly.trade_returns reads newest first and stops at ``limit`` usable legs (risk calls it before every entry):
it must give exactly what parsing every closed leg and slicing the newest ``limit`` gives, also when unusable legs
(no entry price, nothing entered) sit among the newest, when ties in close time are broken by leg id, and when
there are fewer legs than asked for."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from albra.ledger import kelly
from albra.ledger import legs as L
from albra.store import Store


def _reference(store: Store, account: str, strategy: str, limit: int | None) -> list[Decimal]:
    rows = store.query("SELECT * FROM legs WHERE account=? AND strategy=? AND state='closed' AND closed_ms IS NOT NULL"
                       " ORDER BY closed_ms, leg_id", (account, strategy))
    out = []
    for r in rows:
        leg = L.Leg.from_row(r)
        if leg.entry_price is None or leg.entry_price <= 0 or leg.qty_initial <= 0:
            continue
        out.append(leg.net_pnl / (leg.entry_price * leg.qty_initial))
    return out[-limit:] if limit else out


def _fill_store(store: Store, n: int, seed: int, unusable_share: float) -> None:
    rnd = random.Random(seed)
    with store.tx() as c:
        for i in range(n):
            unusable = rnd.random() < unusable_share
            entry = None if unusable and rnd.random() < 0.5 else f"{rnd.uniform(20000, 90000):.1f}"
            qty = "0" if unusable and entry is not None else f"{rnd.choice([1, 5, 12, 230]) / 1000:.3f}"
            closed = 1_700_000_000_000 + (i // 3) * 900_000  # three legs share each close time
            c.execute(
                "INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty, qty_initial,"
                " entry_price, realized_pnl, fees, funding, opened_ms, closed_ms, updated_ms)"
                " VALUES (?, 'main', 'BTCUSDT', ?, 'LONG', 'LONG', 'closed', '0', ?, ?, ?, ?, ?, ?, ?, ?)",
                (f"leg-{rnd.randrange(10**9):09d}-{i}", "TFPE" if i % 7 else "OTHER", qty, entry,
                 f"{rnd.uniform(-300, 300):.8f}", f"{rnd.uniform(0, 3):.8f}", f"{rnd.uniform(-1, 1):.8f}",
                 closed - 3_600_000, closed, closed),
            )


@pytest.mark.parametrize("n,unusable_share", [(0, 0.0), (15, 0.0), (400, 0.05), (400, 0.7)])
def test_newest_first_read_equals_full_parse(store: Store, n: int, unusable_share: float) -> None:
    _fill_store(store, n, seed=n + int(unusable_share * 100), unusable_share=unusable_share)
    for limit in (None, 0, 1, 20, 100, 1000, -3):
        for strategy in ("TFPE", "OTHER", "NONE"):
            got = kelly.trade_returns(store, "main", strategy, limit=limit)
            want = _reference(store, "main", strategy, limit)
            assert got == want, (limit, strategy)
            assert [str(x) for x in got] == [str(x) for x in want]
