"""/report through real python-telegram-bot and the local Bot API: the monthly review's summary, by month and
account, and a clear answer for a bad month."""

from __future__ import annotations

import pytest

from albra.review.month import Window
from albra.store import incidents
from tests.notify.test_bot import Harness, harness, settings  # noqa: F401  (the bot harness fixtures)

pytestmark = pytest.mark.anyio


async def test_report_sends_the_month_summary(harness: Harness) -> None:
    w = Window.parse("2026-11")
    t = w.start_ms + 86_400_000
    with harness.store.tx() as c:
        for i, (pnl, fee) in enumerate([("120", "2"), ("-40", "2"), ("30", "1")]):
            c.execute("INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty,"
                      " qty_initial, realized_pnl, fees, opened_ms, closed_ms, updated_ms) VALUES"
                      " (?, 'master', 'BTCUSDT', 'TFPE', 'LONG', 'BOTH', 'closed', '0', '0.01', ?, ?, ?, ?, ?)",
                      (f"L-{i}", pnl, fee, t + i * 1000, t + i * 1000 + 500, t))
    incidents.open_incident(harness.store, "mdd_halt", "MDD on master", account="master", ts=t)
    text = (await harness.ask("/report 2026-11"))[0]
    assert "Review 2026-11" in text and "net +105.00 USDT over 3 trades" in text and "profit factor 3.50" in text
    assert "master: net +105.00 USDT, 3 trades" in text and "incidents: 1" in text
    one = (await harness.ask("/report 2026-11 sub1"))[0]
    assert "sub1: net +0.00 USDT, 0 trades" in one and "master:" not in one
    bad = (await harness.ask("/report 2026-13"))[0]
    assert "use YYYY-MM" in bad
    assert "/report" in (await harness.ask("/help"))[0]
