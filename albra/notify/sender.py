"""``AlertSender``: drains the alert outbox to Telegram without ever holding up the trading loop.

Shape: a poller claims due rows (leased, see :mod:`albra.notify.outbox`) into a *bounded* in-memory queue
and a single worker delivers them, paced by :class:`~albra.notify.ratelimit.RateLimiter`. When Telegram is
slow or dead the worker waits, the queue fills, the poller stops claiming, and rows simply stay queued in
the store — the runner's loop keeps going because ``emit`` is only a local insert and the sender runs as its
own asyncio task. Outcomes:

- 429: the chat is blocked for ``retry_after`` and the message retried (up to ``max_retry_after`` times in a
  row, then the row goes back to the outbox due after ``retry_after``);
- 400 / 403 / rejected token: that chat is given up (logged, journaled); the row ends ``failed`` with
  ``last_error`` once every chat has been tried — kept, never deleted;
- network errors / 5xx / timeouts: the row goes back with exponential backoff; after ``max_attempts`` it is
  ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Sequence

from albra.notify import outbox
from albra.notify.kinds import DEFAULT_ROUTING, Routing
from albra.notify.ratelimit import RateLimiter, Sleep
from albra.notify.transport import PERMANENT, RETRY_AFTER, DeliveryError, Transport
from albra.redact import redact
from albra.store import journal
from albra.store.db import Store
from albra.timefmt import Clock, SystemClock

log = logging.getLogger("albra.notify")


@dataclass(frozen=True)
class SenderPolicy:
    """Tunables; the defaults suit production (tests shrink the poll interval)."""

    queue_size: int = 50
    poll_interval_s: float = 1.0
    lease_s: float = 300.0
    max_attempts: int = 10
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0
    max_retry_after: int = 3

    def backoff_ms(self, attempts: int) -> int:
        """Delay before attempt ``attempts + 1`` (2, 4, 8 … s, capped)."""
        return int(min(self.backoff_max_s, self.backoff_base_s * (2 ** max(0, attempts - 1))) * 1000)


class AlertSender:
    """Delivers queued alerts to ``chat_ids``. Run :meth:`run` as a task; or call :meth:`drain` (tests, CLI)."""

    def __init__(self, store: Store, transport: Transport, chat_ids: Sequence[int], *,
                 routing: Routing = DEFAULT_ROUTING, policy: SenderPolicy = SenderPolicy(),
                 clock: Clock | None = None, sleep: Sleep | None = None, name: str | None = None) -> None:
        if not chat_ids:
            raise ValueError("AlertSender needs at least one chat id to deliver alerts to (telegram.chat_ids)")
        self.store = store
        self.transport = transport
        self.chat_ids = tuple(int(c) for c in chat_ids)
        self.routing = routing
        self.policy = policy
        self.clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or asyncio.sleep
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.limiter = RateLimiter(self.clock, self._sleep)
        self._queue: asyncio.Queue[outbox.OutboxRow] | None = None
        self._held: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.delivered = 0
        self.failed = 0

    # ------------------------------------------------------------------ running
    def wake(self) -> None:
        """Poll the outbox now instead of at the next interval (call from the sender's own event loop)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Poll and deliver until :meth:`stop` or cancellation; claims still held are released at the end."""
        self._queue = asyncio.Queue(maxsize=self.policy.queue_size)
        worker = asyncio.create_task(self._worker(), name=f"alert-sender-worker:{self.name}")
        try:
            while not self._stopping.is_set():
                try:
                    self._poll_once()
                except Exception:  # the store is busy or broken: log and keep trying; never crash the runner
                    log.exception("alert sender: polling the outbox failed")
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.policy.poll_interval_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, Exception):
                pass
            try:
                outbox.release(self.store, self.name, list(self._held))
            except Exception:
                log.exception("alert sender: releasing claims failed (they expire after the lease)")
            self._held.clear()

    def _poll_once(self) -> None:
        assert self._queue is not None
        now = self.clock.now_ms()
        lease_ms = int(self.policy.lease_s * 1000)
        outbox.renew(self.store, self.name, self._held, now + lease_ms)
        if not outbox.has_queued(self.store):
            return
        outbox.build_digest(self.store, self.routing, now)
        free = self._queue.maxsize - self._queue.qsize()
        for row in outbox.claim(self.store, self.name, self.routing, now, lease_ms, free):
            self._held.add(row.event_id)
            self._queue.put_nowait(row)

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            row = await self._queue.get()
            try:
                await self.deliver(row)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert sender: delivering %s failed unexpectedly; it stays queued", row.event_id)
                outbox.settle(self.store, row.event_id, "queued", self.clock.now_ms(), error="internal error",
                              next_attempt_ms=self.clock.now_ms() + self.policy.backoff_ms(row.attempts + 1))
            finally:
                self._held.discard(row.event_id)

    async def drain(self, max_rounds: int = 1000) -> int:
        """Build digests and deliver every due row now, sequentially; returns rows handled (tests, CLI)."""
        handled = 0
        for _ in range(max_rounds):
            now = self.clock.now_ms()
            outbox.build_digest(self.store, self.routing, now)
            rows = outbox.claim(self.store, self.name, self.routing, now, int(self.policy.lease_s * 1000),
                                self.policy.queue_size)
            if not rows:
                break
            for row in rows:
                await self.deliver(row)
                handled += 1
        return handled

    # ------------------------------------------------------------------ one row
    async def deliver(self, row: outbox.OutboxRow) -> str:
        """Send ``row`` to every chat that does not have it yet and settle it; returns the final status."""
        permanent: list[str] = []
        for chat_id in self.chat_ids:
            if chat_id in row.delivered_to:
                continue
            retry_afters = 0
            while True:
                await self.limiter.acquire(chat_id)
                try:
                    await self.transport.send(chat_id, row.text)
                except DeliveryError as e:
                    if e.kind == RETRY_AFTER:
                        ra = max(1.0, e.retry_after_s or 1.0)
                        self.limiter.penalise(chat_id, ra)
                        retry_afters += 1
                        log.warning("alert %s to chat %s: %s", row.event_id, chat_id, e.description)
                        if retry_afters < self.policy.max_retry_after:
                            continue
                        now = self.clock.now_ms()
                        outbox.settle(self.store, row.event_id, "queued", now, error=e.description,
                                      count_attempt=False, next_attempt_ms=now + int(ra * 1000))
                        return "queued"
                    if e.kind == PERMANENT:
                        permanent.append(f"chat {chat_id}: {e.description}")
                        log.error("alert %s cannot be delivered to chat %s: %s", row.event_id, chat_id,
                                  e.description)
                        break
                    return self._retry_later(row, f"chat {chat_id}: {e.description}")
                else:
                    outbox.mark_delivered(self.store, row.event_id, chat_id)
                    break
        now = self.clock.now_ms()
        if permanent:
            error = "; ".join(permanent)
            outbox.settle(self.store, row.event_id, "failed", now, error=error)
            self._journal_failure(row, error)
            self.failed += 1
            return "failed"
        outbox.settle(self.store, row.event_id, "sent", now)
        self.delivered += 1
        return "sent"

    def _retry_later(self, row: outbox.OutboxRow, error: str) -> str:
        now = self.clock.now_ms()
        attempts = row.attempts + 1
        if attempts >= self.policy.max_attempts:
            final = f"gave up after {attempts} attempts; last: {error}"
            outbox.settle(self.store, row.event_id, "failed", now, error=final)
            self._journal_failure(row, final)
            self.failed += 1
            return "failed"
        delay = self.policy.backoff_ms(attempts)
        log.warning("alert %s not delivered (%s); retry %d in %.0f s", row.event_id, error, attempts, delay / 1000)
        outbox.settle(self.store, row.event_id, "queued", now, error=error, next_attempt_ms=now + delay)
        return "queued"

    def _journal_failure(self, row: outbox.OutboxRow, error: str) -> None:
        log.error("alert %s (%s %s) FAILED: %s — kept in the outbox with status failed", row.event_id,
                  row.level, row.kind, error)
        try:
            journal.append(self.store, "alert_failed", redact(f"alert {row.event_id} ({row.kind}) not delivered: "
                                                              f"{error}"),
                           level="ERROR", data={"event_id": row.event_id, "level": row.level}, actor=self.name)
        except Exception:
            log.exception("journaling the failed alert %s failed", row.event_id)
