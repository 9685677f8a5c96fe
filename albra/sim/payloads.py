"""JSON shapes of Binance USDⓈ-M REST answers, rendered from the simulation's records.

Field names and string-typed numbers follow Binance (and what ccxt 4.5.90 parses); see
``shared/reference/ccxt-binance-telegram-facts.md`` §2.6.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from albra.model import MarginMode
from albra.sim.exchange import SimExchange
from albra.sim.markets import MarketSpec
from albra.sim.state import Account, AlgoOrder, Order, Position

_ZERO = Decimal(0)
_QUANTA = {places: Decimal(1).scaleb(-places) for places in range(0, 13)}


def wire(x: Decimal | int | float | None, places: int = 8) -> Decimal:
    """The Decimal a Binance client reads back from :func:`num` ``(x)``: at most ``places`` decimals, no trailing
    zeros, no exponent, ``0`` for None and for negative zero. Why a function of its own: the paper gateway answers
    with values straight from the simulator's records (no JSON, ``albra.sim.answers``) and must read exactly what a
    client of ``albra sim serve`` reads — same value *and* same representation (Decimal("1.5"), not "1.50")."""
    if x is None:
        return _ZERO
    if type(x) is Decimal:
        return _wire_decimal(x, places)
    return _wire(Decimal(str(x)), places)


@functools.lru_cache(maxsize=8192)
def _wire_decimal(d: Decimal, places: int) -> Decimal:
    """:func:`wire` of a Decimal, remembered: the result depends only on the value (equal Decimals such as 1.5 and
    1.50 give the same), and the simulator's records repeat their prices and quantities in every answer."""
    return _wire(d, places)


def _wire(d: Decimal, places: int) -> Decimal:
    q = _QUANTA.get(places) or Decimal(1).scaleb(-places)
    d = d.quantize(q).normalize()
    if not d:
        return _ZERO  # "0", "-0"
    if d.as_tuple().exponent > 0:  # normalize() wrote 44000 as 4.4E+4; the text (and its reading) has no exponent
        d = Decimal(format(d, "f"))
    return d


def num(x: Decimal | int | float | None, places: int = 8) -> str:
    """Decimal as a plain string (no exponent), at most ``places`` decimals."""
    return format(wire(x, places), "f")


