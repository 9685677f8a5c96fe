"""How the simulated exchange departs from instant consistency — each the way Binance USDⓈ-M does.

Why this exists: an exchange that is instantly consistent agrees with whatever an engine believes, so a suite
run against it hides exactly the failures that lose money (a stop read as "filled" whose child order was
rejected, a fill that reaches trade history after the engine looked, an order that is not found by its
client id right after it was accepted). :class:`Realism` is the one place that says how long each of those
windows lasts; the exchange core, the REST server, the user data stream and the paper gateway all read it.
Every behaviour and the documentation page it follows is listed in ``albra/sim/README.md``.

Two kinds of knobs:

* **timing** (``*_ms``): gaps measured on the exchange's *latency clock* — the wall clock for ``albra sim serve``
  and paper trading on a running clock, the exchange's own time in a replay. A replay whose clock stands still
  while the engine decides can never let an "eventually" arrive, so replays (backtests, the paper demo) use
  :meth:`Realism.replay`: zero gaps, every rule kept (ADR 0009).
* **rules**: history windows, order-count limits, purged lookups — true at any speed, so kept in replays too.

:meth:`Realism.ideal` turns everything off (instant and windowless); only benchmarks that say so use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

DAY_MS = 86_400_000


def wall_ms() -> int:
    """The default latency clock: monotonic wall milliseconds. Visibility is a matter of real time, whatever the
    exchange clock does (stand still, run at a speed, jump by admin advances)."""
    return time.monotonic_ns() // 1_000_000


@dataclass(frozen=True)
class Realism:
    """Windows of the simulated exchange (defaults: realistic)."""

    #: a conditional order that fires shows TRIGGERING this long before its child order exists (TRIGGERED)
    trigger_ms: int = 30
    #: TRIGGERED → FINISHED: the child market order has executed (or was rejected) before the algo says so
    finish_ms: int = 20
    #: a newly accepted order (regular or algo) is not found by GET order / algoOrder (-2013) for this long
    lookup_ms: int = 500
    #: a fill reaches ``userTrades`` (and its REALIZED_PNL / COMMISSION ``income`` rows) this long after it happened
    trade_ms: int = 200
    #: user data stream events leave this long after the change they report
    stream_ms: int = 5
    #: ``userTrades`` answers at most 7 days from ``startTime`` (the last 7 days without one); ``income`` without
    #: ``startTime`` answers the last 7 days; -1127 when startTime..endTime spans more than 7 days
    history_windows: bool = True
    #: GET order does not find a CANCELED/EXPIRED order without fills once it is 3 days old
    purge_lookups: bool = True
    #: ``MAX_NUM_ALGO_ORDERS`` (-4045) and ``MAX_NUM_ORDERS`` (-2025) per symbol and account
    open_order_limits: bool = True
    #: order-rate limits per account: X-MBX-ORDER-COUNT-10S / -1M headers, -1015 over 300 per 10 s or 1200 per min
    order_rate_limits: bool = True

    @classmethod
    def ideal(cls) -> "Realism":
        """Instantly consistent and windowless: the exchange the engine wishes it had. Benchmarks only."""
        return cls(0, 0, 0, 0, 0, False, False, False, False)

    @classmethod
    def replay(cls) -> "Realism":
        """For replays whose clock stands still while the engine decides (backtests, the paper demo): no timing
        gaps (they could never elapse), every rule kept."""
        return replace(cls(), trigger_ms=0, finish_ms=0, lookup_ms=0, trade_ms=0, stream_ms=0)

    @property
    def instant(self) -> bool:
        """No timing gap at all (visibility can be decided without a clock)."""
        return not (self.trigger_ms or self.finish_ms or self.lookup_ms or self.trade_ms or self.stream_ms)

    def describe(self) -> dict[str, int | bool]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_spec(cls, spec: dict) -> "Realism":
        """Realistic defaults overridden by ``spec`` (the admin API / ``--realism`` JSON); bad keys raise
        ValueError naming them."""
        known = set(cls.__dataclass_fields__)
        extra = set(spec) - known
        if extra:
            raise ValueError(f"unknown realism fields: {sorted(extra)}; known: {sorted(known)}")
        out = cls()
        for k, v in spec.items():
            cur = getattr(out, k)
            if isinstance(cur, bool):
                if not isinstance(v, bool):
                    raise ValueError(f"realism {k} must be true or false, got {v!r}")
            elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"realism {k} must be a non-negative integer (ms), got {v!r}")
            out = replace(out, **{k: v})
        return out
