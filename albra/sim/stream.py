"""The local server's WebSocket streams: the user data stream (listenKey) and kline market streams.

Why here and not in the engine: the engine must learn of fills, triggers and cancellations the way it will on
Binance — pushed, late by a few ms, in Binance's payloads — so the simulator pushes exactly that. Each payload
follows its Binance USDⓈ-M documentation page (see ``albra/sim/README.md``, "User data stream"):

* ``POST/PUT/DELETE /fapi/v1/listenKey`` (API key, unsigned): one key per account, valid 60 minutes of wall
  time after creation or the last keep-alive; ``POST`` on an account with an active key returns that key and
  extends it; ``PUT`` on an unknown key is -1125.
* ``/ws/<listenKey>`` (also ``/private/ws/<listenKey>``): ``ORDER_TRADE_UPDATE``, ``ALGO_UPDATE``,
  ``ACCOUNT_UPDATE`` as the exchange makes each change observable (plus ``stream_ms``), and
  ``listenKeyExpired`` once when the key lapses (then nothing more on that key).
* ``/ws/<symbol>@kline_<interval>`` (also ``/market/ws/...``): the forming candle every 250 ms of wall time, and
  each candle once more with ``x: true`` when it closes.

Events are rendered when the change happens (a snapshot: the records mutate afterwards) and sent when due on
the exchange's latency clock, in order per account.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from albra.model import MarginMode, PositionSide
from albra.sim.errors import SimError
from albra.sim.payloads import num
from albra.sim.state import Account, AlgoOrder, Order

if TYPE_CHECKING:  # pragma: no cover
    from albra.sim.server import SimServer

LISTEN_KEY_MS = 60 * 60_000
KLINE_PUSH_S = 0.25


@dataclass
class _Key:
    account: str
    key: str
    expires: int  # latency-clock ms (wall time by default): a key lives 60 real minutes, however fast the replay runs
    expired_sent: bool = False


class ListenKeys:
    """One listenKey per account with its validity (User Data Streams Connect) on the latency clock — wall time by
    default: Binance's 60 minutes are real minutes, and a replay run 1800× fast must not expire keys every two
    seconds (that made runners reconnect dozens of times in a soak). ``expire_now`` ends one for tests."""

    def __init__(self) -> None:
        self.by_key: dict[str, _Key] = {}
        self.by_account: dict[str, _Key] = {}

    def start(self, account: str, now: int) -> str:
        k = self.by_account.get(account)
        if k is not None and k.expires > now:
            k.expires = now + LISTEN_KEY_MS
            return k.key
        k = _Key(account, secrets.token_urlsafe(48)[:64], now + LISTEN_KEY_MS)
        self.by_account[account] = k
        self.by_key[k.key] = k
        return k.key

    def keepalive(self, account: str, now: int, key: str | None = None) -> str:
        k = self.by_account.get(account)
        if k is None or k.expires <= now or (key and key != k.key):
            raise SimError(-1125, "This listenKey does not exist. Please use POST /fapi/v1/listenKey to recreate "
                                  "listenKey")
        k.expires = now + LISTEN_KEY_MS
        return k.key

    def expire_now(self, account: str, now: int) -> bool:
        """Let the account's key lapse now (the next pump sends ``listenKeyExpired``). False: it has none."""
        k = self.by_account.get(account)
        if k is None:
            return False
        k.expires = now
        return True

    def close(self, account: str) -> None:
        k = self.by_account.pop(account, None)
        if k is not None:
            self.by_key.pop(k.key, None)

    def get(self, key: str) -> _Key | None:
        return self.by_key.get(key)


# ---------------------------------------------------------------------------------------------------- payloads
def order_event(o: Order, x: str, now: int, trade: dict | None = None) -> dict:
    """``ORDER_TRADE_UPDATE`` (Event: Order Update) for ``o`` after execution type ``x``."""
    body: dict[str, Any] = {
        "s": o.symbol, "c": o.client_id, "S": o.side.value, "o": o.type.value, "f": o.time_in_force,
        "q": num(o.qty), "p": num(o.price), "ap": num(o.avg_price), "sp": num(o.stop_price), "x": x,
        "X": o.status, "i": o.order_id, "l": "0", "z": num(o.executed_qty), "L": "0", "T": o.update_time,
        "t": 0, "b": "0", "a": "0", "m": False, "R": o.reduce_only, "wt": o.working_type.value,
        "ot": o.type.value, "ps": o.position_side.value, "cp": o.close_position, "pP": False, "si": 0, "ss": 0,
        "rp": "0", "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0, "er": "0",
    }
    if trade is not None:
        body.update({"l": num(trade["qty"]), "L": num(trade["price"]), "N": trade["commissionAsset"],
                     "n": num(trade["commission"]), "t": trade["id"], "m": trade["maker"],
                     "rp": num(trade["realizedPnl"]), "T": trade["time"]})
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": body["T"], "o": body}


