"""Breaker state machine, retry budget, -1021 re-sync, and the weight limiter — on an injected clock."""

from __future__ import annotations

import json

import pytest

from albra.exchange import errors as E
from albra.exchange.resilience import (
    MINUTE_MS,
    PLACEMENT_POLICY,
    CircuitBreaker,
    Resilience,
    RetryPolicy,
    WeightLimiter,
)

pytestmark = pytest.mark.anyio


class Clock:
    """Monotonic seconds and wall ms that only move when slept on."""

    def __init__(self, wall_ms: int = 1_704_067_200_000) -> None:
        self.t = 0.0
        self.wall0 = wall_ms
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def wall_ms(self) -> int:
        return self.wall0 + int(self.t * 1000)

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def ccxt_exc(name: str, msg: str = "binanceusdm GET http://127.0.0.1:9/fapi/v1/time"):
    import ccxt

    return getattr(ccxt, name)(msg)


def make(clock: Clock, events: list, **kw) -> Resilience:
    breaker = CircuitBreaker("acct", failure_threshold=kw.pop("threshold", 3), cooldown_s=10.0,
                             monotonic=clock.monotonic, wall_ms=clock.wall_ms, on_event=events.append)
    return Resilience("acct", breaker=breaker, limiter=WeightLimiter(wall_ms=clock.wall_ms), sleep=clock.sleep,
                      wall_ms=clock.wall_ms, on_event=events.append, **kw)


class Script:
    """A call that fails with the given exceptions in turn, then returns ``result``."""

    def __init__(self, *failures: BaseException, result: object = "ok", headers: dict | None = None) -> None:
        self.failures = list(failures)
        self.result = result
        self.calls = 0
        self.headers = headers or {}

    async def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.result


async def test_breaker_opens_half_opens_and_closes():
    clock, events = Clock(), []
    res = make(clock, events, read_policy=RetryPolicy(max_attempts=1))
    down = Script(*[ccxt_exc("ExchangeNotAvailable") for _ in range(10)])
    for _ in range(3):
        with pytest.raises(E.NetworkFailure):
            await res.call("time", down, validate=lambda r: r)
    assert res.breaker.state == "open"
    assert [e.kind for e in events if e.kind.startswith("breaker")] == ["breaker_open"]
    calls_before = down.calls
    with pytest.raises(E.CircuitOpen) as ei:
        await res.call("time", down, validate=lambda r: r)
    assert down.calls == calls_before  # nothing was sent
    assert 0 < ei.value.retry_in_s <= 10
    clock.t += 10
    assert res.breaker.state == "half_open"
    # the probe fails: open again, a fresh cool-down
    with pytest.raises(E.NetworkFailure):
        await res.call("time", down, validate=lambda r: r)
    assert res.breaker.state == "open"
    clock.t += 10
    assert await res.call("time", Script(result=42), validate=lambda r: r) == 42
    assert res.breaker.state == "closed"
    kinds = [e.kind for e in events if e.kind.startswith("breaker")]
    assert kinds == ["breaker_open", "breaker_half_open", "breaker_open", "breaker_half_open", "breaker_closed"]
    assert all(e.alert for e in events if e.kind in ("breaker_open", "breaker_closed"))


async def test_half_open_lets_exactly_one_probe_through():
    clock = Clock()
    br = CircuitBreaker("a", failure_threshold=1, cooldown_s=5, monotonic=clock.monotonic)
    br.record_failure(RuntimeError("x"))
    clock.t = 5
    br.allow()
    with pytest.raises(E.CircuitOpen, match="probe"):
        br.allow()
    br.record_success()
    br.allow()
    br.allow()


async def test_fatal_answers_do_not_open_the_breaker():
    clock, events = Clock(), []
    res = make(clock, events, threshold=1)
    with pytest.raises(E.InsufficientMargin):
        await res.call("order", Script(ccxt_exc("InsufficientFunds", 'binanceusdm {"code":-2019}')),
                       validate=lambda r: r, placement=True)
    assert res.breaker.state == "closed"


