"""The local server's Binance behaviours that an instantly consistent exchange hides, through the real ccxt client:
-1007 with every execution outcome, eventual visibility, history windows, open-order and order-rate limits,
-4161, v3 position rows, and the switches (``--ideal``, ``/_sim/realism``)."""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt_async
import pytest

from albra.sim.realism import DAY_MS, Realism

pytestmark = pytest.mark.anyio
SYM = "BTC/USDT:USDT"  # the `sim` (realistic server) and `ex` (real ccxt client) fixtures: tests/sim/conftest.py


async def count(sim, cid: str) -> int:
    return (await sim.admin.orders(account="main"))["counts"].get(cid, 0)


@pytest.mark.parametrize("execute,placed", [(True, 1), (False, 0)])
async def test_backend_timeout_minus_1007_executed_or_not(sim, ex, execute, placed):
    await sim.admin.fault("POST", "/fapi/v1/order", "backend_timeout", execute=execute)
    with pytest.raises(ccxt_async.RequestTimeout, match="-1007"):
        await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": f"bt-{execute}"})
    await sim.admin.settle()
    assert await count(sim, f"bt-{execute}") == placed
    positions = await ex.fetch_positions([SYM])
    assert (positions[0]["contracts"] if positions else 0) == (0.01 if placed else 0)


async def test_backend_timeout_order_turns_up_after_the_sender_gave_up(sim, ex):
    """Binance's documented -1007 case: the order is not there when looked up, then executes after all."""
    await sim.admin.fault("POST", "/fapi/v1/order", "backend_timeout", execute_after_ms=600)
    with pytest.raises(ccxt_async.RequestTimeout):
        await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "late-1"})
    await asyncio.sleep(0.35)
    with pytest.raises(ccxt_async.OrderNotFound):
        await ex.fetch_order(None, SYM, {"clientOrderId": "late-1"})
    assert await ex.fetch_positions([SYM]) == []
    await asyncio.sleep(0.6 - 0.35 + Realism().lookup_ms / 1000 + 0.15)  # executed at 0.6 s, found after the lookup delay
    found = await ex.fetch_order(None, SYM, {"clientOrderId": "late-1"})
    assert found["status"] == "closed" and found["filled"] == 0.01
    assert (await ex.fetch_positions([SYM]))[0]["contracts"] == 0.01


async def test_new_orders_and_fills_become_visible_late(sim, ex):
    await sim.admin.realism(trade_ms=600, lookup_ms=1000)  # wide windows: a loaded CI machine stays inside them
    r = Realism(trade_ms=600, lookup_ms=1000)
    order = await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "vis-1"})
    assert order["filled"] == 0.01  # the answer itself is complete
    with pytest.raises(ccxt_async.OrderNotFound):
        await ex.fetch_order(None, SYM, {"clientOrderId": "vis-1"})
    assert await ex.fetch_my_trades(SYM) == []
    await asyncio.sleep(r.trade_ms / 1000 + 0.05)
    assert len(await ex.fetch_my_trades(SYM)) == 1
    await asyncio.sleep(r.lookup_ms / 1000)
    assert (await ex.fetch_order(None, SYM, {"clientOrderId": "vis-1"}))["status"] == "closed"


async def test_user_trades_answer_seven_days_at_most(sim, ex):
    t0 = await sim.admin.clock()
    await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "old-1"})
    await sim.admin.advance(10 * DAY_MS)
    await ex.create_order(SYM, "market", "sell", 0.01, None, {"clientOrderId": "new-1", "reduceOnly": True})
    await sim.admin.settle()
    recent = await ex.fetch_my_trades(SYM)  # no startTime: the last 7 days only
    assert [t["side"] for t in recent] == ["sell"]
    since_entry = await ex.fetch_my_trades(SYM, since=t0 - 60_000)  # 7 days from startTime: the exit is beyond
    assert [t["side"] for t in since_entry] == ["buy"]
    with pytest.raises(ccxt_async.BadRequest, match="-1127"):
        await ex.fetch_my_trades(SYM, since=t0 - 60_000, params={"endTime": t0 + 10 * DAY_MS})
    income = await ex.fapiPrivateGetIncome({"incomeType": "COMMISSION"})  # no startTime: the last 7 days
    assert len(income) == 1


async def test_algo_order_limit_leverage_reduction_and_v3_rows(sim, ex):
    sim.server.ex.markets  # the limit comes from the market's MAX_NUM_ALGO_ORDERS filter
    spec = sim.server.ex.spec("BTCUSDT")
    limit = getattr(spec, "max_num_algo_orders", 100)
    await ex.set_margin_mode("isolated", SYM)
    await ex.set_leverage(10, SYM)
    await ex.create_order(SYM, "market", "buy", 0.01, None)
    for i in range(limit):
        await ex.create_order(SYM, "STOP_MARKET", "sell", 0.001, None,
                              {"stopPrice": 30000 + i, "reduceOnly": True, "clientOrderId": f"lim-{i}"})
    with pytest.raises(ccxt_async.ExchangeError, match="-4045"):
        await ex.create_order(SYM, "STOP_MARKET", "sell", 0.001, None,
                              {"stopPrice": 29000, "reduceOnly": True, "clientOrderId": "lim-over"})
    with pytest.raises(ccxt_async.ExchangeError, match="-4161"):
        await ex.set_leverage(5, SYM)
    assert (await ex.set_leverage(20, SYM))["leverage"] == 20  # raising is allowed
    rows = await ex.fapiPrivateV3GetPositionRisk({"symbol": "BTCUSDT"})
    assert rows and "leverage" not in rows[0] and "marginType" not in rows[0]
    v2 = await ex.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})
    assert v2[0]["leverage"] == "20"


async def test_order_count_headers_and_the_per_minute_limit(sim, ex):
    await ex.create_order(SYM, "limit", "buy", 0.01, 30000, {"clientOrderId": "cnt-1"})
    h = {k.upper(): v for k, v in ex.last_response_headers.items()}
    assert h["X-MBX-ORDER-COUNT-10S"] == "1" and h["X-MBX-ORDER-COUNT-1M"] == "1"
    sim.server.orders_meter.per_1m = 2
    await ex.create_order(SYM, "limit", "buy", 0.01, 30001, {"clientOrderId": "cnt-2"})
    with pytest.raises(ccxt_async.DDoSProtection, match="-1015"):
        await ex.create_order(SYM, "limit", "buy", 0.01, 30002, {"clientOrderId": "cnt-3"})


async def test_ideal_switch_makes_the_server_instant(sim, ex):
    assert (await sim.admin.realism())["lookup_ms"] == Realism().lookup_ms
    await sim.admin.realism(ideal=True)
    await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "ideal-1"})
    assert (await ex.fetch_order(None, SYM, {"clientOrderId": "ideal-1"}))["status"] == "closed"
    assert len(await ex.fetch_my_trades(SYM)) == 1
    with pytest.raises(RuntimeError, match="unknown realism fields"):
        await sim.admin.realism(lookup=5)
