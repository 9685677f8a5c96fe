"""Pre-trade risk: one entry request in, an allowed-and-sized or refused verdict out.

Rules run in this order and the first refusal wins; every refusal is journaled (kind ``risk_refused``) with its
rule and reason:

1. ``kill_switch`` — the kill switch is on (for every account or for this one).
2. ``pause`` — a pause flag covers the account or the strategy (``flags.entry_block``).
3. ``opposite_leg`` — one-way mode only: a live leg on the same account and symbol in the other direction
   (another strategy's, or the same strategy's) would be netted by this entry. Hedge mode allows it: the new
   leg lives on the other position side with its own protective orders.
4. ``max_open_legs`` — the account already has ``max_open_legs`` live legs (unattributed ones count);
   ``max_legs_per_symbol`` (when set) — the strategy already holds that many live legs on this symbol (its legs on
   other symbols do not count: a strategy trading several symbols holds one on each with 1).
5. ``daily_loss`` — account: loss since 00:00 KST = day-start equity (transfers excluded) − equity now;
   strategy: −(realised today + unrealised of its live legs) at the given marks. Each is refused at
   ``daily_loss_pct`` / ``strategy_daily_loss_pct`` of the day-start equity. The anchor lives in the store
   (``DAILY_ANCHOR``, written by :func:`albra.risk.equity.update_equity`); without today's anchor entries are refused.
6. ``mdd`` — drawdown from the persisted peak (``MDD_PEAK``); at ``mdd_halt_pct`` no entries, below it the level's
   size multiplier. Without a persisted peak entries are refused.
7. ``concentration`` — the leg's notional (plus the strategy's live legs on this symbol and direction) above
   ``max_leg_notional_pct`` of equity.
8. ``correlation`` — a live leg in the same direction on a symbol whose configured correlation with this one is
   at least the threshold, once ``max_correlated_legs`` same-direction legs are open across this symbol and its
   correlated ones (default 1: any such leg refuses). Same-symbol stacking alone never trips it (that is
   ``max_open_legs`` and concentration).
9. ``sizing`` — qty after quantisation below the minimum qty or notional below the minimum notional.

Inputs that cannot be trusted (a non-positive equity, a price ≤ 0, a mark price missing for a leg that must be
valued) are refused too, never defaulted: a missing number is not zero. A missing mark is its own rule,
``no_mark_price`` (not a daily loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Sequence

from albra.exchange.types import Balance
from albra.ledger import daily_pnl, kelly
from albra.ledger.legs import Leg
from albra.model import Direction, MarketFilters, PositionMode
from albra.risk.equity import RiskInputError, check_balance
from albra.risk.limits import RiskLimits
from albra.risk.sizing import size_entry
from albra.store import flags, journal, risk_state
from albra.store.db import Store
from albra.timefmt import kst_date


@dataclass(frozen=True)
class EntryRequest:
    """One proposed entry. ``size_pct`` is notional as % of equity; ``open_legs`` the account's live legs;
    ``marks`` mark prices per symbol for valuing open legs (the entry's own symbol falls back to ``price``)."""

    account: str
    strategy: str
    symbol: str
    direction: Direction
    price: Decimal
    stop_price: Decimal | None
    size_pct: Decimal
    position_mode: PositionMode
    filters: MarketFilters
    balance: Balance
    open_legs: Sequence[Leg]
    now_ms: int
    marks: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class RiskVerdict:
    allowed: bool
    qty: Decimal
    notional: Decimal
    reason: str
    rule: str
    multipliers: dict[str, Decimal] = field(default_factory=dict)


class _Refuse(Exception):
    def __init__(self, rule: str, reason: str, **data: object) -> None:
        super().__init__(reason)
        self.rule, self.reason, self.data = rule, reason, data


def _validate(req: EntryRequest) -> None:
    if not isinstance(req.price, Decimal) or not req.price.is_finite() or req.price <= 0:
        raise ValueError(f"entry price must be a positive Decimal, got {req.price!r}")
    if not isinstance(req.size_pct, Decimal) or req.size_pct <= 0:
        raise ValueError(f"size_pct must be a positive Decimal (notional as % of equity), got {req.size_pct!r}")
    if req.filters.symbol != req.symbol:
        raise ValueError(f"filters are for {req.filters.symbol}, the entry is on {req.symbol}")
    for g in req.open_legs:
        if g.account != req.account:
            raise ValueError(f"open leg {g.leg_id} belongs to {g.account}, not {req.account}")
    Direction(req.direction)
    PositionMode(req.position_mode)


def _unrealized(leg: Leg, req: EntryRequest) -> Decimal:
    mark = req.marks.get(leg.symbol) or (req.price if leg.symbol == req.symbol else None)
    if mark is None:
        raise _Refuse("no_mark_price", f"no mark price for {leg.symbol}: cannot value open leg {leg.leg_id} "
                      "for the daily-loss rule", leg_id=leg.leg_id)
    if leg.entry_price is None:
        return Decimal(0)
    return (mark - leg.entry_price) * leg.qty * leg.direction.sign


def _check(store: Store, limits: RiskLimits, req: EntryRequest, equity: Decimal) -> RiskVerdict:
    block = flags.entry_block(store, req.account, req.strategy)
    if block is not None and block.kind == flags.KILL_SWITCH:
        raise _Refuse("kill_switch", f"kill switch is on{': ' + block.reason if block.reason else ''}")
    if block is not None:
        raise _Refuse("pause", f"entries paused for {block.scope}{': ' + block.reason if block.reason else ''}")

    live = [g for g in req.open_legs if g.state.is_live]
    if PositionMode(req.position_mode) is PositionMode.ONE_WAY:
        for g in live:
            if g.symbol == req.symbol and g.direction is not req.direction:
                whose = "its own" if g.strategy == req.strategy else f"{g.strategy}'s"
                raise _Refuse("opposite_leg", f"one-way mode: a {req.direction} entry on {req.symbol} would net "
                              f"{whose} open {g.direction} leg {g.leg_id} ({g.qty}); refused (hedge mode allows it)",
                              leg_id=g.leg_id, other_strategy=g.strategy)

    if len(live) >= limits.max_open_legs:
        raise _Refuse("max_open_legs", f"{len(live)} open legs on {req.account}, limit {limits.max_open_legs}")
    if limits.max_legs_per_symbol is not None:
        mine = [g for g in live if g.strategy == req.strategy and g.symbol == req.symbol]
        if len(mine) >= limits.max_legs_per_symbol:
            raise _Refuse("max_legs_per_symbol", f"{req.strategy} already holds {len(mine)} leg(s) on {req.symbol}, "
                          f"limit {limits.max_legs_per_symbol} per symbol (its legs on other symbols do not count)")

    today = kst_date(req.now_ms)
    anchor = risk_state.get(store, req.account, risk_state.DAILY_ANCHOR)
    if not anchor or anchor.get("kst_day") != today:
        raise _Refuse("daily_loss", f"no daily anchor for {today} KST: update_equity has not run today for "
                      f"{req.account}")
    start = Decimal(anchor["start_equity"])
    acct_loss = start - equity
    if acct_loss > 0 and acct_loss / start * 100 >= limits.daily_loss_pct:
        raise _Refuse("daily_loss", f"account {req.account} lost {acct_loss:.2f} USDT today "
                      f"({acct_loss / start * 100:.2f}% of {start:.2f}), limit {limits.daily_loss_pct}%",
                      scope="account", loss=str(acct_loss))
    realized = daily_pnl.realized_on(store, req.account, req.strategy, today)
    unreal = sum((_unrealized(g, req) for g in live if g.strategy == req.strategy and g.qty > 0), Decimal(0))
    strat_loss = -(realized + unreal)
    if strat_loss > 0 and strat_loss / start * 100 >= limits.strategy_daily_loss_pct:
        raise _Refuse("daily_loss", f"strategy {req.strategy} lost {strat_loss:.2f} USDT today (realised "
                      f"{realized:.2f}, unrealised {unreal:.2f}; {strat_loss / start * 100:.2f}% of {start:.2f}), "
                      f"limit {limits.strategy_daily_loss_pct}%", scope="strategy", loss=str(strat_loss))

    peak_rec = risk_state.get(store, req.account, risk_state.MDD_PEAK)
    if not peak_rec:
        raise _Refuse("mdd", f"no persisted MDD peak for {req.account}: update_equity must run before entries")
    peak = max(Decimal(peak_rec["equity"]), equity)
    dd = (peak - equity) / peak * 100
    level, mdd_mult = limits.mdd_level(dd)
    if level >= limits.halt_level:
        raise _Refuse("mdd", f"drawdown {dd:.2f}% from peak {peak:.2f} is at or above the {limits.mdd_halt_pct}% "
                      "halt: no new entries", drawdown_pct=str(dd))

    # Kelly disabled: its history is not read at all (a long backtest would re-read closed legs per entry)
    returns = kelly.trade_returns(store, req.account, req.strategy, limit=limits.kelly_window) \
        if limits.kelly_enabled else []
    sz = size_entry(equity, req.price, req.size_pct, returns, mdd_mult, req.filters, limits)
    mults = {"kelly": sz.kelly_multiplier, "mdd": mdd_mult, "size_pct": sz.size_pct,
             "kelly_trades": Decimal(sz.trades), "mdd_level": Decimal(level)}
    notional = sz.qty * req.price

    stacked = sum((g.qty * req.price for g in live if g.strategy == req.strategy and g.symbol == req.symbol
                   and g.direction is req.direction), Decimal(0))
    if (sz.notional + stacked) / equity * 100 > limits.max_leg_notional_pct:
        raise _Refuse("concentration", f"leg notional {sz.notional + stacked:.2f} would be "
                      f"{(sz.notional + stacked) / equity * 100:.2f}% of equity {equity:.2f}, limit "
                      f"{limits.max_leg_notional_pct}%")

    if limits.correlation_threshold is not None:
        same = [g for g in live if g.direction is req.direction]
        linked = []
        for g in same:
            if g.symbol == req.symbol:
                continue
            corr = limits.correlation(g.symbol, req.symbol)
            if corr is not None and corr >= limits.correlation_threshold:
                linked.append((g, corr))
        group = len(linked) + sum(1 for g in same if g.symbol == req.symbol)
        if linked and group >= limits.max_correlated_legs:
            g, corr = linked[0]
            raise _Refuse("correlation", f"{req.direction} {req.symbol} is correlated {corr} with the "
                          f"{g.direction} {g.symbol} leg {g.leg_id} (threshold {limits.correlation_threshold}; "
                          f"{group} same-direction leg(s) open across correlated symbols, limit "
                          f"{limits.max_correlated_legs})", leg_id=g.leg_id)

    if sz.qty < req.filters.min_qty or sz.qty <= 0:
        raise _Refuse("sizing", f"qty {sz.qty} (notional {sz.notional:.4f} at {req.price}) is below the minimum qty "
                      f"{req.filters.min_qty}")
    if notional < req.filters.min_notional:
        raise _Refuse("sizing", f"notional {notional:.4f} is below the minimum notional {req.filters.min_notional}")
    return RiskVerdict(True, sz.qty, notional,
                       f"{req.direction} {sz.qty} {req.symbol} ≈ {notional:.2f} USDT ({sz.size_pct}% × MDD ×{mdd_mult})",
                       "ok", mults)


def evaluate_entry(store: Store, limits: RiskLimits, req: EntryRequest) -> RiskVerdict:
    """Run the rules in order; an allowed verdict carries the quantised qty, a refusal is journaled."""
    _validate(req)
    try:
        try:
            equity = check_balance(req.balance)
        except RiskInputError as e:
            raise _Refuse("equity", str(e)) from None
        return _check(store, limits, req, equity)
    except _Refuse as r:
        journal.append(store, "risk_refused", f"{req.strategy} {req.direction} {req.symbol} refused by {r.rule}: "
                       f"{r.reason}", level="WARNING", account=req.account, strategy=req.strategy,
                       symbol=req.symbol, data={"rule": r.rule, "reason": r.reason, **r.data}, ts=req.now_ms)
        return RiskVerdict(False, Decimal(0), Decimal(0), r.reason, r.rule, {})
