"""The user data stream and the asynchronous conditional orders of ``albra sim serve``, seen the way an engine will
see Binance: the real ccxt client for REST, a plain aiohttp WebSocket client for the stream, a real server process.

Covers: listenKey (POST/PUT/DELETE, -1125), an entry's NEW → TRADE ``ORDER_TRADE_UPDATE`` by client id and its
``ACCOUNT_UPDATE``, a stop's ``ALGO_UPDATE`` NEW → TRIGGERING → TRIGGERED → FINISHED (REST shows the same stages),
its child's fill, a stop whose reduce-only child finds no position ending FINISHED with zero executed and an
EXPIRED child, ``listenKeyExpired`` after 60 minutes without a keep-alive, and the kline stream.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from albra.sim.testing import SimAdmin, ccxt_client, sim_process

pytestmark = pytest.mark.anyio
SYM = "BTC/USDT:USDT"
SLOW = {"trigger_ms": 400, "finish_ms": 400, "lookup_ms": 500, "trade_ms": 200, "stream_ms": 5}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server():
    with sim_process("--speed", "0", "--start", "2024-01-02", "--realism", json.dumps(SLOW)) as (url, proc):
        yield url


class Stream:
    """A plain WebSocket reader that keeps every event it received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict] = []

    async def until(self, pred, timeout: float = 5.0) -> dict:
        for e in self.events:
            if pred(e):
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = await asyncio.wait_for(self.ws.receive(), timeout=max(0.01, deadline - time.monotonic()))
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            ev = json.loads(msg.data)
            self.events.append(ev)
            if pred(ev):
                return ev
        raise AssertionError(f"no matching event in {timeout}s; got {[e.get('e') for e in self.events]}")


def order_upd(cid: str | None = None, x: str | None = None, oid: int | None = None):
    return lambda e: (e["e"] == "ORDER_TRADE_UPDATE" and (cid is None or e["o"]["c"] == cid)
                      and (x is None or e["o"]["x"] == x) and (oid is None or e["o"]["i"] == oid))


def algo_upd(caid: str, status: str):
    return lambda e: e["e"] == "ALGO_UPDATE" and e["o"]["caid"] == caid and e["o"]["X"] == status


