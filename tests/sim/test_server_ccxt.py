"""The local Binance server through the real ccxt client: errors, auth, faults, klines, accounts."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from albra.sim.testing import ccxt_client

pytestmark = pytest.mark.anyio
SYM = "BTC/USDT:USDT"
H = 3_600_000


async def test_klines_show_the_forming_candle_last_and_aggregate(sim, ex):
    start = await sim.admin.clock()
    await sim.admin.advance(20 * 60_000)  # 00:20: the 00:15 15m candle is forming
    rows = await ex.fetch_ohlcv(SYM, "15m", limit=3)
    assert [r[0] for r in rows] == [start - 900_000, start, start + 900_000]
    series = sim.server.replay.series["BTCUSDT"]
    i = series.index_of(start + 900_000)
    o, h, l, c = (float(x[i]) for x in (series.open, series.high, series.low, series.close))
    forming = rows[-1]
    assert forming[1] == o and l <= forming[3] <= forming[4] <= forming[2] <= h
    assert forming[5] == pytest.approx(float(series.volume[i]) / 3, abs=0.001)  # a third of the candle elapsed
    closed = rows[-2]
    j = series.index_of(start)
    assert closed[1:5] == [float(series.open[j]), float(series.high[j]), float(series.low[j]), float(series.close[j])]
    four = await ex.fetch_ohlcv(SYM, "4h", limit=2)
    k = series.index_of(start - 4 * H)
    assert four[0][0] == start - 4 * H and four[0][1] == float(series.open[k])
    assert four[0][2] == float(series.high[k:k + 16].max()) and four[0][4] == float(series.close[k + 15])
    assert four[1][0] == start and four[1][1] == float(series.open[j])


async def test_orders_and_positions_follow_the_clock(sim, ex):
    await ex.set_leverage(10, SYM)
    buy = await ex.create_order(SYM, "market", "buy", 0.1, None, {"clientOrderId": "e-1"})
    price = buy["average"]
    sl = await ex.create_order(SYM, "market", "sell", 0.1, None,
                               {"stopLossPrice": round(price * 0.97, 1), "reduceOnly": True, "clientOrderId": "sl-1"})
    tp = await ex.create_order(SYM, "TAKE_PROFIT_MARKET", "sell", None, None,
                               {"stopPrice": round(price * 1.5, 1), "closePosition": True, "clientOrderId": "tp-1"})
    assert sl["triggerPrice"] and tp["triggerPrice"]
    # the stop works on CONTRACT_PRICE (Binance's default): a forced mark below it does not fire it
    await sim.admin.mark("BTCUSDT", round(price * 0.96, 1))
    await sim.admin.settle()  # orders are found by client id (and fills in trade history) only after a delay
    assert (await ex.fetch_order(None, SYM, {"clientOrderId": "sl-1", "trigger": True}))["status"] == "open"
    await sim.admin.mark("BTCUSDT", None)
    await ex.cancel_order(sl["id"], SYM, {"trigger": True})
    assert (await ex.fetch_order(None, SYM, {"clientOrderId": "sl-1", "trigger": True}))["status"] == "canceled"
    positions = await ex.fetch_positions([SYM])
    assert positions[0]["contracts"] == 0.1 and positions[0]["side"] == "long"
    trades = await ex.fetch_my_trades(SYM)
    assert trades[0]["order"] == buy["id"] and trades[0]["fee"]["cost"] > 0
    income = await ex.fapiPrivateGetIncome({"incomeType": "COMMISSION"})
    assert len(income) == 1 and float(income[0]["income"]) < 0


async def test_position_and_margin_mode_no_change_errors(ex):
    with pytest.raises(ccxt.MarginModeAlreadySet):
        await ex.set_margin_mode("cross", SYM)
    with pytest.raises(ccxt.OperationRejected):
        await ex.set_position_mode(False)
    await ex.set_position_mode(True)
    assert (await ex.fetch_position_mode())["hedged"] is True
    o = await ex.create_order(SYM, "market", "buy", 0.01, None, {"positionSide": "LONG"})
    assert o["status"] == "closed"
    with pytest.raises(ccxt.BadRequest):  # -1106 reduceOnly in hedge mode
        await ex.create_order(SYM, "market", "sell", 0.01, None, {"positionSide": "LONG", "reduceOnly": True})
    closed = await ex.create_order(SYM, "market", "sell", 0.01, None, {"hedged": True, "reduceOnly": True})
    assert closed["status"] == "closed"


async def test_rejections_map_to_the_right_ccxt_errors(sim, ex):
    await ex.set_leverage(1, SYM)
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order(SYM, "market", "buy", 1, None)
    with pytest.raises(ccxt.InvalidOrder):  # -2022
        await ex.create_order(SYM, "market", "sell", 0.01, None, {"reduceOnly": True})
    with pytest.raises(ccxt.InvalidOrder):  # -4164 min notional
        await ex.create_order(SYM, "market", "buy", 0.001, None)
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order(None, SYM, {"clientOrderId": "never"})
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order("123", SYM)
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order(None, SYM, {"clientOrderId": "never", "trigger": True})
    with pytest.raises(ccxt.BadSymbol):
        await ex.fapiPublicGetKlines({"symbol": "DOGEUSDT", "interval": "1h"})
    await ex.create_order(SYM, "limit", "buy", 0.003, 40000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder):  # -4116 duplicate client id of an open order
        await ex.create_order(SYM, "limit", "buy", 0.003, 40000, {"clientOrderId": "dup"})
    counts = (await sim.admin.orders())["counts"]
    assert counts["dup"] == 2  # one accepted, one rejected: both received


async def test_auth_wrong_secret_unknown_key_and_skewed_timestamp(sim, ex):
    bad = ccxt_client(sim.url, sim.accounts["main"][0], "wrong-secret")
    nokey = ccxt_client(sim.url, "nobody", "x")
    try:
        await bad.load_markets()
        with pytest.raises(ccxt.AuthenticationError):
            await bad.fetch_balance()
        await nokey.load_markets()
        with pytest.raises(ccxt.AuthenticationError):
            await nokey.fetch_balance()
    finally:
        await bad.close()
        await nokey.close()
    ex.options["timeDifference"] += 3_600_000
    with pytest.raises(ccxt.InvalidNonce):
        await ex.fetch_balance()
    await ex.load_time_difference()
    assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0


async def test_time_sync_survives_clock_advances(sim, ex):
    await sim.admin.advance(3 * 24 * H)
    assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0
    await sim.admin.forget_time_sync()  # a server-side clock jump the client never saw
    with pytest.raises(ccxt.InvalidNonce):
        await ex.fetch_balance()
    await ex.load_time_difference()
    await ex.fetch_balance()


async def test_sub_accounts_are_separate(sim, ex):
    sub = ccxt_client(sim.url, *sim.accounts["sub1"])
    try:
        await sub.load_markets()
        await ex.create_order(SYM, "market", "buy", 0.01, None)
        assert await sub.fetch_positions([SYM]) == []
        await sim.admin.transfer("sub1", "250")
        assert (await sub.fetch_balance())["USDT"]["total"] == 10250.0
        rows = await sub.fapiPrivateGetIncome({"incomeType": "TRANSFER"})
        assert [float(r["income"]) for r in rows] == [10000.0, 250.0]
    finally:
        await sub.close()


async def test_fault_status_body_and_html(sim, ex):
    await sim.admin.fault("GET", "/fapi/v3/positionRisk", "status", status=503,
                          body='{"code":-1001,"msg":"Internal error"}')
    with pytest.raises(ccxt.OperationFailed):
        await ex.fetch_positions([SYM])
    await sim.admin.fault("GET", "/fapi/v1/klines", "status", status=502, body="<html>bad gateway</html>",
                          content_type="text/html")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await ex.fetch_ohlcv(SYM, "1h", limit=2)
    assert len(await ex.fetch_ohlcv(SYM, "1h", limit=2)) == 2  # count=1: gone


async def test_fault_latency_and_drop(sim, ex):
    await sim.admin.fault("GET", "/fapi/v3/account", "latency", delay_ms=600)
    ex.timeout = 200
    with pytest.raises(ccxt.RequestTimeout):
        await ex.fetch_balance()
    ex.timeout = 10_000
    # aiohttp silently retries an idempotent request once when a kept-alive connection drops: drop twice
    await sim.admin.fault("GET", "/fapi/v3/account", "drop", count=2)
    with pytest.raises(ccxt.NetworkError):
        await ex.fetch_balance()
    assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0


async def test_commit_but_lose_leaves_exactly_one_order(sim, ex):
    await sim.admin.fault("POST", "/fapi/v1/order", "commit_lose")
    with pytest.raises(ccxt.NetworkError):
        await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "lost-1"})
    with pytest.raises(ccxt.OrderNotFound):  # looked up at once: not visible yet, though it was executed
        await ex.fetch_order(None, SYM, {"clientOrderId": "lost-1"})
    await sim.admin.settle()
    found = await ex.fetch_order(None, SYM, {"clientOrderId": "lost-1"})
    assert found["status"] == "closed" and found["filled"] == 0.01
    await sim.admin.fault("POST", "/fapi/v1/algoOrder", "commit_lose", lose="timeout", delay_ms=600)
    ex.timeout = 200
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order(SYM, "market", "sell", 0.01, None,
                              {"stopLossPrice": 30000, "reduceOnly": True, "clientOrderId": "lost-sl"})
    ex.timeout = 10_000
    await sim.admin.settle()
    assert (await ex.fetch_order(None, SYM, {"clientOrderId": "lost-sl", "trigger": True}))["status"] == "open"
    report = await sim.admin.orders(account="main")
    assert report["counts"] == {"lost-1": 1, "lost-sl": 1}


async def test_weight_header_429_and_418(sim, ex):
    await ex.fetch_time()
    assert int(ex.last_response_headers["X-MBX-USED-WEIGHT-1M"]) > 0
    await sim.admin.weights(limit=12, clock="sim", reset=True, ban_after=1)
    await ex.fetch_balance()  # 5
    await ex.fetch_balance()  # 10
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fetch_balance()  # 15 > 12: 429
    assert ex.last_http_response and "-1003" in ex.last_http_response
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fetch_balance()  # second strike: 418
    reqs = await sim.admin.requests()
    assert [r["status"] for r in reqs[-2:]] == [429, 418]
    await sim.admin.weights(limit=2400, reset=True)
    await ex.fetch_balance()


async def test_unknown_route_is_404_and_recorded(sim, ex):
    with pytest.raises(ccxt.ExchangeError):
        await ex.sapiGetCapitalConfigGetall()
    unknown = await sim.admin.requests(unknown=True)
    assert unknown[0]["path"] == "/sapi/v1/capital/config/getall" and unknown[0]["status"] == 404
    sim.server.unknown.clear()  # the fixture asserts none are left


async def test_mark_price_stop_fires_on_forced_mark_and_position_closes(sim, ex):
    buy = await ex.create_order(SYM, "market", "buy", 0.01, None)
    trigger = round(buy["average"] - 500, 1)
    await ex.create_order(SYM, "STOP_MARKET", "sell", None, None,
                          {"stopPrice": trigger, "closePosition": True, "workingType": "MARK_PRICE",
                           "clientOrderId": "sl-mark"})
    await sim.admin.mark("BTCUSDT", trigger - 100)
    await sim.admin.settle()
    done = await ex.fetch_order(None, SYM, {"clientOrderId": "sl-mark", "trigger": True})
    assert done["status"] == "closed" and done["info"]["algoStatus"] == "FINISHED"
    assert await ex.fetch_positions([SYM]) == []
    assert (await ex.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"}))["markPrice"] == str(trigger - 100)
