"""Binance USDⓈ-M user data stream for one account: listenKey, WebSocket, keep-alive, reconnect, parsed events.

Why a raw WebSocket (aiohttp) rather than ccxt's ``watch_*`` (ADR 0011): the engine needs every
``ORDER_TRADE_UPDATE`` (with the client id and execution type), every ``ALGO_UPDATE`` stage and ``ACCOUNT_UPDATE``
as Binance sends them, in order, plus ``listenKeyExpired`` — and it needs to know the moment the stream is down
so it can resync by REST. ccxt's unified watchers merge these into order/trade caches and hide the connection's
state; the raw stream is ~200 lines here and is tested against the local server's stream.

Lifecycle (User Data Streams Connect): ``POST /fapi/v1/listenKey`` → connect ``<ws base>/<listenKey>`` → a
``PUT`` keep-alive every 30 minutes → on any disconnect, error or ``listenKeyExpired``: mark down, back off
(0.5 s doubling to 30 s), take a key again and reconnect. After every (re)connect ``on_connect`` runs — the
owner's REST resync of open orders, positions and trades — so nothing that happened while it was down is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Awaitable, Callable

log = logging.getLogger("albra.stream")

KEEPALIVE_S = 30 * 60
BACKOFF_S = (0.5, 30.0)


@dataclass(frozen=True)
class StreamEvent:
    """One user data event, the fields the engine acts on (``raw`` keeps Binance's payload)."""

    kind: str  # ORDER_TRADE_UPDATE, ALGO_UPDATE, ACCOUNT_UPDATE, listenKeyExpired, other
    event_ms: int
    symbol: str = ""
    client_id: str = ""
    order_id: str = ""
    status: str = ""  # X: order status / algoStatus
    execution: str = ""  # x: NEW, TRADE, CANCELED, EXPIRED, … (orders only)
    last_qty: Decimal = Decimal(0)
    actual_order_id: str = ""  # ALGO_UPDATE ai (the child order, once TRIGGERED)
    symbols: tuple[str, ...] = ()  # ACCOUNT_UPDATE: symbols whose positions changed
    raw: dict = field(default_factory=dict)


def _dec(x: Any) -> Decimal:
    try:
        return Decimal(str(x)) if x not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def parse_event(msg: dict) -> StreamEvent:
    """A Binance user data payload → :class:`StreamEvent` (unknown kinds kept as ``other``)."""
    kind = str(msg.get("e", ""))
    e_ms = int(msg.get("E") or 0)
    if kind == "ORDER_TRADE_UPDATE":
        o = msg.get("o") or {}
        return StreamEvent(kind, e_ms, str(o.get("s", "")), str(o.get("c", "")), str(o.get("i", "")),
                           str(o.get("X", "")), str(o.get("x", "")), _dec(o.get("l")), raw=msg)
    if kind == "ALGO_UPDATE":
        o = msg.get("o") or {}
        return StreamEvent(kind, e_ms, str(o.get("s", "")), str(o.get("caid", "")), str(o.get("aid", "")),
                           str(o.get("X", "")), actual_order_id=str(o.get("ai") or ""), raw=msg)
    if kind == "ACCOUNT_UPDATE":
        a = msg.get("a") or {}
        syms = tuple(sorted({str(p.get("s")) for p in a.get("P") or [] if p.get("s")}))
        return StreamEvent(kind, e_ms, status=str(a.get("m", "")), symbols=syms, raw=msg)
    if kind == "listenKeyExpired":
        return StreamEvent(kind, e_ms, raw=msg)
    return StreamEvent("other", e_ms, raw=msg)


class UserStream:
    """One account's user data stream. ``start_key()`` returns a listenKey (POST), ``keepalive()`` extends it (PUT),
    ``ws_url(key)`` names the WebSocket; ``on_event`` gets every parsed event in order; ``on_connect`` runs after each
    (re)connect (the REST resync). ``state`` is "down", "connecting" or "up" (a health check reads it)."""

    def __init__(self, start_key: Callable[[], Awaitable[str]], keepalive: Callable[[], Awaitable[Any]],
                 ws_url: Callable[[str], str], on_event: Callable[[StreamEvent], Awaitable[None]],
                 on_connect: Callable[[], Awaitable[None]] | None = None, *, keepalive_s: float = KEEPALIVE_S,
                 backoff_s: tuple[float, float] = BACKOFF_S) -> None:
        self.start_key, self.keepalive, self.ws_url = start_key, keepalive, ws_url
        self.on_event, self.on_connect = on_event, on_connect
        self.keepalive_s, self.backoff_s = keepalive_s, backoff_s
        self.state = "down"
        self.connects = 0
        self.events = 0
        self.last_event_ms = 0
        self.down_since = time.monotonic()
        self.last_error = ""

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, read, keep alive and reconnect until ``stop`` is set."""
        import aiohttp

        delay = self.backoff_s[0]
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                self.state = "connecting"
                try:
                    key = await self.start_key()
                    async with session.ws_connect(self.ws_url(key), heartbeat=60.0) as ws:
                        self.state = "up"
                        self.connects += 1
                        delay = self.backoff_s[0]
                        if self.on_connect is not None:
                            await self.on_connect()
                        await self._read(ws, stop)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - any failure: down, back off, reconnect (and resync)
                    self.last_error = f"{type(e).__name__}: {e}"[:300]
                    log.warning("user stream down: %s", self.last_error)
                if self.state == "up" or self.state == "connecting":
                    self.state = "down"
                    self.down_since = time.monotonic()
                if stop.is_set():
                    break
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, self.backoff_s[1])
        self.state = "down"

    async def _read(self, ws: Any, stop: asyncio.Event) -> None:
        import aiohttp

        next_keepalive = time.monotonic() + self.keepalive_s
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while True:
                timeout = max(0.05, next_keepalive - time.monotonic())
                recv = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({recv, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    recv.cancel()
                    return
                if recv not in done:
                    recv.cancel()
                    await self.keepalive()
                    next_keepalive = time.monotonic() + self.keepalive_s
                    continue
                msg = recv.result()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"stream closed ({msg.type.name})")
                ev = parse_event(json.loads(msg.data))
                self.events += 1
                self.last_event_ms = ev.event_ms or self.last_event_ms
                await self.on_event(ev)
                if ev.kind == "listenKeyExpired":
                    raise ConnectionError("listenKey expired")
        finally:
            stopper.cancel()
