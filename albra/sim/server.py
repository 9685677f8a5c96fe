"""The local Binance USDⓈ-M REST server in front of the simulated exchange (``albra sim serve``).

Speaks enough of the protocol for unmodified ccxt ``binanceusdm`` (4.5.90): the routes of the
facts file §2.2 plus income, ticker/price and premiumIndex. Signed routes check X-MBX-APIKEY,
the HMAC-SHA256 over the raw query/body and the timestamp window; rejections are Binance's
``{"code", "msg"}`` with Binance's HTTP status. Unknown routes answer 404 -5000 and are recorded.
Every answer carries ``X-MBX-USED-WEIGHT-1M``. The admin API lives under ``/_sim/`` (see
:mod:`albra.sim.admin`), loopback only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from albra.sim import payloads as P
from albra.sim.errors import SimError
from albra.sim.exchange import SimExchange
from albra.sim.faults import FaultTable
from albra.sim.feed import MarketReplay, SimClock
from albra.sim.limits import FUNDING_PATHS, FundingMeter, OrderRateMeter, TimestampCheck, WeightMeter, request_weight
from albra.sim.stream import StreamHub, add_stream_routes
from albra.timefmt import TIMEFRAME_MS

Handler = Callable[[dict[str, str], str | None, int], Any]

#: routes that place orders (counted by the order-rate limits)
ORDER_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder", "/fapi/v1/batchOrders")


@dataclass(frozen=True)
class ApiKey:
    account: str
    key: str
    secret: str


def _dec(params: dict[str, str], name: str, required: bool = False) -> Decimal | None:
    v = params.get(name)
    if v is None or v == "":
        if required:
            raise SimError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return None
    try:
        d = Decimal(v)
    except InvalidOperation:
        raise SimError(-1102, f"Parameter '{name}' was malformed: {v!r}.") from None
    if not d.is_finite():
        raise SimError(-1102, f"Parameter '{name}' was malformed: {v!r}.")
    return d


def _int(params: dict[str, str], name: str, default: int | None = None, required: bool = False) -> int | None:
    v = params.get(name)
    if v is None or v == "":
        if required:
            raise SimError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return default
    try:
        return int(v)
    except ValueError:
        raise SimError(-1102, f"Parameter '{name}' was malformed: {v!r}.") from None


def _bool(params: dict[str, str], name: str) -> bool | None:
    v = params.get(name)
    if v is None:
        return None
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise SimError(-1102, f"Parameter '{name}' was malformed: {v!r}.")


def _sym(params: dict[str, str], required: bool = True) -> str | None:
    s = params.get("symbol")
    if not s:
        if required:
            raise SimError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        return None
    return s


class SimServer:
    """State and request handling of one local Binance server (any number of accounts)."""

    def __init__(self, exchange: SimExchange, replay: MarketReplay, clock: SimClock, keys: list[ApiKey],
                 weight_limit: int = 2400) -> None:
        self.ex = exchange
        self.replay = replay
        self.clock = clock
        self.keys = {k.key: k for k in keys}
        for k in keys:
            exchange.account(k.account)
        self.faults = FaultTable()
        self.weights = WeightMeter(limit=weight_limit)
        self.funding_meter = FundingMeter()
        self.ts_check = TimestampCheck()
        self.requests: deque[dict] = deque(maxlen=20_000)
        self.unknown: list[dict] = []
        self.orders_meter = OrderRateMeter()
        self.routes: dict[tuple[str, str], tuple[Handler, bool | str]] = {}
        self.hub = StreamHub(self)
        self._late: set[asyncio.TimerHandle] = set()
        self._register()

    # ------------------------------------------------------------------ plumbing
    def now(self) -> int:
        now = self.clock.now_ms()
        self.replay.sync(now)
        return now

    def app(self) -> web.Application:
        from albra.sim.admin import add_admin_routes

        app = web.Application(client_max_size=1 << 20)
        add_admin_routes(app, self)
        add_stream_routes(app, self.hub)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self.hub.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        for h in list(self._late):
            h.cancel()
        await self.hub.stop()

    def _json(self, body: Any, status: int = 200, weight: int | None = None,
              extra: dict[str, str] | None = None) -> web.Response:
        headers = {} if weight is None else {"X-MBX-USED-WEIGHT-1M": str(weight)}
        if extra:
            headers.update(extra)
        return web.Response(text=json.dumps(body), status=status, content_type="application/json", headers=headers)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        raw = request.query_string if method in ("GET", "DELETE") else (await request.text())
        try:
            params = dict(parse_qsl(raw, keep_blank_values=True))
        except ValueError:
            params = {}
        ip = request.remote or "?"
        entry = {"time": self.clock.now_ms(), "wall": time.time(), "method": method, "path": path,
                 "query": raw[:500], "ip": ip, "status": None, "code": None}
        self.requests.append(entry)
        route = self.routes.get((method, path))
        used, refuse = self.weights.charge(ip, request_weight(method, path, params), self.clock.now_ms())
        if route is None:
            entry["status"], entry["code"] = 404, -5000
            self.unknown.append(entry)
            return self._json({"code": -5000, "msg": f"Path {method} {path} is not served by the albra simulated exchange."},
                              404, used)
        if refuse is None and path in FUNDING_PATHS and not self.funding_meter.charge(ip):
            refuse = 429
        if refuse is not None:
            entry["status"], entry["code"] = refuse, -1003
            msg = ("Way too many requests; IP banned." if refuse == 418 else
                   "Too many requests; current limit of IP is exceeded. Please use the websocket for live updates.")
            return self._json({"code": -1003, "msg": msg}, refuse, used)
        fault = self.faults.take(method, path)
        if fault is not None:
            entry["fault"] = fault.id
            if fault.delay_ms and fault.action != "commit_lose":
                await asyncio.sleep(fault.delay_ms / 1000)
            if fault.action == "status":
                entry["status"] = fault.status
                return web.Response(text=fault.body, status=fault.status, content_type=fault.content_type,
                                    headers={"X-MBX-USED-WEIGHT-1M": str(used), **fault.headers})
            if fault.action == "drop":
                entry["status"] = "dropped"
                return self._drop(request)
        handler, signed = route
        order_counts: dict[str, str] | None = None
        if method == "POST" and path in ORDER_PATHS:
            acct = self.keys.get(request.headers.get("X-MBX-APIKEY", ""))
            if acct is not None and self.ex.realism.order_rate_limits:
                order_counts, over = self.orders_meter.charge(acct.account)
                if over is not None:
                    entry["status"], entry["code"] = 429, -1015
                    return self._json({"code": -1015, "msg": f"Too many new orders; current limit is {over}."},
                                      429, used, order_counts)
        if fault is not None and fault.action == "backend_timeout":
            return self._backend_timeout(fault, handler, signed, request, raw, params, entry, used)
        status, body = self._handle(handler, signed, request, raw, params, entry)
        if fault is not None and fault.action == "commit_lose":
            entry["status"] = f"lost ({status})"
            if fault.lose == "timeout":
                await asyncio.sleep((fault.delay_ms or 5000) / 1000)
            return self._drop(request)
        return self._json(body, status, used, order_counts)

    def _backend_timeout(self, fault: Any, handler: Handler, signed: bool | str, request: web.Request, raw: str,
                         params: dict[str, str], entry: dict, used: int) -> web.Response:
        """Binance's -1007: "Timeout waiting for response from backend server. Send status unknown; execution
        status unknown." The request is executed now (``execute: true``), never (``false``), either
        (``null``: seeded coin) or ``execute_after_ms`` later — the order that turns up after its sender gave
        up. The answer is the -1007 error either way (HTTP 408)."""
        execute = fault.execute
        if execute is None:
            execute = self.faults.rng.random() < 0.5
        note = "not executed"
        if fault.execute_after_ms:
            try:
                account = self._auth(request, raw, params) if signed else None
            except SimError as e:
                entry["status"], entry["code"] = e.http_status, e.code
                return self._json(e.payload(), e.http_status, used)

            def late() -> None:
                try:
                    handler(params, account, self.now())
                    self.requests.append({**entry, "status": "late executed", "time": self.clock.now_ms()})
                except SimError as e:
                    self.requests.append({**entry, "status": "late rejected", "code": e.code})
            h = asyncio.get_running_loop().call_later(fault.execute_after_ms / 1000, late)
            self._late.add(h)
            note = f"executes in {fault.execute_after_ms} ms"
        elif execute:
            status, _ = self._handle(handler, signed, request, raw, params, entry)
            note = f"executed ({status})"
        entry["status"], entry["code"] = f"-1007 ({note})", -1007
        return self._json({"code": -1007, "msg": "Timeout waiting for response from backend server. Send status "
                                                 "unknown; execution status unknown."}, 408, used)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        """Close the socket without answering (the client sees a disconnect)."""
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError()

    def _handle(self, handler: Handler, signed: bool, request: web.Request, raw: str, params: dict[str, str],
                entry: dict) -> tuple[int, Any]:
        try:
            if signed == "key":
                account = self._api_key(request)
            else:
                account = self._auth(request, raw, params) if signed else None
            entry["account"] = account
            body = handler(params, account, self.now())
            entry["status"] = 200
            return 200, body
        except SimError as e:
            entry["status"], entry["code"] = e.http_status, e.code
            return e.http_status, e.payload()

    def _api_key(self, request: web.Request) -> str:
        """USER_STREAM security: the API key header, no signature (User Data Streams)."""
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise SimError(-2014, "API-key format invalid.", 401)
        k = self.keys.get(key)
        if k is None:
            raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return k.account

    def _auth(self, request: web.Request, raw: str, params: dict[str, str]) -> str:
        self._api_key(request)  # -2014 / -2015 first, as for USER_STREAM routes
        k = self.keys[request.headers["X-MBX-APIKEY"]]
        if "&signature=" not in "&" + raw:
            raise SimError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        payload, sig = ("&" + raw).rsplit("&signature=", 1)
        payload = payload[1:]
        want = hmac.new(k.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.split("&", 1)[0]):
            raise SimError(-1022, "Signature for this request is not valid.")
        ts = _int(params, "timestamp", required=True)
        rw = _int(params, "recvWindow", default=5000)
        if rw is None or rw <= 0 or rw > 60_000:
            raise SimError(-1131, "recvWindow must be less than 60000")
        if not self.ts_check.ok(ts, rw, self.clock.now_ms()):
            raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return k.account

    # ------------------------------------------------------------------ routes
    def _register(self) -> None:
        r = self.routes
        pub = [("GET", "/fapi/v1/ping", self.ping), ("GET", "/fapi/v1/time", self.time),
               ("GET", "/fapi/v1/exchangeInfo", self.exchange_info), ("GET", "/fapi/v1/klines", self.klines),
               ("GET", "/fapi/v1/markPriceKlines", self.mark_klines), ("GET", "/fapi/v1/fundingRate", self.funding_rate),
               ("GET", "/fapi/v1/ticker/price", self.ticker), ("GET", "/fapi/v2/ticker/price", self.ticker),
               ("GET", "/fapi/v1/premiumIndex", self.premium)]
        priv = [("GET", "/fapi/v3/account", self.account), ("GET", "/fapi/v3/positionRisk", self.position_risk_v3),
                ("GET", "/fapi/v2/positionRisk", self.position_risk),
                ("GET", "/fapi/v1/leverageBracket", self.leverage_bracket),
                ("POST", "/fapi/v1/leverage", self.leverage), ("POST", "/fapi/v1/marginType", self.margin_type),
                ("GET", "/fapi/v1/positionSide/dual", self.get_dual), ("POST", "/fapi/v1/positionSide/dual", self.set_dual),
                ("GET", "/fapi/v1/feeBurn", self.get_fee_burn), ("POST", "/fapi/v1/feeBurn", self.set_fee_burn),
                ("POST", "/fapi/v1/order", self.new_order), ("GET", "/fapi/v1/order", self.get_order),
                ("DELETE", "/fapi/v1/order", self.cancel_order), ("GET", "/fapi/v1/openOrders", self.open_orders),
                ("DELETE", "/fapi/v1/allOpenOrders", self.cancel_all),
                ("POST", "/fapi/v1/algoOrder", self.new_algo), ("GET", "/fapi/v1/algoOrder", self.get_algo),
                ("DELETE", "/fapi/v1/algoOrder", self.cancel_algo),
                ("GET", "/fapi/v1/openAlgoOrders", self.open_algos),
                ("DELETE", "/fapi/v1/algoOpenOrders", self.cancel_all_algos),
                ("GET", "/fapi/v1/userTrades", self.user_trades), ("GET", "/fapi/v1/income", self.income)]
        for m, p, h in pub:
            r[(m, p)] = (h, False)
        for m, p, h in priv:
            r[(m, p)] = (h, True)
        for m, h in (("POST", self.hub.post_key), ("PUT", self.hub.put_key), ("DELETE", self.hub.delete_key)):
            r[(m, "/fapi/v1/listenKey")] = (h, "key")

    def ping(self, params, account, now):
        return {}

    def time(self, params, account, now):
        self.ts_check.served(now)
        return {"serverTime": now}

    def exchange_info(self, params, account, now):
        return P.exchange_info(self.ex, now)

    def klines(self, params, account, now):
        sym = _sym(params)
        fee_asset = sym.endswith("USDT") and sym[:-4] in self.ex.asset_prices  # flat klines at the set price
        if sym not in self.replay.series and not fee_asset:
            self.ex.spec(sym)
            raise SimError(-1121, f"Invalid symbol. (no candle data for {sym})")
        interval = params.get("interval", "")
        if interval not in TIMEFRAME_MS:
            raise SimError(-1120, "Invalid interval.")
        limit = _int(params, "limit", 500)
        if limit is None or limit < 1 or limit > 1500:
            raise SimError(-1130, "Data sent for parameter 'limit' is not valid.")
        try:
            return self.replay.klines(sym, interval, now, limit, _int(params, "startTime"), _int(params, "endTime"))
        except ValueError as e:
            raise SimError(-1120, f"Invalid interval. ({e})") from None

    def mark_klines(self, params, account, now):
        """Mark-price klines: the simulation's mark is its last price (README), so the rows are the klines' prices
        with Binance's mark-kline shape (volume fields "0")."""
        return [[r[0], r[1], r[2], r[3], r[4], "0", r[6], "0", 0, "0", "0", "0"]
                for r in self.klines(params, account, now)]

    def funding_rate(self, params, account, now):
        """Funding rate history from the server's funding files (never the default rate it settles unknown slots
        with): Binance's paging (startTime/endTime inclusive, limit default 100, max 1000; neither time given: the
        most recent ones), only rows whose funding time has passed on the exchange clock."""
        from albra.sim.exchange import FUNDING_INTERVAL_MS

        sym = _sym(params)
        self.ex.spec(sym)
        limit = _int(params, "limit", 100)
        if limit is None or limit < 1 or limit > 1000:
            raise SimError(-1130, "Data sent for parameter 'limit' is not valid.")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        st = self.ex._sym(sym)
        times = sorted(slot * FUNDING_INTERVAL_MS for slot in st.funding)
        times = [t for t in times if t <= now and (end is None or t <= end) and (start is None or t >= start)]
        times = times[:limit] if start is not None else times[-(limit if "limit" in params else 200):]
        series = self.replay.series.get(sym)
        rows = []
        for t in times:
            row = {"symbol": sym, "fundingRate": P.num(st.funding[t // FUNDING_INTERVAL_MS]), "fundingTime": t}
            if series is not None:
                try:
                    row["markPrice"] = f"{float(series.open[series.index_of(t)]):.8f}"
                except KeyError:
                    pass
            rows.append(row)
        return rows

    def _price_rows(self, params, now, make):
        sym = _sym(params, required=False)
        syms = [sym] if sym else [s for s in self.ex.markets if self.ex.has_price(s)]
        rows = []
        for s in syms:
            self.ex.spec(s)
            if not self.ex.has_price(s):
                raise SimError(-1121, f"Invalid symbol. (no price for {s} at this time)")
            rows.append(make(s))
        return rows[0] if sym else rows

    def ticker(self, params, account, now):
        return self._price_rows(params, now, lambda s: {"symbol": s, "price": P.num(self.ex.last_price(s)), "time": now})

    def premium(self, params, account, now):
        nxt = (now // 28_800_000 + 1) * 28_800_000

        def row(s):
            st = self.ex._sym(s)
            rate = st.funding.get(nxt // 28_800_000, self.ex.default_funding_rate or Decimal(0))
            m = P.num(self.ex.mark_price(s))
            return {"symbol": s, "markPrice": m, "indexPrice": m, "estimatedSettlePrice": m,
                    "lastFundingRate": P.num(rate), "interestRate": "0.00010000", "nextFundingTime": nxt, "time": now}
        return self._price_rows(params, now, row)

    def account(self, params, account, now):
        return P.account(self.ex, self.ex.account(account), now)

    def _positions(self, params, account, row):
        acct = self.ex.account(account)
        sym = _sym(params, required=False)
        if sym:
            self.ex.spec(sym)
        return [row(self.ex, acct, p) for p in acct.live_positions(sym)]

    def position_risk(self, params, account, now):
        return self._positions(params, account, P.position_row)

    def position_risk_v3(self, params, account, now):
        return self._positions(params, account, P.position_row_v3)

    def leverage_bracket(self, params, account, now):
        rows = P.brackets(self.ex)
        sym = _sym(params, required=False)
        if sym:
            self.ex.spec(sym)
            return [r for r in rows if r["symbol"] == sym]
        return rows

    def leverage(self, params, account, now):
        sym = _sym(params)
        lev = _int(params, "leverage", required=True)
        out = self.ex.set_leverage(account, sym, lev)
        return {"symbol": sym, "leverage": lev, "maxNotionalValue": str(int(out["maxNotionalValue"]))}

    def margin_type(self, params, account, now):
        sym = _sym(params)
        mt = params.get("marginType", "").upper()
        if mt not in ("ISOLATED", "CROSSED", "CROSS"):
            raise SimError(-1102, "Parameter 'marginType' must be ISOLATED or CROSSED.")
        self.ex.set_margin_mode(account, sym, "isolated" if mt == "ISOLATED" else "cross")
        return {"code": 200, "msg": "success"}

    def get_dual(self, params, account, now):
        from albra.model import PositionMode
        return {"dualSidePosition": self.ex.account(account).mode is PositionMode.HEDGE}

    def set_dual(self, params, account, now):
        v = _bool(params, "dualSidePosition")
        if v is None:
            raise SimError(-1102, "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, or malformed.")
        self.ex.set_position_mode(account, v)
        return {"code": 200, "msg": "success"}

    def get_fee_burn(self, params, account, now):
        """Get BNB Burn Status (USER_DATA): ``{"feeBurn": true|false}``."""
        return {"feeBurn": self.ex.account(account).fee_burn}

    def set_fee_burn(self, params, account, now):
        """Toggle BNB Burn On Futures Trade (TRADE): ``feeBurn`` "true" pays fees in BNB (10 % off) while the
        futures wallet's BNB covers them."""
        v = _bool(params, "feeBurn")
        if v is None:
            raise SimError(-1102, "Mandatory parameter 'feeBurn' was not sent, was empty/null, or malformed.")
        self.ex.set_fee_burn(account, v)
        return {"code": 200, "msg": "success"}

    def new_order(self, params, account, now):
        sym = _sym(params)
        if _bool(params, "closePosition"):
            raise SimError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        o = self.ex.place_order(account, sym, params.get("side", ""), params.get("type", ""), _dec(params, "quantity"),
                                _dec(params, "price"), client_id=params.get("newClientOrderId"),
                                position_side=params.get("positionSide"), reduce_only=_bool(params, "reduceOnly"),
                                time_in_force=params.get("timeInForce"))
        return P.order(o)

    def _order_ref(self, params):
        return _int(params, "orderId"), params.get("origClientOrderId")

    def get_order(self, params, account, now):
        oid, cid = self._order_ref(params)
        return P.order(self.ex.get_order(account, _sym(params), oid, cid))

    def cancel_order(self, params, account, now):
        oid, cid = self._order_ref(params)
        return P.order(self.ex.cancel_order(account, _sym(params), oid, cid))

    def open_orders(self, params, account, now):
        return [P.order(o) for o in self.ex.open_orders(account, _sym(params, required=False))]

    def cancel_all(self, params, account, now):
        self.ex.cancel_all(account, _sym(params))
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def new_algo(self, params, account, now):
        sym = _sym(params)
        if params.get("algoType", "CONDITIONAL") != "CONDITIONAL":
            raise SimError(-1102, "Parameter 'algoType' must be CONDITIONAL.")
        if params.get("price"):
            raise SimError(-1116, "Invalid orderType. (only STOP_MARKET and TAKE_PROFIT_MARKET are simulated)")
        a = self.ex.place_algo(account, sym, params.get("side", ""), params.get("type", ""),
                               _dec(params, "triggerPrice"), _dec(params, "quantity"),
                               client_algo_id=params.get("clientAlgoId"), position_side=params.get("positionSide"),
                               reduce_only=_bool(params, "reduceOnly"),
                               close_position=bool(_bool(params, "closePosition")),
                               working_type=params.get("workingType"))
        return P.algo(a)

    def _algo_ref(self, params):
        return _int(params, "algoId"), params.get("clientAlgoId")

    def get_algo(self, params, account, now):
        aid, cid = self._algo_ref(params)
        return P.algo(self.ex.get_algo(account, aid, cid))

    def cancel_algo(self, params, account, now):
        aid, cid = self._algo_ref(params)
        a = self.ex.cancel_algo(account, aid, cid)
        return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}

    def open_algos(self, params, account, now):
        return [P.algo(a) for a in self.ex.open_algos(account, _sym(params, required=False))]

    def cancel_all_algos(self, params, account, now):
        self.ex.cancel_all_algos(account, _sym(params))
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def user_trades(self, params, account, now):
        sym = _sym(params)
        self.ex.spec(sym)
        limit = min(_int(params, "limit", 500) or 500, 1000)
        start, end = _int(params, "startTime"), _int(params, "endTime")
        from_id, oid = _int(params, "fromId"), _int(params, "orderId")
        asked_start = start
        start, end = self.ex.trade_window(start, end, from_id)
        vis = self.ex.visible
        rows = [t for t in self.ex.account(account).trades if t["symbol"] == sym and vis(t)
                and (start is None or t["time"] >= start) and (end is None or t["time"] <= end)
                and (from_id is None or t["id"] >= from_id) and (oid is None or t["orderId"] == oid)]
        rows = rows[:limit] if (asked_start is not None or from_id is not None) else rows[-limit:]
        return [P.trade(t) for t in rows]

    def income(self, params, account, now):
        sym = _sym(params, required=False)
        kind = params.get("incomeType")
        limit = min(_int(params, "limit", 100) or 100, 1000)
        asked_start = _int(params, "startTime")
        start, end = self.ex.income_window(asked_start, _int(params, "endTime"))
        vis = self.ex.visible
        rows = [r for r in self.ex.account(account).income if vis(r) and (not sym or r["symbol"] == sym)
                and (not kind or r["incomeType"] == kind) and (start is None or r["time"] >= start)
                and (end is None or r["time"] <= end)]
        rows = rows[:limit] if asked_start is not None else rows[-limit:]
        return [P.income(r) for r in rows]
