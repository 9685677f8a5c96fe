"""Helpers for tests and drills anywhere in the repo: run the local Binance server in-process or as
a real ``albra sim serve`` process, talk to its admin API, and point a real ccxt client at it.

Typical use::

    async with run_sim_server(speed=0) as sim:
        ex = ccxt_client(sim.url, *sim.accounts["main"])
        ...
        orders = await sim.admin.orders()
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, AsyncIterator, Iterator

from albra.timefmt import parse_time

DEFAULT_ACCOUNTS = {"main": ("main-key", "main-secret"), "sub1": ("sub1-key", "sub1-secret")}


class SimAdmin:
    """Async client of the ``/_sim/`` admin API (one aiohttp session; close() it or use run_sim_server)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session = None

    async def _req(self, method: str, path: str, body: dict | None = None, **query: str) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, f"{self.url}/_sim/{path}", json=body, params=query or None) as r:
            data = await r.json()
            if r.status != 200:
                raise RuntimeError(f"admin {method} {path}: HTTP {r.status} {data}")
            return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def orders(self, account: str | None = None, client_id: str | None = None) -> dict:
        q = {k: v for k, v in (("account", account), ("client_id", client_id)) if v}
        return await self._req("GET", "orders", **q)

    async def accounts(self) -> dict:
        return await self._req("GET", "accounts")

    async def clock(self) -> int:
        return (await self._req("GET", "clock"))["now_ms"]

    async def advance(self, ms: int) -> int:
        return (await self._req("POST", "clock", {"advance_ms": ms}))["now_ms"]

    async def set_clock(self, to_ms: int) -> int:
        return (await self._req("POST", "clock", {"to_ms": to_ms}))["now_ms"]

    async def forget_time_sync(self) -> None:
        await self._req("POST", "clock", {"forget_time_sync": True})

    async def transfer(self, account: str, amount: Decimal | str | float) -> str:
        return (await self._req("POST", "transfer", {"account": account, "amount": str(amount)}))["wallet"]

    async def asset_price(self, asset: str, price: Decimal | str | float, *, account: str | None = None,
                          deposit: Decimal | str | float | None = None) -> dict:
        """Set a fee asset's price (served as flat ``<ASSET>USDT`` klines) and optionally deposit BNB for fees."""
        body: dict = {"asset": asset, "price": str(price)}
        if account is not None and deposit is not None:
            body.update(account=account, deposit=str(deposit))
        return await self._req("POST", "asset_price", body)

    async def expire_listen_key(self, account: str) -> bool:
        """End the account's listenKey now (its 60 minutes run on the wall clock)."""
        return (await self._req("POST", "stream/expire", {"account": account}))["expired"]

    async def reject_trigger(self, account: str, symbol: str, reason: str = "") -> None:
        """The next algo order of (account, symbol) that fires ends REJECTED with no child order."""
        await self._req("POST", "reject_trigger", {"account": account, "symbol": symbol,
                                                   **({"reason": reason} if reason else {})})

    async def position_mode(self, account: str, hedge: bool) -> str:
        return (await self._req("POST", "position_mode", {"account": account, "hedge": hedge}))["mode"]

    async def realism(self, **fields: Any) -> dict:
        """Set realism windows (``ideal=True`` for instant consistency); no arguments: read them."""
        if not fields:
            return await self._req("GET", "realism")
        return await self._req("POST", "realism", fields)

    async def settle(self) -> float:
        """Wait until everything the exchange did so far is visible: every realism window (trigger, finish,
        lookup, trade, stream) has elapsed. Returns the seconds waited. For tests that check what a call
        returns, not how an engine copes with the wait."""
        r = await self.realism()
        wait = (r["trigger_ms"] + r["finish_ms"] + max(r["lookup_ms"], r["trade_ms"]) + r["stream_ms"] + 20) / 1000
        await asyncio.sleep(wait)
        return wait

    async def stream_events(self, account: str | None = None) -> list[dict]:
        q = {"account": account} if account else {}
        return (await self._req("GET", "stream", **q))["events"]

    async def mark(self, symbol: str, price: Decimal | str | float | None) -> str:
        return (await self._req("POST", "mark", {"symbol": symbol, "price": None if price is None else str(price)}))["mark"]

    async def fault(self, method: str, path: str, action: str, **kw: Any) -> int:
        return (await self._req("POST", "faults", {"method": method, "path": path, "action": action, **kw}))["id"]

    async def clear_faults(self) -> None:
        await self._req("DELETE", "faults")

    async def requests(self, unknown: bool = False) -> list[dict]:
        return (await self._req("GET", "requests", unknown="1" if unknown else "0"))["requests"]

    async def weights(self, **settings: Any) -> dict:
        return await self._req("POST", "weights", settings)

    async def history(self, account: str) -> dict:
        return await self._req("GET", "history", account=account)


