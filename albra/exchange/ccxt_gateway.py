"""The ccxt-backed gateway: live Binance, demo trading, or any local base URL (``albra sim serve``).

Each call goes through ccxt's *implicit* endpoint methods (``fapiPrivatePostOrder`` …): ccxt still builds the
URL, signs, and maps Binance's error codes onto its exception classes, but albra gets the raw JSON and validates
it itself (``binance_parse``), because ccxt's unified parsers turn junk into empty results (facts §2.9). Every
request runs inside :class:`~albra.exchange.resilience.Resilience` (breaker → retry → timeout, weight limiter);
placements use the no-retry placement policy, so a timeout, 5xx or junk reply becomes
:class:`OutcomeUnknown` (resolve with :func:`albra.exchange.resolve.resolve_unknown`).

Order parameters, position-mode rules and rounding: ``order_rules.order_params`` (shared with the paper
gateway).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Awaitable, Callable, Sequence
from decimal import Decimal

from albra.exchange import binance_parse as P
from albra.exchange.fees import value_fees
from albra.exchange.errors import BadSymbol, ExchangeError, MalformedResponse, UnknownOrder
from albra.exchange.order_rules import order_params
from albra.exchange.resilience import CallSink, EventSink, Resilience, WeightLimiter
from albra.exchange.types import Balance, ExchangePosition, IncomeRow, OrderRequest, OrderResult
from albra.model import Candle, Fill, MarginMode, MarketFilters, PositionMode
from albra.timefmt import timeframe_ms

MARGIN_ALREADY_SET = -4046
POSITION_MODE_ALREADY_SET = -4059
LEVERAGE_RANGE = range(1, 126)


class CcxtGateway:
    """:class:`~albra.exchange.types.Gateway` over a configured ccxt ``binanceusdm`` (see ``client.py``)."""

    def __init__(self, account: str, client: Any, *, resilience: Resilience | None = None,
                 on_event: EventSink | None = None, weight_file: str | None = None, asset: str = "USDT",
                 on_call: CallSink | None = None) -> None:
        self.account = account
        self.client = client
        self.asset = asset
        if resilience is None:
            timeout_s = float(getattr(client, "timeout", 10_000)) / 1000 + 2.0
            resilience = Resilience(account, limiter=WeightLimiter(shared_path=weight_file),
                                    attempt_timeout_s=timeout_s, on_event=on_event)
        if on_call is not None:
            resilience.on_call = on_call
        self.resilience = resilience
        self._markets: dict[str, MarketFilters] | None = None
        self._markets_loading: asyncio.Future[dict[str, MarketFilters]] | None = None
        self._time_synced = False

    # -- plumbing ------------------------------------------------------------------------------------------------

    def exchange_now(self) -> int:
        """Exchange time estimated from the local clock and ccxt's last measured time difference."""
        return int(self.client.milliseconds() - self.client.options.get("timeDifference", 0))

    def _headers(self) -> Any:
        return getattr(self.client, "last_response_headers", None)

    async def _resync(self) -> None:
        await self.client.load_time_difference()
        self._time_synced = True

    async def _ensure_time(self) -> None:
        if not self._time_synced:
            await self.resilience.call("time_sync", self._resync, validate=lambda r: r, headers=self._headers)

    async def _call(self, op: str, method: str, params: dict[str, Any], validate: Callable[[Any], Any], *,
                    signed: bool = True, placement: bool = False, client_id: str | None = None,
                    is_algo: bool = False) -> Any:
        if signed:
            await self._ensure_time()
        fn: Callable[[dict], Awaitable[Any]] = getattr(self.client, method)
        return await self.resilience.call(op, lambda: fn(dict(params)), validate=validate, placement=placement,
                                          client_id=client_id, is_algo=is_algo, headers=self._headers,
                                          resync=self._resync if signed else None)

    # -- reads ---------------------------------------------------------------------------------------------------

    async def server_time(self) -> int:
        return await self._call("server_time", "fapiPublicGetTime", {}, P.parse_server_time, signed=False)

    async def load_markets(self, reload: bool = False) -> dict[str, MarketFilters]:
        """The trading perpetuals' filters (exchangeInfo, weight 1 but a large body), loaded once and cached.

        Single flight: callers that arrive while a load is under way (the emergency's concurrent closes and
        cancels, each asking ``filters``) await that same request instead of each sending their own; a ``reload``
        joins a load already in flight (it started after the caller's decision to reload, so it is fresh). A
        failed load fails every waiter and leaves nothing cached, so the next caller tries again."""
        if self._markets is not None and not reload:
            return dict(self._markets)
        if self._markets_loading is None:
            self._markets_loading = asyncio.ensure_future(self._load_markets_once())
            # if every waiter was cancelled, nobody awaits a failure: retrieve it here (no "never retrieved")
            self._markets_loading.add_done_callback(lambda f: f.cancelled() or f.exception())
        # shielded: one waiter cancelled (a timeout around its own work) must not cancel the others' load
        return dict(await asyncio.shield(self._markets_loading))

    async def _load_markets_once(self) -> dict[str, MarketFilters]:
        try:
            markets = await self._call("load_markets", "fapiPublicGetExchangeInfo", {}, P.parse_markets,
                                       signed=False)
            self._markets = markets
            return markets
        finally:
            self._markets_loading = None

    async def filters(self, symbol: str) -> MarketFilters:
        markets = self._markets if self._markets is not None else await self.load_markets()
        try:
            return markets[symbol]
        except KeyError:
            raise BadSymbol(f"{symbol} is not a trading USDⓈ-M perpetual on this exchange "
                            f"(known: {', '.join(sorted(markets)[:10])}{' …' if len(markets) > 10 else ''})") from None

    async def fetch_candles(self, symbol: str, timeframe: str, since: int | None = None,
                            limit: int = 500) -> list[Candle]:
        tf_ms = timeframe_ms(timeframe)
        if not 1 <= limit <= 1500:
            raise ValueError(f"candle limit must be in 1..1500, got {limit}")
        # server time first: a candle closed at that moment was closed when the klines were served
        now = await self.server_time()
        params: dict[str, Any] = {"symbol": symbol, "interval": timeframe, "limit": limit}
        if since is not None:
            params["startTime"] = int(since)
        return await self._call("fetch_candles", "fapiPublicGetKlines", params,
                                lambda raw: P.parse_klines(raw, symbol, tf_ms, now), signed=False)

    async def premium_index(self, symbol: str) -> dict[str, Any]:
        """``GET /fapi/v1/premiumIndex``: mark price and the funding rate announced for ``nextFundingTime``."""
        return await self._call("premium_index", "fapiPublicGetPremiumIndex", {"symbol": symbol}, _premium,
                                signed=False)

    async def fetch_balance(self) -> Balance:
        return await self._call("fetch_balance", "fapiPrivateV3GetAccount", {},
                                lambda raw: P.parse_balance(raw, self.asset, self.exchange_now()))

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[ExchangePosition]:
        params = {"symbol": symbols[0]} if symbols is not None and len(symbols) == 1 else {}
        return await self._call("fetch_positions", "fapiPrivateV3GetPositionRisk", params,
                                lambda raw: P.parse_positions(raw, symbols))

    async def fetch_position_mode(self) -> PositionMode:
        dual = await self._call("fetch_position_mode", "fapiPrivateGetPositionSideDual", {}, P.parse_dual_side)
        return PositionMode.HEDGE if dual else PositionMode.ONE_WAY

    async def fetch_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        try:
            if is_algo:
                return await self._call("fetch_order", "fapiPrivateGetAlgoOrder", {"clientAlgoId": client_id},
                                        lambda raw: _expect_client_id(P.parse_algo(raw), client_id))
            return await self._call("fetch_order", "fapiPrivateGetOrder",
                                    {"symbol": symbol, "origClientOrderId": client_id},
                                    lambda raw: _expect_client_id(P.parse_order(raw), client_id))
        except UnknownOrder:
            return None

    async def fetch_open_orders(self, symbol: str | None = None, algo: bool = False) -> list[OrderResult]:
        params = {"symbol": symbol} if symbol else {}
        if algo:
            return await self._call("fetch_open_algo_orders", "fapiPrivateGetOpenAlgoOrders", params,
                                    lambda raw: [P.parse_algo(r, "openAlgoOrders[]")
                                                 for r in P.need_list(raw, "openAlgoOrders")])
        return await self._call("fetch_open_orders", "fapiPrivateGetOpenOrders", params,
                                lambda raw: [P.parse_order(r, "openOrders[]") for r in P.need_list(raw, "openOrders")])

    async def fetch_trades(self, symbol: str, since: int | None = None, limit: int = 1000) -> list[Fill]:
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if since is not None:
            params["startTime"] = int(since)
        fills = await self._call("fetch_trades", "fapiPrivateGetUserTrades", params,
                                 lambda raw: P.parse_trades(raw, symbol))
        return await value_fees(self.fetch_candles, fills)  # BNB fees valued at the fill's minute

    async def fetch_income(self, since: int | None = None, income_type: str | None = None,
                           limit: int = 1000) -> list[IncomeRow]:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["startTime"] = int(since)
        if income_type is not None:
            params["incomeType"] = income_type
        return await self._call("fetch_income", "fapiPrivateGetIncome", params, P.parse_income)

    # -- set-up --------------------------------------------------------------------------------------------------

    async def set_position_mode(self, mode: PositionMode) -> None:
        dual = "true" if PositionMode(mode) is PositionMode.HEDGE else "false"
        try:
            await self._call("set_position_mode", "fapiPrivatePostPositionSideDual", {"dualSidePosition": dual},
                             _ack)
        except ExchangeError as e:
            if e.code != POSITION_MODE_ALREADY_SET:
                raise

    async def setup_symbol(self, symbol: str, leverage: int, margin_mode: MarginMode) -> None:
        if leverage not in LEVERAGE_RANGE:
            raise ValueError(f"leverage for {symbol} must be 1..125, got {leverage}")
        await self.filters(symbol)
        margin = "ISOLATED" if MarginMode(margin_mode) is MarginMode.ISOLATED else "CROSSED"
        try:
            await self._call("set_margin_mode", "fapiPrivatePostMarginType",
                             {"symbol": symbol, "marginType": margin}, _ack)
        except ExchangeError as e:
            if e.code != MARGIN_ALREADY_SET:
                raise

        def check_leverage(raw: Any) -> None:
            row = P.need_dict(raw, "leverage")
            got = P.req_int(row, "leverage", "leverage")
            if got != leverage:
                raise MalformedResponse(f"leverage: asked {leverage} for {symbol}, exchange says {got}")

        await self._call("set_leverage", "fapiPrivatePostLeverage", {"symbol": symbol, "leverage": leverage},
                         check_leverage)

    # -- orders --------------------------------------------------------------------------------------------------

    async def build_params(self, req: OrderRequest) -> dict[str, Any]:
        """The exact request parameters for ``req`` (see ``order_rules.order_params``)."""
        return order_params(req, await self.filters(req.symbol))

    async def place_order(self, req: OrderRequest) -> OrderResult:
        params = await self.build_params(req)
        if req.is_algo:
            return await self._call("place_algo_order", "fapiPrivatePostAlgoOrder", params,
                                    lambda raw: _expect_client_id(P.parse_algo(raw), req.client_id),
                                    placement=True, client_id=req.client_id, is_algo=True)
        return await self._call("place_order", "fapiPrivatePostOrder", params,
                                lambda raw: _expect_client_id(P.parse_order(raw), req.client_id),
                                placement=True, client_id=req.client_id, is_algo=False)

    async def cancel_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        try:
            if not is_algo:
                return await self._call("cancel_order", "fapiPrivateDeleteOrder",
                                        {"symbol": symbol, "origClientOrderId": client_id},
                                        lambda raw: _expect_client_id(P.parse_order(raw), client_id))

            def check(raw: Any) -> None:
                row = P.need_dict(raw, "cancel algoOrder")
                if row.get("algoId") is None and row.get("clientAlgoId") is None:
                    raise MalformedResponse(f"cancel algoOrder {client_id}: reply without algoId: {repr(row)[:120]}")

            await self._call("cancel_algo_order", "fapiPrivateDeleteAlgoOrder", {"clientAlgoId": client_id}, check)
        except UnknownOrder:
            return None
        # the algo cancel reply is only an acknowledgement: read the order back for its final state
        return await self.fetch_order(symbol, client_id, is_algo=True)

    async def cancel_all(self, symbol: str, kinds: str = "both") -> None:
        if kinds not in ("both", "regular", "algo"):
            raise ValueError(f"kinds must be both, regular or algo, got {kinds!r}")
        await self.filters(symbol)
        if kinds in ("both", "regular"):
            await self._call("cancel_all_orders", "fapiPrivateDeleteAllOpenOrders", {"symbol": symbol}, _ack)
        if kinds in ("both", "algo"):
            await self._call("cancel_all_algo_orders", "fapiPrivateDeleteAlgoOpenOrders", {"symbol": symbol}, _ack)

    # -- user data stream (albra.exchange.user_stream) -----------------------------------------------------------

    async def start_user_stream(self) -> str:
        """``POST /fapi/v1/listenKey``: the account's listenKey (the active one, extended, if there is one)."""
        return await self._call("listen_key", "fapiPrivatePostListenKey", {}, _listen_key, signed=False)

    async def keepalive_user_stream(self) -> None:
        """``PUT /fapi/v1/listenKey``: extend the key 60 minutes (-1125 when it lapsed: the stream reconnects)."""
        await self._call("listen_key_keepalive", "fapiPrivatePutListenKey", {}, _listen_key, signed=False)

    def user_stream_url(self, key: str) -> str:
        """The WebSocket of ``key``: Binance's private stream host for Binance's API, else the same host as the
        REST API (``albra sim serve`` serves ``/ws/<listenKey>`` on its own port)."""
        rest = str(self.client.urls["api"].get("fapiPrivate") or "")
        origin = re.match(r"^(https?)://([^/]+)", rest)
        if origin is None:
            raise ValueError(f"cannot derive the user stream URL from {rest!r}")
        scheme, host = origin.groups()
        if host == "fapi.binance.com":
            return f"wss://fstream.binance.com/private/ws/{key}"
        if host == "demo-fapi.binance.com":  # demo trading's futures stream host (ccxt.pro's urls['demo'])
            return f"wss://fstream.binancefuture.com/ws/{key}"
        return f"{'wss' if scheme == 'https' else 'ws'}://{host}/ws/{key}"

    async def close(self) -> None:
        await self.client.close()


def _premium(raw: Any) -> dict[str, Any]:
    row = P.need_dict(raw, "premium index")
    try:
        int(row["nextFundingTime"])
        Decimal(str(row["lastFundingRate"]))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        raise MalformedResponse(f"premium index: unexpected answer {repr(row)[:120]}") from None
    return row


def _ack(raw: Any) -> None:
    """A ``{"code":200,"msg":...}`` style acknowledgement (or any JSON object without an error code)."""
    row = P.need_dict(raw, "acknowledgement")
    code = row.get("code")
    if code is not None and str(code) not in ("200", "0"):
        raise MalformedResponse(f"acknowledgement with code {code!r}: {repr(row)[:120]}")


def _expect_client_id(res: OrderResult, client_id: str) -> OrderResult:
    if res.client_id != client_id:
        raise MalformedResponse(f"asked for order {client_id}, exchange answered with {res.client_id}")
    return res


def _listen_key(raw: Any) -> str:
    """The listenKey of a listenKey answer; anything else is malformed (never an empty key)."""
    key = raw.get("listenKey") if isinstance(raw, dict) else None
    if not isinstance(key, str) or not key:
        raise MalformedResponse(f"listenKey answer without a key: {str(raw)[:200]}")
    return key
