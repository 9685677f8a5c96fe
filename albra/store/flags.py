"""Control flags: the kill switch and pauses, persisted so they survive restarts (invariant 5).

Commands and the Telegram bot write flags; runners poll them at least once a second. A pause blocks new
entries only: exits and protective orders keep working. The kill switch blocks every new entry on every
account until an operator clears it.

Scopes: ``account=''`` means all accounts; ``strategy=''`` means every strategy of the account.
"""

from __future__ import annotations

from dataclasses import dataclass

from albra.store import journal
from albra.store.db import Store
from albra.timefmt import now_ms as _now_ms

KILL_SWITCH = "kill_switch"
PAUSE = "pause"


@dataclass(frozen=True)
class Flag:
    kind: str
    account: str
    strategy: str
    active: bool
    reason: str
    actor: str
    updated_ms: int

    @property
    def scope(self) -> str:
        if not self.account:
            return "all"
        return self.account if not self.strategy else f"{self.account}/{self.strategy}"


def _set(store: Store, kind: str, active: bool, account: str, strategy: str, reason: str, actor: str,
         ts: int | None) -> Flag:
    if strategy and not account:
        raise ValueError("a strategy pause needs its account (pause --account NAME --strategy NAME)")
    t = _now_ms() if ts is None else ts
    with store.tx() as c:
        c.execute(
            "INSERT INTO control_flags(kind, scope_account, scope_strategy, active, reason, actor, updated_ms)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(kind, scope_account, scope_strategy) DO UPDATE SET"
            " active=excluded.active, reason=excluded.reason, actor=excluded.actor, updated_ms=excluded.updated_ms",
            (kind, account, strategy, int(active), reason, actor, t),
        )
        flag = Flag(kind, account, strategy, active, reason, actor, t)
        verb = {(PAUSE, True): "paused", (PAUSE, False): "resumed",
                (KILL_SWITCH, True): "kill switch ON", (KILL_SWITCH, False): "kill switch OFF"}[(kind, active)]
        journal.append(
            store, f"{kind}_{'set' if active else 'cleared'}",
            f"{verb}: {flag.scope}" + (f" — {reason}" if reason else ""),
            level="CRITICAL" if kind == KILL_SWITCH and active else "WARNING",
            account=account, strategy=strategy, data={"reason": reason}, actor=actor, ts=t, conn=c,
        )
    return flag


def pause(store: Store, account: str = "", strategy: str = "", reason: str = "", actor: str = "cli",
          ts: int | None = None) -> Flag:
    """Block new entries for all accounts, one account, or one account's strategy."""
    return _set(store, PAUSE, True, account, strategy, reason, actor, ts)


def resume(store: Store, account: str = "", strategy: str = "", reason: str = "", actor: str = "cli",
           ts: int | None = None) -> Flag:
    """Clear the pause at exactly this scope (a broader pause still applies)."""
    return _set(store, PAUSE, False, account, strategy, reason, actor, ts)


def set_kill_switch(store: Store, on: bool, reason: str = "", actor: str = "cli", ts: int | None = None) -> Flag:
    return _set(store, KILL_SWITCH, on, "", "", reason, actor, ts)


def kill_switch(store: Store) -> Flag | None:
    """The kill switch flag if it is on."""
    for f in active_flags(store):
        if f.kind == KILL_SWITCH:
            return f
    return None


def active_flags(store: Store) -> list[Flag]:
    rows = store.query(
        "SELECT * FROM control_flags WHERE active = 1 ORDER BY kind, scope_account, scope_strategy")
    return [Flag(r["kind"], r["scope_account"], r["scope_strategy"], True, r["reason"], r["actor"], r["updated_ms"])
            for r in rows]


def entry_block(store: Store, account: str, strategy: str) -> Flag | None:
    """The flag that blocks a new entry for (account, strategy), most general first; None if entries may go."""
    for f in active_flags(store):
        if f.kind == KILL_SWITCH:
            return f
    for f in active_flags(store):
        if f.kind != PAUSE:
            continue
        if f.account == "" or (f.account == account and f.strategy in ("", strategy)):
            return f
    return None
