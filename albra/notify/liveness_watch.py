"""The bot's watch over the runners: a runner that goes silent is a CRITICAL alert within a minute.

Why the bot: a runner killed with ``kill -9`` (or by the OOM killer, or a hung host process) cannot say it died. The
bot is the one long-lived process that is not a runner, so every ``heartbeat_s`` it reads the runner rows and applies
:func:`albra.store.runners.liveness` — the same definition the CLI and dashboard show. A runner that is down (its
heartbeat older than ``runner.down_after_s``, or its process gone) is journaled ``runner_down`` and alerted CRITICAL
once per episode, its journal row on the exchange's clock like every row (the event id carries the last heartbeat, so the outbox keeps one alert however many bots or checks
see it); when it beats again ``runner_back`` goes out (HIGH). A clean stop (``stopped``) is not an alarm: it was
asked for and journaled by whoever stopped it. Under systemd the ``OnFailure=`` unit
(:func:`albra.systemd.failure_unit`) covers the bot being down too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from albra.notify.event import AlertEvent, make_event_id
from albra.notify.outbox import emit
from albra.store import journal, runners
from albra.store.clock import exchange_now
from albra.store.db import Store
from albra.timefmt import Clock, SystemClock, fmt_kst

if TYPE_CHECKING:
    from albra.config import Settings

log = logging.getLogger("albra.notify.liveness")


class LivenessWatch:
    """Call :meth:`check` every heartbeat; it emits at most one alert per runner per down episode."""

    def __init__(self, settings: "Settings", store: Store, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.down_after_ms = int(settings.runner.down_after_s * 1000)
        self._down: dict[str, int | None] = {}  # account → last heartbeat of its current down episode

    def check(self) -> list[str]:
        """Read the runner rows once; returns the accounts newly seen down (their alert is queued)."""
        now = self.clock.now_ms()
        rows = {r.name: r for r in runners.get_all(self.store)}
        newly: list[str] = []
        for account in sorted(self.settings.accounts):
            info = rows.get(f"run:{account}")
            lv = runners.liveness(info, now, self.down_after_ms, f"run:{account}")
            if lv.state == "down":
                if account in self._down and self._down[account] == lv.since_ms:
                    continue
                self._down[account] = lv.since_ms
                if self._report_down(account, lv, now):
                    newly.append(account)
            elif lv.up and account in self._down:
                episode = self._down.pop(account)
                self._report_back(account, lv, episode, now)
            elif not lv.up:
                self._down.pop(account, None)
        return newly

    def _report_down(self, account: str, lv: runners.Liveness, now: int) -> bool:
        ev = AlertEvent(make_event_id("runner_down", account, lv.since_ms), "runner_down", account=account,
                        message=f"runner {account} is {lv.text}: no heartbeat for more than "
                                f"{self.settings.runner.down_after_s:g} s. Positions keep their exchange-side "
                                f"stops; nothing trades, moves stops or closes legs on this account until it is "
                                f"restarted (`albra safe-restart --validate-state --account {account}`).",
                        ts=exchange_now(self.store, account),
                        details={"last heartbeat": fmt_kst(lv.since_ms) if lv.since_ms else "never"})
        got = emit(self.store, ev, now_ms=now)
        if got.duplicate:
            return False
        journal.append(self.store, "runner_down", f"runner {account} {lv.text}", level="CRITICAL", account=account,
                       data={"last_heartbeat_ms": lv.since_ms, "seen_down_ms": now,
                             "down_after_s": self.settings.runner.down_after_s}, actor="bot:liveness")
        log.critical("runner %s is %s", account, lv.text)
        return True

    def _report_back(self, account: str, lv: runners.Liveness, since: int | None, now: int) -> None:
        gap = "" if since is None else f" after {runners.duration_text(now - since)} down"
        emit(self.store, AlertEvent(make_event_id("runner_back", account, since), "runner_back", account=account,
                                    message=f"runner {account} is {lv.text}{gap}",
                                    ts=exchange_now(self.store, account)), now_ms=now)
        journal.append(self.store, "runner_back", f"runner {account} {lv.text}{gap}", account=account,
                       data={"down_since_ms": since}, actor="bot:liveness")
