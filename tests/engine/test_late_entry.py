"""An entry given up as never placed that Binance executes after all (issue 13, failure 2).

Binance documents -1007 ("Timeout waiting for response from backend server. Send status unknown; execution status
unknown") and says such an order may still execute. The runner looks the client id up, spaced over ~1.5 s; an order
that executes later than that is given up ("not found") and its leg cancelled. Before the order manager, the
position then sat on the exchange with no stop until reconciliation adopted it, 300 s later, as unattributed and
still unprotected. Now the late fill reopens the leg and its stop is placed at once — on the user data stream's
event, or on the next REST sync when the stream is down. Real runner, real ccxt, the realistic local server.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.model import Direction
from albra.sim.oco_probe import live_rig
from albra.store import journal
from albra.strategies.base import Enter

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LATE_MS = 3000  # the entry executes 3 s after its -1007 answer: after the spaced lookups gave it up


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _given_up_entry(rig) -> tuple[str, float]:
    runner, core = rig.runner, rig.core
    await rig.sim.admin.fault("POST", "/fapi/v1/order", "backend_timeout", execute_after_ms=LATE_MS, count=1)
    price = float(core.last_price("BTCUSDT"))
    t_sent = time.monotonic()
    await runner.executor.handle("TEMPLATE", "BTCUSDT", 1_704_153_600_000,
                                 [Enter(Direction.LONG, price * 0.97, price * 1.03, "late")], price)
    [leg] = L.legs_of(rig.store, "probe", "TEMPLATE")
    assert leg.state is L.LegState.CANCELLED and leg.close_reason == L.GIVEN_UP_REASON
    [entry] = [i for i in I.intents_of_leg(rig.store, leg.leg_id) if i.purpose == "entry"]
    assert entry.state == "not_found"
    return leg.leg_id, t_sent


def _exchange_stop_qty(core, leg_id: str, store) -> tuple[float, float]:
    """(position qty on the LONG side, qty of live stops on it) as the exchange holds them."""
    acct = core.account("probe")
    pos = sum(float(p.amt) for p in acct.positions.values() if p.symbol == "BTCUSDT" and p.side.value == "LONG")
    stops = sum(float(a.qty) for a in acct.algos.values()
                if a.status == "NEW" and a.order_type.value == "STOP_MARKET" and a.position_side.value == "LONG")
    return pos, stops


async def _until(pred, timeout: float) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "stream_down"])
async def test_an_entry_that_executes_after_it_was_given_up_is_reopened_and_protected(stream: bool) -> None:
    async with live_rig(stream=stream) as rig:
        leg_id, t_sent = await _given_up_entry(rig)
        loop = asyncio.create_task(rig.runner.loop())
        try:
            # the exchange executes the order LATE_MS after it was sent; watch the naked window from then on
            await _until(lambda: _exchange_stop_qty(rig.core, leg_id, rig.store)[0] > 0,
                         timeout=LATE_MS / 1000 + 10)
            t_exec = time.monotonic()
            naked = await _until(lambda: (lambda p, s: p > 0 and s == p)(*_exchange_stop_qty(rig.core, leg_id,
                                                                                              rig.store)),
                                 timeout=30)
        finally:
            rig.runner.stop.set()
            await loop
        leg = L.require_leg(rig.store, leg_id)
        assert leg.state is L.LegState.OPEN and leg.qty > 0 and leg.sl_client_id is not None
        [entry] = [i for i in I.intents_of_leg(rig.store, leg_id) if i.purpose == "entry"]
        assert entry.state == "filled"
        pos, stops = _exchange_stop_qty(rig.core, leg_id, rig.store)
        assert pos == float(leg.qty) and stops == pos  # protected, never over-protected
        assert not L.legs_of(rig.store, "probe", L.UNATTRIBUTED)  # the leg took it: no adoption
        kinds = {e.kind for e in journal.entries(rig.store)}
        assert "late_entry_recovered" in kinds
        # the bound: on the stream's event well under a second; without the stream the 5 s REST sync
        assert naked < (2.0 if stream else 8.0), (naked, t_exec - t_sent)


async def test_a_stream_down_too_long_is_a_health_finding(monkeypatch) -> None:
    """The user data stream's state is a health check: down past the threshold, the runner's heartbeat lists it
    (status, dashboard and bot show the heartbeat's health); the watchdog is still fed (REST keeps the account
    correct, only slower)."""
    import json

    from albra.engine import runner as runner_mod

    monkeypatch.setattr(runner_mod, "STREAM_DOWN_WARN_S", 0.0)
    async with live_rig(stream=False) as rig:
        rig.runner._heartbeat(force=True)
        [row] = rig.store.query("SELECT detail FROM runners WHERE name = ?", (rig.runner.name,))
        detail = json.loads(row["detail"])
        assert detail["stream"]["state"] == "down"
        assert any("user data stream down" in p for p in detail["health"]), detail
