"""Validating parsers from Binance USDⓈ-M JSON (as returned by ccxt's implicit API methods) to albra's values.

Why not ccxt's unified parsers: for a 200 response with an HTML or empty body they return lists of None, an
empty list or an order without an id (facts §2.9) — "junk becomes empty", the replaced system's worst failure.
Here every field albra relies on must be present and well-formed, or :class:`MalformedResponse` names what is
wrong. Numbers become Decimal from Binance's strings, never through float.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from albra.exchange.errors import MalformedResponse
from albra.exchange.types import Balance, ExchangePosition, IncomeRow, OrderResult
from albra.model import Candle, Fill, MarketFilters, OrderStatus, OrderType, PositionSide, Side

#: Binance order types albra does not create itself but may find on an account (manual orders), mapped onto
#: the nearest albra type so a foreign order never makes a whole read fail.
_ORDER_TYPES = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP_MARKET": OrderType.STOP_MARKET,
    "STOP": OrderType.STOP_MARKET,
    "TRAILING_STOP_MARKET": OrderType.STOP_MARKET,
    "TAKE_PROFIT_MARKET": OrderType.TAKE_PROFIT_MARKET,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT_MARKET,
}
_REGULAR_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
#: algoStatus: TRIGGERED = fired, child order working; FINISHED = child order done.
_ALGO_STATUS = {
    "NEW": OrderStatus.NEW,
    "CANCELED": OrderStatus.CANCELED,
    "CANCELLED": OrderStatus.CANCELED,
    "TRIGGERING": OrderStatus.TRIGGERED,
    "TRIGGERED": OrderStatus.TRIGGERED,
    "FINISHED": OrderStatus.FILLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}


def fmt(d: Decimal) -> str:
    """A Decimal as Binance wants it in a request: plain notation, no exponent, no trailing zeros."""
    s = format(d.normalize(), "f")
    return s


def _ctx(what: str, row: Any) -> str:
    text = repr(row)
    return f"{what}: {text[:200]}"


def need_dict(raw: Any, what: str) -> dict:
    if not isinstance(raw, dict):
        raise MalformedResponse(f"{what}: expected a JSON object, got {type(raw).__name__} {repr(raw)[:120]}")
    return raw


def need_list(raw: Any, what: str) -> list:
    if not isinstance(raw, list):
        raise MalformedResponse(f"{what}: expected a JSON array, got {type(raw).__name__} {repr(raw)[:120]}")
    return raw


def dec(row: dict, key: str, what: str, *, optional: bool = False) -> Decimal | None:
    v = row.get(key)
    if v is None or v == "":
        if optional:
            return None
        raise MalformedResponse(f"{what}: field {key!r} missing or empty in {_ctx('row', row)}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise MalformedResponse(f"{what}: field {key!r} is not a number ({v!r})") from None
    if not d.is_finite():
        raise MalformedResponse(f"{what}: field {key!r} is not finite ({v!r})")
    return d


def req_dec(row: dict, key: str, what: str) -> Decimal:
    d = dec(row, key, what)
    assert d is not None
    return d


def pos_or_none(d: Decimal | None) -> Decimal | None:
    """Binance writes "0" for "no price" (avgPrice of an unfilled order, liquidationPrice of a flat leg)."""
    return d if d is not None and d > 0 else None


def req_int(row: dict, key: str, what: str) -> int:
    v = row.get(key)
    if isinstance(v, bool) or v is None:
        raise MalformedResponse(f"{what}: field {key!r} missing in {_ctx('row', row)}")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise MalformedResponse(f"{what}: field {key!r} is not an integer ({v!r})") from None


def req_str(row: dict, key: str, what: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v:
        raise MalformedResponse(f"{what}: field {key!r} missing or empty in {_ctx('row', row)}")
    return v


def flag(row: dict, key: str) -> bool:
    v = row.get(key, False)
    return v is True or (isinstance(v, str) and v.lower() == "true")


def enum(row: dict, key: str, what: str, table: dict) -> Any:
    v = req_str(row, key, what)
    try:
        return table[v]
    except KeyError:
        raise MalformedResponse(f"{what}: unexpected {key} {v!r}") from None


_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_PSIDES = {"BOTH": PositionSide.BOTH, "LONG": PositionSide.LONG, "SHORT": PositionSide.SHORT}

#: The tables above, read also by the paper gateway's direct answers (``albra.sim.answers``, ADR 0022): one
#: mapping from Binance's names to albra's values for both paths.
ORDER_TYPES, REGULAR_STATUS, ALGO_STATUS = _ORDER_TYPES, _REGULAR_STATUS, _ALGO_STATUS
SIDES, POSITION_SIDES = _SIDES, _PSIDES


# --- markets, time, candles --------------------------------------------------------------------------------------

def parse_server_time(raw: Any) -> int:
    row = need_dict(raw, "time")
    t = req_int(row, "serverTime", "time")
    if t <= 0:
        raise MalformedResponse(f"time: serverTime {t} is not a timestamp")
    return t


def parse_markets(raw: Any) -> dict[str, MarketFilters]:
    what = "exchangeInfo"
    symbols = need_list(need_dict(raw, what).get("symbols"), f"{what}.symbols")
    out: dict[str, MarketFilters] = {}
    for s in symbols:
        s = need_dict(s, f"{what}.symbols[]")
        name = req_str(s, "symbol", what)
        if s.get("contractType") != "PERPETUAL" or s.get("status") != "TRADING":
            continue
        filters = {f.get("filterType"): f for f in need_list(s.get("filters"), f"{what} {name}.filters")
                   if isinstance(f, dict)}
        try:
            price, lot, notional = filters["PRICE_FILTER"], filters["LOT_SIZE"], filters["MIN_NOTIONAL"]
        except KeyError as e:
            raise MalformedResponse(f"{what}: symbol {name} has no {e.args[0]} filter") from None
        w = f"{what} {name}"
        mlot = filters.get("MARKET_LOT_SIZE")
        f = MarketFilters(
            symbol=name,
            tick_size=req_dec(price, "tickSize", w),
            step_size=req_dec(lot, "stepSize", w),
            min_qty=req_dec(lot, "minQty", w),
            max_qty=req_dec(lot, "maxQty", w),
            min_notional=req_dec(notional, "notional", w),
            market_max_qty=dec(mlot, "maxQty", w, optional=True) if mlot else None,
        )
        if f.tick_size <= 0 or f.step_size <= 0:
            raise MalformedResponse(f"{w}: tickSize/stepSize must be positive ({f.tick_size}, {f.step_size})")
        out[name] = f
    if not out:
        raise MalformedResponse(f"{what}: no trading perpetual symbols in the response")
    return out


def parse_klines(raw: Any, symbol: str, tf_ms: int, server_now: int) -> list[Candle]:
    """Klines oldest first; the candle whose close time is after ``server_now`` (read *before* the klines were
    requested) is the forming one and gets ``closed=False``."""
    what = f"klines {symbol}"
    rows = need_list(raw, what)
    out: list[Candle] = []
    prev = None
    for i, r in enumerate(rows):
        if not isinstance(r, list) or len(r) < 6:
            raise MalformedResponse(f"{what}: row {i} is not a kline array: {repr(r)[:120]}")
        try:
            ts = int(r[0])
            o, h, l, c, v = (float(x) for x in r[1:6])
        except (TypeError, ValueError):
            raise MalformedResponse(f"{what}: row {i} has a missing or non-numeric field: {repr(r)[:120]}") from None
        if not all(math.isfinite(x) for x in (o, h, l, c, v)):
            raise MalformedResponse(f"{what}: row {i} has a non-finite value: {r[:6]}")
        if h < max(o, c, l) or l > min(o, c):
            raise MalformedResponse(f"{what}: row {i} high/low do not bracket open/close: {r[:6]}")
        if prev is not None and ts <= prev:
            raise MalformedResponse(f"{what}: timestamps not increasing at row {i} ({prev} then {ts})")
        prev = ts
        out.append(Candle(ts, o, h, l, c, v, closed=ts + tf_ms <= server_now))
    if any(not k.closed for k in out[:-1]):
        raise MalformedResponse(f"{what}: a candle before the last one is not closed yet (server time {server_now})")
    return out


# --- account ----------------------------------------------------------------------------------------------------

def parse_balance(raw: Any, asset: str, ts: int) -> Balance:
    what = "account"
    row = need_dict(raw, what)
    assets = need_list(row.get("assets"), f"{what}.assets")
    for a in assets:
        if isinstance(a, dict) and a.get("asset") == asset:
            w = f"{what} {asset}"
            return Balance(wallet=req_dec(a, "walletBalance", w), unrealized=req_dec(a, "unrealizedProfit", w),
                           equity=req_dec(a, "marginBalance", w), available=req_dec(a, "availableBalance", w),
                           ts=ts, positions=_account_positions(row.get("positions")))
    raise MalformedResponse(f"{what}: no {asset} entry in assets (got {[a.get('asset') for a in assets if isinstance(a, dict)]})")


def _account_positions(raw: Any) -> tuple[tuple[str, str, Decimal], ...] | None:
    """The account endpoint's position rows, non-zero only; None when the answer carries no positions list (a
    malformed row is an error: unknown is not empty)."""
    if raw is None:
        return None
    rows = need_list(raw, "account.positions")
    out = []
    for r in rows:
        r = need_dict(r, "account.positions[]")
        sym = req_str(r, "symbol", "account.positions")
        amt = req_dec(r, "positionAmt", f"account.positions {sym}")
        if amt != 0:
            out.append((sym, str(r.get("positionSide") or "BOTH"), amt))
    return tuple(out)


def parse_positions(raw: Any, symbols: Iterable[str] | None) -> list[ExchangePosition]:
    what = "positionRisk"
    rows = need_list(raw, what)
    want = set(symbols) if symbols is not None else None
    out = []
    for r in rows:
        r = need_dict(r, f"{what}[]")
        sym = req_str(r, "symbol", what)
        qty = req_dec(r, "positionAmt", f"{what} {sym}")
        if qty == 0 or (want is not None and sym not in want):
            continue
        w = f"{what} {sym}"
        lev = r.get("leverage")
        out.append(ExchangePosition(
            symbol=sym,
            position_side=enum(r, "positionSide", w, _PSIDES),
            qty=qty,
            entry_price=req_dec(r, "entryPrice", w),
            mark_price=req_dec(r, "markPrice", w),
            unrealized=req_dec(r, "unRealizedProfit", w),
            liquidation_price=pos_or_none(dec(r, "liquidationPrice", w, optional=True)),
            leverage=int(lev) if isinstance(lev, (int, str)) and str(lev).isdigit() else None,
            ts=req_int(r, "updateTime", w),
        ))
    return out


def parse_dual_side(raw: Any) -> bool:
    row = need_dict(raw, "positionSide/dual")
    v = row.get("dualSidePosition")
    if not isinstance(v, bool):
        raise MalformedResponse(f"positionSide/dual: dualSidePosition missing or not a boolean ({v!r})")
    return v


# --- orders -----------------------------------------------------------------------------------------------------

def parse_order(raw: Any, what: str = "order") -> OrderResult:
    """A regular order (POST/GET/DELETE /fapi/v1/order, openOrders rows)."""
    r = need_dict(raw, what)
    oid = r.get("orderId")
    if oid is None or oid == "":
        raise MalformedResponse(f"{what}: no orderId in {_ctx('response', r)}")
    w = f"{what} {oid}"
    return OrderResult(
        client_id=req_str(r, "clientOrderId", w),
        exchange_id=str(oid),
        symbol=req_str(r, "symbol", w),
        side=enum(r, "side", w, _SIDES),
        order_type=enum(r, "type", w, _ORDER_TYPES),
        status=enum(r, "status", w, _REGULAR_STATUS),
        position_side=enum(r, "positionSide", w, _PSIDES) if r.get("positionSide") else PositionSide.BOTH,
        qty=req_dec(r, "origQty", w),
        filled_qty=req_dec(r, "executedQty", w),
        avg_price=pos_or_none(dec(r, "avgPrice", w, optional=True)),
        price=pos_or_none(dec(r, "price", w, optional=True)),
        trigger_price=pos_or_none(dec(r, "stopPrice", w, optional=True)),
        reduce_only=flag(r, "reduceOnly"),
        close_position=flag(r, "closePosition"),
        is_algo=False,
        ts=req_int(r, "updateTime", w) if r.get("updateTime") is not None else req_int(r, "time", w),
    )


def parse_algo(raw: Any, what: str = "algoOrder") -> OrderResult:
    """An algo (conditional) order (POST/GET /fapi/v1/algoOrder, openAlgoOrders rows)."""
    r = need_dict(raw, what)
    aid = r.get("algoId")
    if aid is None or aid == "":
        raise MalformedResponse(f"{what}: no algoId in {_ctx('response', r)}")
    w = f"{what} {aid}"
    ts = r.get("updateTime") if r.get("updateTime") is not None else r.get("createTime")
    if ts is None:
        raise MalformedResponse(f"{w}: neither updateTime nor createTime")
    return OrderResult(
        client_id=req_str(r, "clientAlgoId", w),
        exchange_id=str(aid),
        symbol=req_str(r, "symbol", w),
        side=enum(r, "side", w, _SIDES),
        order_type=enum(r, "orderType", w, _ORDER_TYPES),
        status=enum(r, "algoStatus", w, _ALGO_STATUS),
        position_side=enum(r, "positionSide", w, _PSIDES) if r.get("positionSide") else PositionSide.BOTH,
        qty=dec(r, "quantity", w, optional=True) or Decimal(0),
        filled_qty=dec(r, "executedQty", w, optional=True) or Decimal(0),
        avg_price=pos_or_none(dec(r, "actualPrice", w, optional=True)),
        price=pos_or_none(dec(r, "price", w, optional=True)),
        trigger_price=req_dec(r, "triggerPrice", w),
        reduce_only=flag(r, "reduceOnly"),
        close_position=flag(r, "closePosition"),
        is_algo=True,
        ts=int(ts),
        actual_order_id=str(r["actualOrderId"]) if r.get("actualOrderId") not in (None, "", 0, "0") else None,
    )


def parse_trades(raw: Any, symbol: str) -> list[Fill]:
    """userTrades rows. Binance's trade rows carry no client order id: ``client_id`` is left empty and the engine
    attributes fills through ``order_id`` (known from the OrderResult of its own placement)."""
    what = f"userTrades {symbol}"
    out = []
    for r in need_list(raw, what):
        r = need_dict(r, f"{what}[]")
        w = f"{what} {r.get('id')}"
        out.append(Fill(
            trade_id=str(req_int(r, "id", w)),
            order_id=str(req_int(r, "orderId", w)),
            client_id=str(r.get("clientOrderId") or ""),
            symbol=req_str(r, "symbol", w),
            side=enum(r, "side", w, _SIDES),
            position_side=enum(r, "positionSide", w, _PSIDES) if r.get("positionSide") else PositionSide.BOTH,
            price=req_dec(r, "price", w),
            qty=req_dec(r, "qty", w),
            fee=req_dec(r, "commission", w),
            realized_pnl=req_dec(r, "realizedPnl", w),
            ts=req_int(r, "time", w),
            extra={"commission_asset": r.get("commissionAsset"), "maker": bool(r.get("maker", False))},
        ))
    return out


def parse_stream_fill(event: Any) -> Fill | None:
    """The execution carried by an ``ORDER_TRADE_UPDATE`` with ``x = TRADE`` (Event: Order Update: ``t`` trade id,
    ``i`` order id, ``c`` client id, ``l``/``L`` last filled qty/price, ``n``/``N`` commission and its asset,
    ``rp`` realised profit, ``T`` trade time); None for any other execution type. Malformed → MalformedResponse."""
    row = need_dict(event, "ORDER_TRADE_UPDATE")
    o = need_dict(row.get("o"), "ORDER_TRADE_UPDATE.o")
    if o.get("x") != "TRADE":
        return None
    w = f"ORDER_TRADE_UPDATE {o.get('c')}"
    return Fill(
        trade_id=str(req_int(o, "t", w)),
        order_id=str(req_int(o, "i", w)),
        client_id=str(o.get("c") or ""),
        symbol=req_str(o, "s", w),
        side=enum(o, "S", w, _SIDES),
        position_side=enum(o, "ps", w, _PSIDES) if o.get("ps") else PositionSide.BOTH,
        price=req_dec(o, "L", w),
        qty=req_dec(o, "l", w),
        fee=dec(o, "n", w, optional=True) or Decimal(0),
        realized_pnl=dec(o, "rp", w, optional=True) or Decimal(0),
        ts=req_int(o, "T", w),
        extra={"commission_asset": o.get("N"), "maker": bool(o.get("m", False)), "source": "stream"},
    )


def parse_income(raw: Any) -> list[IncomeRow]:
    what = "income"
    out = []
    for r in need_list(raw, what):
        r = need_dict(r, f"{what}[]")
        w = f"{what} {r.get('tranId')}"
        tran = r.get("tranId")
        if tran is None or tran == "":
            raise MalformedResponse(f"{what}: row without tranId: {repr(r)[:120]}")
        out.append(IncomeRow(tran_id=str(tran), income_type=req_str(r, "incomeType", w),
                             amount=req_dec(r, "income", w), asset=req_str(r, "asset", w),
                             symbol=str(r.get("symbol") or ""), ts=req_int(r, "time", w)))
    return out
