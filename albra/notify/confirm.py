"""One-time confirmation codes for dangerous bot commands (``/emergency``), kept in the store.

Why in the store: a code must stay one-time across a bot restart, and the journal/incident report can
show who asked and who confirmed. A code is bound to the user and chat that asked for it, expires after a
TTL, and is burnt atomically on use, so a replayed or forwarded message cannot fire the action twice.
"""

from __future__ import annotations

import secrets
import sqlite3
from enum import StrEnum

from albra.store.db import Store


class Redeem(StrEnum):
    OK = "ok"
    WRONG = "wrong"        # no such code for this action, user and chat
    EXPIRED = "expired"
    USED = "used"          # already redeemed (a replay)


def issue(store: Store, action: str, chat_id: int, user_id: int, now_ms: int, ttl_s: int = 120) -> str:
    """A fresh 6-digit code for ``action``, valid for ``ttl_s`` seconds, for this user in this chat."""
    if ttl_s <= 0:
        raise ValueError(f"confirmation ttl must be positive, got {ttl_s}")
    for _ in range(20):
        code = f"{secrets.randbelow(1_000_000):06d}"
        try:
            store.execute("INSERT INTO confirmations(code, action, chat_id, user_id, created_ms, expires_ms)"
                          " VALUES (?,?,?,?,?,?)", (code, action, chat_id, user_id, now_ms, now_ms + ttl_s * 1000))
            return code
        except sqlite3.IntegrityError:
            continue  # the code was used before (codes are never deleted): draw another
    raise RuntimeError("could not draw an unused confirmation code after 20 tries")


def redeem(store: Store, code: str, action: str, chat_id: int, user_id: int, now_ms: int) -> Redeem:
    """Burn ``code`` if it is this user's, in this chat, for ``action``, unexpired and unused."""
    code = code.strip()
    with store.tx() as c:
        r = c.execute("SELECT chat_id, user_id, expires_ms, used_ms FROM confirmations WHERE code=? AND action=?",
                      (code, action)).fetchone()
        if r is None or r[0] != chat_id or r[1] != user_id:
            return Redeem.WRONG
        if r[3] is not None:
            return Redeem.USED
        if now_ms > r[2]:
            return Redeem.EXPIRED
        cur = c.execute("UPDATE confirmations SET used_ms=? WHERE code=? AND used_ms IS NULL", (now_ms, code))
        return Redeem.OK if cur.rowcount == 1 else Redeem.USED


def burn_outstanding(store: Store, action_prefix: str, chat_id: int, user_id: int, now_ms: int) -> int:
    """Burn every unused code this user holds in this chat for actions starting with ``action_prefix``: after a wrong
    code the earlier one must not work any more (someone guessing, or a confused operator — either way, start over).
    Returns how many were burnt."""
    with store.tx() as c:
        cur = c.execute("UPDATE confirmations SET used_ms=? WHERE used_ms IS NULL AND chat_id=? AND user_id=?"
                        " AND action LIKE ? AND expires_ms>=?",
                        (now_ms, chat_id, user_id, action_prefix.replace("%", "") + "%", now_ms))
        return int(cur.rowcount)
