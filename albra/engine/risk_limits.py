"""Config → risk: the one place the engine turns the configured limits into :class:`albra.risk.RiskLimits`, and
the equity refresh every balance read goes through.

Why a mapping and not the config model itself: risk never reads configuration (it is tested with plain values),
and the config speaks in operator terms (floats, correlation *groups*) while risk wants Decimals and pairwise
correlations. Mapping of the correlation groups: every two symbols of one group are correlated 1 (at or above
any threshold), ``max_same_direction_legs`` becomes ``max_correlated_legs``; symbols in no group are correlated
with nothing (the risk package's built-in BTC/ETH pair is replaced by the configured groups).
"""

from __future__ import annotations

from decimal import Decimal
from itertools import combinations
from typing import Any

from albra.risk import EquityUpdate, RiskLimits, update_equity
from albra.store import risk_state
from albra.store.db import Store


def _d(v: float) -> Decimal:
    return Decimal(str(v))


def risk_limits(cfg: Any) -> RiskLimits:
    """:class:`albra.risk.RiskLimits` for a configured ``albra.config.RiskLimits`` (``Settings.effective_risk``)."""
    corr: dict[tuple[str, str], Decimal] = {}
    for symbols in cfg.correlation.groups.values():
        for a, b in combinations(sorted(set(symbols)), 2):
            corr[(a, b)] = Decimal(1)
    k = cfg.kelly
    return RiskLimits(
        daily_loss_pct=_d(cfg.daily_loss_pct),
        strategy_daily_loss_pct=_d(cfg.daily_loss_pct),
        max_open_legs=int(cfg.max_open_legs),
        max_legs_per_symbol=None if cfg.max_legs_per_symbol is None else int(cfg.max_legs_per_symbol),
        mdd_levels=tuple((_d(lv.drawdown_pct), _d(lv.size_multiplier)) for lv in cfg.mdd_levels),
        mdd_halt_pct=_d(cfg.mdd_halt_pct),
        flatten_on_halt=bool(cfg.mdd_flatten_on_halt),
        max_leg_notional_pct=_d(cfg.max_leg_notional_pct),
        correlations=corr,
        correlation_threshold=Decimal("0.8"),
        max_correlated_legs=int(cfg.correlation.max_same_direction_legs),
        kelly_enabled=bool(k.enabled),
        kelly_min_trades=max(2, int(k.min_trades)),
        kelly_fraction=_d(k.fraction),
        kelly_min_pct=_d(k.min_pct),
        kelly_max_pct=_d(k.max_pct),
    )


async def refresh_equity(store: Store, gateway: Any, account: str, limits: RiskLimits, now_ms: int,
                         balance: Any = None) -> EquityUpdate:
    """Read the balance (unless given) and the income history since the last cursor, and persist peak, daily
    anchor and MDD level (:func:`albra.risk.update_equity`: transfers move the peak, never balance jumps).
    A failed read raises: risk state is never updated from "unknown"."""
    if balance is None:
        balance = await gateway.fetch_balance()
    cursor = risk_state.get(store, account, risk_state.INCOME_CURSOR)
    rows = await gateway.fetch_income(since=int(cursor["ts"]) if cursor else None)
    return update_equity(store, account, balance, rows, now_ms, limits)
