"""Fixtures for the gateway integration tests: the local Binance server in-process (albra.sim.testing) and a
CcxtGateway on a real ccxt client, with an injected sleep/monotonic clock so retries and cool-downs never wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from albra.exchange.ccxt_gateway import CcxtGateway
from albra.exchange.client import make_ccxt_client
from albra.exchange.resilience import CircuitBreaker, Resilience, WeightLimiter
from albra.sim.testing import run_sim_server


class FakeTime:
    """Monotonic seconds that advance only when the code under test sleeps (the sleep itself yields once)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s
        await asyncio.sleep(0)


DATA = {"BTCUSDT": str(Path(__file__).resolve().parents[1] / "data" / "exchange" / "BTCUSDT-15m-2024-01-01..03.csv")}


@pytest.fixture
async def sim():
    async with run_sim_server(start="2024-01-02", speed=0, data=DATA) as handle:
        yield handle
        assert await handle.admin.requests(unknown=True) == [], "a request hit an unknown route"


@pytest.fixture
def start_sim():
    """``start_sim()``: an extra local server (async context manager) with the same data as ``sim``."""
    return lambda: run_sim_server(start="2024-01-02", speed=0, data=DATA)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def events() -> list:
    return []


def build_gateway(url: str, key: str, secret: str, fake_time: FakeTime, events: list, *, account: str = "main",
                  timeout_ms: int = 3000, threshold: int = 3, cooldown_s: float = 30.0,
                  weight_file=None) -> CcxtGateway:
    client = make_ccxt_client("local", key, secret, base_url=url, timeout_ms=timeout_ms, test_mode=True)
    breaker = CircuitBreaker(account, failure_threshold=threshold, cooldown_s=cooldown_s,
                             monotonic=fake_time.monotonic, on_event=events.append)
    res = Resilience(account, breaker=breaker, limiter=WeightLimiter(shared_path=weight_file),
                     attempt_timeout_s=timeout_ms / 1000 + 1, sleep=fake_time.sleep, on_event=events.append)
    return CcxtGateway(account, client, resilience=res)


@pytest.fixture
async def make_gw(fake_time, events):
    """Factory: ``make_gw(url, key, secret, **kw)``; every gateway made is closed at the end."""
    made: list[CcxtGateway] = []

    def make(url: str, key: str, secret: str, **kw) -> CcxtGateway:
        g = build_gateway(url, key, secret, fake_time, events, **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        await g.close()


@pytest.fixture
async def gw(sim, make_gw):
    return make_gw(sim.url, *sim.accounts["main"])
