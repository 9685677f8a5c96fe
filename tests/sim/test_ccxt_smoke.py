"""Smoke test: the unmodified ccxt client does every call albra needs against the local server."""

from __future__ import annotations

import pytest

SYM = "BTC/USDT:USDT"

pytestmark = pytest.mark.anyio


async def test_every_gateway_call_works_through_ccxt(sim, ex):
    ohlcv = await ex.fetch_ohlcv(SYM, "1h", limit=3)
    assert len(ohlcv) == 3 and all(None not in row for row in ohlcv)
    assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0
    assert (await ex.set_leverage(5, SYM))["leverage"] == 5
    await ex.set_margin_mode("isolated", SYM)
    assert (await ex.fetch_position_mode())["hedged"] is False
    entry = await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "e1"})
    assert entry["status"] == "closed" and entry["filled"] == 0.01
    stop = await ex.create_order(SYM, "STOP_MARKET", "sell", 0.01, None,
                                 {"stopPrice": 40000, "reduceOnly": True, "clientOrderId": "sl1",
                                  "workingType": "MARK_PRICE"})
    assert stop["status"] == "open" and stop["triggerPrice"] == 40000.0
    limit = await ex.create_order(SYM, "limit", "buy", 0.01, 40000, {"clientOrderId": "l1"})
    assert limit["status"] == "open"
    assert len(await ex.fetch_open_orders(SYM)) == 1
    assert len(await ex.fetch_open_orders(SYM, params={"trigger": True})) == 1
    await sim.admin.settle()  # a new order is found by its client id only after the lookup delay
    assert (await ex.fetch_order(None, SYM, {"clientOrderId": "sl1", "trigger": True}))["id"] == stop["id"]
    assert (await ex.fetch_order(None, SYM, {"clientOrderId": "l1"}))["id"] == limit["id"]
    pos = await ex.fetch_positions([SYM])
    assert pos[0]["contracts"] == 0.01 and pos[0]["marginMode"] == "isolated"
    await ex.cancel_all_orders(SYM)
    await ex.cancel_all_orders(SYM, params={"trigger": True})
    assert await ex.fetch_open_orders(SYM) == []
    assert await ex.fetch_open_orders(SYM, params={"trigger": True}) == []
    assert len(await ex.fetch_my_trades(SYM)) == 1
