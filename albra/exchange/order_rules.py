"""Order-shape rules and request parameters every gateway applies before sending anything (ccxt and paper
alike), so a malformed intent is refused with a message naming the problem instead of reaching an exchange, and
both gateways send exactly the same thing.

Position modes (ADR 0002): in one-way mode ``positionSide`` is BOTH (not sent) and exits carry
``reduceOnly=true``. In hedge mode ``positionSide`` LONG/SHORT is always sent and ``reduceOnly`` is **never**
sent — Binance rejects it there (-1106). An order on the LONG side with side SELL (or SHORT with BUY) can only
reduce that side, so a reduce-only request becomes "the exit side of that positionSide"; a reduce-only request
whose side would *add* to its positionSide is refused before sending.

Rounding: quantities are floored to the step size; limit prices round to the tick in the direction that never
pays more (buy down, sell up); trigger prices round so a stop never gets looser (a SELL stop protecting a long
rounds up, a BUY stop protecting a short rounds down) and a take-profit never gets further away (SELL TP down,
BUY TP up). The exchange's report of the order (``OrderResult``) is what the engine records.
"""

from __future__ import annotations

import re

from typing import Any

from albra.exchange.client_ids import BINANCE_CLIENT_ID
from albra.exchange.errors import InvalidOrder
from albra.exchange.types import OrderRequest
from albra.model import MarketFilters, OrderType, PositionSide, Side

_SYMBOL = re.compile(r"[A-Z0-9]{2,30}")


def adds_to_side(side: Side, pside: PositionSide) -> bool:
    """In hedge mode BUY adds to LONG and SELL adds to SHORT; the other combination can only reduce."""
    return (pside is PositionSide.LONG and side is Side.BUY) or (pside is PositionSide.SHORT and side is Side.SELL)


def check_request(req: OrderRequest) -> None:
    """Raise :class:`InvalidOrder` listing every shape problem of ``req`` (nothing has been sent)."""
    problems = []
    if not BINANCE_CLIENT_ID.match(req.client_id or ""):
        problems.append(f"client id {req.client_id!r} breaks Binance's format {BINANCE_CLIENT_ID.pattern}")
    if not _SYMBOL.fullmatch(req.symbol or ""):
        problems.append(f"symbol {req.symbol!r} is not a Binance symbol")
    if req.close_position:
        if not req.is_algo:
            problems.append("closePosition is only for STOP_MARKET/TAKE_PROFIT_MARKET")
        if req.qty is not None:
            problems.append("closePosition orders carry no quantity")
    elif req.qty is None or req.qty <= 0:
        problems.append(f"quantity must be positive, got {req.qty}")
    if req.order_type is OrderType.LIMIT and (req.price is None or req.price <= 0):
        problems.append(f"a LIMIT order needs a positive price, got {req.price}")
    if req.order_type is not OrderType.LIMIT and req.price is not None:
        problems.append(f"{req.order_type} takes no price (got {req.price})")
    if req.is_algo and (req.trigger_price is None or req.trigger_price <= 0):
        problems.append(f"{req.order_type} needs a positive trigger_price, got {req.trigger_price}")
    if not req.is_algo and req.trigger_price is not None:
        problems.append(f"{req.order_type} takes no trigger_price")
    if req.reduce_only and req.position_side is not PositionSide.BOTH and adds_to_side(req.side, req.position_side):
        problems.append(f"reduce-only {req.side} on the {req.position_side} side would increase that position "
                        f"(hedge-mode exits are SELL for LONG, BUY for SHORT)")
    if problems:
        raise InvalidOrder(f"order {req.client_id!r} not sent: " + "; ".join(problems))


def _fmt(d: Any) -> str:
    return format(d.normalize(), "f")


def order_params(req: OrderRequest, f: MarketFilters) -> dict[str, Any]:
    """Binance request parameters for ``req`` (``POST /fapi/v1/order`` or ``/fapi/v1/algoOrder``), quantised to
    ``f``. Raises InvalidOrder naming the problem; nothing has been sent."""
    check_request(req)
    if f.symbol != req.symbol:
        raise ValueError(f"filters for {f.symbol} given for an order on {req.symbol}")
    p: dict[str, Any] = {"symbol": req.symbol, "side": req.side.value, "type": req.order_type.value}
    if req.position_side is not PositionSide.BOTH:
        p["positionSide"] = req.position_side.value  # reduceOnly is implied by the side; never sent (-1106)
    elif req.reduce_only and not req.close_position:
        p["reduceOnly"] = "true"
    if not req.close_position:
        assert req.qty is not None
        qty = f.floor_qty(req.qty)
        if qty < f.min_qty or qty <= 0:
            raise InvalidOrder(f"order {req.client_id!r} not sent: quantity {req.qty} floors to {qty}, below the "
                               f"minimum {f.min_qty} for {req.symbol} (step {f.step_size})")
        cap = f.market_max_qty if req.order_type is not OrderType.LIMIT and f.market_max_qty else f.max_qty
        if qty > cap:
            raise InvalidOrder(f"order {req.client_id!r} not sent: quantity {qty} above the maximum {cap} "
                               f"for {req.symbol}")
        p["quantity"] = _fmt(qty)
    if req.order_type is OrderType.LIMIT:
        assert req.price is not None
        p.update(price=_fmt(f.price_toward(req.price, up=req.side is Side.SELL)), timeInForce="GTC")
    if req.is_algo:
        assert req.trigger_price is not None
        stop = req.order_type is OrderType.STOP_MARKET
        up = (req.side is Side.SELL) if stop else (req.side is Side.BUY)
        p.update(algoType="CONDITIONAL", triggerPrice=_fmt(f.price_toward(req.trigger_price, up=up)),
                 workingType=req.working_type.value, clientAlgoId=req.client_id)
        if req.close_position:
            p["closePosition"] = "true"
    else:
        p.update(newClientOrderId=req.client_id, newOrderRespType="RESULT")
    return p