async def test_retry_with_backoff_then_success():
    clock, events = Clock(), []
    res = make(clock, events)
    fn = Script(ccxt_exc("RequestTimeout"), ccxt_exc("ExchangeNotAvailable"), result=[1])
    assert await res.call("klines", fn, validate=lambda r: r) == [1]
    assert fn.calls == 3
    assert clock.slept == [0.25, 0.5]
    assert res.breaker.state == "closed" and res.breaker.consecutive_failures == 0


async def test_retry_stops_at_attempts_and_budget():
    clock, events = Clock(), []
    res = make(clock, events, read_policy=RetryPolicy(max_attempts=10, base_delay_s=1, max_delay_s=100, budget_s=6))
    fn = Script(*[ccxt_exc("RequestTimeout") for _ in range(20)])
    with pytest.raises(E.NetworkFailure):
        await res.call("klines", fn, validate=lambda r: r)
    assert clock.slept == [1, 2]  # the next wait (4 s) would exceed the 6 s budget
    assert fn.calls == 3
    res2 = make(Clock(), [], read_policy=RetryPolicy(max_attempts=2))
    fn2 = Script(*[ccxt_exc("RequestTimeout") for _ in range(5)])
    with pytest.raises(E.NetworkFailure):
        await res2.call("klines", fn2, validate=lambda r: r)
    assert fn2.calls == 2


async def test_fatal_and_unknown_are_never_retried():
    clock, events = Clock(), []
    res = make(clock, events)
    fn = Script(ccxt_exc("InvalidOrder", 'binanceusdm {"code":-2022}'), result="x")
    with pytest.raises(E.InvalidOrder):
        await res.call("order", fn, validate=lambda r: r)
    assert fn.calls == 1
    fn = Script(ccxt_exc("RequestTimeout"), result="x")
    with pytest.raises(E.OutcomeUnknown) as ei:
        await res.call("order", fn, validate=lambda r: r, placement=True, client_id="al-en-1-0-aaaaaaaaaa")
    assert fn.calls == 1 and ei.value.client_id == "al-en-1-0-aaaaaaaaaa"


async def test_malformed_result_is_retried_on_reads_and_unknown_on_placement():
    clock, events = Clock(), []
    res = make(clock, events)

    def need_id(r):
        if not r.get("id"):
            raise E.MalformedResponse("order without id")
        return r

    fn = Script(result={"id": None})
    with pytest.raises(E.MalformedResponse):
        await res.call("fetch_order", fn, validate=need_id)
    assert fn.calls == 4
    fn = Script(result={"id": None})
    with pytest.raises(E.OutcomeUnknown):
        await res.call("order", fn, validate=need_id, placement=True)
    assert fn.calls == 1


async def test_clock_skew_resyncs_then_retries_even_a_placement():
    clock, events = Clock(), []
    res = make(clock, events)
    resyncs = []

    async def resync():
        resyncs.append(1)

    fn = Script(ccxt_exc("InvalidNonce", 'binanceusdm {"code":-1021}'), result="placed")
    assert await res.call("order", fn, validate=lambda r: r, placement=True, resync=resync) == "placed"
    assert resyncs == [1] and clock.slept == []
    assert any(e.kind == "time_resync" for e in events)
    # placement policy gives up after one re-sync
    fn = Script(*[ccxt_exc("InvalidNonce", 'binanceusdm {"code":-1021}') for _ in range(3)])
    with pytest.raises(E.ClockSkew):
        await res.call("order", fn, validate=lambda r: r, placement=True, resync=resync)
    assert fn.calls == PLACEMENT_POLICY.max_attempts


