"""A :class:`~albra.exchange.types.Gateway` over the in-process :class:`~albra.sim.exchange.SimExchange`.

Why the engine has its own: backtests need a venue whose calls complete without ever suspending, so the async
executor can be driven synchronously (:func:`albra.engine.syncrun.run_sync`) with no event loop per candle.
Every method here is ``async`` (same protocol as the live gateway) but never awaits anything. Rejections are
mapped onto albra's error classes exactly as the ccxt gateway maps Binance's codes, so the executor's error
handling is the same code in backtests and live.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

from albra.exchange import errors as X
from albra.exchange.types import Balance, ExchangePosition, IncomeRow, OrderRequest, OrderResult
from albra.model import (Candle, Fill, MarginMode, MarketFilters, OrderStatus, OrderType, PositionMode,
                         PositionSide, Side)
from albra.sim.errors import SimError
from albra.sim.exchange import SimExchange
from albra.sim.state import AlgoOrder, Order

_ALGO_STATUS = {"NEW": OrderStatus.NEW, "CANCELED": OrderStatus.CANCELED, "TRIGGERED": OrderStatus.TRIGGERED,
                "FINISHED": OrderStatus.FILLED, "REJECTED": OrderStatus.REJECTED, "EXPIRED": OrderStatus.EXPIRED}


def map_sim_error(e: SimError) -> X.ExchangeError:
    """The albra error class for a Binance code (the same table the ccxt gateway applies)."""
    code = e.code
    msg = f"{code}: {e.msg}"
    if code in (-2019, -2018):
        return X.InsufficientMargin(msg, code=code)
    if code in (-2011, -2013):
        return X.UnknownOrder(msg, code=code)
    if code == -1121:
        return X.BadSymbol(msg, code=code)
    if code in (-1000, -1001, -1008):
        return X.NetworkFailure(msg, code=code)
    return X.InvalidOrder(msg, code=code)


class SimGateway:
    """One account of a :class:`SimExchange`, behind the Gateway protocol."""

    def __init__(self, ex: SimExchange, account: str) -> None:
        self.ex = ex
        self.account = account
        ex.account(account)

    async def server_time(self) -> int:
        return self.ex.now

    async def load_markets(self) -> dict[str, MarketFilters]:
        return {s: m.filters for s, m in self.ex.markets.items()}

    async def fetch_candles(self, symbol: str, timeframe: str, since: int | None = None,
                            limit: int = 500) -> list[Candle]:
        raise X.Rejected("the in-process simulator has no kline history; feed candles from the replay source")

    async def fetch_balance(self) -> Balance:
        n = self.ex.account_numbers(self.ex.account(self.account))
        return Balance(n["wallet"], n["upnl"], n["margin_balance"], n["available"], self.ex.now)

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[ExchangePosition]:
        acct = self.ex.account(self.account)
        out = []
        for p in acct.live_positions():
            if symbols is not None and p.symbol not in symbols:
                continue
            out.append(ExchangePosition(p.symbol, p.side, p.amt, p.entry, self.ex.mark_price(p.symbol),
                                        self.ex.upnl(p), self.ex.liquidation_price(acct, p), acct.lev(p.symbol),
                                        self.ex.now))
        return out

    async def fetch_position_mode(self) -> PositionMode:
        return self.ex.account(self.account).mode

    async def set_position_mode(self, mode: PositionMode) -> None:
        try:
            self.ex.set_position_mode(self.account, mode is PositionMode.HEDGE)
        except SimError as e:
            if e.code != -4059:
                raise map_sim_error(e) from None

    async def setup_symbol(self, symbol: str, leverage: int, margin_mode: MarginMode) -> None:
        try:
            self.ex.set_margin_mode(self.account, symbol, margin_mode)
        except SimError as e:
            if e.code != -4046:
                raise map_sim_error(e) from None
        try:
            self.ex.set_leverage(self.account, symbol, leverage)
        except SimError as e:
            raise map_sim_error(e) from None

    async def place_order(self, req: OrderRequest) -> OrderResult:
        ps = None if req.position_side is PositionSide.BOTH else req.position_side.value
        ro = None if ps is not None else (True if req.reduce_only else None)
        try:
            if req.is_algo:
                a = self.ex.place_algo(self.account, req.symbol, req.side, req.order_type, req.trigger_price,
                                       None if req.close_position else req.qty, client_algo_id=req.client_id,
                                       position_side=ps, reduce_only=None if req.close_position else ro,
                                       close_position=req.close_position, working_type=req.working_type)
                return self._algo(a)
            o = self.ex.place_order(self.account, req.symbol, req.side, req.order_type, req.qty, req.price,
                                    client_id=req.client_id, position_side=ps, reduce_only=ro)
            return self._order(o)
        except SimError as e:
            raise map_sim_error(e) from None

    async def fetch_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        try:
            if is_algo:
                return self._algo(self.ex.get_algo(self.account, client_algo_id=client_id))
            return self._order(self.ex.get_order(self.account, symbol, client_id=client_id))
        except SimError as e:
            if e.code in (-2013, -2011):
                return None
            raise map_sim_error(e) from None

    async def cancel_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        try:
            if is_algo:
                return self._algo(self.ex.cancel_algo(self.account, client_algo_id=client_id))
            return self._order(self.ex.cancel_order(self.account, symbol, client_id=client_id))
        except SimError as e:
            if e.code in (-2013, -2011):
                return None
            raise map_sim_error(e) from None

    async def cancel_all(self, symbol: str) -> None:
        self.ex.cancel_all(self.account, symbol)
        self.ex.cancel_all_algos(self.account, symbol)

    async def fetch_open_orders(self, symbol: str | None = None, algo: bool = False) -> list[OrderResult]:
        if algo:
            return [self._algo(a) for a in self.ex.open_algos(self.account, symbol)]
        return [self._order(o) for o in self.ex.open_orders(self.account, symbol)]

    async def fetch_trades(self, symbol: str, since: int | None = None, limit: int = 1000) -> list[Fill]:
        acct = self.ex.account(self.account)
        out: list[Fill] = []
        for t in reversed(acct.trades):
            if since is not None and t["time"] < since:
                break
            if t["symbol"] != symbol:
                continue
            cid = t["clientOrderId"]
            if cid.startswith("algo-"):  # a triggered conditional: name the parent the client knows
                parent = acct.algos.get(int(cid[5:]))
                cid = parent.client_algo_id if parent is not None else cid
            o = acct.orders.get(t["orderId"])
            out.append(Fill(str(t["id"]), str(t["orderId"]), cid, symbol, Side(t["side"]),
                            PositionSide(t["positionSide"]), t["price"], t["qty"], t["commission"],
                            t["realizedPnl"], t["time"], bool(o.reduce_only) if o else False))
        out.reverse()
        return out[-limit:]

    async def fetch_income(self, since: int | None = None, income_type: str | None = None,
                           limit: int = 1000) -> list[IncomeRow]:
        acct = self.ex.account(self.account)
        rows = [r for r in acct.income
                if (since is None or r["time"] >= since) and (income_type is None or r["incomeType"] == income_type)]
        return [IncomeRow(str(r["tranId"]), r["incomeType"], Decimal(r["income"]), r.get("asset", "USDT"),
                          r.get("symbol", ""), r["time"]) for r in rows[:limit]]

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------------ mapping
    def _order(self, o: Order) -> OrderResult:
        st = OrderStatus(o.status) if o.status in OrderStatus.__members__ else OrderStatus.NEW
        return OrderResult(o.client_id, str(o.order_id), o.symbol, o.side, o.type, st, o.position_side, o.qty,
                           o.executed_qty, o.avg_price if o.executed_qty > 0 else None,
                           o.price if o.type is OrderType.LIMIT else None, None, o.reduce_only, o.close_position,
                           False, o.update_time)

    def _algo(self, a: AlgoOrder) -> OrderResult:
        st = _ALGO_STATUS.get(a.status, OrderStatus.NEW)
        filled = Decimal(0)
        avg = None
        if a.actual_order_id:
            child = self.ex.account(self.account).orders.get(a.actual_order_id)
            if child is not None and child.executed_qty > 0:
                filled, avg = child.executed_qty, child.avg_price
        return OrderResult(a.client_algo_id, str(a.algo_id), a.symbol, a.side, a.order_type, st, a.position_side,
                           a.qty, filled, avg, None, a.trigger_price, a.reduce_only, a.close_position, True,
                           a.update_time)
