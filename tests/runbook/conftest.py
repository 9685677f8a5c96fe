"""Fixtures of the runbook drills: the local Binance server in this event loop and a drill around it."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.runbook.drill import KEYS, SIM_START, Drill, make_drill


@pytest.fixture
async def sim() -> AsyncIterator:
    from albra.sim.testing import run_sim_server

    async with run_sim_server(start=SIM_START, speed=0, accounts=dict(KEYS), hedge={"sub1"}, weight_limit=0) as handle:
        yield handle


@pytest.fixture
async def drill(sim, tmp_path: Path) -> Drill:
    d = make_drill(tmp_path, sim.url)
    d.before_command = lambda: sim.admin.weights(reset=True)
    return d
