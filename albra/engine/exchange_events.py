"""The runner's sink for the resilience layer's events (:class:`albra.exchange.resilience.ResilienceEvent`).

Why: retries, clock re-syncs, 429/418 back-offs and circuit-breaker changes happen inside the gateway; without a
sink they leave no trace, and an operator reading the journal after a bad night sees trades but not the exchange
trouble around them. Every event becomes a journal entry (kind = the event's kind, the detail as message, the
account), at a level that says how bad it is; the ones an operator must hear about (the event's ``alert`` flag:
breaker opened/closed, 429, 418 ban) also go to the alert outbox, at most one per kind and minute. A breaker that
stays open longer than :data:`BREAKER_INCIDENT_AFTER_S` opens an incident (kind ``breaker_open``, one per
account while open: ``reuse_open``), issue 6's automatic incidents.

The sink is called synchronously from inside exchange calls, on the runner's event loop: it does one local SQLite
insert (two with an alert) and never raises — a journal failure is logged and the exchange call goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from albra.exchange.resilience import ResilienceEvent
from albra.store import journal
from albra.store.db import Store

log = logging.getLogger("albra.engine.exchange_events")

#: journal level per event kind
LEVELS: dict[str, str] = {
    "retry": "WARNING",
    "time_resync": "WARNING",
    "weight_throttle": "WARNING",
    "breaker_half_open": "WARNING",
    "breaker_closed": "INFO",
    "rate_limited": "ERROR",
    "breaker_open": "ERROR",
    "ip_banned": "CRITICAL",
}
#: a circuit breaker open (re-opened by failed probes) this long without closing opens an incident
BREAKER_INCIDENT_AFTER_S = 300.0


class ExchangeEventSink:
    """Callable :data:`albra.exchange.resilience.EventSink` bound to one account's store.

    ``now_ms`` gives the journal timestamp (the runner's exchange time); ``monotonic`` measures how long the breaker
    has been open. Call :meth:`tick` now and then (the runner does, every turn): a breaker refusing calls emits no
    events during its cool-down, so the incident threshold is also checked from outside."""

    def __init__(self, store: Store, account: str, *, now_ms: Callable[[], int],
                 monotonic: Callable[[], float] = time.monotonic, actor: str = "",
                 incident_after_s: float = BREAKER_INCIDENT_AFTER_S, alerts: bool = True) -> None:
        self.store = store
        self.account = account
        self.now_ms = now_ms
        self.monotonic = monotonic
        self.actor = actor
        self.incident_after_s = incident_after_s
        self.alerts = alerts
        self.breaker_open_since: float | None = None
        self.incident_id: str | None = None
        self.counts: dict[str, int] = {}

    def __call__(self, ev: ResilienceEvent) -> None:
        try:
            self._handle(ev)
        except Exception as e:  # noqa: BLE001 - the exchange call must go on; the log keeps the fact
            log.error("resilience event %s (%s) could not be journaled: %s", ev.kind, ev.detail, e, exc_info=True)

    def _handle(self, ev: ResilienceEvent) -> None:
        self.counts[ev.kind] = self.counts.get(ev.kind, 0) + 1
        now = self.now_ms()
        journal.append(self.store, ev.kind, ev.detail, level=LEVELS.get(ev.kind, "WARNING"), account=self.account,
                       data={"source": ev.name, "alert": ev.alert, "wall_ms": ev.ts_ms}, ts=now, actor=self.actor)
        if ev.alert:
            self._alert(ev.kind, f"{ev.kind}:{self.account}:{now // 60_000}", ev.detail)
        if ev.kind == "breaker_open":
            if self.breaker_open_since is None:
                self.breaker_open_since = self.monotonic()
            self.tick()
        elif ev.kind == "breaker_closed":
            if self.breaker_open_since is not None and self.incident_id is not None:
                journal.append(self.store, "breaker_recovered",
                               f"circuit closed again after {self.monotonic() - self.breaker_open_since:.0f}s open "
                               f"(incident {self.incident_id} stays open for the operator)", level="WARNING",
                               account=self.account, incident_id=self.incident_id, ts=now, actor=self.actor)
            self.breaker_open_since = None
            self.incident_id = None

    def tick(self) -> None:
        """Open the ``breaker_open`` incident once the breaker has been open past the threshold."""
        try:
            if self.breaker_open_since is None or self.incident_id is not None:
                return
            open_s = self.monotonic() - self.breaker_open_since
            if open_s < self.incident_after_s:
                return
            from albra.store.incidents import open_incident

            inc = open_incident(self.store, "breaker_open",
                                f"{self.account}: exchange circuit breaker open for {open_s:.0f}s",
                                severity="HIGH", account=self.account, opened_by=self.actor,
                                details={"open_s": round(open_s, 1)}, ts=self.now_ms(), reuse_open=True)
            self.incident_id = inc.incident_id
            self._alert("incident_opened", f"incident_opened:{inc.incident_id}",
                        f"{inc.incident_id}: exchange circuit breaker open for {open_s:.0f}s; new entries and "
                        "exits are failing fast until it closes")
        except Exception as e:  # noqa: BLE001 - never stop the loop over bookkeeping
            log.error("breaker incident could not be opened: %s", e, exc_info=True)

    def _alert(self, kind: str, event_id: str, message: str) -> None:
        if not self.alerts:
            return
        from albra.notify import AlertEvent, emit
        from albra.notify.kinds import UnknownAlertKind

        try:
            emit(self.store, AlertEvent(event_id=event_id, kind=kind, message=message, account=self.account,
                                        ts=self.now_ms()))
        except UnknownAlertKind:
            raise
        except Exception as e:  # noqa: BLE001 - an alert must never stop trading; the journal has the fact
            log.error("alert %s could not be queued: %s", kind, e, exc_info=True)

