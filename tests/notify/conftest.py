"""Fixtures for the notify tests: a fresh store, a running local Bot API server, a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from albra.notify.testing import FakeBotApi, FakeTime
from albra.store import Store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "albra.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
