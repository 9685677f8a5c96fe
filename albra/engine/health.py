"""Runner health: exchange reachability, call latency, error rate and memory, and whether systemd's watchdog
may be fed.

The watchdog is fed only when the loop has turned since the last feed AND the checks pass, so a runner stuck
retrying a dead exchange (or leaking memory) stops feeding it and systemd restarts it — the original's
health checker never reported "healthy" and its watchdog crash-looped instead.
"""

from __future__ import annotations

import resource
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class HealthLimits:
    max_silence_s: float = 120.0     # no successful exchange call for this long: unreachable
    max_error_rate: float = 0.5      # share of failed calls among the last ``window`` calls
    window: int = 20
    max_rss_mb: float = 1500.0
    max_latency_ms: float = 5000.0   # p50 of recent calls


@dataclass
class Health:
    """Records exchange call outcomes and loop turns; :meth:`check` says what is wrong (empty = healthy)."""

    limits: HealthLimits = field(default_factory=HealthLimits)
    monotonic: callable = time.monotonic  # type: ignore[valid-type]
    last_ok: float | None = None
    calls: deque = field(default_factory=lambda: deque(maxlen=200))
    turns: int = 0
    _fed_turn: int = -1

    def __post_init__(self) -> None:
        self.last_ok = self.monotonic()

    def record(self, ok: bool, latency_ms: float) -> None:
        self.calls.append((ok, latency_ms))
        if ok:
            self.last_ok = self.monotonic()

    def turned(self) -> None:
        self.turns += 1

    @staticmethod
    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def check(self) -> list[str]:
        problems: list[str] = []
        lim = self.limits
        if self.last_ok is not None and self.monotonic() - self.last_ok > lim.max_silence_s:
            problems.append(f"exchange unreachable for {self.monotonic() - self.last_ok:.0f}s")
        recent = list(self.calls)[-lim.window:]
        if len(recent) >= 5:
            errors = sum(1 for ok, _ in recent if not ok)
            if errors / len(recent) > lim.max_error_rate:
                problems.append(f"{errors}/{len(recent)} recent exchange calls failed")
            lat = sorted(ms for ok, ms in recent if ok)
            if lat and lat[len(lat) // 2] > lim.max_latency_ms:
                problems.append(f"exchange latency p50 {lat[len(lat) // 2]:.0f} ms")
        rss = self.rss_mb()
        if rss > lim.max_rss_mb:
            problems.append(f"memory {rss:.0f} MB above {lim.max_rss_mb:.0f} MB")
        return problems

    def may_feed_watchdog(self) -> bool:
        """True once per loop turn while healthy."""
        if self.turns == self._fed_turn or self.check():
            return False
        self._fed_turn = self.turns
        return True
