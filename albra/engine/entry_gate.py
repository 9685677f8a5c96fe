"""Pre-trade checks for a new leg, in the issue's order, each refusal with a reason the executor journals.

Kill switch → pause flags → opposite-leg conflict (one-way mode) → max open legs → daily loss (account and
strategy, realised + unrealised since 00:00 KST) → MDD guard (persisted peak; size multiplier by level, halt) →
concentration (one leg's notional ≤ max % of equity) → correlation (same-direction legs per symbol group) →
sizing (equity × size % × MDD multiplier, quantised down to the market's step, refused below min notional).

The engine calls this through :class:`EntryGate` so the risk package (``albra.risk``) can replace the body
without the executor changing; the persisted state it reads and writes (``risk_state`` peak, daily anchor,
``daily_realized`` from the ledger) is the same either way, so MDD and daily loss survive restarts (invariant 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from albra.model import D, Direction, MarketFilters, PositionMode
from albra.store import flags, risk_state
from albra.store.db import Store
from albra.timefmt import kst_date


@dataclass(frozen=True, slots=True)
class LiveLeg:
    """What the gate needs to know about an open leg."""

    strategy: str
    symbol: str
    direction: Direction
    qty: Decimal
    entry_price: Decimal


@dataclass(frozen=True, slots=True)
class EntryRequest:
    account: str
    strategy: str
    symbol: str
    direction: Direction
    price: Decimal
    size_pct: float
    equity: Decimal
    position_mode: PositionMode
    filters: MarketFilters
    open_legs: Sequence[LiveLeg]
    now_ms: int


@dataclass(frozen=True, slots=True)
class EntryDecision:
    allowed: bool
    rule: str
    reason: str
    qty: Decimal = Decimal(0)
    multiplier: float = 1.0


def _refuse(rule: str, reason: str) -> EntryDecision:
    return EntryDecision(False, rule, reason)


def update_equity(store: Store, account: str, equity: Decimal, now_ms: int) -> tuple[Decimal, Decimal]:
    """Persist the equity peak (MDD) and the KST-day anchor (daily loss); returns (peak, day-start equity)."""
    peak_row = risk_state.get(store, account, risk_state.MDD_PEAK)
    peak = D(peak_row["equity"]) if peak_row else Decimal(0)
    if equity > peak:
        peak = equity
        risk_state.put(store, account, risk_state.MDD_PEAK, {"equity": format(peak, "f"), "ts": now_ms}, ts=now_ms)
    day = kst_date(now_ms)
    anchor = risk_state.get(store, account, risk_state.DAILY_ANCHOR)
    if not anchor or anchor.get("kst_day") != day:
        anchor = {"kst_day": day, "start_equity": format(equity, "f"), "ts": now_ms}
        risk_state.put(store, account, risk_state.DAILY_ANCHOR, anchor, ts=now_ms)
    return peak, D(anchor["start_equity"])


def _unrealized(legs: Sequence[LiveLeg], price_of: dict[str, Decimal]) -> Decimal:
    tot = Decimal(0)
    for lg in legs:
        p = price_of.get(lg.symbol)
        if p is not None:
            tot += lg.direction.sign * lg.qty * (p - lg.entry_price)
    return tot


class EntryGate:
    """Decides whether (and how big) a new leg may be opened. ``limits_for(strategy)`` gives the effective
    :class:`~albra.config.RiskLimits` of the strategy on this account."""

    def __init__(self, store: Store, limits_for, use_flags: bool = True) -> None:
        self.store = store
        self.limits_for = limits_for
        self.use_flags = use_flags

    def evaluate(self, req: EntryRequest) -> EntryDecision:
        lim = self.limits_for(req.strategy)
        if self.use_flags:
            blk = flags.entry_block(self.store, req.account, req.strategy)
            if blk is not None:
                rule = "kill_switch" if blk.kind == flags.KILL_SWITCH else "paused"
                why = "kill switch is ON" if rule == "kill_switch" else f"entries paused ({blk.scope})"
                return _refuse(rule, why + (f": {blk.reason}" if blk.reason else ""))
        if req.position_mode is PositionMode.ONE_WAY:
            for lg in req.open_legs:
                if lg.symbol == req.symbol and lg.direction is not req.direction:
                    return _refuse("opposite_leg", (
                        f"one-way mode: {lg.strategy} holds a {lg.direction.value} leg on {req.symbol}; a "
                        f"{req.direction.value} entry would net it (use hedge mode for opposite legs)"))
        if len(req.open_legs) >= lim.max_open_legs:
            return _refuse("max_open_legs", f"{len(req.open_legs)} open legs, limit {lim.max_open_legs}")
        peak, day_start = update_equity(self.store, req.account, req.equity, req.now_ms)
        if day_start > 0:
            lost = day_start - req.equity
            if lost > 0 and lost / day_start * 100 >= Decimal(str(lim.daily_loss_pct)):
                return _refuse("daily_loss", (
                    f"account lost {lost:.2f} USDT since 00:00 KST ({lost / day_start * 100:.2f}% of "
                    f"{day_start:.2f}), limit {lim.daily_loss_pct}%"))
            from albra.ledger.daily_pnl import realized_on

            mine = [lg for lg in req.open_legs if lg.strategy == req.strategy]
            strat_pnl = realized_on(self.store, req.account, req.strategy, kst_date(req.now_ms)) + _unrealized(
                mine, {req.symbol: req.price})
            if strat_pnl < 0 and -strat_pnl / day_start * 100 >= Decimal(str(lim.daily_loss_pct)):
                return _refuse("daily_loss_strategy", (
                    f"{req.strategy} lost {-strat_pnl:.2f} USDT today (KST), limit {lim.daily_loss_pct}% of "
                    f"{day_start:.2f}"))
        mult = 1.0
        if peak > 0:
            dd = float((peak - req.equity) / peak * 100)
            if dd >= lim.mdd_halt_pct:
                return _refuse("mdd_halt", f"drawdown {dd:.1f}% from peak {peak:.2f} ≥ halt {lim.mdd_halt_pct}%")
            for lvl in lim.mdd_levels:
                if dd >= lvl.drawdown_pct:
                    mult = lvl.size_multiplier
        notional = req.equity * D(req.size_pct) / 100 * D(mult)
        if notional > req.equity * D(lim.max_leg_notional_pct) / 100:
            return _refuse("concentration", (
                f"leg notional {notional:.2f} above {lim.max_leg_notional_pct}% of equity {req.equity:.2f}"))
        groups = lim.correlation.groups
        group = next((g for g, syms in groups.items() if req.symbol in syms), None)
        members = set(groups[group]) if group else {req.symbol}
        same = [lg for lg in req.open_legs if lg.symbol in members and lg.direction is req.direction]
        if len(same) >= lim.correlation.max_same_direction_legs:
            return _refuse("correlation", (
                f"{len(same)} {req.direction.value} legs already open in group {group or req.symbol}, limit "
                f"{lim.correlation.max_same_direction_legs}"))
        f = req.filters
        qty = f.floor_qty(notional / req.price)
        if qty < f.min_qty or qty * req.price < f.min_notional:
            return _refuse("min_notional", (
                f"size {qty} at {req.price} ({qty * req.price:.2f} USDT) is below the market minimum "
                f"({f.min_notional} USDT / {f.min_qty})"))
        return EntryDecision(True, "ok", f"{req.size_pct}% × MDD {mult}", qty, mult)
