"""The paper gateway over the in-process simulated exchange: same behaviour and values as the ccxt gateway
against the local server (place, stop trigger on mark, positions, balance, errors, hedge rules, candles)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from albra.candles import load_candles
from albra.exchange import errors as E
from albra.exchange.client_ids import make_client_id
from albra.exchange.paper import PaperGateway
from albra.exchange.types import OrderRequest
from albra.model import MarginMode, OrderStatus, OrderType, PositionMode, PositionSide, Side
from albra.sim.exchange import SimExchange
from albra.sim.feed import MarketReplay
from albra.sim.realism import Realism
from albra.timefmt import FixedClock

pytestmark = pytest.mark.anyio
BTC = "BTCUSDT"
T0 = 1_704_153_600_000
DATA = Path(__file__).resolve().parents[1] / "data" / "exchange" / "BTCUSDT-15m-2024-01-01..03.csv"


def cid(purpose: str, gen: int = 0, strategy: str = "TURTLE") -> str:
    return make_client_id("paper", strategy, BTC, T0, purpose, gen)


@pytest.fixture
def core() -> SimExchange:
    # nobody moves this exchange's clock while the gateway is asked, as in a replay: the realistic rules with no
    # timing gaps (Realism.replay, ADR 0009); the timing windows are tested below with a running clock
    ex = SimExchange(now_ms=T0, realism=Realism.replay())
    ex.add_account("paper", Decimal("10000"))
    ex.open_at(BTC, T0, 44000.0)
    return ex


async def test_realistic_windows_show_through_the_paper_gateway():
    """With the realistic default a fill reaches trade history ``trade_ms`` later, a new order is not found by
    its client id for ``lookup_ms``, and a fired stop shows TRIGGERING/TRIGGERED before its final status."""
    ex = SimExchange(now_ms=T0, latency_clock="exchange")  # the windows measured on the exchange time stepped here
    ex.add_account("paper", Decimal("10000"))
    ex.open_at(BTC, T0, 44000.0)
    gw = PaperGateway("paper", ex)
    r = ex.realism
    entry = await gw.place_order(OrderRequest(cid("entry"), BTC, Side.BUY, OrderType.MARKET, Decimal("0.1")))
    assert entry.status is OrderStatus.FILLED
    assert await gw.fetch_trades(BTC) == []
    assert await gw.fetch_order(BTC, entry.client_id, False) is None
    ex.set_time(T0 + r.trade_ms)
    assert len(await gw.fetch_trades(BTC)) == 1
    ex.set_time(T0 + r.lookup_ms)
    assert (await gw.fetch_order(BTC, entry.client_id, False)).status is OrderStatus.FILLED
    stop = await gw.place_order(OrderRequest(cid("stop_loss"), BTC, Side.SELL, OrderType.STOP_MARKET, None,
                                             trigger_price=Decimal("43000"), close_position=True))
    ex.set_time(ex.now + r.lookup_ms)
    ex.move(BTC, 42900.0)
    t = ex.now
    assert (await gw.fetch_order(BTC, stop.client_id, True)).status is OrderStatus.TRIGGERED  # TRIGGERING
    ex.set_time(t + r.trigger_ms)
    seen = await gw.fetch_order(BTC, stop.client_id, True)
    assert seen.status is OrderStatus.TRIGGERED and seen.actual_order_id  # TRIGGERED: the child exists
    ex.set_time(t + r.trigger_ms + r.finish_ms)
    assert (await gw.fetch_order(BTC, stop.client_id, True)).status is OrderStatus.FILLED  # FINISHED


async def test_place_stop_trigger_positions_balance(core):
    gw = PaperGateway("paper", core)
    await gw.setup_symbol(BTC, 10, MarginMode.ISOLATED)
    await gw.setup_symbol(BTC, 10, MarginMode.ISOLATED)  # already set: success
    await gw.set_position_mode(PositionMode.ONE_WAY)
    entry = await gw.place_order(OrderRequest(cid("entry"), BTC, Side.BUY, OrderType.MARKET, Decimal("0.1009")))
    assert entry.status is OrderStatus.FILLED and entry.qty == Decimal("0.1") and entry.avg_price == Decimal("44000")
    stop = await gw.place_order(OrderRequest(cid("stop_loss"), BTC, Side.SELL, OrderType.STOP_MARKET, None,
                                             trigger_price=Decimal("42000.04"), close_position=True))
    assert stop.trigger_price == Decimal("42000.1") and stop.is_algo
    [pos] = await gw.fetch_positions()
    assert (pos.qty, pos.entry_price, pos.position_side) == (Decimal("0.1"), Decimal("44000"), PositionSide.BOTH)
    fee = (await gw.fetch_trades(BTC))[0].fee
    assert fee == Decimal("0.1") * Decimal("44000") * core.fees.taker
    bal = await gw.fetch_balance()
    assert bal.wallet == Decimal("10000") - fee
    core.move(BTC, 43000.0)
    assert (await gw.fetch_balance()).unrealized == Decimal("-100")
    core.move(BTC, 41900.0)  # crosses the stop (mark follows last)
    assert await gw.fetch_positions() == []
    fired = await gw.fetch_order(BTC, stop.client_id, True)
    assert fired.status in (OrderStatus.TRIGGERED, OrderStatus.FILLED)
    assert await gw.fetch_open_orders(BTC, algo=True) == []
    kinds = {r.income_type for r in await gw.fetch_income()}
    assert {"TRANSFER", "COMMISSION", "REALIZED_PNL"} <= kinds


async def test_errors_match_the_ccxt_gateway(core):
    gw = PaperGateway("paper", core)
    with pytest.raises(E.InsufficientMargin):
        await gw.place_order(OrderRequest(cid("entry"), BTC, Side.BUY, OrderType.MARKET, Decimal("100")))
    with pytest.raises(E.InvalidOrder) as ei:
        await gw.place_order(OrderRequest(cid("exit"), BTC, Side.SELL, OrderType.MARKET, Decimal("0.01"),
                                          reduce_only=True))
    assert ei.value.code == -2022
    with pytest.raises(E.InvalidOrder) as ei:
        await gw.place_order(OrderRequest(cid("entry", 1), BTC, Side.BUY, OrderType.MARKET, Decimal("0.001")))
    assert ei.value.code == -4164
    with pytest.raises(E.BadSymbol):
        await gw.place_order(OrderRequest(cid("entry"), "NOPEUSDT", Side.BUY, OrderType.MARKET, Decimal("1")))
    assert await gw.fetch_order(BTC, cid("entry"), False) is None
    assert await gw.cancel_order(BTC, cid("entry"), True) is None
    with pytest.raises(ValueError, match="unknown account"):
        PaperGateway("nobody", core)


async def test_hedge_mode(core):
    gw = PaperGateway("paper", core)
    await gw.set_position_mode(PositionMode.HEDGE)
    assert await gw.fetch_position_mode() is PositionMode.HEDGE
    await gw.place_order(OrderRequest(cid("entry", strategy="A"), BTC, Side.BUY, OrderType.MARKET, Decimal("0.01"),
                                      position_side=PositionSide.LONG))
    await gw.place_order(OrderRequest(cid("entry", strategy="B"), BTC, Side.SELL, OrderType.MARKET, Decimal("0.02"),
                                      position_side=PositionSide.SHORT))
    await gw.place_order(OrderRequest(cid("exit", strategy="B"), BTC, Side.BUY, OrderType.MARKET, Decimal("0.005"),
                                      position_side=PositionSide.SHORT, reduce_only=True))
    await gw.place_order(OrderRequest(cid("stop_loss", strategy="A"), BTC, Side.SELL, OrderType.STOP_MARKET, None,
                                      position_side=PositionSide.LONG, trigger_price=Decimal("43000"),
                                      close_position=True))
    with pytest.raises(E.InvalidOrder, match="increase"):
        await gw.place_order(OrderRequest(cid("exit", strategy="A"), BTC, Side.BUY, OrderType.MARKET,
                                          Decimal("0.01"), position_side=PositionSide.LONG, reduce_only=True))
    core.set_mark(BTC, Decimal("42900"))
    pos = {p.position_side: p.qty for p in await gw.fetch_positions([BTC])}
    assert pos == {PositionSide.SHORT: Decimal("-0.015")}
    await gw.cancel_all(BTC)
    assert await gw.fetch_open_orders(BTC) == [] and await gw.fetch_open_orders(BTC, algo=True) == []


async def test_candles_follow_the_clock_with_the_forming_candle_last():
    core = SimExchange(now_ms=T0)
    core.add_account("paper", Decimal("10000"))
    replay = MarketReplay(core, {BTC: load_candles(DATA, symbol=BTC)})
    clock = FixedClock(T0 + 20 * 60_000)  # 00:20: the 00:15 candle is forming
    gw = PaperGateway("paper", core, replay=replay, clock=clock)
    candles = await gw.fetch_candles(BTC, "15m", limit=4)
    assert [c.ts for c in candles] == [T0 - 30 * 60_000, T0 - 15 * 60_000, T0, T0 + 15 * 60_000]
    assert [c.closed for c in candles] == [True, True, True, False]
    assert await gw.server_time() == T0 + 20 * 60_000
    clock.advance(10 * 60_000)
    assert (await gw.fetch_candles(BTC, "15m", limit=1))[0].closed is False
    assert (await gw.fetch_candles(BTC, "15m", limit=2))[0].closed is True
    with pytest.raises(E.BadSymbol):
        await gw.fetch_candles("ETHUSDT", "15m")


async def test_same_answers_as_ccxt_against_the_server(sim, gw):
    """The paper gateway on the server's own core (account sub1) and the ccxt gateway (account main) give the
    same results for the same intents, ids and timestamps aside."""
    paper = PaperGateway("sub1", sim.server.ex)
    reqs = [
        OrderRequest("al-en-1-0-aaaaaaaaaa", BTC, Side.BUY, OrderType.MARKET, Decimal("0.0209")),
        OrderRequest("al-sl-1-0-aaaaaaaaaa", BTC, Side.SELL, OrderType.STOP_MARKET, Decimal("0.02"),
                     trigger_price=Decimal("40000.04"), reduce_only=True),
        OrderRequest("al-en-1-1-aaaaaaaaaa", BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"), price=Decimal("30000.09")),
    ]
    for r in reqs:
        a, b = await gw.place_order(r), await paper.place_order(r)
        assert replace(a, exchange_id="", ts=0) == replace(b, exchange_id="", ts=0)
    [pa], [pb] = await gw.fetch_positions(), await paper.fetch_positions()
    assert replace(pa, ts=0) == replace(pb, ts=0)
    ba, bb = await gw.fetch_balance(), await paper.fetch_balance()
    assert replace(ba, ts=0) == replace(bb, ts=0)
    assert await gw.load_markets() == await paper.load_markets()
    assert await gw.fetch_candles(BTC, "1h", limit=3) == await PaperGateway(
        "sub1", sim.server.ex, replay=sim.server.replay, clock=sim.server.clock).fetch_candles(BTC, "1h", limit=3)