def exchange_info(ex: SimExchange, server_time: int) -> dict:
    return {
        "timezone": "UTC", "serverTime": server_time, "futuresType": "U_MARGINED",
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                       {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
        "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_symbol(spec) for spec in ex.markets.values()],
    }


def _symbol(spec: MarketSpec) -> dict:
    f = spec.filters
    return {
        "symbol": spec.symbol, "pair": spec.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": spec.base, "quoteAsset": spec.quote,
        "marginAsset": spec.quote, "pricePrecision": spec.price_precision, "quantityPrecision": spec.qty_precision,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
        "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": num(f.tick_size), "maxPrice": "4529764", "tickSize": num(f.tick_size)},
            {"filterType": "LOT_SIZE", "stepSize": num(f.step_size), "maxQty": num(f.max_qty), "minQty": num(f.min_qty)},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": num(f.step_size), "maxQty": num(f.market_max_qty or f.max_qty),
             "minQty": num(f.min_qty)},
            {"filterType": "MAX_NUM_ORDERS", "limit": getattr(spec, "max_num_orders", 200)},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": getattr(spec, "max_num_algo_orders", 100)},
            {"filterType": "MIN_NOTIONAL", "notional": num(f.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def order(o: Order) -> dict:
    return {
        "orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_id,
        "price": num(o.price), "avgPrice": num(o.avg_price), "origQty": num(o.qty), "executedQty": num(o.executed_qty),
        "cumQty": num(o.executed_qty), "cumQuote": num(o.cum_quote), "timeInForce": o.time_in_force,
        "type": o.type.value, "origType": o.type.value, "reduceOnly": o.reduce_only, "closePosition": o.close_position,
        "side": o.side.value, "positionSide": o.position_side.value, "stopPrice": num(o.stop_price),
        "workingType": o.working_type.value, "priceProtect": False, "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE", "goodTillDate": 0, "time": o.time, "updateTime": o.update_time,
    }


def algo(a: AlgoOrder) -> dict:
    return {
        "algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "algoType": "CONDITIONAL",
        "orderType": a.order_type.value, "symbol": a.symbol, "side": a.side.value,
        "positionSide": a.position_side.value, "timeInForce": "GTC", "quantity": num(a.qty),
        "algoStatus": a.status, "actualOrderId": str(a.actual_order_id or ""), "actualPrice": num(a.actual_price),
        "triggerPrice": num(a.trigger_price), "price": "0", "icebergQuantity": None,
        "workingType": a.working_type.value, "priceMatch": "NONE", "closePosition": a.close_position,
        "priceProtect": False, "reduceOnly": a.reduce_only, "activatePrice": "", "callbackRate": "",
        "createTime": a.create_time, "updateTime": a.update_time, "triggerTime": a.trigger_time,
        "goodTillDate": 0,
    }


def position_row_v3(ex: SimExchange, acct: Account, p: Position) -> dict:
    """A ``GET /fapi/v3/positionRisk`` row: as v2 but, as Binance sends it, without ``leverage``, ``marginType``
    and ``maxNotionalValue`` (Position Information V3 lists none of them)."""
    row = position_row(ex, acct, p)
    for k in ("leverage", "marginType", "maxNotionalValue", "isAutoAddMargin"):
        row.pop(k, None)
    return row


def position_marks(ex: SimExchange, p: Position) -> tuple[Decimal, Decimal]:
    """(mark price, unrealised PnL) of ``p`` as positionRisk shows them: the entry price and 0 while the symbol has
    no price yet. Shared with the paper gateway's direct answers (``albra.sim.answers``)."""
    if ex.has_price(p.symbol):
        return ex.mark_price(p.symbol), ex.upnl(p)
    return p.entry, Decimal(0)


def position_row(ex: SimExchange, acct: Account, p: Position) -> dict:
    mark, upnl = position_marks(ex, p)
    iso = acct.mm(p.symbol) is MarginMode.ISOLATED
    lp = ex.liquidation_price(acct, p)
    im = abs(p.amt) * mark / acct.lev(p.symbol)
    return {
        "symbol": p.symbol, "positionSide": p.side.value, "positionAmt": num(p.amt), "entryPrice": num(p.entry),
        "breakEvenPrice": num(p.entry), "markPrice": num(mark), "unRealizedProfit": num(upnl),
        "liquidationPrice": num(lp or 0), "isolatedMargin": num(p.isolated_margin + upnl if iso else 0),
        "notional": num(p.amt * mark), "marginAsset": acct.asset,
        "isolatedWallet": num(p.isolated_margin if iso else 0), "initialMargin": num(im),
        "maintMargin": num(ex.maint_margin(p) if ex.has_price(p.symbol) else 0), "positionInitialMargin": num(im),
        "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0", "askNotional": "0",
        "updateTime": p.update_time, "leverage": str(acct.lev(p.symbol)),
        "marginType": "isolated" if iso else "cross",
    }


def account(ex: SimExchange, acct: Account, now: int) -> dict:
    n = ex.account_numbers(acct)
    upd = max(acct.update_time, 1)
    asset = {
        "asset": acct.asset, "walletBalance": num(n["wallet"]), "unrealizedProfit": num(n["upnl"]),
        "marginBalance": num(n["margin_balance"]), "maintMargin": num(n["maint_margin"]),
        "initialMargin": num(n["initial_margin"]), "positionInitialMargin": num(n["position_im"]),
        "openOrderInitialMargin": num(n["order_im"]), "crossWalletBalance": num(n["cross_wallet"]),
        "crossUnPnl": num(n["cross_upnl"]), "availableBalance": num(n["available"]),
        "maxWithdrawAmount": num(max(n["available"], Decimal(0))), "updateTime": upd,
    }
    positions = []
    for p in acct.live_positions():
        r = position_row(ex, acct, p)
        positions.append({k: r[k] for k in ("symbol", "positionSide", "positionAmt", "isolatedMargin", "notional",
                                             "isolatedWallet", "initialMargin", "maintMargin", "updateTime")}
                         | {"unrealizedProfit": r["unRealizedProfit"]})
    return {
        "totalInitialMargin": asset["initialMargin"], "totalMaintMargin": asset["maintMargin"],
        "totalWalletBalance": asset["walletBalance"], "totalUnrealizedProfit": asset["unrealizedProfit"],
        "totalMarginBalance": asset["marginBalance"], "totalPositionInitialMargin": asset["positionInitialMargin"],
        "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
        "totalCrossWalletBalance": asset["crossWalletBalance"], "totalCrossUnPnl": asset["crossUnPnl"],
        "availableBalance": asset["availableBalance"], "maxWithdrawAmount": asset["maxWithdrawAmount"],
        "assets": [asset], "positions": positions,
    }


def trade(t: dict) -> dict:
    out = dict(t)
    for k in ("price", "qty", "quoteQty", "realizedPnl", "commission"):
        out[k] = num(t[k])
    out.pop("clientOrderId", None)
    out.pop("_vis", None)
    return out


def income(r: dict) -> dict:
    out = dict(r)
    out["income"] = num(r["income"])
    out.pop("_vis", None)
    return out


def brackets(ex: SimExchange) -> list[dict]:
    return [{"symbol": s.symbol, "notionalCoef": 1.0, "brackets": [
        {"bracket": b.n, "initialLeverage": b.max_leverage, "notionalCap": int(b.cap), "notionalFloor": int(b.floor),
         "maintMarginRatio": float(b.mmr), "cum": float(b.cum)} for b in s.brackets]} for s in ex.markets.values()]
