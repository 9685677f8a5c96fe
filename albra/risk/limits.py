"""Risk limits as plain values (the engine maps the config onto :class:`RiskLimits`; risk never reads config).

Units: every ``*_pct`` is a percentage (``Decimal("3")`` = 3 %). **Size %** is the leg's *notional* as a share of
account equity (``size_pct=10`` on 1 000 USDT equity → a 100 USDT position), whatever the leverage: leverage only
decides how much margin that notional ties up, never how big the position is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping

DEFAULT_MDD_LEVELS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("30"), Decimal("0.7")),
    (Decimal("35"), Decimal("0.5")),
    (Decimal("40"), Decimal("0.3")),
    (Decimal("50"), Decimal("0.1")),
)
DEFAULT_CORRELATIONS: Mapping[tuple[str, str], Decimal] = {("BTCUSDT", "ETHUSDT"): Decimal("0.85")}


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits. Defaults are the issue's: daily loss 3 % (account and each strategy), MDD levels
    30/35/40/50 % scaling size by 0.7/0.5/0.3/0.1, halt at 60 %, one leg ≤ 40 % of equity, BTC/ETH correlated at
    0.85 against a 0.8 threshold (``max_correlated_legs`` = 1: one same-direction leg on a correlated symbol already
    blocks; with N, a new leg is refused once N same-direction legs are open across it and its correlated symbols,
    at least one of them on another symbol), half-Kelly from ≥ 20 closed trades clamped to 5–20 %."""

    daily_loss_pct: Decimal = Decimal("3")
    strategy_daily_loss_pct: Decimal = Decimal("3")
    max_open_legs: int = 6
    max_legs_per_symbol: int | None = None  # per strategy and symbol; None: only max_open_legs applies
    mdd_levels: tuple[tuple[Decimal, Decimal], ...] = DEFAULT_MDD_LEVELS
    mdd_halt_pct: Decimal = Decimal("60")
    flatten_on_halt: bool = False
    max_leg_notional_pct: Decimal = Decimal("40")
    correlations: Mapping[tuple[str, str], Decimal] = field(default_factory=lambda: dict(DEFAULT_CORRELATIONS))
    correlation_threshold: Decimal | None = Decimal("0.8")
    max_correlated_legs: int = 1
    kelly_enabled: bool = True
    kelly_min_trades: int = 20
    kelly_window: int = 100
    kelly_fraction: Decimal = Decimal("0.5")
    kelly_min_pct: Decimal = Decimal("5")
    kelly_max_pct: Decimal = Decimal("20")

    def __post_init__(self) -> None:
        for name in ("daily_loss_pct", "strategy_daily_loss_pct", "mdd_halt_pct", "max_leg_notional_pct",
                     "kelly_min_pct", "kelly_max_pct", "kelly_fraction"):
            v = getattr(self, name)
            if not isinstance(v, Decimal) or not v.is_finite() or v <= 0:
                raise ValueError(f"RiskLimits.{name} must be a positive Decimal, got {v!r}")
        if self.max_correlated_legs < 1:
            raise ValueError(f"RiskLimits.max_correlated_legs must be at least 1, got {self.max_correlated_legs}")
        if self.max_legs_per_symbol is not None and self.max_legs_per_symbol < 1:
            raise ValueError(f"RiskLimits.max_legs_per_symbol must be at least 1, got {self.max_legs_per_symbol}")
        if self.max_open_legs < 1:
            raise ValueError(f"RiskLimits.max_open_legs must be at least 1, got {self.max_open_legs}")
        if self.kelly_min_pct > self.kelly_max_pct:
            raise ValueError("RiskLimits.kelly_min_pct must not exceed kelly_max_pct")
        if self.kelly_min_trades < 2:
            raise ValueError("RiskLimits.kelly_min_trades must be at least 2")
        prev = Decimal(0)
        for pct, mult in self.mdd_levels:
            if pct <= prev or not Decimal(0) < mult <= 1:
                raise ValueError(f"RiskLimits.mdd_levels must rise with multipliers in (0, 1]: {self.mdd_levels}")
            prev = pct
        if self.mdd_levels and self.mdd_halt_pct <= self.mdd_levels[-1][0]:
            raise ValueError("RiskLimits.mdd_halt_pct must be above the last MDD level")

    def correlation(self, a: str, b: str) -> Decimal | None:
        """Configured correlation of two symbols (either order), None when not configured."""
        return self.correlations.get((a, b), self.correlations.get((b, a)))

    def mdd_level(self, drawdown_pct: Decimal) -> tuple[int, Decimal]:
        """(level, size multiplier) for a drawdown: level 0 → ×1; 1..N → the configured levels; N+1 → halt (×0)."""
        if drawdown_pct >= self.mdd_halt_pct:
            return len(self.mdd_levels) + 1, Decimal(0)
        level, mult = 0, Decimal(1)
        for i, (pct, m) in enumerate(self.mdd_levels, start=1):
            if drawdown_pct >= pct:
                level, mult = i, m
        return level, mult

    @property
    def halt_level(self) -> int:
        return len(self.mdd_levels) + 1
