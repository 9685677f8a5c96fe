"""albra's user data stream client (albra.exchange.user_stream) against the local server's stream, through the real
ccxt gateway for the listenKey: events arrive parsed and in order, a keep-alive goes out on schedule, a dropped
connection is noticed (state down), reconnected with a fresh resync, and an expired listenKey is replaced."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from albra.exchange.client_ids import make_client_id
from albra.exchange.types import OrderRequest
from albra.exchange.user_stream import UserStream, parse_event
from albra.model import OrderType, Side

pytestmark = pytest.mark.anyio


async def _until(pred, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_events_keepalive_reconnect_and_expiry(sim, make_gw):
    """The local server (realistic) and the real ccxt gateway of tests/exchange/conftest.py."""
    gw = make_gw(sim.url, *sim.accounts["main"])
    events: list = []
    connects: list[int] = []
    keepalives: list[int] = []

    async def keepalive() -> None:
        keepalives.append(1)
        await gw.keepalive_user_stream()

    async def on_event(ev) -> None:
        events.append(ev)

    async def on_connect() -> None:
        connects.append(len(events))

    stream = UserStream(gw.start_user_stream, keepalive, gw.user_stream_url, on_event, on_connect,
                        keepalive_s=0.3, backoff_s=(0.05, 0.2))
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        await _until(lambda: stream.state == "up")
        assert gw.user_stream_url("k").startswith("ws://127.0.0.1:") and gw.user_stream_url("k").endswith("/ws/k")
        cid = make_client_id("main", "TFPE", "BTCUSDT", 1_704_153_600_000, "entry")
        await gw.place_order(OrderRequest(cid, "BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.01")))
        await _until(lambda: any(e.kind == "ORDER_TRADE_UPDATE" and e.execution == "TRADE" for e in events))
        mine = [e for e in events if e.kind == "ORDER_TRADE_UPDATE" and e.client_id == cid]
        assert [e.execution for e in mine] == ["NEW", "TRADE"] and mine[-1].status == "FILLED"
        assert mine[-1].last_qty == Decimal("0.01") and mine[-1].symbol == "BTCUSDT"
        await _until(lambda: any(e.kind == "ACCOUNT_UPDATE" and "BTCUSDT" in e.symbols for e in events))
        await _until(lambda: len(keepalives) >= 1, timeout=3)  # the key is kept alive on schedule

        # the server drops the connection: down, then up again with a resync
        for ws in list(sim.server.hub.sockets.get("main", ())):
            await ws.close()
        await _until(lambda: stream.connects >= 2)
        assert len(connects) == 2 and stream.state == "up"

        # the key lapses (60 wall-clock minutes without a keep-alive; ended at once here) → a new key, reconnected
        stream.keepalive_s = 3600
        assert await sim.admin.expire_listen_key("main")
        await _until(lambda: any(e.kind == "listenKeyExpired" for e in events))
        await _until(lambda: stream.connects >= 3)
        assert stream.state == "up"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert stream.state == "down"


def test_parse_event_shapes():
    algo = parse_event({"e": "ALGO_UPDATE", "E": 5, "o": {"caid": "c1", "aid": 7, "s": "BTCUSDT", "X": "TRIGGERED",
                                                          "ai": "88"}})
    assert (algo.kind, algo.client_id, algo.order_id, algo.status, algo.actual_order_id) == (
        "ALGO_UPDATE", "c1", "7", "TRIGGERED", "88")
    acct = parse_event({"e": "ACCOUNT_UPDATE", "E": 6, "a": {"m": "ORDER", "P": [{"s": "ETHUSDT"}, {"s": "BTCUSDT"}]}})
    assert acct.status == "ORDER" and acct.symbols == ("BTCUSDT", "ETHUSDT")
    assert parse_event({"e": "something_new"}).kind == "other"
