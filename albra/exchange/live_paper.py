"""Paper trading on the live market (``mode = "paper"``, ``paper_feed = "live"``; freqtrade's dry-run).

Orders, positions, balances, fills, stops and funding live in the in-process simulated exchange, exactly as for a
replay-fed paper account; what differs is where the market comes from:

* **Prices** — Binance's public kline stream (``<ws>/ws/<symbol>@kline_<interval>``: the forming candle every
  250 ms) moves the simulated exchange along the live price path: a new candle opens at its open price (a gap, as on
  the exchange: funding times in between are settled), and each update walks to the candle's new high and/or low
  first (so a stop between them triggers, as it would have on Binance), then to the last price. While the stream is
  down (or before it is up), each turn polls the same candle by REST instead, so a dead stream costs resolution,
  never protection.
* **Candles for the strategies** and **exchange time** — the public REST API, as a live account reads them.
* **Funding** — the rate Binance announces (``GET /fapi/v1/premiumIndex``: ``lastFundingRate`` for
  ``nextFundingTime``), read before each funding time; a funding time passed without a known rate pays nothing and is
  journaled by the exchange (``funding_missing``), never a default.

A restart builds the exchange afresh (it lives in the process), so like a replay account the runner starts a new
paper session (ADR 0006). Market data goes to Binance (or ``base_url``: the local server in tests); nothing is signed.
ADR 0017.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from typing import Any, Callable

from albra.exchange.paper import PaperGateway
from albra.model import Candle
from albra.timefmt import timeframe_ms

log = logging.getLogger("albra.exchange.live_paper")

FUNDING_INTERVAL_MS = 8 * 3_600_000
#: the stream counts as down when no update arrived for this long (Binance pushes every 250 ms)
STALE_S = 5.0
#: read the announced funding rate when a funding time is this close, and again at most this often until it passes
#: (the announced rate moves until settlement: the last read before the funding time is the one settled)
FUNDING_LOOKAHEAD_MS = 15 * 60_000
FUNDING_REREAD_S = 30.0


class LiveFeed:
    """Live candles of some symbols → the simulated exchange's price path (stream, with a REST fallback)."""

    def __init__(self, ex: Any, market: Any, symbols: list[str], interval: str,
                 ws_url: Callable[[str, str], str]) -> None:
        self.ex = ex
        self.market = market  # a CcxtGateway on the public API (candles, time, premium index)
        self.symbols = list(symbols)
        self.interval = interval
        self.ws_url = ws_url
        self.state: dict[str, str] = {s: "down" for s in self.symbols}
        self.last_update: dict[str, float] = {}
        self.updates = 0
        self._open: dict[str, int] = {}
        self._hl: dict[str, tuple[float, float]] = {}
        self._funding_read: dict[tuple[str, int], float] = {}  # (symbol, funding time) → monotonic time read
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # -- applying a candle update (stream or REST) ---------------------------------------------------------------

    async def apply(self, symbol: str, open_ms: int, o: float, h: float, lo: float, c: float, at_ms: int) -> None:
        """One update of ``symbol``'s forming (or just closed) candle, observed at exchange time ``at_ms``."""
        ex = self.ex
        if at_ms > ex.now:
            ex.set_time(at_ms)
        prev = self._open.get(symbol)
        if prev is not None and open_ms < prev:
            return  # a late update of an older candle: the path has moved on
        if prev is None or open_ms > prev:
            ex.open_at(symbol, open_ms, o)  # settles a funding time passed since, at the rate read before it
            self._open[symbol] = open_ms
            self._hl[symbol] = (o, o)
        hi, low = self._hl[symbol]
        if h > hi and lo < low:  # both extended since the last update: visit the nearer one first
            last = float(ex.last_price(symbol))
            order = (h, lo) if abs(h - last) <= abs(last - lo) else (lo, h)
            for p in order:
                ex.move(symbol, p)
        elif h > hi:
            ex.move(symbol, h)
        elif lo < low:
            ex.move(symbol, lo)
        ex.move(symbol, c)
        self._hl[symbol] = (max(hi, h), min(low, lo))
        self.updates += 1
        self.last_update[symbol] = time.monotonic()

    async def read_funding(self, symbol: str) -> None:
        """The rate Binance announces for the next funding time (premium index), recorded in the exchange."""
        from albra.exchange.errors import ExchangeError

        try:
            row = await self.market.premium_index(symbol)
        except ExchangeError as e:
            log.warning("premium index %s: %s", symbol, e)
            return
        t, rate = int(row["nextFundingTime"]), Decimal(str(row["lastFundingRate"]))
        self.ex.add_funding(symbol, t, rate)
        self._funding_read[(symbol, t)] = time.monotonic()

    # -- REST fallback -------------------------------------------------------------------------------------------

    def stale(self, symbol: str) -> bool:
        seen = self.last_update.get(symbol)
        return self.state.get(symbol) != "up" or seen is None or time.monotonic() - seen > STALE_S

    async def poll(self, now_ms: int) -> None:
        """Bring every symbol's price path up to exchange time ``now_ms`` before the engine acts on it: a symbol
        whose stream is silent, or has not delivered the candle ``now_ms`` falls in yet (the stream lags a candle
        close by up to its push interval; after a disconnect by much more), walks the candles it missed by REST,
        oldest first, so a stop that the market crossed meanwhile triggers before any decision. Also reads the
        announced funding rate when a funding time is near."""
        step = timeframe_ms(self.interval)
        for s in self.symbols:
            nxt = (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
            read = self._funding_read.get((s, nxt))
            if nxt - now_ms <= FUNDING_LOOKAHEAD_MS and (read is None or time.monotonic() - read > FUNDING_REREAD_S):
                await self.read_funding(s)
            last = self._open.get(s)
            behind = last is None or last + step <= now_ms
            if not behind and not self.stale(s):
                continue
            since = None if last is None else last
            rows = await self.market.fetch_candles(s, self.interval, since=since, limit=1500 if since else 2)
            for k in rows:
                await self.apply(s, k.ts, k.open, k.high, k.low, k.close, min(k.ts + step - 1, now_ms))

    # -- the stream ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(s)) for s in self.symbols]

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks = []

    async def _run(self, symbol: str) -> None:
        import aiohttp

        delay = 0.5
        async with aiohttp.ClientSession() as session:
            while not self._stop.is_set():
                try:
                    async with session.ws_connect(self.ws_url(symbol, self.interval), heartbeat=30.0) as ws:
                        self.state[symbol] = "up"
                        delay = 0.5
                        async for msg in ws:
                            if msg.type != aiohttp.WSMsgType.TEXT:
                                break
                            await self._on_message(symbol, msg.data)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - any failure: down, back off, reconnect
                    log.warning("kline stream %s down: %s", symbol, e)
                self.state[symbol] = "down"
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, 30.0)

    async def _on_message(self, symbol: str, data: str) -> None:
        try:
            ev = json.loads(data)
            k = ev["k"]
            vals = (int(k["t"]), float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), int(ev["E"]))
        except (ValueError, KeyError, TypeError):
            log.warning("kline stream %s: unreadable message %.120s", symbol, data)
            return
        if k.get("s", symbol) != symbol:
            return
        t, o, h, lo, c, at = vals
        await self.apply(symbol, t, o, h, lo, c, at)


