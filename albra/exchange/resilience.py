"""Resilience around every exchange call: circuit breaker → retry with back-off and a budget → timeout, plus a
request-weight limiter shared by every runner on the host.

Order of wrapping (outermost first) and why:

1. **Circuit breaker** — after ``failure_threshold`` consecutive failed *calls* (each already retried) it opens
   and refuses calls at once (:class:`CircuitOpen`, nothing sent) for ``cooldown_s``; then it half-opens and lets
   one probe through; the probe's success closes it, its failure re-opens it. A dead exchange costs one fast
   error per call instead of a full retry budget, and the engine gets an event to alert/journal.
2. **Retry** — only :class:`~albra.exchange.errors.Retryable` errors, with exponential back-off, at most
   ``max_attempts`` and at most ``budget_s`` of waiting in total. Never :class:`Fatal`, never
   :class:`OutcomeUnknown`. Placements use :data:`PLACEMENT_POLICY`, which retries only -1021 (rejected before
   processing, so nothing was placed) after re-syncing the clock. -1021 always triggers ``resync`` first
   (ccxt ``load_time_difference``).
3. **Timeout** — each attempt is bounded by ``attempt_timeout_s`` (a little above ccxt's own timeout), so a hung
   connection becomes a classified error instead of a hung runner.

Request weight: Binance counts weight per IP per minute (limit 2400 on USDⓈ-M) and reports the IP's count in
``X-MBX-USED-WEIGHT-1M`` on every response. Every runner on the host shares the IP, so the header already *is*
the shared count — each runner slows down on its own once the header shows more than ``threshold`` (70 %) of
the limit, proportionally: the delay grows from 0 at the threshold to "wait for the next minute" at 100 %.
What the header cannot give a runner is news between its own calls — most importantly a 418 ban or a 429
back-off that another runner just received (a second violation lengthens Binance's ban). So the limiter can
also share its view through a small JSON file under the state dir (``state/weight.json``: minute window, highest
weight seen in it, ``blocked_until_ms``), written atomically (temp file + ``os.replace``) and read before each
request. Without a path it works per process on the header alone.

Time and sleep are injectable (``monotonic``, ``wall_ms``, ``sleep``) so tests never wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from albra.exchange.errors import (
    CircuitOpen,
    ClockSkew,
    ExchangeError,
    IpBanned,
    OutcomeUnknown,
    RateLimited,
    Retryable,
    classify,
)

T = TypeVar("T")
R = TypeVar("R")

WEIGHT_HEADER = "x-mbx-used-weight-1m"
WEIGHT_LIMIT_1M = 2400
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class ResilienceEvent:
    """Something the engine should journal; ``alert`` marks what an operator must hear about (breaker opened,
    429, 418 ban)."""

    kind: str  # breaker_open | breaker_half_open | breaker_closed | rate_limited | ip_banned | time_resync | retry | weight_throttle
    name: str
    detail: str
    alert: bool
    ts_ms: int


EventSink = Callable[[ResilienceEvent], None]
CallSink = Callable[[str, bool, str, float], None]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CircuitBreaker:
    """closed → (N consecutive failures) → open → (cool-down) → half-open → (probe ok) closed / (probe fails) open."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __init__(self, name: str, failure_threshold: int = 5, cooldown_s: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic, wall_ms: Callable[[], int] = _wall_ms,
                 on_event: EventSink | None = None) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be ≥ 1, got {failure_threshold}")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be ≥ 0, got {cooldown_s}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._monotonic = monotonic
        self._wall_ms = wall_ms
        self._on_event = on_event
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.last_error: BaseException | None = None

    @property
    def state(self) -> str:
        if self._state == self.OPEN and self._monotonic() - self._opened_at >= self.cooldown_s:
            return self.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def _emit(self, kind: str, detail: str, alert: bool) -> None:
        if self._on_event is not None:
            self._on_event(ResilienceEvent(kind, self.name, detail, alert, self._wall_ms()))

    def allow(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go out now. In half-open, exactly one probe passes."""
        if self._state == self.CLOSED:
            return
        if self._state == self.OPEN:
            remaining = self.cooldown_s - (self._monotonic() - self._opened_at)
            if remaining > 0:
                raise CircuitOpen(f"{self.name}: circuit open after {self._failures} consecutive failures "
                                  f"(last: {self.last_error}); retry in {remaining:.1f}s", retry_in_s=remaining)
            self._state = self.HALF_OPEN
            self._probe_in_flight = False
            self._emit("breaker_half_open", "cool-down over, probing with one call", alert=False)
        if self._probe_in_flight:
            raise CircuitOpen(f"{self.name}: circuit half-open, a probe call is in flight", retry_in_s=0.0)
        self._probe_in_flight = True

    def record_success(self) -> None:
        was = self._state
        self._state = self.CLOSED
        self._failures = 0
        self._probe_in_flight = False
        if was != self.CLOSED:
            self._emit("breaker_closed", "exchange answered again; circuit closed", alert=True)

    def record_failure(self, err: BaseException | None = None) -> None:
        self.last_error = err
        self._failures += 1
        self._probe_in_flight = False
        if self._state == self.HALF_OPEN or (self._state == self.CLOSED and self._failures >= self.failure_threshold):
            self._state = self.OPEN
            self._opened_at = self._monotonic()
            self._emit("breaker_open", f"{self._failures} consecutive failures, last: {err}; "
                                       f"refusing calls for {self.cooldown_s:g}s", alert=True)

    def release_probe(self) -> None:
        """A probe that ended without telling us anything about the exchange (cancelled) frees the slot."""
        self._probe_in_flight = False


class WeightLimiter:
    """Slows requests down before Binance's per-IP weight limit and honours Retry-After (see module doc)."""

    def __init__(self, limit: int = WEIGHT_LIMIT_1M, threshold: float = 0.7, shared_path: Path | str | None = None,
                 wall_ms: Callable[[], int] = _wall_ms, default_429_s: float = 10.0,
                 default_418_s: float = 120.0) -> None:
        if limit <= 0:
            raise ValueError(f"weight limit must be positive, got {limit}")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.limit = limit
        self.threshold = threshold
        self.shared_path = Path(shared_path) if shared_path is not None else None
        self._wall_ms = wall_ms
        self.default_429_s = default_429_s  # waits when Binance sends no Retry-After
        self.default_418_s = default_418_s  # Binance's shortest ban is 2 minutes
        self._window = -1
        self._used = 0
        self._blocked_until_ms = 0
        self._banned = False

    # -- state ---------------------------------------------------------------------------------------------------

    @property
    def used(self) -> int:
        """Highest weight seen in the current minute (0 once the minute has rolled over)."""
        self._load_shared()
        return self._used if self._window == self._wall_ms() // MINUTE_MS else 0

    @property
    def blocked_until_ms(self) -> int:
        self._load_shared()
        return self._blocked_until_ms

    def observe(self, headers: Mapping[str, Any] | None) -> int | None:
        """Take the used weight from a response's headers (any call, failed or not). Returns it, or None."""
        if not headers:
            return None
        raw = None
        for k, v in headers.items():
            if k.lower() == WEIGHT_HEADER:
                raw = v
                break
        if raw is None:
            return None
        try:
            used = int(str(raw).strip())
        except ValueError:
            return None
        self._note(self._wall_ms() // MINUTE_MS, used)
        return used

    def _note(self, window: int, used: int) -> None:
        self._load_shared()
        if window > self._window:
            self._window, self._used = window, used
        elif window == self._window and used > self._used:
            self._used = used
        else:
            return
        self._save_shared()

    def block_for(self, seconds: float, banned: bool = False) -> None:
        """Refuse/delay every request for ``seconds`` (Retry-After of a 429/418)."""
        until = self._wall_ms() + int(max(0.0, seconds) * 1000)
        self._load_shared()
        if until > self._blocked_until_ms:
            self._blocked_until_ms = until
            self._banned = banned
            self._save_shared()

    def delay_s(self) -> float:
        """Seconds to wait before the next request: the rest of a block, or a delay proportional to how far the
        used weight is above the threshold (up to the end of the minute window at 100 %)."""
        now = self._wall_ms()
        self._load_shared()
        if self._blocked_until_ms > now:
            return (self._blocked_until_ms - now) / 1000
        window = now // MINUTE_MS
        if self._window != window:
            return 0.0
        frac = self._used / self.limit
        if frac <= self.threshold:
            return 0.0
        remaining_ms = (window + 1) * MINUTE_MS - now
        share = min(1.0, (frac - self.threshold) / (1 - self.threshold))
        return remaining_ms * share / 1000

    @property
    def banned(self) -> bool:
        until = self.blocked_until_ms  # loads the shared file first
        return self._banned and until > self._wall_ms()

    # -- cross-process file --------------------------------------------------------------------------------------

    def _load_shared(self) -> None:
        if self.shared_path is None:
            return
        try:
            data = json.loads(self.shared_path.read_text())
            window, used = int(data["window"]), int(data["used"])
            blocked, banned = int(data.get("blocked_until_ms", 0)), bool(data.get("banned", False))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            return  # a foreign or damaged file is ignored: the header keeps us safe on the next response
        if window > self._window:
            self._window, self._used = window, used
        elif window == self._window:
            self._used = max(self._used, used)
        if blocked > self._blocked_until_ms:
            self._blocked_until_ms, self._banned = blocked, banned

    def _save_shared(self) -> None:
        if self.shared_path is None:
            return
        payload = json.dumps({"window": self._window, "used": self._used,
                              "blocked_until_ms": self._blocked_until_ms, "banned": self._banned})
        self.shared_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.shared_path.with_name(f".{self.shared_path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # state files are owner-only
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        os.replace(tmp, self.shared_path)


def _raise(err: ExchangeError, exc: BaseException) -> None:
    if err is exc:
        raise err
    raise err from exc


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a call is retried. ``retry_on`` are the error classes worth another attempt."""

    max_attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 5.0
    budget_s: float = 20.0
    retry_on: tuple[type[ExchangeError], ...] = (Retryable,)
    max_limiter_wait_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))


READ_POLICY = RetryPolicy()
#: placements: only -1021 is retried (Binance rejected it unprocessed); everything unclear is OutcomeUnknown.
PLACEMENT_POLICY = RetryPolicy(max_attempts=2, retry_on=(ClockSkew,))


@dataclass
class Resilience:
    """Runs one exchange call through breaker → retry → timeout and the weight limiter."""

    name: str
    breaker: CircuitBreaker | None = None
    limiter: WeightLimiter | None = None
    read_policy: RetryPolicy = READ_POLICY
    placement_policy: RetryPolicy = PLACEMENT_POLICY
    attempt_timeout_s: float | None = 15.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    wall_ms: Callable[[], int] = _wall_ms
    on_event: EventSink | None = None
    #: told of every call once it is over: (op, placement, outcome 'ok' or the error class name, milliseconds);
    #: the runner keeps these for the monthly review (albra.store.operations). Must not raise.
    on_call: CallSink | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"calls": 0, "attempts": 0, "retries": 0, "resyncs": 0})

    def __post_init__(self) -> None:
        if self.breaker is None:
            self.breaker = CircuitBreaker(self.name, wall_ms=self.wall_ms, on_event=self._emit_raw)
        if self.limiter is None:
            self.limiter = WeightLimiter(wall_ms=self.wall_ms)

    def _emit_raw(self, ev: ResilienceEvent) -> None:
        if self.on_event is not None:
            self.on_event(ev)

    def _emit(self, kind: str, detail: str, alert: bool) -> None:
        self._emit_raw(ResilienceEvent(kind, self.name, detail, alert, self.wall_ms()))

    async def call(self, op: str, fn: Callable[[], Awaitable[T]], *, validate: Callable[[T], R],
                   placement: bool = False, client_id: str | None = None, is_algo: bool = False,
                   headers: Callable[[], Mapping[str, Any] | None] = lambda: None,
                   resync: Callable[[], Awaitable[Any]] | None = None) -> R:
        """Run ``fn`` (one request) and ``validate`` its raw result, with the whole policy around it.

        ``headers`` returns the last response's headers (for the weight header and Retry-After); ``resync``
        re-reads the exchange clock after a -1021. Raises an :class:`ExchangeError` subclass, never anything else.
        """
        assert self.breaker is not None
        try:
            self.breaker.allow()
        except ExchangeError as err:
            self._told(op, placement, type(err).__name__, 0.0)
            raise
        self.stats["calls"] += 1
        t0 = time.perf_counter()
        try:
            result = await self._retrying(op, fn, validate, placement, client_id, is_algo, headers, resync)
        except ExchangeError as err:
            self._told(op, placement, type(err).__name__, (time.perf_counter() - t0) * 1000)
            if isinstance(err, (Retryable, OutcomeUnknown)):
                self.breaker.record_failure(err)
            else:  # the exchange answered (a refusal is an answer)
                self.breaker.record_success()
            raise
        except BaseException:
            self.breaker.release_probe()
            raise
        self._told(op, placement, "ok", (time.perf_counter() - t0) * 1000)
        self.breaker.record_success()
        return result

    def _told(self, op: str, placement: bool, outcome: str, ms: float) -> None:
        if self.on_call is None:
            return
        try:
            self.on_call(op, placement, outcome, ms)
        except Exception:  # noqa: BLE001 - bookkeeping never changes an exchange call's outcome
            logging.getLogger("albra.exchange.resilience").exception("call sink failed")

    async def _retrying(self, op: str, fn: Callable[[], Awaitable[T]], validate: Callable[[T], R], placement: bool,
                        client_id: str | None, is_algo: bool,
                        headers: Callable[[], Mapping[str, Any] | None],
                        resync: Callable[[], Awaitable[Any]] | None) -> R:
        assert self.limiter is not None
        policy = self.placement_policy if placement else self.read_policy
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            await self._wait_for_weight(op, policy)
            self.stats["attempts"] += 1
            try:
                if self.attempt_timeout_s is not None:
                    async with asyncio.timeout(self.attempt_timeout_s):
                        raw = await fn()
                else:
                    raw = await fn()
                self.limiter.observe(headers())
                return validate(raw)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                hdrs = headers()
                self.limiter.observe(hdrs)
                err = classify(exc, placement, hdrs, client_id=client_id, is_algo=is_algo)
                delay = self._after_failure(op, err, attempt, policy)
                if isinstance(err, ClockSkew):
                    # re-sync on every -1021, also when this call is not retried (its last attempt, or a policy
                    # that does not retry it): the next call must not meet the same skew, and the journal says so
                    if resync is not None:
                        try:
                            await resync()
                        except Exception as rexc:  # noqa: BLE001
                            # the -1021 is journaled even when the re-sync fails (its own request faulted): the
                            # fault soak found skews that left no trace this way
                            self._emit("time_resync", f"{op}: -1021, re-syncing exchange time failed "
                                                      f"({type(rexc).__name__})", alert=False)
                            raise classify(rexc, False, headers()) from rexc
                    self.stats["resyncs"] += 1
                    self._emit("time_resync", f"{op}: -1021, re-synced exchange time", alert=False)
                    delay = 0.0
                if not isinstance(err, policy.retry_on) or attempt >= policy.max_attempts:
                    _raise(err, exc)
                if waited + delay > policy.budget_s:
                    _raise(err, exc)
                self.stats["retries"] += 1
                self._emit("retry", f"{op}: attempt {attempt} failed ({type(err).__name__}); retrying in "
                                    f"{delay:.2f}s", alert=False)
                if delay > 0:
                    await self.sleep(delay)
                    waited += delay

    def _after_failure(self, op: str, err: ExchangeError, attempt: int, policy: RetryPolicy) -> float:
        """Record rate-limit blocks and alerts; return the back-off before the next attempt."""
        assert self.limiter is not None
        if isinstance(err, RateLimited):
            banned = isinstance(err, IpBanned)
            default = self.limiter.default_418_s if banned else self.limiter.default_429_s
            wait = err.retry_after_s if err.retry_after_s is not None else default
            self.limiter.block_for(wait, banned=banned)
            self._emit("ip_banned" if banned else "rate_limited",
                       f"{op}: HTTP {err.status}; Binance asks to wait {wait:g}s", alert=True)
            return max(wait, policy.backoff(attempt))
        return policy.backoff(attempt)

    async def _wait_for_weight(self, op: str, policy: RetryPolicy) -> None:
        assert self.limiter is not None
        delay = self.limiter.delay_s()
        if delay <= 0:
            return
        if delay > policy.max_limiter_wait_s:
            cls = IpBanned if self.limiter.banned else RateLimited
            raise cls(f"{op}: not sent — request weight blocked for another {delay:.0f}s "
                      f"(used {self.limiter.used}/{self.limiter.limit})", retry_after_s=delay)
        self._emit("weight_throttle", f"{op}: used weight {self.limiter.used}/{self.limiter.limit}; "
                                      f"waiting {delay:.2f}s", alert=False)
        await self.sleep(delay)
