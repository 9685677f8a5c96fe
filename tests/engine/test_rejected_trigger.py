"""A stop whose fired child order is rejected is replaced on that event (issue 13, "done when").

Binance's Algo Order Update: a fired conditional order whose child the matching engine refuses ends ``REJECTED``
with no child order — nothing executed, and the leg has no stop any more. The runner hears ``ALGO_UPDATE``
REJECTED on the user data stream and, on that event (not at the next 60 s poll), gives the leg a new stop, or —
when the market is already beyond the stop price, so a new stop would trigger at once (-2021) — closes the leg
reduce-only at market. Either way no position is left without a stop beyond one event. Real runner, real ccxt,
the realistic local server.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from albra.ledger import legs as L
from albra.model import Direction
from albra.sim.oco_probe import live_rig
from albra.store import journal
from albra.strategies.base import Enter

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _state(core) -> tuple[float, float]:
    acct = core.account("probe")
    pos = sum(float(p.amt) for p in acct.positions.values() if p.symbol == "BTCUSDT" and p.side.value == "LONG")
    stops = sum(float(a.qty) for a in acct.algos.values()
                if a.status == "NEW" and a.order_type.value == "STOP_MARKET" and a.position_side.value == "LONG")
    return pos, stops


async def test_a_rejected_trigger_is_replaced_or_closed_on_its_event() -> None:
    async with live_rig() as rig:
        core, ex = rig.core, rig.runner.executor
        price = float(core.last_price("BTCUSDT"))
        [leg_id] = await ex.handle("TEMPLATE", "BTCUSDT", 1_704_153_600_000,
                                   [Enter(Direction.LONG, price * 0.97, None, "in")], price)
        leg = L.require_leg(rig.store, leg_id)
        loop = asyncio.create_task(rig.runner.loop())
        try:
            await asyncio.sleep(core.realism.lookup_ms / 1000 + 0.2)  # the stop is visible by its id by now
            await rig.sim.admin.reject_trigger("probe", "BTCUSDT", "price protection")
            core.set_mark("BTCUSDT", None)
            core.move("BTCUSDT", float(leg.stop_price) * 0.999)  # through the stop: it fires, its child is refused
            t0 = time.monotonic()
            while True:
                pos, stops = _state(core)
                if (pos == 0 and L.require_leg(rig.store, leg_id).state is L.LegState.CLOSED) or (
                        pos > 0 and stops == pos and L.require_leg(rig.store, leg_id).sl_client_id != leg.sl_client_id):
                    break
                assert time.monotonic() - t0 < 5, (pos, stops)  # the 60 s poll would be far later
                await asyncio.sleep(0.01)
            took = time.monotonic() - t0
        finally:
            rig.runner.stop.set()
            await loop
        kinds = [e.kind for e in journal.entries(rig.store)]
        assert "protective_vanished" in kinds, kinds[-20:]
        assert took < 3.0, took
