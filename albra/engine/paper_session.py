"""Paper replay sessions (docs/adr/0006-paper-sessions.md).

A paper account fed by a replay file trades against an exchange that lives inside the runner process: every
``albra run`` builds it afresh at ``replay_start`` with ``paper_balance`` and no orders. The store, however, keeps
the previous run's ledger (open legs, live stop intents, candle marks, risk state). Left as is, that ledger
describes orders the new exchange never saw — the start-up sync then finds "open" stops the exchange does not
know, the scheduler skips candles it marked last time, and the deterministic client ids of the replayed candles
collide with the recorded intents. So a paper replay run is a **fresh session** of that paper account:

* :func:`previous_session` says whether the store holds anything of an earlier session for the account;
* :func:`reset_paper_session` journals ``paper_session_reset`` (with the previous session's legs, realised PnL and
  last evaluated candle) and deletes the account's ledger rows — legs, order_intents, orders, fills, income,
  equity_snapshots, risk_state, candle_marks — in one transaction. The journal is append-only and stays; control
  flags (pause, kill switch), alerts and incidents are the operator's and stay too.

It refuses any account that is not ``mode = "paper"`` (replay- or live-fed: both exchanges live in the process): a
live or demo ledger describes a real exchange and is never wiped.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from albra.store import journal
from albra.store.db import Store

#: the account's ledger tables, children before parents (fills and intents reference legs)
LEDGER_TABLES = ("fills", "orders", "order_intents", "legs", "income", "equity_snapshots", "risk_state",
                 "candle_marks")


class NotAPaperReplay(ValueError):
    """A session reset was asked for an account whose ledger describes a real exchange."""


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """What an earlier paper session left in the store."""

    legs: int
    open_legs: int
    closed_legs: int
    realized_pnl: Decimal
    last_candle_ms: int | None
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {"legs": self.legs, "open_legs": self.open_legs, "closed_legs": self.closed_legs,
                "realized_pnl": format(self.realized_pnl, "f"), "last_candle_ms": self.last_candle_ms,
                "rows": self.rows}


def is_paper_replay(acc: Any) -> bool:
    """Whether the account's settings describe a paper account: its exchange lives in the runner process (fed by a
    replay or by the live market) and is built afresh by every run, so every run is a new session."""
    mode = getattr(getattr(acc, "mode", None), "value", getattr(acc, "mode", None))
    return mode == "paper"


def previous_session(store: Store, account: str) -> SessionSummary | None:
    """The earlier session's summary, or None when the store holds no ledger row for the account."""
    rows = 0
    for t in LEDGER_TABLES:
        r = store.query_one(f"SELECT COUNT(*) AS n FROM {t} WHERE account = ?", (account,))
        rows += int(r["n"]) if r else 0
    if rows == 0:
        return None
    legs = store.query("SELECT state, realized_pnl, fees, funding FROM legs WHERE account = ?", (account,))
    closed = [g for g in legs if g["state"] == "closed"]
    pnl = sum((Decimal(g["realized_pnl"] or "0") - Decimal(g["fees"] or "0") + Decimal(g["funding"] or "0")
               for g in closed), Decimal(0))
    last = store.query_one("SELECT MAX(last_ts) AS t FROM candle_marks WHERE account = ?", (account,))
    return SessionSummary(len(legs), sum(1 for g in legs if g["state"] in ("open", "closing")), len(closed), pnl,
                          None if last is None or last["t"] is None else int(last["t"]), rows)


def reset_paper_session(store: Store, account: str, acc: Any, *, now_ms: int, actor: str = "") -> SessionSummary | None:
    """Start a new session of paper account ``account`` (settings ``acc``): journal the previous session's
    summary and clear its ledger rows, atomically. Returns the previous summary (None: nothing to reset)."""
    if not is_paper_replay(acc):
        raise NotAPaperReplay(f"account {account} is not a paper account: its ledger is never reset")
    prev = previous_session(store, account)
    if prev is None:
        return None
    with store.tx() as c:  # the journal entry and the deletes commit together, or neither does
        journal.append(store, "paper_session_reset",
                       f"paper account {account}: new replay session; the previous one ({prev.legs} leg(s), "
                       f"{prev.open_legs} open, realised PnL {prev.realized_pnl:.2f} USDT) was cleared from the "
                       "ledger", level="WARNING", account=account, data=prev.as_dict(), ts=now_ms, actor=actor, conn=c)
        for t in LEDGER_TABLES:
            c.execute(f"DELETE FROM {t} WHERE account = ?", (account,))
    return prev
