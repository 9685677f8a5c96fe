"""Fixtures for the dashboard tests: a seeded store with two accounts, the dashboard served from a thread on
127.0.0.1 (port 0), a raw HTTP helper, and a real headless Chromium driven by Playwright.

The server runs in its own thread and event loop because Playwright's sync API owns the test thread's loop.
Chromium is Debian's /usr/bin/chromium (``tests/install_browser.sh``); Playwright's own browser download needs
the internet, so it is never used. Where Chromium cannot be installed the browser tests SKIP with the reason
(``tests/.browser-unavailable``, written by the install script, or the missing path); ``ALBRA_REQUIRE_BROWSER=1`` makes
a missing browser a failure instead.
"""

from __future__ import annotations

import asyncio
import http.client
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from albra.config import Settings, load_settings
from albra.dashboard.server import Running, start
from albra.secrets import Secret
from albra.store import Store
from albra.timefmt import now_ms
from tests.dashboard.seed import Seeded, seed, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
INSTALL_HINT = "run tests/install_browser.sh (installs Debian's chromium at /usr/bin/chromium)"


@dataclass
class Env:
    root: Path
    settings: Settings
    db: Path
    seeded: Seeded


@pytest.fixture
def env(tmp_path: Path) -> Env:
    settings = load_settings(write_config(tmp_path))
    seeded = seed(settings.db_path, now_ms())
    return Env(tmp_path, settings, settings.db_path, seeded)


class ServerThread:
    """The dashboard on its own event loop in a daemon thread; ``start`` re-raises what the server raised."""

    def __init__(self, settings: Settings, host: str, token: Secret | None, exchange: bool = False) -> None:
        self.settings, self.host, self.token, self.exchange = settings, host, token, exchange
        self.loop = asyncio.new_event_loop()
        self.store: Store | None = None
        self.running: Running | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="dashboard", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.store = Store.open(self.settings.db_path, create=False, migrate=False)
            self.running = self.loop.run_until_complete(start(self.settings, self.store, self.host, 0, self.token,
                                                                   exchange=self.exchange))
        except BaseException as e:  # handed to the test thread
            self.error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.running.stop())

    def start(self) -> "ServerThread":
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            self.close()
            raise self.error
        assert self.running is not None, "dashboard did not start"
        return self

    @property
    def port(self) -> int:
        assert self.running is not None
        return self.running.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._thread.is_alive() and self.running is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
        if self.store is not None:
            self.store.close()
        if not self.loop.is_closed() and not self.loop.is_running():
            self.loop.close()


class LoopThread:
    """An event loop in a daemon thread, for async servers a sync (Playwright) test needs beside it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="loop", daemon=True)
        self._thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


@pytest.fixture
def server(env: Env) -> Iterator[ServerThread]:
    s = ServerThread(env.settings, "127.0.0.1", None).start()
    try:
        yield s
    finally:
        s.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None,
         host: str = "127.0.0.1") -> Reply:
    """One raw HTTP request (stdlib, so nothing is added behind the test's back)."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def _no_browser(why: str) -> None:
    """Skip (or, with ALBRA_REQUIRE_BROWSER=1, fail) the browser tests, saying why."""
    import os

    marker = Path(__file__).resolve().parents[1] / ".browser-unavailable"
    if marker.is_file():
        why = f"{why} — tests/install_browser.sh could not install it: {marker.read_text().strip()}"
    if os.environ.get("ALBRA_REQUIRE_BROWSER", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium under Playwright, with a fresh profile. Skips with the reason when either is missing
    (fails with ``ALBRA_REQUIRE_BROWSER=1``).

    Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while it
    is open, which would break every async test collected after the dashboard tests."""
    if not CHROMIUM.exists():
        _no_browser(f"{CHROMIUM} not found: {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is missing: pip install -e '.[dev]' (then " + INSTALL_HINT + ")")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield ctx
        finally:
            ctx.close()
    shutil.rmtree(profile, ignore_errors=True)
