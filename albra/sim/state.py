"""Records the simulated exchange keeps per account: positions, regular and algo orders, trades, income.

Plain mutable dataclasses; the rules that change them live in :mod:`albra.sim.exchange`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from albra.model import MarginMode, OrderType, PositionMode, PositionSide, Side, WorkingType

ZERO = Decimal(0)


@dataclass(slots=True)
class Position:
    """One position. ``amt`` is signed like Binance's positionAmt (short < 0, also in hedge mode)."""

    symbol: str
    side: PositionSide
    amt: Decimal = ZERO
    entry: Decimal = ZERO
    isolated_margin: Decimal = ZERO  # the isolated wallet (only used when the symbol is isolated)
    update_time: int = 0


@dataclass(slots=True)
class Order:
    """A regular order (``/fapi/v1/order``). ``source`` is ``api`` for orders a client sent and
    ``trigger``/``liquidation`` for the ones the exchange made itself."""

    order_id: int
    client_id: str
    account: str
    symbol: str
    side: Side
    position_side: PositionSide
    type: OrderType
    qty: Decimal
    price: Decimal  # 0 for market orders
    reduce_only: bool
    close_position: bool
    time_in_force: str
    time: int
    update_time: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    avg_price: Decimal = ZERO
    stop_price: Decimal = ZERO
    working_type: WorkingType = WorkingType.CONTRACT_PRICE
    source: str = "api"
    #: latency-clock ms from which GET order finds it (eventual visibility, :class:`~albra.sim.realism.Realism`)
    seen_at: int = 0


@dataclass(slots=True)
class AlgoOrder:
    """A conditional order (``/fapi/v1/algoOrder``): STOP_MARKET / TAKE_PROFIT_MARKET.

    ``status`` uses Binance's algoStatus values: NEW, CANCELED, TRIGGERING (fired, child order being
    placed), TRIGGERED (child order placed), FINISHED (the child order is done: filled, or expired /
    rejected with nothing executed — read the child to know which), REJECTED, EXPIRED."""

    algo_id: int
    client_algo_id: str
    account: str
    symbol: str
    side: Side
    position_side: PositionSide
    order_type: OrderType
    qty: Decimal  # 0 with close_position
    trigger_price: Decimal
    working_type: WorkingType
    close_position: bool
    reduce_only: bool
    create_time: int
    update_time: int
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: int = 0
    actual_price: Decimal = ZERO
    reason: str = ""
    #: latency-clock ms from which GET algoOrder finds it
    seen_at: int = 0
    #: after it fired: (latency-clock ms, algoStatus) — TRIGGERING, TRIGGERED, then the final status; what the
    #: API shows is the last stage reached (``status`` is already the final truth)
    stages: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Account:
    """One account (master or sub-account): wallet, per-symbol settings, positions and history."""

    name: str
    wallet: Decimal
    mode: PositionMode = PositionMode.ONE_WAY
    asset: str = "USDT"
    fee_burn: bool = False  # POST /fapi/v1/feeBurn: pay trading fees in BNB (10 % off) while BNB covers them
    bnb: Decimal = ZERO     # the futures wallet's BNB (only used for fees)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_mode: dict[str, MarginMode] = field(default_factory=dict)
    positions: dict[tuple[str, PositionSide], Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    open_orders: dict[int, Order] = field(default_factory=dict)
    algos: dict[int, AlgoOrder] = field(default_factory=dict)
    open_algos: dict[int, AlgoOrder] = field(default_factory=dict)
    trades: list[dict] = field(default_factory=list)
    income: list[dict] = field(default_factory=list)
    update_time: int = 0

    def lev(self, symbol: str) -> int:
        return self.leverage.get(symbol, 20)

    def mm(self, symbol: str) -> MarginMode:
        return self.margin_mode.get(symbol, MarginMode.CROSS)

    def position(self, symbol: str, side: PositionSide) -> Position:
        key = (symbol, side)
        p = self.positions.get(key)
        if p is None:
            p = self.positions[key] = Position(symbol, side)
        return p

    def live_positions(self, symbol: str | None = None) -> list[Position]:
        return [p for p in self.positions.values() if p.amt != 0 and (symbol is None or p.symbol == symbol)]

    def has_activity(self, symbol: str | None = None) -> bool:
        """Open positions or open orders (of either kind), optionally on one symbol."""
        if self.live_positions(symbol):
            return True
        return any(symbol is None or o.symbol == symbol
                   for o in [*self.open_orders.values(), *self.open_algos.values()])
