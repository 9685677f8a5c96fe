"""Every gateway call through the real ccxt client against the local Binance server (in-process)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.exchange import errors as E
from albra.exchange.client_ids import make_client_id
from albra.exchange.resolve import read_snapshot
from albra.exchange.types import OrderRequest
from albra.model import MarginMode, OrderStatus, OrderType, PositionMode, PositionSide, Side

pytestmark = pytest.mark.anyio
BTC = "BTCUSDT"
T0 = 1_704_153_600_000  # 2024-01-02 00:00 UTC, the server's start


def cid(purpose: str, gen: int = 0, strategy: str = "TURTLE") -> str:
    return make_client_id("main", strategy, BTC, T0, purpose, gen)


async def test_reads(gw, sim):
    assert await gw.server_time() == T0
    markets = await gw.load_markets()
    f = markets[BTC]
    assert (f.tick_size, f.step_size, f.min_notional) == (Decimal("0.1"), Decimal("0.001"), Decimal("100"))
    candles = await gw.fetch_candles(BTC, "1h", limit=5)
    assert len(candles) == 5
    assert [c.ts for c in candles] == [T0 - 3_600_000 * i for i in range(4, -1, -1)]
    assert all(c.closed for c in candles[:-1]) and not candles[-1].closed  # the forming candle
    since = await gw.fetch_candles(BTC, "15m", since=T0 - 3_600_000, limit=10)
    assert since[0].ts == T0 - 3_600_000 and not since[-1].closed
    bal = await gw.fetch_balance()
    assert bal.wallet == bal.equity == bal.available == Decimal("10000") and bal.unrealized == 0
    assert await gw.fetch_positions() == []
    assert await gw.fetch_position_mode() is PositionMode.ONE_WAY
    assert await gw.fetch_open_orders(BTC) == [] and await gw.fetch_open_orders(algo=True) == []
    assert await gw.fetch_trades(BTC) == []
    income = await gw.fetch_income()
    assert [(r.income_type, r.amount) for r in income] == [("TRANSFER", Decimal("10000"))]
    assert gw.resilience.limiter.used > 0  # the server's X-MBX-USED-WEIGHT-1M header was read
    with pytest.raises(E.BadSymbol):
        await gw.filters("DOGEUSDT")
    with pytest.raises(ValueError, match="timeframe"):
        await gw.fetch_candles(BTC, "7m")


async def test_setup_is_idempotent(gw, sim):
    await gw.set_position_mode(PositionMode.ONE_WAY)  # -4059 "no need to change" is success
    await gw.setup_symbol(BTC, 5, MarginMode.ISOLATED)
    await gw.setup_symbol(BTC, 5, MarginMode.ISOLATED)  # -4046 is success
    acct = (await sim.admin.accounts())["main"]
    assert acct["leverage"][BTC] == 5 and acct["margin_mode"][BTC] == "isolated"
    await gw.set_position_mode(PositionMode.HEDGE)
    assert await gw.fetch_position_mode() is PositionMode.HEDGE
    with pytest.raises(ValueError, match="leverage"):
        await gw.setup_symbol(BTC, 0, MarginMode.CROSS)


async def test_orders_one_way(gw, sim):
    await gw.setup_symbol(BTC, 5, MarginMode.ISOLATED)
    entry = await gw.place_order(OrderRequest(cid("entry"), BTC, Side.BUY, OrderType.MARKET, Decimal("0.0129")))
    assert entry.status is OrderStatus.FILLED and entry.qty == Decimal("0.012")  # floored to the step
    assert entry.avg_price is not None and entry.filled_qty == Decimal("0.012")
    stop = await gw.place_order(OrderRequest(cid("stop_loss"), BTC, Side.SELL, OrderType.STOP_MARKET, None,
                                             trigger_price=Decimal("40000.01"), close_position=True))
    assert stop.is_algo and stop.status is OrderStatus.NEW
    assert stop.trigger_price == Decimal("40000.1")  # a long's stop rounds up: never looser
    tp = await gw.place_order(OrderRequest(cid("take_profit"), BTC, Side.SELL, OrderType.TAKE_PROFIT_MARKET,
                                           Decimal("0.012"), trigger_price=Decimal("50000.09"), reduce_only=True))
    assert tp.trigger_price == Decimal("50000.0") and tp.reduce_only
    limit = await gw.place_order(OrderRequest(cid("entry", 1), BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                              price=Decimal("30000.07")))
    assert limit.status is OrderStatus.NEW and limit.price == Decimal("30000.0")  # a buy never pays more
    positions = await gw.fetch_positions([BTC])
    assert [(p.symbol, p.position_side, p.qty) for p in positions] == [(BTC, PositionSide.BOTH, Decimal("0.012"))]
    assert positions[0].liquidation_price is not None and positions[0].liquidation_price < positions[0].entry_price
    assert [o.client_id for o in await gw.fetch_open_orders(BTC)] == [limit.client_id]
    assert {o.client_id for o in await gw.fetch_open_orders(BTC, algo=True)} == {stop.client_id, tp.client_id}
    await sim.admin.settle()  # found by client id, and in trade history, only after the exchange's delays
    assert (await gw.fetch_order(BTC, stop.client_id, True)).exchange_id == stop.exchange_id
    assert (await gw.fetch_order(BTC, entry.client_id, False)).status is OrderStatus.FILLED
    assert await gw.fetch_order(BTC, cid("exit"), False) is None
    assert await gw.fetch_order(BTC, cid("exit"), True) is None
    fills = await gw.fetch_trades(BTC)
    assert [(f.order_id, f.qty, f.side) for f in fills] == [(entry.exchange_id, Decimal("0.012"), Side.BUY)]
    assert fills[0].fee > 0
    assert any(r.income_type == "COMMISSION" for r in await gw.fetch_income(income_type="COMMISSION"))
    cancelled = await gw.cancel_order(BTC, tp.client_id, True)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELED
    assert await gw.cancel_order(BTC, tp.client_id, True) is None  # already gone
    snap = await read_snapshot(gw, [BTC])
    assert len(snap.open_orders) == 1 and len(snap.open_algo_orders) == 1 and snap.position_mode is PositionMode.ONE_WAY
    await gw.cancel_all(BTC)  # both kinds
    assert await gw.fetch_open_orders(BTC) == [] and await gw.fetch_open_orders(BTC, algo=True) == []
    assert (await gw.fetch_order(BTC, limit.client_id, False)).status is OrderStatus.CANCELED
    assert await gw.cancel_order(BTC, limit.client_id, False) is None
    # exit closes exactly
    out = await gw.place_order(OrderRequest(cid("exit"), BTC, Side.SELL, OrderType.MARKET, Decimal("0.012"),
                                            reduce_only=True))
    assert out.status is OrderStatus.FILLED and out.reduce_only
    assert await gw.fetch_positions() == []


async def test_rejections_are_fatal_and_named(gw, sim):
    with pytest.raises(E.InsufficientMargin):
        await gw.place_order(OrderRequest(cid("entry"), BTC, Side.BUY, OrderType.MARKET, Decimal("100")))
    with pytest.raises(E.InvalidOrder) as ei:  # -2022: nothing to reduce
        await gw.place_order(OrderRequest(cid("exit"), BTC, Side.SELL, OrderType.MARKET, Decimal("0.01"),
                                          reduce_only=True))
    assert ei.value.code == -2022
    with pytest.raises(E.InvalidOrder) as ei:  # -4164 min notional
        await gw.place_order(OrderRequest(cid("entry", 1), BTC, Side.BUY, OrderType.MARKET, Decimal("0.001")))
    assert ei.value.code == -4164
    with pytest.raises(E.InvalidOrder, match="below the minimum"):  # refused before sending
        await gw.place_order(OrderRequest(cid("entry", 2), BTC, Side.BUY, OrderType.MARKET, Decimal("0.0004")))
    with pytest.raises(E.InvalidOrder, match="trigger_price"):
        await gw.place_order(OrderRequest(cid("stop_loss"), BTC, Side.SELL, OrderType.STOP_MARKET, Decimal("1")))
    with pytest.raises(E.InvalidOrder, match="client id"):
        await gw.place_order(OrderRequest("has space", BTC, Side.BUY, OrderType.MARKET, Decimal("0.01")))
    log = await sim.admin.orders("main")
    assert cid("entry", 2) not in log["counts"] and cid("stop_loss") not in log["counts"]
    assert gw.resilience.breaker.state == "closed"  # refusals are answers, not outages


async def test_wrong_secret_is_auth_failed(sim, make_gw):
    key, _ = sim.accounts["main"]
    g = make_gw(sim.url, key, "wrong-secret")
    with pytest.raises(E.AuthFailed):
        await g.fetch_balance()
    assert await g.server_time() == T0  # public calls still work


async def test_hedge_mode_exits_and_stops(sim, make_gw):
    await sim.admin.position_mode("main", True)
    g = make_gw(sim.url, *sim.accounts["main"])
    assert await g.fetch_position_mode() is PositionMode.HEDGE
    long_ = await g.place_order(OrderRequest(cid("entry", strategy="A"), BTC, Side.BUY, OrderType.MARKET,
                                             Decimal("0.01"), position_side=PositionSide.LONG))
    short = await g.place_order(OrderRequest(cid("entry", strategy="B"), BTC, Side.SELL, OrderType.MARKET,
                                             Decimal("0.02"), position_side=PositionSide.SHORT))
    assert long_.position_side is PositionSide.LONG and short.position_side is PositionSide.SHORT
    pos = {p.position_side: p.qty for p in await g.fetch_positions([BTC])}
    assert pos == {PositionSide.LONG: Decimal("0.01"), PositionSide.SHORT: Decimal("-0.02")}
    stop_long = await g.place_order(OrderRequest(cid("stop_loss", strategy="A"), BTC, Side.SELL,
                                                 OrderType.STOP_MARKET, None, position_side=PositionSide.LONG,
                                                 trigger_price=Decimal("40000"), close_position=True))
    stop_short = await g.place_order(OrderRequest(cid("stop_loss", strategy="B"), BTC, Side.BUY,
                                                  OrderType.STOP_MARKET, Decimal("0.02"),
                                                  position_side=PositionSide.SHORT,
                                                  trigger_price=Decimal("50000"), reduce_only=True))
    assert stop_long.position_side is PositionSide.LONG and stop_short.position_side is PositionSide.SHORT
    # a reduce-only exit in hedge mode is sent without reduceOnly (Binance rejects it there: -1106)
    ex = await g.place_order(OrderRequest(cid("exit", strategy="B"), BTC, Side.BUY, OrderType.MARKET,
                                          Decimal("0.005"), position_side=PositionSide.SHORT, reduce_only=True))
    assert ex.status is OrderStatus.FILLED
    sent = [r["query"] for r in await sim.admin.requests() if r["path"] in ("/fapi/v1/order", "/fapi/v1/algoOrder")
            and r["method"] == "POST"]
    assert sent and all("reduceOnly" not in q for q in sent) and all("positionSide=" in q for q in sent)
    pos = {p.position_side: p.qty for p in await g.fetch_positions([BTC])}
    assert pos == {PositionSide.LONG: Decimal("0.01"), PositionSide.SHORT: Decimal("-0.015")}
    # a "reduce-only" order whose side would add to its position side is refused before sending
    with pytest.raises(E.InvalidOrder, match="increase"):
        await g.place_order(OrderRequest(cid("exit", strategy="A"), BTC, Side.BUY, OrderType.MARKET,
                                         Decimal("0.01"), position_side=PositionSide.LONG, reduce_only=True))
    # the long's stop fires on the mark price and closes exactly the LONG side
    await sim.admin.mark(BTC, "39000")
    pos = {p.position_side: p.qty for p in await g.fetch_positions([BTC])}
    assert pos == {PositionSide.SHORT: Decimal("-0.015")}
    await sim.admin.settle()
    fired = await g.fetch_order(BTC, stop_long.client_id, True)
    assert fired.status in (OrderStatus.TRIGGERED, OrderStatus.FILLED)


async def _exchange_info_requests(sim) -> int:
    return sum(1 for r in await sim.admin.requests() if r["path"] == "/fapi/v1/exchangeInfo")


async def test_concurrent_filters_share_one_exchange_info_request(gw, sim):
    import asyncio

    before = await _exchange_info_requests(sim)
    got = await asyncio.gather(*(gw.filters(BTC) for _ in range(12)), *(gw.load_markets() for _ in range(12)))
    assert await _exchange_info_requests(sim) == before + 1  # 24 concurrent callers, one request
    assert all(f.tick_size == Decimal("0.1") for f in got[:12]) and all(BTC in m for m in got[12:])
    await gw.filters(BTC)
    assert await _exchange_info_requests(sim) == before + 1  # cached
    await asyncio.gather(*(gw.load_markets(reload=True) for _ in range(5)))
    assert await _exchange_info_requests(sim) == before + 2  # concurrent reloads share one fresh load


async def test_a_failed_markets_load_fails_every_waiter_and_is_retried_later(gw, sim):
    import asyncio

    await sim.admin.fault("GET", "/fapi/v1/exchangeInfo", "status", status=400,
                          body='{"code":-1100,"msg":"Illegal characters"}', count=1)
    before = await _exchange_info_requests(sim)
    got = await asyncio.gather(*(gw.filters(BTC) for _ in range(6)), return_exceptions=True)
    assert all(isinstance(g, E.ExchangeError) for g in got), got
    assert await _exchange_info_requests(sim) == before + 1
    assert (await gw.filters(BTC)).tick_size == Decimal("0.1")  # nothing cached from the failure: loaded again
    assert await _exchange_info_requests(sim) == before + 2
