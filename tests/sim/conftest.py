"""Fixtures for the simulated exchange tests: an in-process server and a real ccxt client on it."""

from __future__ import annotations

import pytest

from albra.sim.testing import ccxt_client, run_sim_server

SYM = "BTC/USDT:USDT"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim():
    async with run_sim_server(start="2024-01-02", speed=0) as handle:
        yield handle


@pytest.fixture
async def ex(sim):
    client = ccxt_client(sim.url, *sim.accounts["main"])
    await client.load_markets()
    try:
        yield client
    finally:
        await client.close()
        assert await sim.admin.requests(unknown=True) == [], "a request hit an unknown route"
