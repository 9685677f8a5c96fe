"""Deliver the outbox to Telegram once, from a command, within a few seconds — or say what stays queued.

Why a command sends its own alert: after ``emergency-shutdown`` the runners are stopped, so the only process left
that drains the outbox is ``albra bot`` — and the operator may not run it. The alert is queued first (that is the
record that survives), then one bounded drain tries to deliver it now. Telegram being slow, down or misconfigured
never blocks or fails the command: the drain is cut off after ``timeout_s``, any lease it still holds is given back
(so ``albra bot`` or a runner can send the row at once instead of after the lease expires), and the outcome is
reported per alert: delivered, or stays queued (with the last error), or failed for good.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.store.db import Store

log = logging.getLogger("albra.runbook")

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class AlertOutcome:
    """One alert after the drain: ``status`` is ``delivered``, ``queued`` (a sender will retry) or ``failed``."""

    event_id: str
    kind: str
    level: str
    status: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def telegram_configured(settings: "Settings") -> str:
    """Empty when alerts can be sent from here, else why not (Telegram disabled, no chat, no token)."""
    from albra.notify.wiring import alert_chats

    tg = settings.telegram
    if not tg.enabled:
        return "Telegram disabled in config"
    if not alert_chats(settings):
        return "no telegram.chat_ids or admin_user_ids to send to"
    try:
        if settings.telegram_token(required=False) is None:
            return f"{tg.token_env} is not set"
    except Exception as e:  # noqa: BLE001 - an unreadable .env is a reason not to send, not a failed command
        return f"Telegram token unreadable: {type(e).__name__}: {e}"
    return ""


def _queued(store: "Store") -> dict[str, dict[str, Any]]:
    return {r["event_id"]: r for r in store.query(
        "SELECT event_id, kind, level, status, attempts, last_error FROM alerts WHERE status='queued'")}


def _outcomes(store: "Store", before: dict[str, dict[str, Any]], must: str) -> list[AlertOutcome]:
    """The alerts the drain touched (status or attempts changed) and always ``must`` (the command's own)."""
    ids = sorted(set(before) | {must})
    rows = {r["event_id"]: r for r in store.query(
        f"SELECT event_id, kind, level, status, attempts, last_error FROM alerts WHERE event_id IN "
        f"({','.join('?' * len(ids))})", tuple(ids))}
    out = []
    for eid in ids:
        r = rows.get(eid)
        if r is None:
            continue
        b = before.get(eid)
        if eid != must and b is not None and (b["status"], b["attempts"]) == (r["status"], r["attempts"]):
            continue  # not due (e.g. waiting for its digest or a backoff): the drain did not touch it
        status = {"sent": "delivered", "queued": "queued", "failed": "failed"}.get(r["status"], r["status"])
        detail = "" if status == "delivered" else (r["last_error"] or "")
        out.append(AlertOutcome(eid, r["kind"], r["level"], status, detail))
    return out


async def deliver_now(settings: "Settings", store: "Store", event_id: str,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[str, list[AlertOutcome]]:
    """Drain the outbox once (bounded by ``timeout_s``); (summary line, per-alert outcomes). Never raises."""
    from albra.notify import outbox
    from albra.notify.wiring import sender_from_settings

    why_not = telegram_configured(settings)
    if why_not:
        return f"not sent from here: {why_not}; stays queued in the outbox", _outcomes(store, {}, event_id)
    sender = None
    try:
        before = _queued(store)
        sender = sender_from_settings(settings, store)
        if sender is None:  # configured a moment ago; the wiring logged why not
            return "not sent from here: Telegram not usable; stays queued", _outcomes(store, before, event_id)
        note = ""
        try:
            await asyncio.wait_for(sender.drain(), timeout_s)
        except asyncio.TimeoutError:
            note = f"Telegram did not answer within {timeout_s:g} s"
        finally:
            held = [r["event_id"] for r in store.query(
                "SELECT event_id FROM alerts WHERE claimed_by=? AND status='queued'", (sender.name,))]
            outbox.release(store, sender.name, held)
        outcomes = _outcomes(store, before, event_id)
    except Exception as e:  # noqa: BLE001 - Telegram or the outbox failing must not fail the command
        log.exception("delivering the outbox from the command failed")
        return (f"not delivered ({type(e).__name__}: {e}); stays queued for `albra bot` or a runner",
                _safe_outcomes(store, event_id))
    finally:
        if sender is not None:
            try:
                await asyncio.wait_for(sender.transport.close(), 2.0)
            except Exception:  # noqa: BLE001 - closing the HTTP client is best effort
                pass
    mine = next((o for o in outcomes if o.event_id == event_id), None)
    if mine is not None and mine.status == "delivered":
        summary = "delivered to Telegram"
    elif mine is not None and mine.status == "failed":
        summary = f"NOT delivered to Telegram, given up: {mine.detail}"
    else:
        reason = note or (mine.detail if mine else "") or "not delivered"
        summary = f"NOT delivered to Telegram yet ({reason}); stays queued for `albra bot` or a runner"
    return summary, outcomes


def _safe_outcomes(store: "Store", event_id: str) -> list[AlertOutcome]:
    try:
        return _outcomes(store, {}, event_id)
    except Exception:  # noqa: BLE001
        return []