class LivePaperGateway(PaperGateway):
    """A paper account's gateway whose market is live: orders to the in-process exchange, candles and time from the
    public API, prices from :class:`LiveFeed`."""

    #: the in-process exchange is read without a network: sync fired stops every turn, not every minute
    sync_every_s = 1.0

    def __init__(self, account: str, exchange: Any, market: Any, feed: LiveFeed) -> None:
        super().__init__(account, exchange)
        self.market = market
        self.feed = feed
        self.funding_sources = {s: "live: rate announced by the exchange (premiumIndex) before each funding time"
                                for s in feed.symbols}

    async def server_time(self) -> int:
        """Exchange time from the public API; the first call starts the stream, and every call lets the REST
        fallback move prices whose stream is silent."""
        now = await self.market.server_time()
        self.feed.start()
        await self.feed.poll(now)  # the price path up to `now` first: nothing acts on a stale price
        if now > self.ex.now:
            self.ex.set_time(now)
        return int(self.ex.now)

    async def fetch_candles(self, symbol: str, timeframe: str, since: int | None = None,
                            limit: int = 500) -> list[Candle]:
        return await self.market.fetch_candles(symbol, timeframe, since, limit)

    async def close(self) -> None:
        await self.feed.stop()
        await self.market.close()


def kline_ws_url(base_url: str | None) -> Callable[[str, str], str]:
    """``<ws origin>/ws/<symbol>@kline_<interval>``: Binance's market stream host, or the base_url's own host (the
    local server serves kline streams on its port)."""
    from albra.exchange.client import LIVE, WS_ORIGIN

    if base_url:
        origin = base_url.split("://", 1)
        host = origin[1].split("/", 1)[0]
        ws = ("wss" if origin[0] == "https" else "ws") + "://" + host
    else:
        ws = WS_ORIGIN[LIVE]
    return lambda symbol, interval: f"{ws}/ws/{symbol.lower()}@kline_{interval}"


def live_paper_gateway(account: str, settings: Any, *, test_mode: bool = False) -> LivePaperGateway:
    """The gateway of a ``paper_feed = "live"`` account: a fresh simulated exchange (``paper_balance``, position
    mode), the public market of Binance or ``base_url``, and the kline feed on the finest interval its strategies
    use."""
    from albra.exchange.ccxt_gateway import CcxtGateway
    from albra.exchange.client import LIVE, make_ccxt_client
    from albra.model import PositionMode
    from albra.sim.exchange import SimExchange
    from albra.sim.markets import DEFAULT_MARKETS, unknown_symbol_message
    from albra.sim.realism import Realism

    symbols = settings.symbols() if hasattr(settings, "symbols") else []
    if not symbols:
        raise ValueError(f"account {account} has no enabled strategy with a symbol")
    for s in symbols:
        if s not in DEFAULT_MARKETS:
            raise ValueError(f"account {account}: {unknown_symbol_message(s)}")
    tfs = [st.timeframe for st in getattr(settings, "strategies", []) if getattr(st, "enabled", True)] or ["1m"]
    interval = min(tfs, key=timeframe_ms)
    base_url = getattr(settings, "base_url", None)
    market = CcxtGateway(f"{account}-market", make_ccxt_client(LIVE, None, None, base_url=base_url,
                                                               test_mode=test_mode))
    ex = SimExchange({s: DEFAULT_MARKETS[s] for s in symbols}, now_ms=0,
                     realism=Realism.replay(), default_funding_rate=None)
    hedge = PositionMode(getattr(settings, "position_mode", PositionMode.ONE_WAY)) is PositionMode.HEDGE
    ex.add_account(account, Decimal(str(getattr(settings, "paper_balance", "10000"))),
                   PositionMode.HEDGE if hedge else PositionMode.ONE_WAY)
    feed = LiveFeed(ex, market, symbols, interval, kline_ws_url(base_url))
    return LivePaperGateway(account, ex, market, feed)
