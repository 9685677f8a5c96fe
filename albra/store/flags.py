"""Control flags: the kill switch and pauses, persisted so they survive restarts (invariant 5).

Commands and the Telegram bot write flags; runners poll them at least once a second. A pause blocks new
entries only: exits and protective orders keep working. The kill switch blocks every new entry on every
account (scoped to one account: every entry on that account) until an operator clears it with
``albra kill-switch off`` or the bot's ``/killswitch off``.

Scopes: ``account=''`` means all accounts; ``strategy=''`` means every strategy of the account.
"""

from __future__ import annotations

from dataclasses import dataclass

from albra.store import journal
from albra.store.db import Store
from albra.timefmt import fmt_kst

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


MAX_REASON = 200


def clean_reason(reason: str) -> str:
    """The reason as it is stored and shown: control characters (ANSI escapes, newlines) removed, so a reason can
    never repaint a terminal or forge a line; longer than ``MAX_REASON`` characters is a ValueError."""
    import re
    import unicodedata

    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", reason)  # whole ANSI CSI sequences, not just the ESC
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text).strip()
    if len(text) > MAX_REASON:
        raise ValueError(f"--reason is {len(text)} characters; at most {MAX_REASON}")
    return text


def _set(store: Store, kind: str, active: bool, account: str, strategy: str, reason: str, actor: str,
         ts: int | None) -> Flag:
    reason = clean_reason(reason)
    if strategy and not account:
        raise ValueError("a strategy pause needs its account (pause --account NAME --strategy NAME)")
    from albra.store.clock import exchange_now

    t = exchange_now(store, account) if ts is None else ts
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


def set_kill_switch(store: Store, on: bool, reason: str = "", actor: str = "cli", ts: int | None = None,
                    account: str = "") -> Flag:
    """Turn the kill switch on or off for every account (``account=''``) or for one account."""
    return _set(store, KILL_SWITCH, on, account, "", reason, actor, ts)


def kill_switch(store: Store, account: str | None = None) -> Flag | None:
    """The kill switch that blocks ``account`` (the global one first), or with ``account=None`` the first kill
    switch on at any scope; None when none is on."""
    for f in kill_switches(store):
        if account is None or f.account in ("", account):
            return f
    return None


def kill_switches(store: Store) -> list[Flag]:
    """Every kill switch that is on, the global one first (its scope account is '')."""
    return [f for f in active_flags(store) if f.kind == KILL_SWITCH]


def clear_kill_switches(store: Store, accounts: list[str] | None, reason: str, actor: str,
                        ts: int | None = None) -> list[Flag]:
    """Clear the kill switch: ``accounts=None`` clears every one that is on (global and per account), otherwise
    only those accounts' own switches. Each clearing is journaled; returns the flags that were cleared."""
    cleared = []
    for f in kill_switches(store):
        if accounts is None or (f.account and f.account in accounts):
            cleared.append(_set(store, KILL_SWITCH, False, f.account, "", reason, actor, ts))
    return cleared


def active_flags(store: Store) -> list[Flag]:
    """Every active flag. A backtest's memo store (:meth:`Store.enable_memo`) answers from memory until a write to
    the table (its connection drops the cached list on any write); a live store always reads."""
    part = None if store.memo is None else store.memo.setdefault("flags", {})
    if part is not None and (hit := part.get("active")) is not None:
        return list(hit)
    rows = store.query(
        "SELECT * FROM control_flags WHERE active = 1 ORDER BY kind, scope_account, scope_strategy")
    out = [Flag(r["kind"], r["scope_account"], r["scope_strategy"], True, r["reason"], r["actor"], r["updated_ms"])
           for r in rows]
    if part is not None:
        part["active"] = tuple(out)
    return out


def entry_block(store: Store, account: str, strategy: str) -> Flag | None:
    """The flag that blocks a new entry for (account, strategy), most general first; None if entries may go."""
    ks = kill_switch(store, account)
    if ks is not None:
        return ks
    for f in active_flags(store):
        if f.kind != PAUSE:
            continue
        if f.account == "" or (f.account == account and f.strategy in ("", strategy)):
            return f
    return None


def block_text(flag: Flag) -> str:
    """One plain sentence naming what blocks entries, who set it, when and why, and how to clear it — the same words
    in the CLI, the bot and the dashboard."""
    since = f"since {fmt_kst(flag.updated_ms)} by {flag.actor or 'unknown'}" + (f" — {flag.reason}" if flag.reason
                                                                                  else "")
    if flag.kind == KILL_SWITCH:
        where = "every account" if not flag.account else f"account {flag.account}"
        fix = "albra kill-switch off" + (f" --account {flag.account}" if flag.account else "")
        return f"KILL SWITCH ON for {where} {since}; clear it with `{fix}` (or /killswitch off)"
    return f"paused: {flag.scope} {since}; `albra resume` at that scope clears it"
