"""The runner on Binance's user data stream (issue 13): a real runner (live mode, real ccxt) against the realistic
local server. The entry's stop goes out on the entry's answer (the naked window is one round trip), and when a
take-profit fires its fill reaches the ledger and its sibling stop is cancelled on the stream's events — not at the
next 60 s poll. The long version with +100 ms per request and percentiles is ``bench/bench_order_events.py``."""

from __future__ import annotations

import pytest

from albra.sim.oco_probe import run_probe

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_take_profit_fill_cancels_its_stop_on_the_event():
    p = await run_probe(2, stream=True, timeout_s=20)
    assert len(p.sibling_cancel_ms) == 2 and len(p.fill_to_ledger_ms) == 2
    assert max(p.naked_ms) < 1000, p.naked_ms             # no wait for trade history before the stop
    assert max(p.sibling_cancel_ms) < 5000, p.sibling_cancel_ms  # the poll would take up to 60 s
    assert max(p.fill_to_ledger_ms) < 5000, p.fill_to_ledger_ms
