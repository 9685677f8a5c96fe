"""Incidents: opened automatically (emergency-shutdown, MDD halt, kill switch, unattributed leg, a breaker
that stays open) or by hand; ids look like ``INC-20261124-001`` (KST date, daily sequence)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from albra.store import journal
from albra.store.db import Store
from albra.timefmt import KST


@dataclass(frozen=True)
class Incident:
    incident_id: str
    opened_ms: int
    closed_ms: int | None
    status: str
    severity: str
    kind: str
    title: str
    account: str
    opened_by: str
    details: dict[str, Any]


def _row(r: Mapping[str, Any]) -> Incident:
    return Incident(r["incident_id"], r["opened_ms"], r["closed_ms"], r["status"], r["severity"], r["kind"],
                    r["title"], r["account"], r["opened_by"], json.loads(r["details"]))


def open_incident(store: Store, kind: str, title: str, *, severity: str = "CRITICAL", account: str = "",
                  opened_by: str = "", details: Mapping[str, Any] | None = None, ts: int | None = None,
                  reuse_open: bool = False) -> Incident:
    """Open a new incident (or, with ``reuse_open``, return the open one of the same kind and account)."""
    from datetime import datetime

    from albra.store.clock import exchange_now

    t = exchange_now(store, account) if ts is None else ts
    day = datetime.fromtimestamp(t / 1000, tz=KST).strftime("%Y%m%d")
    with store.tx() as c:
        if reuse_open:
            r = c.execute("SELECT * FROM incidents WHERE status='open' AND kind=? AND account=? ORDER BY opened_ms"
                          " DESC LIMIT 1", (kind, account)).fetchone()
            if r is not None:
                cols = [d[0] for d in c.execute("SELECT * FROM incidents LIMIT 0").description]
                return _row(dict(zip(cols, r)))
        n = c.execute("SELECT COUNT(*) FROM incidents WHERE incident_id LIKE ?", (f"INC-{day}-%",)).fetchone()[0]
        iid = f"INC-{day}-{n + 1:03d}"
        c.execute(
            "INSERT INTO incidents(incident_id, opened_ms, status, severity, kind, title, account, opened_by, details)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (iid, t, "open", severity, kind, title, account, opened_by, json.dumps(dict(details or {}), default=str)),
        )
        journal.append(store, "incident_opened", f"{iid} opened: {title}", level="CRITICAL", account=account,
                       data={"kind": kind, "severity": severity}, actor=opened_by, incident_id=iid, ts=t, conn=c)
    got = get(store, iid)
    assert got is not None
    return got


def close_incident(store: Store, incident_id: str, note: str = "", actor: str = "cli", ts: int | None = None) -> None:
    from albra.store.clock import exchange_now

    t = exchange_now(store) if ts is None else ts
    with store.tx() as c:
        cur = c.execute("UPDATE incidents SET status='closed', closed_ms=? WHERE incident_id=? AND status='open'",
                        (t, incident_id))
        if cur.rowcount == 0:
            raise KeyError(f"no open incident {incident_id}")
        journal.append(store, "incident_closed", f"{incident_id} closed" + (f": {note}" if note else ""),
                       actor=actor, incident_id=incident_id, ts=t, conn=c)


def get(store: Store, incident_id: str) -> Incident | None:
    r = store.query_one("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,))
    return _row(r) if r else None


def list_incidents(store: Store, status: str | None = None, limit: int = 50) -> list[Incident]:
    if status:
        rows = store.query("SELECT * FROM incidents WHERE status=? ORDER BY opened_ms DESC LIMIT ?", (status, limit))
    else:
        rows = store.query("SELECT * FROM incidents ORDER BY opened_ms DESC LIMIT ?", (limit,))
    return [_row(r) for r in rows]
