"""Engine test fixtures: a temporary store, a simulated exchange with one account, and small configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from albra.candles import bundled, load_candles
from albra.store import Store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "state" / "albra.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def btc15m():
    return load_candles(bundled("BTCUSDT-15m.csv.gz"))
