"""The alert outbox in the store: ``emit`` writes a row, senders claim, deliver and settle rows.

Why an outbox: the trading loop must never wait on Telegram. ``emit`` is one local SQLite insert (keyed by
event id, so the same event twice is one alert) and returns; an :class:`~albra.notify.sender.AlertSender`
in any process (a runner or the bot) drains it. Claims are leases written in a ``BEGIN IMMEDIATE``
transaction, so two processes never send the same row at once and a crashed sender's claim expires.
Nothing is deleted: a row ends ``sent``, ``failed`` (with ``last_error``), ``digested`` or ``logged``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Iterable

from albra.notify.event import AlertEvent
from albra.notify.format import format_alert, format_digest, summary_line
from albra.notify.kinds import DEFAULT_ROUTING, DIGEST, LEVEL_RANK, Level, Routing, spec_for
from albra.store.db import Store
from albra.timefmt import now_ms as _now_ms

log = logging.getLogger("albra.notify")

_PY_LEVEL = {Level.CRITICAL: logging.CRITICAL, Level.HIGH: logging.WARNING, Level.MEDIUM: logging.INFO,
             Level.LOW: logging.INFO}


@dataclass(frozen=True)
class Emitted:
    """What :func:`emit` did: the level, the starting status, and whether the id was already there."""

    event_id: str
    level: Level
    status: str
    duplicate: bool


def emit(store: Store, event: AlertEvent, *, routing: Routing = DEFAULT_ROUTING, strict: bool | None = None,
         now_ms: int | None = None, conn: Any = None) -> Emitted:
    """Record ``event`` in the outbox (one synchronous local insert; never touches the network).

    The level comes from the kinds table; an unknown kind raises :class:`~albra.notify.kinds.UnknownAlertKind`
    when ``strict`` (default: under pytest or ``ALBRA_DEV=1``), otherwise it is queued at HIGH with a note.
    Levels routed neither immediately nor to the digest are written as ``logged`` and only logged. Pass
    ``conn`` to insert inside the caller's open transaction (e.g. together with the leg it reports).
    """
    spec, note = spec_for(event.kind, strict=strict)
    if note:
        log.error("%s (event %s)", note, event.event_id)
    t = _now_ms() if now_ms is None else now_ms
    ts = event.ts if event.ts is not None else t
    status = routing.status_for(spec.level)
    text = format_alert(event, spec, ts, note)
    summary = summary_line(event, spec)
    sql = ("INSERT INTO alerts(event_id, ts, level, kind, account, text, status, summary, next_attempt_ms)"
           " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(event_id) DO NOTHING")
    params = (event.event_id, ts, spec.level.value, event.kind, event.account, text, status, summary, 0)
    if conn is not None:
        inserted = conn.execute(sql, params).rowcount == 1
    else:
        with store.tx() as c:
            inserted = c.execute(sql, params).rowcount == 1
    if inserted:
        # logs are plain text for a terminal (no HTML entities), stamped with the event's own time: in a paper
        # replay that is the candle's exchange time, not the moment the replay happened to reach it
        log.log(_PY_LEVEL[spec.level], "alert %s %s [%s]: %s", spec.level.value, event.kind, event.event_id,
                plain_text(summary), extra={"account": event.account, "strategy": event.strategy,
                                            "symbol": event.symbol, "event_ts": ts})
    else:
        log.debug("alert %s already in the outbox (deduplicated)", event.event_id)
    return Emitted(event.event_id, spec.level, status, not inserted)


def plain_text(html_text: str) -> str:
    """Telegram HTML as plain text: tags dropped, entities (``&lt;`` …) decoded."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


# --------------------------------------------------------------------------- sender side


@dataclass(frozen=True)
class OutboxRow:
    event_id: str
    ts: int
    level: str
    kind: str
    text: str
    attempts: int
    delivered_to: tuple[int, ...]


def _rows(cur: Any) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def has_queued(store: Store) -> bool:
    """Cheap read (partial index): is any row waiting? Senders skip their write transactions when not."""
    return store.query_one("SELECT 1 AS x FROM alerts WHERE status='queued' LIMIT 1") is not None


