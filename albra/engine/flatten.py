"""Flatten one account from inside its runner: every open leg closed reduce-only through the executor (the same
path as a strategy's exit: protection off first on a shared side, write-ahead intents, fills applied), then
verified flat by two independent reads. Used when the drawdown reaches the MDD halt with
``mdd_flatten_on_halt = true`` (the example configuration promises that it closes every position).

Why in the runner and not by spawning ``albra emergency-shutdown``: the runner holds the account's write lease
(one writer per account), and the halt is a risk decision about this account alone — no kill switch, no other
account touched. Positions the ledger does not know are left to reconciliation (adopted as unattributed legs,
then closed on the next flatten) and reported as not verified, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from albra.exchange import errors as X
from albra.ledger import legs as L
from albra.store import incidents, journal


@dataclass
class FlattenResult:
    legs_closed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)  # "SYMBOL SIDE qty" still on the exchange
    verified: bool = False
    incident_id: str | None = None


async def flatten_account(executor: Any, *, reason: str, now_ms: int, incident_id: str | None = None,
                          actor: str = "runner") -> FlattenResult:
    """Close every open leg of ``executor``'s account reduce-only at market and verify flat (positions read and the
    account read agree: no position). Journals each step, opens (or reuses) an incident, alerts CRITICAL."""
    store, gw, account = executor.store, executor.gw, executor.account
    out = FlattenResult(incident_id=incident_id)
    if out.incident_id is None:
        out.incident_id = incidents.open_incident(store, "mdd_flatten", f"{account}: flattening ({reason})",
                                                  account=account, opened_by=actor, ts=now_ms,
                                                  reuse_open=True).incident_id
    journal.append(store, "flatten_started", f"{account}: closing every open leg ({reason})", level="CRITICAL",
                   account=account, incident_id=out.incident_id, ts=now_ms, actor=actor)
    for k, leg in enumerate(sorted(L.live_legs(store, account), key=lambda g: g.leg_id)):
        if leg.state is not L.LegState.OPEN or leg.qty <= 0:
            continue
        try:  # k: two legs of one strategy and symbol decided on one candle never share an exit id
            await executor.exit(leg.leg_id, 1.0, "flatten", reason, now_ms, k)
        except X.ExchangeError as e:
            out.errors.append(f"{leg.leg_id}: {type(e).__name__}: {e}"[:300])
            continue
        if L.require_leg(store, leg.leg_id).state is L.LegState.CLOSED:
            out.legs_closed.append(leg.leg_id)
    try:
        positions = await gw.fetch_positions()
        balance = await gw.fetch_balance()
    except X.ExchangeError as e:
        out.errors.append(f"verification read failed: {type(e).__name__}")
    else:
        out.remaining = [f"{p.symbol} {p.position_side.value} {p.qty}" for p in positions]
        second = list(balance.positions or ())
        out.verified = not positions and not second and not out.errors
        if not positions and second:
            out.remaining = [f"{s} {side} {amt} (account read)" for s, side, amt in second]
    level = "CRITICAL" if not out.verified else "WARNING"
    msg = (f"{account}: flatten {'verified flat' if out.verified else 'NOT verified'} — {len(out.legs_closed)} "
           f"leg(s) closed" + (f"; still open: {', '.join(out.remaining)}" if out.remaining else "")
           + (f"; errors: {'; '.join(out.errors)}" if out.errors else ""))
    journal.append(store, "flatten_done", msg, level=level, account=account,
                   data={"verified": out.verified, "legs": out.legs_closed, "remaining": out.remaining},
                   incident_id=out.incident_id, ts=now_ms, actor=actor)
    executor._alert("mdd_halt", f"flatten:{account}:{out.incident_id}:{now_ms}", msg)
    return out
