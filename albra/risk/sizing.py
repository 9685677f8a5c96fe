"""Position sizing: notional = equity × size % × Kelly multiplier × MDD multiplier, quantised down to the step.

* **Size %** is notional as a share of equity (leverage only sets the margin; see :mod:`albra.risk.limits`).
* **Kelly**: with at least ``kelly_min_trades`` persisted closed trades of the strategy (the last ``kelly_window``),
  the size becomes the half-Kelly fraction ``f = W − (1 − W) / R`` × ``kelly_fraction`` (W = share of winning
  trades, R = average win / average loss, returns on entry notional), clamped to ``kelly_min_pct``–``kelly_max_pct``.
  The "Kelly multiplier" is that size divided by the configured size % (so the formula above holds). With fewer
  trades the configured size % is used as is (multiplier 1). A strategy with no losses yet gets the maximum, one
  with no wins the minimum.
* **MDD multiplier** comes from the drawdown level (:meth:`RiskLimits.mdd_level`).
* qty = notional / price, floored to the step size, capped at the market-order max qty; below the minimum qty or
  the minimum notional the entry is refused (a smaller order would be rejected by Binance anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from albra.model import MarketFilters
from albra.risk.limits import RiskLimits


def half_kelly_pct(returns: Sequence[Decimal], limits: RiskLimits) -> Decimal | None:
    """The clamped fractional-Kelly size in percent of equity, or None with too few trades (or Kelly disabled)."""
    if not limits.kelly_enabled or len(returns) < limits.kelly_min_trades:
        return None
    wins = [r for r in returns if r > 0]
    losses = [-r for r in returns if r < 0]
    if not losses:
        f = Decimal(1)
    elif not wins:
        f = Decimal(0)
    else:
        w = Decimal(len(wins)) / Decimal(len(returns))
        ratio = (sum(wins, Decimal(0)) / len(wins)) / (sum(losses, Decimal(0)) / len(losses))
        f = w - (1 - w) / ratio
    pct = f * limits.kelly_fraction * 100
    return min(max(pct, limits.kelly_min_pct), limits.kelly_max_pct)


@dataclass(frozen=True, slots=True)
class Sizing:
    size_pct: Decimal          # effective size % after Kelly
    kelly_multiplier: Decimal
    mdd_multiplier: Decimal
    notional: Decimal          # before quantisation
    qty: Decimal               # quantised down
    trades: int                # closed trades Kelly looked at


def size_entry(equity: Decimal, price: Decimal, size_pct: Decimal, returns: Sequence[Decimal],
               mdd_multiplier: Decimal, filters: MarketFilters, limits: RiskLimits) -> Sizing:
    kelly = half_kelly_pct(returns, limits)
    eff = size_pct if kelly is None else kelly
    kmult = eff / size_pct
    notional = equity * size_pct / 100 * kmult * mdd_multiplier
    qty = filters.floor_qty(notional / price)
    cap = filters.market_max_qty or filters.max_qty
    if cap and qty > cap:
        qty = filters.floor_qty(cap)
    return Sizing(eff, kmult, mdd_multiplier, notional, qty, len(returns))