def build_digest(store: Store, routing: Routing, now_ms: int) -> str | None:
    """Fold queued digest-level rows into one digest alert once the oldest has waited ``digest_interval_s``.

    Returns the digest's event id, or None when it is not time yet. Also settles queued rows whose level is
    routed nowhere (config changed since they were emitted) as ``logged``. One transaction: two senders
    cannot build the same digest twice.
    """
    levels = sorted(x.value for x in routing.digest)
    sendable = sorted({*(x.value for x in routing.immediate), *levels})
    with store.tx() as c:
        c.execute(f"UPDATE alerts SET status='logged' WHERE status='queued' AND kind != ?"
                  f" AND level NOT IN ({','.join('?' * len(sendable))})", (DIGEST, *sendable))
        if not levels:
            return None
        rows = _rows(c.execute(
            f"SELECT event_id, ts, summary FROM alerts WHERE status='queued' AND kind != ?"
            f" AND level IN ({','.join('?' * len(levels))}) ORDER BY ts, event_id", (DIGEST, *levels)))
        if not rows or rows[0]["ts"] > now_ms - routing.digest_interval_s * 1000:
            return None
        ids = [r["event_id"] for r in rows]
        digest_id = "digest:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20]
        text = format_digest(rows, rows[0]["ts"], rows[-1]["ts"])
        c.execute("INSERT INTO alerts(event_id, ts, level, kind, account, text, status, summary, next_attempt_ms)"
                  " VALUES (?,?,?,?,?,?,?,?,0) ON CONFLICT(event_id) DO NOTHING",
                  (digest_id, now_ms, Level.MEDIUM.value, DIGEST, "", text, "queued", f"digest of {len(ids)}"))
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            c.execute(f"UPDATE alerts SET status='digested', digest_id=? WHERE event_id IN"
                      f" ({','.join('?' * len(chunk))})", (digest_id, *chunk))
    return digest_id


def claim(store: Store, claimer: str, routing: Routing, now_ms: int, lease_ms: int, limit: int) -> list[OutboxRow]:
    """Lease up to ``limit`` due rows to ``claimer``: immediate levels and built digests, most urgent first."""
    if limit <= 0:
        return []
    levels = sorted(x.value for x in routing.immediate)
    with store.tx() as c:
        rows = _rows(c.execute(
            f"SELECT event_id, ts, level, kind, text, attempts, delivered_to FROM alerts"
            f" WHERE status='queued' AND next_attempt_ms <= ? AND (claim_until_ms IS NULL OR claim_until_ms < ?)"
            f" AND (kind = ? OR level IN ({','.join('?' * len(levels))}))",
            (now_ms, now_ms, DIGEST, *levels)))
        rows.sort(key=lambda r: (LEVEL_RANK[Level(r["level"])], r["ts"], r["event_id"]))
        rows = rows[:limit]
        for r in rows:
            c.execute("UPDATE alerts SET claimed_by=?, claim_until_ms=? WHERE event_id=?",
                      (claimer, now_ms + lease_ms, r["event_id"]))
    return [OutboxRow(r["event_id"], r["ts"], r["level"], r["kind"], r["text"], r["attempts"],
                      tuple(json.loads(r["delivered_to"]))) for r in rows]


def renew(store: Store, claimer: str, event_ids: Iterable[str], until_ms: int) -> None:
    """Extend this sender's leases on rows it still holds (queued in memory or in flight)."""
    ids = list(event_ids)
    if ids:
        store.execute(f"UPDATE alerts SET claim_until_ms=? WHERE claimed_by=? AND status='queued' AND event_id IN"
                      f" ({','.join('?' * len(ids))})", (until_ms, claimer, *ids))


def release(store: Store, claimer: str, event_ids: Iterable[str]) -> None:
    """Give leases back (sender stopping) so another process may send these rows right away."""
    ids = list(event_ids)
    if ids:
        store.execute(f"UPDATE alerts SET claimed_by=NULL, claim_until_ms=NULL WHERE claimed_by=? AND"
                      f" status='queued' AND event_id IN ({','.join('?' * len(ids))})", (claimer, *ids))


def mark_delivered(store: Store, event_id: str, chat_id: int) -> None:
    """Record that ``chat_id`` has the message (a later retry skips it)."""
    with store.tx() as c:
        r = c.execute("SELECT delivered_to FROM alerts WHERE event_id=?", (event_id,)).fetchone()
        done = json.loads(r[0]) if r else []
        if chat_id not in done:
            done.append(chat_id)
        c.execute("UPDATE alerts SET delivered_to=? WHERE event_id=?", (json.dumps(done), event_id))


def settle(store: Store, event_id: str, status: str, now_ms: int, *, error: str | None = None,
           count_attempt: bool = True, next_attempt_ms: int = 0) -> None:
    """Finish one delivery attempt: ``sent``, ``failed`` (kept with ``last_error``) or back to ``queued``."""
    if status not in ("sent", "failed", "queued"):
        raise ValueError(f"cannot settle an alert as {status!r}")
    store.execute(
        "UPDATE alerts SET status=?, attempts=attempts+?, last_error=COALESCE(?, last_error),"
        " sent_ms=CASE WHEN ?='sent' THEN ? ELSE sent_ms END, next_attempt_ms=?, claimed_by=NULL,"
        " claim_until_ms=NULL WHERE event_id=?",
        (status, 1 if count_attempt else 0, error, status, now_ms, next_attempt_ms, event_id),
    )


def counts(store: Store) -> dict[str, int]:
    """Rows per status (status and tests)."""
    return {r["status"]: r["n"] for r in store.query("SELECT status, COUNT(*) AS n FROM alerts GROUP BY status")}
