"""The simulator's records as the albra values a Binance client reads from them — without the JSON in between.

The paper gateway used to build each answer as Binance JSON (:mod:`albra.sim.payloads`, what ``albra sim serve``
sends) and read it back with the ccxt gateway's validating parsers (:mod:`albra.exchange.binance_parse`). Each
function here returns exactly what ``binance_parse.parse_*(payloads.*(record))`` returns — same values, same
Decimal representation, same enum members — straight from the record (ADR 0022). What makes it the same rather
than a second copy: numbers go through :func:`albra.sim.payloads.wire` (the reading of ``num``'s text, the one
definition of both), marks through :func:`albra.sim.payloads.position_marks`, and status/type/side names through
the parsers' own tables. ``tests/sim/test_answers.py`` runs a scenario corpus through both paths and pins them
equal field for field (and representation for representation).

What is not repeated: the parsers' checks for missing or malformed fields. They guard albra against a broken
*remote* answer; these records are the simulator's own typed dataclasses, which the corpus test covers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

from albra.exchange.binance_parse import ALGO_STATUS, ORDER_TYPES, POSITION_SIDES, REGULAR_STATUS, SIDES
from albra.exchange.types import Balance, ExchangePosition, IncomeRow, OrderResult
from albra.model import Fill, PositionSide
from albra.sim.exchange import SimExchange
from albra.sim.payloads import position_marks, wire
from albra.sim.state import Account, AlgoOrder, Order


def _price(x: Decimal) -> Decimal | None:
    """A price as ``pos_or_none`` reads it: Binance writes "0" for "no price"."""
    d = wire(x)
    return d if d > 0 else None


def order(o: Order) -> OrderResult:
    """``parse_order(payloads.order(o))``."""
    return OrderResult(
        client_id=o.client_id, exchange_id=str(o.order_id), symbol=o.symbol, side=SIDES[o.side.value],
        order_type=ORDER_TYPES[o.type.value], status=REGULAR_STATUS[o.status],
        position_side=POSITION_SIDES[o.position_side.value], qty=wire(o.qty), filled_qty=wire(o.executed_qty),
        avg_price=_price(o.avg_price), price=_price(o.price), trigger_price=_price(o.stop_price),
        reduce_only=o.reduce_only is True, close_position=o.close_position is True, is_algo=False,
        ts=int(o.update_time),
    )


def algo(a: AlgoOrder) -> OrderResult:
    """``parse_algo(payloads.algo(a))`` (an algo answer carries no executed quantity and no limit price)."""
    return OrderResult(
        client_id=a.client_algo_id, exchange_id=str(a.algo_id), symbol=a.symbol, side=SIDES[a.side.value],
        order_type=ORDER_TYPES[a.order_type.value], status=ALGO_STATUS[a.status],
        position_side=POSITION_SIDES[a.position_side.value], qty=wire(a.qty),
        filled_qty=Decimal(0), avg_price=_price(a.actual_price), price=None, trigger_price=wire(a.trigger_price),
        reduce_only=a.reduce_only is True, close_position=a.close_position is True, is_algo=True,
        ts=int(a.update_time), actual_order_id=str(a.actual_order_id) if a.actual_order_id else None,
    )


def fill(t: dict) -> Fill:
    """One ``userTrades`` row, ``parse_trades([payloads.trade(t)])[0]``: no client id (Binance's trade rows carry
    none; the engine attributes fills by order id)."""
    ps = t.get("positionSide")
    return Fill(
        trade_id=str(int(t["id"])), order_id=str(int(t["orderId"])), client_id="", symbol=t["symbol"],
        side=SIDES[t["side"]], position_side=POSITION_SIDES[ps] if ps else PositionSide.BOTH,
        price=wire(t["price"]), qty=wire(t["qty"]), fee=wire(t["commission"]), realized_pnl=wire(t["realizedPnl"]),
        ts=int(t["time"]),
        extra={"commission_asset": t.get("commissionAsset"), "maker": bool(t.get("maker", False))},
    )


def income(r: dict) -> IncomeRow:
    """One income row, ``parse_income([payloads.income(r)])[0]``."""
    return IncomeRow(tran_id=str(r["tranId"]), income_type=r["incomeType"], amount=wire(r["income"]),
                     asset=r["asset"], symbol=str(r.get("symbol") or ""), ts=int(r["time"]))


def positions(ex: SimExchange, acct: Account, symbols: Iterable[str] | None) -> list[ExchangePosition]:
    """``parse_positions([payloads.position_row_v3(...) for each live position], symbols)``: v3 rows carry no
    leverage."""
    want = set(symbols) if symbols is not None else None
    out = []
    for p in acct.live_positions():
        qty = wire(p.amt)
        if qty == 0 or (want is not None and p.symbol not in want):
            continue
        mark, upnl = position_marks(ex, p)
        out.append(ExchangePosition(
            symbol=p.symbol, position_side=POSITION_SIDES[p.side.value], qty=qty, entry_price=wire(p.entry),
            mark_price=wire(mark), unrealized=wire(upnl),
            liquidation_price=_price(ex.liquidation_price(acct, p) or 0), leverage=None, ts=int(p.update_time)))
    return out


def balance(ex: SimExchange, acct: Account, now: int) -> Balance:
    """``parse_balance(payloads.account(ex, acct, now), acct.asset, now)``."""
    n = ex.account_numbers(acct)
    held = []
    for p in acct.live_positions():
        amt = wire(p.amt)
        if amt != 0:
            held.append((p.symbol, p.side.value, amt))
    return Balance(wallet=wire(n["wallet"]), unrealized=wire(n["upnl"]), equity=wire(n["margin_balance"]),
                   available=wire(n["available"]), ts=now, positions=tuple(held))
