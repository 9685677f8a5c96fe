"""The domain vocabulary every layer shares (exchange simulation, gateway, strategies, ledger, risk).

Prices and quantities that reach an order or the ledger are ``Decimal`` and quantised to the
exchange's filters; indicator maths on candles uses floats (numpy) because it never sends money.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum


class Side(StrEnum):
    """Order side, as Binance spells it."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


class Direction(StrEnum):
    """Direction of a position leg."""

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def entry_side(self) -> Side:
        return Side.BUY if self is Direction.LONG else Side.SELL

    @property
    def exit_side(self) -> Side:
        return Side.SELL if self is Direction.LONG else Side.BUY

    @property
    def sign(self) -> int:
        return 1 if self is Direction.LONG else -1

    @property
    def opposite(self) -> "Direction":
        return Direction.SHORT if self is Direction.LONG else Direction.LONG


class PositionMode(StrEnum):
    """Binance position mode of an account. ``hedge`` = dual-side (LONG and SHORT positions)."""

    ONE_WAY = "one_way"
    HEDGE = "hedge"


class PositionSide(StrEnum):
    """Binance ``positionSide``: BOTH in one-way mode, LONG/SHORT in hedge mode."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"

    @property
    def is_conditional(self) -> bool:
        return self in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)


class OrderStatus(StrEnum):
    """Unified order status (regular orders and algo orders both map onto it)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    TRIGGERED = "TRIGGERED"  # algo order fired; its child market order carries the fill

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class WorkingType(StrEnum):
    MARK_PRICE = "MARK_PRICE"
    CONTRACT_PRICE = "CONTRACT_PRICE"


class MarginMode(StrEnum):
    ISOLATED = "isolated"
    CROSS = "cross"


@dataclass(frozen=True, slots=True)
class Candle:
    """One kline. ``ts`` is the open time in UTC epoch ms; ``closed`` is False for the forming candle."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool = True


@dataclass(frozen=True, slots=True)
class MarketFilters:
    """The exchange filters an order must satisfy (Binance PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL)."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    market_max_qty: Decimal | None = None

    def floor_qty(self, qty: Decimal) -> Decimal:
        """Largest multiple of step_size not above ``qty`` (never rounds a size up)."""
        return (qty / self.step_size).to_integral_value(rounding=ROUND_DOWN) * self.step_size

    def round_price(self, price: Decimal) -> Decimal:
        """Nearest multiple of tick_size (half up)."""
        return (price / self.tick_size).to_integral_value(rounding=ROUND_HALF_UP) * self.tick_size

    def price_toward(self, price: Decimal, up: bool) -> Decimal:
        """Directional rounding to tick_size: ``up`` rounds up, else down (for stop prices that must
        not move against the leg they protect)."""
        mode = ROUND_UP if up else ROUND_DOWN
        return (price / self.tick_size).to_integral_value(rounding=mode) * self.tick_size


def D(x: object) -> Decimal:
    """Decimal from a str/int/float/Decimal without binary-float noise (floats go through repr)."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float):
        return Decimal(repr(x))
    return Decimal(str(x))


@dataclass(slots=True)
class Fill:
    """One execution of an order (a row of the exchange's trade history)."""

    trade_id: str
    order_id: str
    client_id: str
    symbol: str
    side: Side
    position_side: PositionSide
    price: Decimal
    qty: Decimal
    fee: Decimal
    realized_pnl: Decimal
    ts: int
    reduce_only: bool = False
    extra: dict = field(default_factory=dict)
