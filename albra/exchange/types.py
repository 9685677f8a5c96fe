"""The gateway interface albra's engine, runbook and bot use, and the validated values it returns.

Every gateway (ccxt-backed live/demo/local, paper over the in-process simulator) implements
:class:`Gateway`, so engine code never knows which one it has. Values are Decimal and already validated:
a gateway never returns "empty" for a read it could not complete — it raises an :class:`ExchangeError`
subclass (see ``albra.exchange.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, Sequence

from albra.model import (
    Candle,
    Fill,
    MarginMode,
    MarketFilters,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
    WorkingType,
)


@dataclass(frozen=True, slots=True)
class Balance:
    """USDT futures wallet. ``equity`` = wallet + unrealized PnL (margin balance)."""

    wallet: Decimal
    unrealized: Decimal
    equity: Decimal
    available: Decimal
    ts: int
    #: the account endpoint's own positions — (symbol, position side, signed amount), non-zero only — a second
    #: source independent of positionRisk (emergency shutdown verifies "flat" on both); None when not reported
    positions: tuple[tuple[str, str, Decimal], ...] | None = None


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    """One non-zero exchange position. ``qty`` is signed (short < 0) in one-way mode and positive-for-long /
    negative-for-short on the LONG/SHORT sides in hedge mode (as Binance's positionAmt)."""

    symbol: str
    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized: Decimal
    liquidation_price: Decimal | None
    leverage: int | None
    ts: int


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What albra wants sent. ``client_id`` comes from the write-ahead intent (deterministic, ≤ 36 chars).
    Conditional types (STOP_MARKET, TAKE_PROFIT_MARKET) go to Binance's algo-order endpoints."""

    client_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal | None
    position_side: PositionSide = PositionSide.BOTH
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    close_position: bool = False
    working_type: WorkingType = WorkingType.MARK_PRICE

    @property
    def is_algo(self) -> bool:
        return self.order_type.is_conditional


@dataclass(frozen=True, slots=True)
class OrderResult:
    """An order as the exchange reports it (regular or algo)."""

    client_id: str
    exchange_id: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    position_side: PositionSide
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    price: Decimal | None
    trigger_price: Decimal | None
    reduce_only: bool
    close_position: bool
    is_algo: bool
    ts: int
    actual_order_id: str | None = None  # a fired algo order: its child order's id (its trades carry that id)


@dataclass(frozen=True, slots=True)
class IncomeRow:
    """A row of Binance's income history (REALIZED_PNL, COMMISSION, FUNDING_FEE, TRANSFER, ...)."""

    tran_id: str
    income_type: str
    amount: Decimal
    asset: str
    symbol: str
    ts: int


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Everything the runbook compares against the ledger, read in one go."""

    balance: Balance
    positions: tuple[ExchangePosition, ...]
    open_orders: tuple[OrderResult, ...]
    open_algo_orders: tuple[OrderResult, ...]
    position_mode: PositionMode
    ts: int
    extra: dict = field(default_factory=dict)


class Gateway(Protocol):
    """The ~15 calls albra needs from an exchange account. All raise on failure; none returns junk."""

    account: str

    async def server_time(self) -> int: ...

    async def load_markets(self) -> dict[str, MarketFilters]: ...

    async def fetch_candles(self, symbol: str, timeframe: str, since: int | None = None,
                            limit: int = 500) -> list[Candle]:
        """Candles oldest first; the last one may be the forming candle (``closed=False``)."""
        ...

    async def fetch_balance(self) -> Balance: ...

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[ExchangePosition]: ...

    async def fetch_position_mode(self) -> PositionMode: ...

    async def set_position_mode(self, mode: PositionMode) -> None:
        """Idempotent: "no need to change" is success."""
        ...

    async def setup_symbol(self, symbol: str, leverage: int, margin_mode: MarginMode) -> None:
        """Set margin mode and leverage; "already set" is success."""
        ...

    async def place_order(self, req: OrderRequest) -> OrderResult:
        """Raises OutcomeUnknown when the order may or may not exist (resolve with fetch_order)."""
        ...

    async def fetch_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        """None only when the exchange positively says the id is unknown."""
        ...

    async def cancel_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        """None when the order was already gone (unknown / final)."""
        ...

    async def cancel_all(self, symbol: str, kinds: str = "both") -> None:
        """Cancel every regular AND algo order on the symbol (two calls on Binance); ``kinds`` "regular" or
        "algo" cancels only that kind (emergency shutdown keeps stops until their position is confirmed gone)."""
        ...

    async def fetch_open_orders(self, symbol: str | None = None, algo: bool = False) -> list[OrderResult]: ...

    async def fetch_trades(self, symbol: str, since: int | None = None, limit: int = 1000) -> list[Fill]: ...

    async def fetch_income(self, since: int | None = None, income_type: str | None = None,
                           limit: int = 1000) -> list[IncomeRow]: ...

    async def close(self) -> None: ...
