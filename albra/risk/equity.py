"""Equity bookkeeping that must survive restarts (invariant 5): the MDD peak, the MDD level, the daily anchor.

:func:`update_equity` is called by the engine with every fresh balance read (and the income rows read since the
last call). In one transaction it:

* records new transfer rows (TRANSFER, INTERNAL_TRANSFER, STRATEGY_UMFUTURES_TRANSFER in USDT) and moves the peak
  and the day's start equity by each transfer made after they were set: a withdrawal of X lowers the peak by X, a
  deposit raises it. Money moved in or out is never read from balance jumps (the replaced system reset the peak
  on any 20 % drop, erasing real losses);
* raises the peak to the current equity (equity = wallet + unrealised PnL);
* starts a new daily anchor at the first update of each KST day (00:00 KST; the anchor is the equity then);
* computes the drawdown ``(peak − equity) / peak`` and its level; a change is journaled and returned, and reaching
  the halt level opens an ``mdd_halt`` incident (one open incident per account is reused);
* stores an equity snapshot.

A balance that is missing, not finite, or zero/negative is refused with :class:`RiskInputError`: a failed read is
never a zero (a zero would erase the peak's meaning and every limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Sequence

from albra.exchange.types import Balance, IncomeRow
from albra.model import D
from albra.risk.limits import RiskLimits
from albra.store import incidents, journal, risk_state
from albra.store.db import Store
from albra.timefmt import fmt_kst, kst_date

TRANSFER_TYPES = frozenset({"TRANSFER", "INTERNAL_TRANSFER", "STRATEGY_UMFUTURES_TRANSFER"})


class RiskInputError(ValueError):
    """Risk was given an input it cannot trust (a missing or impossible equity, a missing mark price...)."""


def check_balance(balance: Balance) -> Decimal:
    """The equity of a validated balance read, or :class:`RiskInputError`."""
    if not isinstance(balance, Balance):
        raise RiskInputError(f"expected a Balance, got {type(balance).__name__}: a failed read is an error, not a zero")
    eq = balance.equity
    if not isinstance(eq, Decimal) or not eq.is_finite():
        raise RiskInputError(f"equity {eq!r} is not a finite Decimal")
    if eq <= 0:
        raise RiskInputError(f"equity {eq} is not positive: refusing to treat it as a real reading "
                             "(a failed read must raise, never come back as zero)")
    return eq


@dataclass(frozen=True, slots=True)
class LevelChange:
    """The MDD level moved from ``old`` to ``new`` (0 = none, 1..N = size levels, N+1 = halt)."""

    old: int
    new: int
    drawdown_pct: Decimal
    multiplier: Decimal
    halted: bool


@dataclass(frozen=True)
class EquityUpdate:
    equity: Decimal
    peak: Decimal
    drawdown_pct: Decimal
    level: int
    multiplier: Decimal
    halted: bool
    flatten: bool
    day_start_equity: Decimal
    kst_day: str
    changes: list[LevelChange] = field(default_factory=list)
    transfers_applied: list[IncomeRow] = field(default_factory=list)
    incident_id: str | None = None


def _read(c, account: str, key: str):  # noqa: ANN001
    return risk_state.value(c, account, key)


def update_equity(store: Store, account: str, balance: Balance, income_rows: Sequence[IncomeRow], now_ms: int,
                  limits: RiskLimits | None = None) -> EquityUpdate:
    """Persist peak, daily anchor and MDD level from a fresh balance read; see the module docstring."""
    limits = limits or RiskLimits()
    equity = check_balance(balance)
    day = kst_date(now_ms)
    applied: list[IncomeRow] = []
    with store.tx() as c:
        peak = _read(c, account, risk_state.MDD_PEAK)
        anchor = _read(c, account, risk_state.DAILY_ANCHOR)
        prev = _read(c, account, risk_state.MDD_LEVEL) or {"level": 0}
        cursor = _read(c, account, risk_state.INCOME_CURSOR)
        newest = cursor["ts"] if cursor else None
        for r in sorted(income_rows, key=lambda r: (r.ts, str(r.tran_id))):
            newest = r.ts if newest is None else max(newest, r.ts)
            if r.income_type not in TRANSFER_TYPES or r.asset != "USDT":
                continue
            cur = c.execute("INSERT OR IGNORE INTO income(account, tran_id, income_type, amount, asset, symbol, ts)"
                            " VALUES (?,?,?,?,?,?,?)", (account, str(r.tran_id), r.income_type, format(r.amount, "f"),
                                                        r.asset, r.symbol, r.ts))
            if not cur.rowcount:
                continue
            applied.append(r)
            if peak is not None and r.ts > peak["ts"]:
                peak = {"equity": format(D(peak["equity"]) + r.amount, "f"), "ts": peak["ts"]}
            if anchor is not None and anchor["kst_day"] == kst_date(r.ts) and r.ts > anchor["ts"]:
                anchor = {**anchor, "start_equity": format(D(anchor["start_equity"]) + r.amount, "f")}
            journal.append(store, "transfer_seen", f"{'deposit' if r.amount > 0 else 'withdrawal'} of {abs(r.amount)}"
                           f" USDT at {fmt_kst(r.ts)}: MDD peak and daily start adjusted", account=account,
                           data={"tran_id": r.tran_id, "amount": str(r.amount)}, ts=now_ms, conn=c)
        peak_eq = D(peak["equity"]) if peak is not None else None
        if peak_eq is None or peak_eq <= 0 or equity > peak_eq:
            peak = {"equity": format(equity, "f"), "ts": now_ms}
            peak_eq = equity
        if anchor is None or anchor["kst_day"] != day:
            anchor = {"kst_day": day, "start_equity": format(equity, "f"), "ts": now_ms}
        dd = ((peak_eq - equity) / peak_eq * 100) if peak_eq > 0 else Decimal(0)
        level, mult = limits.mdd_level(dd)
        halted = level >= limits.halt_level
        old = int(prev.get("level", 0))
        changes: list[LevelChange] = []
        if level != old:
            changes.append(LevelChange(old, level, dd, mult, halted))
            journal.append(store, "mdd_level", f"MDD level {old} → {level} at drawdown {dd:.2f}% (size ×{mult})",
                           level="CRITICAL" if halted else ("WARNING" if level > old else "INFO"), account=account,
                           data={"old": old, "new": level, "drawdown_pct": str(dd), "multiplier": str(mult)},
                           ts=now_ms, conn=c)
        risk_state.put(store, account, risk_state.MDD_PEAK, peak, ts=now_ms, conn=c)
        risk_state.put(store, account, risk_state.DAILY_ANCHOR, anchor, ts=now_ms, conn=c)
        risk_state.put(store, account, risk_state.MDD_LEVEL,
                       {"level": level, "drawdown_pct": format(dd, "f"), "ts": now_ms, "halted": halted}, ts=now_ms,
                       conn=c)
        if newest is not None:
            risk_state.put(store, account, risk_state.INCOME_CURSOR, {"ts": newest}, ts=now_ms, conn=c)
        c.execute("INSERT OR REPLACE INTO equity_snapshots(account, ts, wallet, unrealized, equity, available)"
                  " VALUES (?,?,?,?,?,?)", (account, now_ms, format(balance.wallet, "f"),
                                            format(balance.unrealized, "f"), format(equity, "f"),
                                            format(balance.available, "f")))
    incident_id = None
    newly_halted = halted and old < limits.halt_level
    if newly_halted:
        inc = incidents.open_incident(store, "mdd_halt", f"{account}: drawdown {dd:.2f}% reached the "
                                      f"{limits.mdd_halt_pct}% halt; no new entries", account=account,
                                      opened_by="risk", details={"drawdown_pct": str(dd), "peak": str(peak_eq),
                                                                 "equity": str(equity)}, ts=now_ms, reuse_open=True)
        incident_id = inc.incident_id
    return EquityUpdate(equity, peak_eq, dd, level, mult, halted, newly_halted and limits.flatten_on_halt,
                        D(anchor["start_equity"]), day, changes, applied, incident_id)