@dataclass
class SimHandle:
    """A running server: its URL, admin client, accounts (name → (key, secret)) and, in-process,
    the :class:`~albra.sim.server.SimServer` itself (None for a subprocess)."""

    url: str
    admin: SimAdmin
    accounts: dict[str, tuple[str, str]]
    server: Any = None


@asynccontextmanager
async def run_sim_server(start: str | int = "2024-01-01", speed: float = 0.0,
                         accounts: dict[str, tuple[str, str]] | None = None, balance: str = "10000",
                         hedge: set[str] | None = None, data: dict[str, str] | None = None,
                         weight_limit: int = 2400, realism: Any = None,
                         funding: dict[str, str] | None = None) -> AsyncIterator[SimHandle]:
    """Start the server in this event loop on 127.0.0.1:0, yield a :class:`SimHandle`, stop it. ``realism``:
    a :class:`~albra.sim.realism.Realism` (default: realistic, as ``albra sim serve``)."""
    from aiohttp import web

    from albra.sim.build import SimConfig, build_server
    from albra.sim.server import ApiKey

    from pathlib import Path

    accts = dict(accounts or DEFAULT_ACCOUNTS)
    cfg = SimConfig([ApiKey(n, k, s) for n, (k, s) in accts.items()],
                    data={s: Path(p) for s, p in (data or {}).items()},
                    funding={s: Path(p) for s, p in (funding or {}).items()},
                    start_ms=parse_time(start) if isinstance(start, str) else int(start), speed=speed,
                    balance=Decimal(balance), hedge=set(hedge or ()), weight_limit=weight_limit)
    if realism is not None:
        cfg.realism = realism
    srv = build_server(cfg)
    runner = web.AppRunner(srv.app(), shutdown_timeout=0.1, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}"
    admin = SimAdmin(url)
    try:
        yield SimHandle(url, admin, accts, srv)
    finally:
        await admin.close()
        await runner.cleanup()


def ccxt_client(url: str, key: str, secret: str, **options: Any):
    """A real ``ccxt.async_support.binanceusdm`` pointed at ``url`` with the test settings of the
    facts file: every API URL rewritten, linear error table merged, no currencies fetch, time
    difference adjusted, no throttler, no close() sleep."""
    import ccxt.async_support as ccxt

    ex = ccxt.binanceusdm({
        "apiKey": key, "secret": secret, "enableRateLimit": False,
        "options": {"fetchCurrencies": False, "adjustForTimeDifference": True,
                    "fetchOpenOrders": {"warnWithoutSymbol": False}, **options},
    })
    ex.timeout_on_exit = 0
    for k, v in list(ex.urls["api"].items()):
        if isinstance(v, str):
            ex.urls["api"][k] = re.sub(r"^https?://[^/]+", url, v)
    ex.exceptions["exact"].update(ex.exceptions["linear"]["exact"])
    return ex


@contextmanager
def sim_process(*args: str, accounts: dict[str, tuple[str, str]] | None = None,
                timeout: float = 30.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``albra sim serve`` as a real process (``python -m albra sim serve ...``), read the URL
    from its first stdout line, yield (url, process), then SIGTERM it and wait."""
    accts = accounts or DEFAULT_ACCOUNTS
    cmd = [sys.executable, "-m", "albra", "sim", "serve", "--host", "127.0.0.1", "--port", "0"]
    for n, (k, s) in accts.items():
        cmd += ["--account", f"{n}:{k}:{s}"]
    cmd += list(args)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = _readline(proc, timeout)
        if not line.startswith("http://"):
            err = proc.stderr.read() if proc.poll() is not None else ""
            raise RuntimeError(f"albra sim serve did not print its URL first: {line!r} {err}")
        # from here on both pipes are drained into short tails (``proc.output_tail``): an undrained pipe fills up
        # (every runner killed mid-request makes the server log an error) and the server then blocks on a write —
        # a long crash soak saw the exchange go silent after ~70 kills
        proc.output_tail = _drain(proc)  # type: ignore[attr-defined]
        yield line.strip(), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _drain(proc: subprocess.Popen, keep: int = 200) -> "collections.deque[str]":
    """Read the process's stdout and stderr until they close, keeping the last ``keep`` lines."""
    import collections
    import threading

    tail: collections.deque[str] = collections.deque(maxlen=keep)

    def pump(stream) -> None:
        for ln in stream:
            tail.append(ln)

    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            threading.Thread(target=pump, args=(stream,), daemon=True).start()
    return tail


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    import threading

    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not box:
        proc.kill()
        raise RuntimeError(f"albra sim serve printed nothing within {timeout} s")
    return box[0]
