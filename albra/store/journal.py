"""The append-only event journal: what happened, when, to which account/strategy, and who did it.

Every refusal by risk, every operator action and every fault is a journal row; incident reports and
``status`` read from here. The table's triggers reject UPDATE and DELETE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from albra.store.db import Store

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    ts: int
    level: str
    kind: str
    account: str
    strategy: str
    symbol: str
    message: str
    data: dict[str, Any]
    actor: str
    incident_id: str | None
    wall_ms: int | None = None


def _redact(text: str) -> str:
    """Journal text passes through the secret redactor when it is available (secrets never land in the store)."""
    try:
        from albra.redact import redact
    except ImportError:  # the redactor module is optional for very early bootstrap
        return text
    return redact(text)


def append(
    store: Store,
    kind: str,
    message: str,
    *,
    level: str = "INFO",
    account: str = "",
    strategy: str = "",
    symbol: str = "",
    data: Mapping[str, Any] | None = None,
    actor: str = "",
    incident_id: str | None = None,
    ts: int | None = None,
    conn: Any = None,
) -> int:
    """Append one entry and return its sequence number. Pass ``conn`` to write inside an open transaction.

    ``ts`` is exchange time (default: :func:`albra.store.clock.exchange_now` for the account); the row also carries
    the writer's wall time (``wall_ms``)."""
    if level not in LEVELS:
        raise ValueError(f"journal level must be one of {LEVELS}, got {level!r}")
    from albra.store.clock import exchange_now, wall_ms

    row = (
        exchange_now(store, account) if ts is None else ts, level, kind, account, strategy, symbol, _redact(message),
        _redact(json.dumps(dict(data or {}), default=str, sort_keys=True)), actor, incident_id, wall_ms(),
    )
    sql = ("INSERT INTO journal(ts, level, kind, account, strategy, symbol, message, data, actor, incident_id, wall_ms)"
           " VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    if conn is not None:
        return int(conn.execute(sql, row).lastrowid)
    with store.tx() as c:
        return int(c.execute(sql, row).lastrowid)


def entries(
    store: Store,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    account: str | None = None,
    kinds: tuple[str, ...] | None = None,
    incident_id: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[JournalEntry]:
    """Entries filtered by time window, account, kinds or incident."""
    where, params = [], []
    if since_ms is not None:
        where.append("ts >= ?")
        params.append(since_ms)
    if until_ms is not None:
        where.append("ts <= ?")
        params.append(until_ms)
    if account is not None:
        where.append("account = ?")
        params.append(account)
    if kinds:
        where.append(f"kind IN ({','.join('?' * len(kinds))})")
        params.extend(kinds)
    if incident_id is not None:
        where.append("incident_id = ?")
        params.append(incident_id)
    sql = "SELECT * FROM journal"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq " + ("DESC" if newest_first else "ASC")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [
        JournalEntry(r["seq"], r["ts"], r["level"], r["kind"], r["account"], r["strategy"], r["symbol"],
                     r["message"], json.loads(r["data"]), r["actor"], r["incident_id"], r["wall_ms"])
        for r in store.query(sql, tuple(params))
    ]
