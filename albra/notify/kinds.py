"""Every alert kind albra emits and the level it goes out at — one explicit table, no default.

Why a closed table: the original system sent every unlisted event type as MEDIUM, so an EMERGENCY or a
POSITION_SYNC_ERROR sat in an hourly summary (original-system.md §7.2). Here an unknown kind is a bug at the
call site: :func:`level_for` raises :class:`UnknownAlertKind` in development and tests, and at runtime the
event is still sent at HIGH with a note saying its kind is unknown — never hidden, never delayed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """Alert levels; the same names as ``albra.config.AlertLevel`` (not imported: keeps notify light)."""

    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


LEVEL_EMOJI: dict[Level, str] = {Level.CRITICAL: "🚨", Level.HIGH: "⚠️", Level.MEDIUM: "📊", Level.LOW: "ℹ️"}
LEVEL_RANK: dict[Level, int] = {Level.CRITICAL: 0, Level.HIGH: 1, Level.MEDIUM: 2, Level.LOW: 3}


@dataclass(frozen=True)
class KindSpec:
    level: Level
    title: str


DIGEST = "digest"
UNKNOWN_KIND_NOTE = "alert kind {kind!r} is not in albra.notify.kinds.KINDS; sent as HIGH so it is not hidden"

KINDS: dict[str, KindSpec] = {
    # -- CRITICAL: money is at risk or trading stopped; the operator must look now
    "kill_switch": KindSpec(Level.CRITICAL, "Kill switch ON"),
    "emergency_shutdown": KindSpec(Level.CRITICAL, "Emergency shutdown"),
    "mdd_halt": KindSpec(Level.CRITICAL, "MDD halt: entries stopped"),
    "unattributed_leg": KindSpec(Level.CRITICAL, "Unattributed position leg"),
    "unprotected_leg": KindSpec(Level.CRITICAL, "Leg without protective stop"),
    "ip_banned": KindSpec(Level.CRITICAL, "Exchange IP ban"),
    "exchange_unreachable": KindSpec(Level.CRITICAL, "Exchange unreachable"),
    "runner_crashed": KindSpec(Level.CRITICAL, "Runner crashed"),
    "runner_down": KindSpec(Level.CRITICAL, "Runner down: heartbeat silent"),
    "runner_failed": KindSpec(Level.CRITICAL, "Runner unit failed (systemd)"),
    "store_error": KindSpec(Level.CRITICAL, "Store error"),
    "incident_opened": KindSpec(Level.CRITICAL, "Incident opened"),
    "runner_stop_failed": KindSpec(Level.CRITICAL, "Runner would not stop"),
    # -- HIGH: sent immediately; the operator should know
    "kill_switch_cleared": KindSpec(Level.HIGH, "Kill switch cleared"),
    "mdd_level_change": KindSpec(Level.HIGH, "MDD level changed"),
    "breaker_open": KindSpec(Level.HIGH, "Circuit breaker open"),
    "rate_limited": KindSpec(Level.HIGH, "Exchange rate limit hit"),
    "runner_started": KindSpec(Level.HIGH, "Runner started"),
    "runner_back": KindSpec(Level.HIGH, "Runner back up"),
    "runner_stopped": KindSpec(Level.HIGH, "Runner stopped"),
    "leg_opened": KindSpec(Level.HIGH, "Leg opened"),
    "leg_closed": KindSpec(Level.HIGH, "Leg closed"),
    "stop_moved": KindSpec(Level.HIGH, "Stop moved"),
    "stop_triggered": KindSpec(Level.HIGH, "Stop triggered"),
    "take_profit_hit": KindSpec(Level.HIGH, "Take profit hit"),
    "partial_exit": KindSpec(Level.HIGH, "Partial exit"),
    "exit_failed": KindSpec(Level.HIGH, "Exit did not execute"),
    "order_rejected": KindSpec(Level.HIGH, "Order rejected"),
    "order_unknown": KindSpec(Level.HIGH, "Order outcome unknown"),
    "reconcile_difference": KindSpec(Level.HIGH, "Ledger differs from exchange"),
    "daily_loss_limit": KindSpec(Level.HIGH, "Daily loss limit reached"),
    "config_error": KindSpec(Level.HIGH, "Configuration error"),
    "paused": KindSpec(Level.HIGH, "Entries paused"),
    "resumed": KindSpec(Level.HIGH, "Entries resumed"),
    # -- MEDIUM: batched into a digest
    "breaker_closed": KindSpec(Level.MEDIUM, "Circuit breaker closed"),
    "risk_refused": KindSpec(Level.MEDIUM, "Entry refused by risk"),
    "incident_closed": KindSpec(Level.MEDIUM, "Incident closed"),
    "order_retried": KindSpec(Level.MEDIUM, "Order request retried"),
    "candles_caught_up": KindSpec(Level.MEDIUM, "Late candles caught up"),
    "bot_started": KindSpec(Level.MEDIUM, "Telegram bot started"),
    "weight_throttle": KindSpec(Level.MEDIUM, "Request weight throttled"),
    # the digest message itself: stored at MEDIUM, always sent once built (see outbox.claim)
    DIGEST: KindSpec(Level.MEDIUM, "Digest"),
    # -- LOW: log only
    "heartbeat": KindSpec(Level.LOW, "Heartbeat"),
    "reconcile_clean": KindSpec(Level.LOW, "Ledger matches exchange"),
    "signal_none": KindSpec(Level.LOW, "No signal"),
    # albra.exchange.resilience events that are not alerts by themselves (alert=False), if forwarded
    "breaker_half_open": KindSpec(Level.LOW, "Circuit breaker probing"),
    "time_resync": KindSpec(Level.LOW, "Exchange time re-synced"),
    "retry": KindSpec(Level.LOW, "Exchange request retried"),
}


class UnknownAlertKind(ValueError):
    """An alert kind that is not in :data:`KINDS` (a bug in the caller)."""


def strict_default() -> bool:
    """Unknown kinds raise under pytest or with ``ALBRA_DEV=1``; in production they are sent at HIGH."""
    return os.environ.get("ALBRA_DEV") == "1" or "pytest" in sys.modules


def spec_for(kind: str, *, strict: bool | None = None) -> tuple[KindSpec, str | None]:
    """(spec, note) for ``kind``. An unknown kind raises when strict, else HIGH with a note to show."""
    spec = KINDS.get(kind)
    if spec is not None:
        return spec, None
    if strict_default() if strict is None else strict:
        raise UnknownAlertKind(f"unknown alert kind {kind!r}; add it to albra.notify.kinds.KINDS with a level")
    return KindSpec(Level.HIGH, kind.replace("_", " ").capitalize() or "Unnamed alert"), UNKNOWN_KIND_NOTE.format(
        kind=kind)


def level_for(kind: str, *, strict: bool | None = None) -> Level:
    """The level ``kind`` is sent at (see :func:`spec_for` for unknown kinds)."""
    return spec_for(kind, strict=strict)[0].level


@dataclass(frozen=True)
class Routing:
    """Which levels go out at once, which are batched into the digest; any other level is only logged.

    Build it from ``settings.telegram.alerts`` with :meth:`from_settings`; the default matches the config's."""

    immediate: frozenset[Level] = frozenset({Level.CRITICAL, Level.HIGH})
    digest: frozenset[Level] = frozenset({Level.MEDIUM})
    digest_interval_s: int = 3600

    def __post_init__(self) -> None:
        if Level.CRITICAL not in self.immediate:
            raise ValueError("CRITICAL must be routed immediately")
        if self.immediate & self.digest:
            raise ValueError(f"levels {sorted(self.immediate & self.digest)} are both immediate and digest")
        if self.digest_interval_s <= 0:
            raise ValueError(f"digest_interval_s must be positive, got {self.digest_interval_s}")

    @classmethod
    def from_settings(cls, alerts: object) -> "Routing":
        """From an ``AlertSettings`` (``immediate``, ``digest``, ``digest_interval_s``)."""
        return cls(frozenset(Level(str(x)) for x in getattr(alerts, "immediate")),
                   frozenset(Level(str(x)) for x in getattr(alerts, "digest")),
                   int(getattr(alerts, "digest_interval_s")))

    def status_for(self, level: Level) -> str:
        """The outbox status a new alert of ``level`` starts in: queued (to send or digest) or logged."""
        return "queued" if level in self.immediate or level in self.digest else "logged"


DEFAULT_ROUTING = Routing()
