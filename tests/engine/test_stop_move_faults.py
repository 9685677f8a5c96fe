"""A shared-side stop move whose new stop placement is lost (issue 9 finding 4), against the local Binance server
with its fault injection, through the real ccxt client.

Shared side → cancel old, then place new. When the new placement's answer is lost the stop is looked up by client
id first (a lost *answer* means it may be on the book: then it is simply linked); only when the exchange positively
does not know it is it placed once more, with the next generation; only when that is lost too is the leg closed at
market (``unprotected``). No client id ever reaches the exchange twice.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from albra.config import RiskLimits
from albra.engine.executor import Executor, StrategySlot
from albra.engine.risk_limits import risk_limits
from albra.exchange.ccxt_gateway import CcxtGateway
from albra.exchange.client import make_ccxt_client
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.model import Direction, PositionMode
from albra.sim.testing import run_sim_server
from albra.store import journal
from albra.timefmt import parse_time
from albra.strategies.base import Enter

pytestmark = pytest.mark.anyio

DATA = {"BTCUSDT": str(Path(__file__).resolve().parents[1] / "data" / "exchange" / "BTCUSDT-15m-2024-01-01..03.csv")}
START = "2024-01-02"
C0 = parse_time(START) - 900_000


async def _setup(store, sim):
    gw = CcxtGateway("main", make_ccxt_client("local", *sim.accounts["main"], sim.url, test_mode=True))
    await gw.set_position_mode(PositionMode.HEDGE)
    await gw.setup_symbol("BTCUSDT", 10, "isolated")
    filters = await gw.load_markets()
    lim = risk_limits(RiskLimits())
    e = Executor(store, gw, "main", PositionMode.HEDGE, filters,
                 [StrategySlot("TFPE", 10.0, 10), StrategySlot("ZLMACD_ICHIMOKU", 10.0, 10)], lambda _s: lim,
                 lambda: parse_time(START), alerts=False)
    price = float((await gw.fetch_candles("BTCUSDT", "15m", limit=2))[-1].close)
    [a] = await e.handle("TFPE", "BTCUSDT", C0, [Enter(Direction.SHORT, price * 1.03, None, "a")], price)
    [b] = await e.handle("ZLMACD_ICHIMOKU", "BTCUSDT", C0, [Enter(Direction.SHORT, price * 1.04, None, "b")], price)
    return gw, e, a, b, price


async def _sent_twice(sim) -> list[str]:
    counts: Counter = Counter()
    for r in await sim.admin.requests():
        if r["method"] == "POST" and r["path"] in ("/fapi/v1/order", "/fapi/v1/algoOrder"):
            q = dict(parse_qsl(r.get("query") or "", keep_blank_values=True))
            counts[q.get("newClientOrderId") or q.get("clientAlgoId")] += 1
    return [cid for cid, n in counts.items() if n > 1]


def _open_stops(store, leg_id):
    return [i for i in I.intents_of_leg(store, leg_id, "stop_loss") if i.state == "open"]


@pytest.mark.parametrize("fault,placements_lost,expect", [
    ({"action": "drop"}, 1, "retried"),                          # nothing placed: looked up, re-placed once
    ({"action": "status", "status": 503, "body": '{"code":-1001,"msg":"Internal error"}'}, 1, "retried"),
    ({"action": "commit_lose", "lose": "drop"}, 1, "found"),     # placed, answer lost: found by id, no retry
    ({"action": "drop"}, 2, "closed"),                            # the re-placement lost too: close the leg
])
async def test_lost_stop_placement_in_a_shared_side_move(store, fault, placements_lost, expect):
    async with run_sim_server(start=START, speed=0, data=DATA, hedge={"main"}) as sim:
        gw, e, a, b, price = await _setup(store, sim)
        try:
            before_a, before_b = L.require_leg(store, a), L.require_leg(store, b)
            await sim.admin.fault("POST", "/fapi/v1/algoOrder", count=placements_lost, probability=1.0, **fault)
            await e.move_stop(a, price * 1.02, "trail")
            await sim.admin.clear_faults()
            leg, other = L.require_leg(store, a), L.require_leg(store, b)
            algos = {o.client_id: o for o in await gw.fetch_open_orders("BTCUSDT", algo=True)}
            assert other.sl_client_id == before_b.sl_client_id and before_b.sl_client_id in algos
            assert before_a.sl_client_id not in algos
            retried = journal.entries(store, kinds=("stop_replace_retried",))
            assert journal.entries(store, kinds=("order_outcome_unknown",))  # the lost answer is in the journal
            assert journal.entries(store, kinds=("order_resolved",))
            if expect == "closed":
                assert len(retried) == 1
                assert leg.state is L.LegState.CLOSED
                assert journal.entries(store, kinds=("leg_force_closed",))
                pos = {p.position_side.value: p.qty for p in await gw.fetch_positions(["BTCUSDT"])}
                assert pos["SHORT"] == -other.qty  # only this leg's share was closed
            else:
                assert len(retried) == (1 if expect == "retried" else 0)
                assert leg.state is L.LegState.OPEN and not journal.entries(store, kinds=("leg_force_closed",))
                [live] = _open_stops(store, a)
                assert leg.sl_client_id == live.client_id and live.client_id in algos
                assert algos[live.client_id].qty == leg.qty and leg.stop_price == algos[live.client_id].trigger_price
                assert leg.stop_price < before_a.stop_price  # the short's stop moved down (tighter)
            assert not I.unresolved(store, "main")
            assert await _sent_twice(sim) == []
        finally:
            await gw.close()
