"""Listed markets: exchange filters, leverage brackets and contract metadata of the simulation.

The numbers follow Binance USDⓈ-M as of 2024 for BTCUSDT and ETHUSDT (tick, step, min notional,
and the classic maintenance-margin brackets). Unknown symbols are an error (-1121), never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from albra.model import MarketFilters
from albra.sim.errors import bad_symbol


@dataclass(frozen=True)
class Bracket:
    """One maintenance-margin tier: notional in [floor, cap) uses ``mmr`` and ``cum`` (maintenance amount)."""

    n: int
    floor: Decimal
    cap: Decimal
    mmr: Decimal
    max_leverage: int
    cum: Decimal


@dataclass(frozen=True)
class MarketSpec:
    """Everything the exchange needs to know about one perpetual contract."""

    filters: MarketFilters
    base: str
    quote: str
    price_precision: int
    qty_precision: int
    brackets: tuple[Bracket, ...]

    @property
    def symbol(self) -> str:
        return self.filters.symbol

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].max_leverage

    def bracket_for(self, notional: Decimal) -> Bracket:
        """The tier whose notional range holds ``notional`` (the last tier above every cap)."""
        for b in self.brackets:
            if notional < b.cap:
                return b
        return self.brackets[-1]


def _brackets(rows: list[tuple[int, int, str, int]]) -> tuple[Bracket, ...]:
    """Build tiers from (floor, cap, mmr, max leverage); cum follows Binance's definition
    cum_n = cum_{n-1} + floor_n * (mmr_n - mmr_{n-1})."""
    out: list[Bracket] = []
    cum = Decimal(0)
    prev_mmr = Decimal(0)
    for i, (floor, cap, mmr, lev) in enumerate(rows, start=1):
        m = Decimal(mmr)
        cum = cum + Decimal(floor) * (m - prev_mmr)
        out.append(Bracket(i, Decimal(floor), Decimal(cap), m, lev, cum))
        prev_mmr = m
    return tuple(out)


def _spec(symbol: str, base: str, tick: str, step: str, min_qty: str, max_qty: str, market_max: str,
          min_notional: str, pp: int, qp: int, rows: list[tuple[int, int, str, int]]) -> MarketSpec:
    f = MarketFilters(symbol, Decimal(tick), Decimal(step), Decimal(min_qty), Decimal(max_qty),
                      Decimal(min_notional), Decimal(market_max))
    return MarketSpec(f, base, "USDT", pp, qp, _brackets(rows))


DEFAULT_MARKETS: dict[str, MarketSpec] = {
    "BTCUSDT": _spec(
        "BTCUSDT", "BTC", "0.1", "0.001", "0.001", "1000", "120", "100", 2, 3,
        [(0, 50_000, "0.004", 125), (50_000, 250_000, "0.005", 100), (250_000, 3_000_000, "0.01", 50),
         (3_000_000, 15_000_000, "0.025", 20), (15_000_000, 30_000_000, "0.05", 10),
         (30_000_000, 80_000_000, "0.1", 5), (80_000_000, 100_000_000, "0.125", 4),
         (100_000_000, 200_000_000, "0.15", 3), (200_000_000, 300_000_000, "0.25", 2),
         (300_000_000, 500_000_000, "0.5", 1)],
    ),
    "ETHUSDT": _spec(
        "ETHUSDT", "ETH", "0.01", "0.001", "0.001", "10000", "2000", "20", 2, 3,
        [(0, 10_000, "0.005", 100), (10_000, 100_000, "0.0065", 75), (100_000, 500_000, "0.01", 50),
         (500_000, 1_000_000, "0.02", 25), (1_000_000, 2_000_000, "0.05", 10),
         (2_000_000, 5_000_000, "0.1", 5), (5_000_000, 10_000_000, "0.125", 4),
         (10_000_000, 20_000_000, "0.15", 3), (20_000_000, 50_000_000, "0.25", 2),
         (50_000_000, 100_000_000, "0.5", 1)],
    ),
}


def market_spec(symbol: str, markets: dict[str, MarketSpec] | None = None) -> MarketSpec:
    """The spec of ``symbol`` or a -1121 rejection."""
    try:
        return (markets or DEFAULT_MARKETS)[symbol]
    except KeyError:
        raise bad_symbol(symbol) from None
