"""Writer leases: one process at a time sends orders for an account (DESIGN invariant 8).

Why a lease in the store and not only a pid file: every process that could write an account (runners, ``albra
reconcile --apply``, ``albra emergency-shutdown``) shares the store, and a lease row taken inside one ``BEGIN
IMMEDIATE`` transaction cannot be taken twice. A lease expires ``ttl_ms`` after its last renewal (a SIGKILLed
holder does not block the account for ever) and is free at once when its holder's pid is dead on this host.
Emergency shutdown *preempts*: it takes the lease whatever the holder, and the holder learns it at its next
renewal (:class:`LeaseLost`) and stops sending.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from albra.store.db import Store
from albra.timefmt import now_ms as _now_ms

#: a holder renews every heartbeat (≤ 1 s in a runner); 30 s without renewal and the lease is free
DEFAULT_TTL_MS = 30_000


@dataclass(frozen=True)
class Lease:
    account: str
    holder: str
    pid: int
    host: str
    since_ms: int
    renewed_ms: int
    expires_ms: int
    token: str

    def describe(self) -> str:
        from albra.timefmt import fmt_kst

        return f"{self.holder} (pid {self.pid} on {self.host}, since {fmt_kst(self.since_ms)})"


class LeaseHeld(Exception):
    """Another live process holds the account's lease."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"account {lease.account} is being written by {lease.describe()}")
        self.lease = lease


class LeaseLost(Exception):
    """The lease this process held was taken (preempted by an emergency shutdown, or expired and taken)."""


_COLS = "account, holder, pid, host, since_ms, renewed_ms, expires_ms, token"


def _row(r) -> Lease:
    """A lease from a row of ``SELECT {_COLS}`` (by position: transactions return plain tuples)."""
    return Lease(r[0], r[1], int(r[2]), r[3], int(r[4]), int(r[5]), int(r[6]), r[7])


def _alive(lease: Lease, now: int) -> bool:
    if lease.expires_ms <= now:
        return False
    if lease.host == socket.gethostname():
        try:
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def current(store: Store, account: str, now_ms: int | None = None) -> Lease | None:
    """The account's lease if a live process holds it (expired or dead holders count as none)."""
    r = store.query_one(f"SELECT {_COLS} FROM writer_leases WHERE account = ?", (account,))
    if r is None:
        return None
    lease = _row(r)
    return lease if _alive(lease, _now_ms() if now_ms is None else now_ms) else None


def acquire(store: Store, account: str, holder: str, *, ttl_ms: int = DEFAULT_TTL_MS, preempt: bool = False,
            now_ms: int | None = None, pid: int | None = None) -> Lease:
    """Take the account's lease for this process. Raises :class:`LeaseHeld` naming the holder when another live
    process has it — unless ``preempt`` (emergency shutdown), which takes it anyway. Re-acquiring one's own lease
    (same pid and host) renews it."""
    now = _now_ms() if now_ms is None else now_ms
    me, host = (os.getpid() if pid is None else pid), socket.gethostname()
    with store.tx() as c:
        r = c.execute(f"SELECT {_COLS} FROM writer_leases WHERE account = ?", (account,)).fetchone()
        if r is not None:
            old = _row(r)
            mine = old.pid == me and old.host == host and old.holder == holder
            if not mine and not preempt and _alive(old, now):
                raise LeaseHeld(old)
        lease = Lease(account, holder, me, host, now, now, now + ttl_ms, secrets.token_hex(8))
        c.execute("INSERT INTO writer_leases(account, holder, pid, host, since_ms, renewed_ms, expires_ms, token)"
                  " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(account) DO UPDATE SET holder=excluded.holder,"
                  " pid=excluded.pid, host=excluded.host, since_ms=excluded.since_ms,"
                  " renewed_ms=excluded.renewed_ms, expires_ms=excluded.expires_ms, token=excluded.token",
                  (lease.account, lease.holder, lease.pid, lease.host, lease.since_ms, lease.renewed_ms,
                   lease.expires_ms, lease.token))
    return lease


def renew(store: Store, lease: Lease, *, ttl_ms: int = DEFAULT_TTL_MS, now_ms: int | None = None) -> Lease:
    """Extend one's own lease. Raises :class:`LeaseLost` when the row no longer carries this lease's token (it was
    preempted, or expired and taken by another process)."""
    now = _now_ms() if now_ms is None else now_ms
    with store.tx() as c:
        cur = c.execute("UPDATE writer_leases SET renewed_ms = ?, expires_ms = ? WHERE account = ? AND token = ?",
                        (now, now + ttl_ms, lease.account, lease.token))
        if cur.rowcount != 1:
            r = c.execute(f"SELECT {_COLS} FROM writer_leases WHERE account = ?", (lease.account,)).fetchone()
            by = _row(r).describe() if r is not None else "nobody (released)"
            raise LeaseLost(f"the write lease of account {lease.account} was taken by {by}")
    return Lease(lease.account, lease.holder, lease.pid, lease.host, lease.since_ms, now, now + ttl_ms, lease.token)


def release(store: Store, lease: Lease) -> bool:
    """Give the lease back if it is still this one. True if released."""
    with store.tx() as c:
        cur = c.execute("DELETE FROM writer_leases WHERE account = ? AND token = ?", (lease.account, lease.token))
        return cur.rowcount == 1