def algo_event(a: AlgoOrder, status: str, now: int, child_qty: Decimal = Decimal(0)) -> dict:
    """``ALGO_UPDATE`` (Event: Algo Order Update) for ``a`` at ``status``: ``ai`` only once the child exists,
    ``ap``/``aq`` only once it is done."""
    placed = status in ("TRIGGERED", "FINISHED")
    done = status == "FINISHED"
    return {"e": "ALGO_UPDATE", "T": a.update_time, "E": now, "o": {
        "caid": a.client_algo_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.order_type.value, "s": a.symbol,
        "S": a.side.value, "ps": a.position_side.value, "f": "GTC", "q": num(a.qty), "X": status,
        "ai": str(a.actual_order_id) if placed and a.actual_order_id else "",
        "ap": num(a.actual_price) if done else "0", "aq": num(child_qty) if done else "0",
        "act": "MARKET" if placed else "0", "tp": num(a.trigger_price), "p": "0", "V": "EXPIRE_MAKER",
        "wt": a.working_type.value, "pm": "NONE", "cp": a.close_position, "pP": False, "R": a.reduce_only,
        "tt": a.trigger_time, "gtd": 0, "rm": a.reason if status in ("FINISHED", "REJECTED", "EXPIRED") else "",
    }}


def account_event(ex: Any, acct: Account, reason: str, symbol: str, now: int) -> dict:
    """``ACCOUNT_UPDATE`` (Event: Balance and Position Update): the balance, and the changed symbol's positions
    (every side, zero included); a cross FUNDING_FEE carries the balance only."""
    n = ex.account_numbers(acct)
    bal = {"a": acct.asset, "wb": num(acct.wallet), "cw": num(n["cross_wallet"]), "bc": "0"}
    positions = []
    iso = bool(symbol) and acct.mm(symbol) is MarginMode.ISOLATED
    if symbol and not (reason == "FUNDING_FEE" and not iso):
        sides = ([PositionSide.BOTH] if acct.mode.value == "one_way" else [PositionSide.LONG, PositionSide.SHORT])
        for side in sides:
            p = acct.position(symbol, side)
            up = ex.upnl(p) if ex.has_price(symbol) else Decimal(0)
            positions.append({"s": symbol, "pa": num(p.amt), "ep": num(p.entry), "bep": num(p.entry), "cr": "0",
                              "up": num(up), "mt": "isolated" if iso else "cross",
                              "iw": num(p.isolated_margin if iso else 0), "ps": side.value})
    return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {"m": reason, "B": [bal], "P": positions}}


def kline_event(symbol: str, interval: str, row: list, closed: bool, now: int) -> dict:
    """Kline/Candlestick stream payload from a REST kline row."""
    return {"e": "kline", "E": now, "s": symbol, "k": {
        "t": row[0], "T": row[6], "s": symbol, "i": interval, "f": 0, "L": 0, "o": row[1], "c": row[4],
        "h": row[2], "l": row[3], "v": row[5], "n": row[8], "x": closed, "q": row[7], "V": row[9], "Q": row[10],
        "B": "0"}}