async def test_clock_skew_is_journaled_even_when_the_resync_fails():
    clock, events = Clock(), []
    res = make(clock, events)

    async def resync():
        raise ccxt_exc("DDoSProtection", 'binanceusdm 429 Too Many Requests {"code":-1003}')

    fn = Script(ccxt_exc("InvalidNonce", 'binanceusdm {"code":-1021}'), result="ok")
    with pytest.raises(E.ExchangeError):
        await res.call("fetch_order", fn, validate=lambda r: r, resync=resync)
    assert [e.kind for e in events if e.kind == "time_resync"] == ["time_resync"]


async def test_429_honours_retry_after_and_alerts():
    clock, events = Clock(), []
    res = make(clock, events)
    hdrs = {"Retry-After": "3", "X-MBX-USED-WEIGHT-1M": "1000"}
    fn = Script(ccxt_exc("DDoSProtection", 'binanceusdm 429 Too Many Requests {"code":-1003}'), result="ok")
    assert await res.call("klines", fn, validate=lambda r: r, headers=lambda: hdrs) == "ok"
    assert clock.slept and clock.slept[0] >= 3
    ev = [e for e in events if e.kind == "rate_limited"]
    assert ev and ev[0].alert


async def test_418_ban_blocks_every_later_call_without_sending():
    clock, events = Clock(), []
    res = make(clock, events)
    fn = Script(ccxt_exc("DDoSProtection", 'binanceusdm 418 I\'m a teapot {"code":-1003}'), result="ok")
    with pytest.raises(E.IpBanned) as ei:
        await res.call("klines", fn, validate=lambda r: r, headers=lambda: {"Retry-After": "600"})
    assert ei.value.retry_after_s == 600
    assert any(e.kind == "ip_banned" and e.alert for e in events)
    later = Script(result="ok")
    res.breaker.record_success()
    with pytest.raises(E.IpBanned, match="not sent"):
        await res.call("time", later, validate=lambda r: r)
    assert later.calls == 0


def test_weight_limiter_slows_down_proportionally_above_threshold():
    clock = Clock(wall_ms=1_704_067_200_000)  # exactly on a minute boundary
    lim = WeightLimiter(limit=2400, threshold=0.7, wall_ms=clock.wall_ms)
    lim.observe({"X-MBX-USED-WEIGHT-1M": "1000"})
    assert lim.delay_s() == 0
    lim.observe({"x-mbx-used-weight-1m": "1680"})  # exactly 70 %
    assert lim.delay_s() == 0
    lim.observe({"X-MBX-USED-WEIGHT-1M": "2040"})  # 85 %: half way to the limit
    assert lim.delay_s() == pytest.approx(30.0)
    lim.observe({"X-MBX-USED-WEIGHT-1M": "2400"})
    assert lim.delay_s() == pytest.approx(60.0)
    clock.t = 45
    assert lim.delay_s() == pytest.approx(15.0)
    clock.t = 60  # new minute: Binance has reset the count
    assert lim.delay_s() == 0 and lim.used == 0
    lim.observe({"X-MBX-USED-WEIGHT-1M": "garbage"})
    assert lim.delay_s() == 0


def test_weight_limiter_shares_weight_and_bans_across_processes(tmp_path):
    clock = Clock(wall_ms=1_704_067_200_000)
    path = tmp_path / "state" / "weight.json"
    a = WeightLimiter(shared_path=path, wall_ms=clock.wall_ms)
    b = WeightLimiter(shared_path=path, wall_ms=clock.wall_ms)
    a.observe({"X-MBX-USED-WEIGHT-1M": "2400"})
    assert json.loads(path.read_text())["used"] == 2400
    assert b.delay_s() == pytest.approx(60.0)
    clock.t = 61
    b.block_for(120, banned=True)
    assert a.banned and a.delay_s() == pytest.approx(120.0)
    path.write_text("{half")  # a torn/foreign file does not break anyone
    assert a.delay_s() == pytest.approx(120.0)


def test_bad_limiter_and_breaker_settings_are_named():
    with pytest.raises(ValueError, match="threshold"):
        WeightLimiter(threshold=1.5)
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    assert MINUTE_MS == 60_000
