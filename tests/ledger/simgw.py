"""A Gateway over albra's simulated exchange core (albra.sim.SimExchange), for ledger tests.

No paper gateway existed when these tests were written, so this thin adapter maps the Gateway calls the ledger
uses (place/fetch/cancel order, positions, trades) onto the real simulated exchange: its order rules, reduce-only
caps, algo triggers and fills are the ones paper trading and the local Binance server use. It is not a boundary
fake: the engine's end-to-end tests cover the ccxt gateway against the local server.

``lose_response`` makes the next placement of a client id reach the exchange but raise OutcomeUnknown (a timeout
after the order was accepted); ``lose_before`` raises it without placing (the request never arrived).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

from albra.exchange.errors import InvalidOrder, OutcomeUnknown, Rejected
from albra.exchange.types import ExchangePosition, OrderRequest, OrderResult
from albra.model import Fill, OrderStatus, OrderType, PositionMode, PositionSide, Side
from albra.sim.errors import SimError
from albra.sim.exchange import SimExchange

_ALGO_STATUS = {"NEW": OrderStatus.NEW, "CANCELED": OrderStatus.CANCELED, "TRIGGERED": OrderStatus.TRIGGERED,
                "FINISHED": OrderStatus.FILLED, "REJECTED": OrderStatus.REJECTED, "EXPIRED": OrderStatus.EXPIRED}


class SimGateway:
    def __init__(self, sim: SimExchange, account: str) -> None:
        self.sim = sim
        self.account = account
        self.lose_response: set[str] = set()
        self.lose_before: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    @property
    def _hedge(self) -> bool:
        return self.sim.account(self.account).mode is PositionMode.HEDGE

    def _order(self, o) -> OrderResult:  # noqa: ANN001
        return OrderResult(o.client_id, str(o.order_id), o.symbol, o.side, o.type, OrderStatus(o.status),
                           o.position_side, o.qty, o.executed_qty, o.avg_price if o.executed_qty else None,
                           o.price or None, None, o.reduce_only, o.close_position, False, o.update_time)

    def _algo(self, a) -> OrderResult:  # noqa: ANN001
        return OrderResult(a.client_algo_id, str(a.algo_id), a.symbol, a.side, a.order_type, _ALGO_STATUS[a.status],
                           a.position_side, a.qty, Decimal(0), None, None, a.trigger_price, a.reduce_only,
                           a.close_position, True, a.update_time)

    async def place_order(self, req: OrderRequest) -> OrderResult:
        self.calls.append(("place", req.client_id))
        if req.client_id in self.lose_before:
            self.lose_before.discard(req.client_id)
            raise OutcomeUnknown("timeout before the exchange saw it", client_id=req.client_id, is_algo=req.is_algo)
        ps = req.position_side.value if self._hedge else None
        ro = None if self._hedge else (req.reduce_only or None)
        try:
            if req.is_algo:
                res = self._algo(self.sim.place_algo(self.account, req.symbol, req.side, req.order_type,
                                                     req.trigger_price, req.qty, client_algo_id=req.client_id,
                                                     position_side=ps, reduce_only=ro,
                                                     working_type=req.working_type))
            else:
                res = self._order(self.sim.place_order(self.account, req.symbol, req.side, req.order_type, req.qty,
                                                       req.price, client_id=req.client_id, position_side=ps,
                                                       reduce_only=ro))
        except SimError as e:
            raise (InvalidOrder if e.code in (-2021, -2022, -4164, -1106) else Rejected)(str(e), code=e.code) from None
        if req.client_id in self.lose_response:
            self.lose_response.discard(req.client_id)
            raise OutcomeUnknown("response lost", client_id=req.client_id, is_algo=req.is_algo)
        return res

    async def fetch_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        self.calls.append(("fetch", client_id))
        try:
            if is_algo:
                return self._algo(self.sim.get_algo(self.account, client_algo_id=client_id))
            return self._order(self.sim.get_order(self.account, symbol, client_id=client_id))
        except SimError as e:
            if e.code in (-2013, -2011):
                return None
            raise

    async def cancel_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        self.calls.append(("cancel", client_id))
        try:
            if is_algo:
                return self._algo(self.sim.cancel_algo(self.account, client_algo_id=client_id))
            return self._order(self.sim.cancel_order(self.account, symbol, client_id=client_id))
        except SimError as e:
            if e.code in (-2013, -2011):
                return None
            raise

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[ExchangePosition]:
        out = []
        for p in self.sim.account(self.account).live_positions():
            if symbols and p.symbol not in symbols:
                continue
            mark = self.sim.mark_price(p.symbol)
            out.append(ExchangePosition(p.symbol, p.side, p.amt, p.entry, mark, (mark - p.entry) * p.amt, None, None,
                                        self.sim.now))
        return out

    async def fetch_trades(self, symbol: str, since: int | None = None, limit: int = 1000) -> list[Fill]:
        return [Fill(str(t["id"]), str(t["orderId"]), t["clientOrderId"], t["symbol"], Side(t["side"]),
                     PositionSide(t["positionSide"]), Decimal(t["price"]), Decimal(t["qty"]), Decimal(t["commission"]),
                     Decimal(t["realizedPnl"]), t["time"])
                for t in self.sim.account(self.account).trades
                if t["symbol"] == symbol and (since is None or t["time"] >= since)][:limit]

    def open_algo_ids(self, symbol: str) -> list[str]:
        return [a.client_algo_id for a in self.sim.open_algos(self.account, symbol)]