# ---------------------------------------------------------------------------------------------------- the hub
class StreamHub:
    """Renders the exchange's observable changes into user data events and sends them when due."""

    def __init__(self, server: "SimServer") -> None:
        self.server = server
        self.ex = server.ex
        self.keys = ListenKeys()
        self.sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._queue: list[tuple[int, int, str, dict]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.sent: list[dict] = []  # every event sent (tests and the admin API read it), capped
        self.ex.observers.append(self.observe)

    # -- exchange side ------------------------------------------------------------------------------------------
    def observe(self, kind: str, obj: object, at: int) -> None:
        now = self.ex.now
        if kind in ("order_new", "order_done"):
            o = obj  # type: ignore[assignment]
            x = "NEW" if kind == "order_new" else ("CANCELED" if o.status == "CANCELED" else "EXPIRED")
            ev = order_event(o, x, now)
            if kind == "order_new":
                ev["o"].update({"X": "NEW", "z": "0", "ap": "0"})
            if o.source == "liquidation":
                ev["o"]["o"] = "LIQUIDATION"
            self._push(o.account, at, ev)
        elif kind == "trade":
            o, t = obj  # type: ignore[misc]
            self._push(o.account, at, order_event(o, "TRADE", now, t))
        elif kind == "algo":
            a, status = obj  # type: ignore[misc]
            child = self.ex.accounts[a.account].orders.get(a.actual_order_id) if a.actual_order_id else None
            qty = child.executed_qty if child is not None else Decimal(0)
            self._push(a.account, at, algo_event(a, status, now, qty))
        elif kind == "account":
            acct, reason, symbol = obj  # type: ignore[misc]
            self._push(acct.name, at, account_event(self.ex, acct, reason, symbol, now))

    def _push(self, account: str, at: int, event: dict) -> None:
        if account not in self.keys.by_account:
            return  # nobody has a stream for this account: Binance sends nothing either
        heapq.heappush(self._queue, (at + self.ex.realism.stream_ms, next(self._seq), account, event))
        if self._wake is not None:
            self._wake.set()

    # -- delivery -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        for socks in self.sockets.values():
            for ws in list(socks):
                await ws.close()

    async def _pump(self) -> None:
        assert self._wake is not None
        while True:
            self.server.now()  # advance the replay so triggers happen without a request
            self._expire()
            now = self.ex.lnow()
            while self._queue and self._queue[0][0] <= now:
                _, _, account, event = heapq.heappop(self._queue)
                await self._send(account, event)
            wait = 0.05 if not self._queue else max(0.0, min(0.05, (self._queue[0][0] - now) / 1000))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    def _expire(self) -> None:
        now = self.ex.lnow()
        for k in list(self.keys.by_account.values()):
            if k.expires <= now and not k.expired_sent:
                k.expired_sent = True
                ev = {"e": "listenKeyExpired", "E": now, "listenKey": k.key}
                heapq.heappush(self._queue, (self.ex.lnow(), next(self._seq), k.account, ev))
                self.keys.close(k.account)

    async def _send(self, account: str, event: dict) -> None:
        self.sent.append({"account": account, **event})
        if len(self.sent) > 5000:
            del self.sent[:1000]
        text = json.dumps(event)
        for ws in list(self.sockets.get(account, ())):
            if ws.closed:
                self.sockets[account].discard(ws)
                continue
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self.sockets[account].discard(ws)
        if event.get("e") == "listenKeyExpired":
            self.sockets.pop(account, None)  # no more events on that key; the sockets stay open, silent

    # -- HTTP side ----------------------------------------------------------------------------------------------
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or request.query.get("listenKey", "")
        if "@kline_" in name:
            return await self._kline_ws(request, name)
        k = self.keys.get(name)
        if k is None or k.expires <= self.ex.lnow():
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.start()
        self.sockets.setdefault(k.account, set()).add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.get(k.account, set()).discard(ws)
        return ws

    async def _kline_ws(self, request: web.Request, name: str) -> web.StreamResponse:
        sym_l, _, interval = name.partition("@kline_")
        symbol = sym_l.upper()
        replay = self.server.replay
        if symbol not in replay.series:
            return web.json_response({"code": -1121, "msg": f"Invalid symbol. (no candle data for {symbol})"},
                                     status=400)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        last_open: int | None = None
        reader = asyncio.get_running_loop().create_task(self._drain(ws))
        try:
            while not ws.closed and not reader.done():
                now = self.server.now()
                try:
                    rows = replay.klines(symbol, interval, now, 2)
                except (ValueError, KeyError) as e:
                    await ws.send_str(json.dumps({"code": -1120, "msg": f"Invalid interval. ({e})"}))
                    break
                if rows:
                    cur = rows[-1]
                    if last_open is not None and cur[0] != last_open and len(rows) > 1:
                        await ws.send_str(json.dumps(kline_event(symbol, interval, rows[-2], True, now)))
                    closed = cur[6] < now
                    await ws.send_str(json.dumps(kline_event(symbol, interval, cur, closed, now)))
                    last_open = cur[0]
                await asyncio.sleep(KLINE_PUSH_S)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            reader.cancel()
            await ws.close()
        return ws

    async def _drain(self, ws: web.WebSocketResponse) -> None:
        async for _ in ws:
            pass

    # listenKey REST (API key, no signature)
    def post_key(self, params: dict, account: str, now: int) -> dict:
        return {"listenKey": self.keys.start(account, self.ex.lnow())}

    def put_key(self, params: dict, account: str, now: int) -> dict:
        return {"listenKey": self.keys.keepalive(account, self.ex.lnow(), params.get("listenKey"))}

    def delete_key(self, params: dict, account: str, now: int) -> dict:
        self.keys.close(account)
        return {}


def add_stream_routes(app: web.Application, hub: StreamHub) -> None:
    """WebSocket routes on the same host and port (before the REST catch-all)."""
    for prefix in ("/ws", "/private/ws", "/market/ws"):
        app.router.add_get(prefix + "/{name}", hub.ws_handler)
    app.router.add_get("/private/ws", hub.ws_handler)  # ?listenKey=… (the form ccxt 4.5.90 connects to)