async def test_user_data_stream_and_asynchronous_stops(server):
    admin = SimAdmin(server)
    ex = ccxt_client(server, "main-key", "main-secret")
    session = aiohttp.ClientSession()
    try:
        await ex.load_markets()
        key = (await ex.fapiPrivatePostListenKey())["listenKey"]
        assert key and (await ex.fapiPrivatePostListenKey())["listenKey"] == key  # active key: the same one
        assert (await ex.fapiPrivatePutListenKey())["listenKey"] == key
        ws = await session.ws_connect(f"{server}/ws/{key}")
        s = Stream(ws)

        # entry: NEW then TRADE/FILLED by client id, then the position in ACCOUNT_UPDATE
        entry = await ex.create_order(SYM, "market", "buy", 0.01, None, {"clientOrderId": "e-ws"})
        new = await s.until(order_upd("e-ws", "NEW"))
        fill = await s.until(order_upd("e-ws", "TRADE"))
        assert new["o"]["X"] == "NEW" and fill["o"]["X"] == "FILLED" and fill["o"]["l"] == "0.01"
        assert fill["o"]["i"] == int(entry["id"]) and fill["o"]["N"] == "USDT" and float(fill["o"]["n"]) > 0
        acct = await s.until(lambda e: e["e"] == "ACCOUNT_UPDATE" and e["a"]["m"] == "ORDER")
        assert [p["pa"] for p in acct["a"]["P"] if p["s"] == "BTCUSDT"] == ["0.01"]

        # a stop: NEW, then fired by a forced mark → TRIGGERING → TRIGGERED (child id) → FINISHED
        trigger = round(entry["average"] - 500, 1)
        await ex.create_order(SYM, "STOP_MARKET", "sell", 0.01, None,
                              {"stopPrice": trigger, "reduceOnly": True, "workingType": "MARK_PRICE",
                               "clientOrderId": "sl-ws"})
        await s.until(algo_upd("sl-ws", "NEW"))
        await asyncio.sleep(SLOW["lookup_ms"] / 1000 + 0.05)
        await admin.mark("BTCUSDT", trigger - 100)
        rest = await ex.fetch_order(None, SYM, {"clientOrderId": "sl-ws", "trigger": True})
        assert rest["info"]["algoStatus"] == "TRIGGERING" and rest["info"]["actualOrderId"] == ""
        triggering = await s.until(algo_upd("sl-ws", "TRIGGERING"))
        assert triggering["o"]["ai"] == ""
        triggered = await s.until(algo_upd("sl-ws", "TRIGGERED"))
        child_id = int(triggered["o"]["ai"])
        rest = await ex.fetch_order(None, SYM, {"clientOrderId": "sl-ws", "trigger": True})
        assert rest["info"]["algoStatus"] == "TRIGGERED"
        child = await s.until(order_upd(oid=child_id, x="TRADE"))
        assert child["o"]["X"] == "FILLED" and child["o"]["l"] == "0.01"
        finished = await s.until(algo_upd("sl-ws", "FINISHED"))
        assert finished["o"]["aq"] == "0.01" and float(finished["o"]["ap"]) > 0
        flat = await s.until(lambda e: e["e"] == "ACCOUNT_UPDATE" and any(
            p["s"] == "BTCUSDT" and p["pa"] == "0" for p in e["a"]["P"]))
        assert flat["a"]["m"] == "ORDER"
        # the stream ran ahead of REST: the algo's stages arrived in order
        stages = [e["o"]["X"] for e in s.events if e["e"] == "ALGO_UPDATE" and e["o"]["caid"] == "sl-ws"]
        assert stages == ["NEW", "TRIGGERING", "TRIGGERED", "FINISHED"]

        # a stop whose reduce-only child finds no position: FINISHED, nothing executed, the child EXPIRED
        await admin.mark("BTCUSDT", None)
        await ex.create_order(SYM, "STOP_MARKET", "sell", None, None,
                              {"stopPrice": trigger, "closePosition": True, "workingType": "MARK_PRICE",
                               "clientOrderId": "sl-none"})
        await s.until(algo_upd("sl-none", "NEW"))
        await admin.mark("BTCUSDT", trigger - 100)
        empty = await s.until(algo_upd("sl-none", "FINISHED"))
        assert empty["o"]["aq"] == "0" and empty["o"]["rm"]
        expired = await s.until(order_upd(oid=int(empty["o"]["ai"]), x="EXPIRED"))
        assert expired["o"]["X"] == "EXPIRED" and expired["o"]["z"] == "0"
        await asyncio.sleep(SLOW["lookup_ms"] / 1000)
        rest = await ex.fetch_order(None, SYM, {"clientOrderId": "sl-none", "trigger": True})
        assert rest["info"]["algoStatus"] == "FINISHED" and float(rest["info"]["actualPrice"] or 0) == 0
        await admin.mark("BTCUSDT", None)

        # the key lapses (60 wall-clock minutes without a keep-alive; ended at once here): listenKeyExpired, then
        # PUT is -1125
        assert await admin.expire_listen_key("main")
        gone = await s.until(lambda e: e["e"] == "listenKeyExpired", timeout=3)
        assert gone["listenKey"] == key
        with pytest.raises(ccxt_async.ExchangeError, match="-1125"):
            await ex.fapiPrivatePutListenKey()
        fresh = (await ex.fapiPrivatePostListenKey())["listenKey"]
        assert fresh != key
        await ex.fapiPrivateDeleteListenKey()
        await ws.close()
    finally:
        await session.close()
        await ex.close()
        await admin.close()


async def test_kline_stream_pushes_the_forming_candle_and_the_closed_one(server):
    admin = SimAdmin(server)
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(f"{server}/ws/btcusdt@kline_15m")
        first = json.loads((await ws.receive(timeout=3)).data)
        assert first["e"] == "kline" and first["s"] == "BTCUSDT" and first["k"]["i"] == "15m"
        opened = first["k"]["t"]
        await admin.advance(15 * 60_000)
        for _ in range(20):
            ev = json.loads((await ws.receive(timeout=3)).data)
            if ev["k"]["t"] == opened and ev["k"]["x"]:
                break
        else:
            raise AssertionError("the closed candle was never pushed with x: true")
        await ws.close()
    finally:
        await session.close()
        await admin.close()
