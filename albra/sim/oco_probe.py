"""Measure the order lifecycle's windows on a real runner against the local server (benchmarks and a test).

A runner for one live account (real ccxt, the realistic local server in this process, optional latency on every
request) opens a leg with a stop and a take-profit through its executor, then the probe moves the mark through
the take-profit (or the stop) and times, on the exchange and in the store:

* **naked window** — the entry's request reaching the exchange → its stop's request reaching it (the sim's log);
* **fill → ledger** — the protective order firing → the leg closed in the store;
* **sibling cancel** — the take-profit firing → its stop cancelled on the exchange.

Why here and not in ``bench/``: the test suite runs a short version of the same probe (so the event-driven path
is pinned), and the bench prints the long one with percentiles.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import textwrap
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

KEY, SECRET = "probe-key", "probe-secret"


@dataclass
class Probe:
    naked_ms: list[float] = field(default_factory=list)
    fill_to_ledger_ms: list[float] = field(default_factory=list)
    sibling_cancel_ms: list[float] = field(default_factory=list)


def _config(tmp: Path, url: str) -> Path:
    cfg = tmp / "albra.toml"
    cfg.write_text(textwrap.dedent(f"""
        [paths]
        state_dir = "{tmp / 'state'}"
        log_dir = "{tmp / 'logs'}"

        [telegram]
        enabled = false

        [risk]  # the probe stops out dozens of legs in a row: the loss limits must not end it
        daily_loss_pct = 100

        [accounts.probe]
        mode = "live"
        base_url = "{url}"
        api_key_env = "PROBE_KEY"
        api_secret_env = "PROBE_SECRET"
        position_mode = "hedge"

        [[accounts.probe.strategies]]
        name = "TEMPLATE"
        symbols = ["BTCUSDT"]
        timeframe = "1h"
        leverage = 5
        size_pct = 5.0
        params = {{ cooldown_hours = 0.0 }}
        """))
    return cfg


async def _wait(pred: Any, timeout: float) -> float:
    """Seconds until ``pred()`` (async or not) is true; raises TimeoutError."""
    t0 = time.perf_counter()
    while True:
        r = pred()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("probe condition not reached")
        await asyncio.sleep(0.002)


@dataclass
class LiveRig:
    """A started runner for the ``probe`` account against the local server, with the pieces a probe drives."""

    sim: Any
    core: Any
    runner: Any
    store: Any


@asynccontextmanager
async def live_rig(*, stream: bool = True, latency_ms: int = 0) -> AsyncIterator[LiveRig]:
    """The local server (realistic, in this process, clock stopped at 2024-01-02) and a started live runner for one
    hedge-mode account; ``stream=False`` takes its user data stream down for the whole run (REST polling only)."""
    from albra.config import load_settings
    from albra.engine.runner import Runner
    from albra.sim.testing import run_sim_server
    from albra.store import Store
    from albra.systemd import Notifier

    os.environ["PROBE_KEY"], os.environ["PROBE_SECRET"] = KEY, SECRET
    os.environ.setdefault("ALBRA_EXCHANGE_TEST_MODE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="albra-probe-"))
    async with run_sim_server(start="2024-01-02", speed=0, accounts={"probe": (KEY, SECRET)}, hedge={"probe"},
                              weight_limit=0) as sim:
        settings = load_settings(str(_config(tmp, sim.url)))
        store = Store.open(settings.db_path)

        # a notifier without a socket sends nothing (a probe run under systemd must not notify the unit)
        runner = Runner(settings, "probe", store=store, notifier=Notifier(env={}))
        await runner.start()
        try:
            if not stream:  # the stream goes down for the whole run: REST polling is all the runner has
                await runner._stop_stream()
                assert runner.stream is not None and runner.stream.state == "down"
            if latency_ms:
                await sim.admin.fault("*", "*", "latency", delay_ms=latency_ms, count=None)
            yield LiveRig(sim, sim.server.ex, runner, store)
        finally:
            runner.stop.set()
            await runner.shutdown()
            store.close()


async def run_probe(rounds: int, *, latency_ms: int = 0, stream: bool = True, fire: str = "take_profit",
                    timeout_s: float = 90.0) -> Probe:
    """``rounds`` legs, each opened, then fired through its ``fire`` order ("take_profit" or "stop_loss")."""
    from albra.ledger import legs as L
    from albra.model import Direction
    from albra.strategies.base import Enter

    out = Probe()
    async with live_rig(stream=stream, latency_ms=latency_ms) as rig:
        sim, core, runner, store = rig.sim, rig.core, rig.runner, rig.store
        loop_task: asyncio.Task | None = None
        try:
            for i in range(rounds):
                if loop_task is not None:  # one writer of the executor at a time: the loop pauses for the entry
                    runner.stop.set()
                    await loop_task
                    runner.stop.clear()
                core.set_mark("BTCUSDT", None)
                price = float(core.last_price("BTCUSDT"))
                n_req = len(sim.server.requests)
                ts = 1_704_153_600_000 + i * 3_600_000
                [leg_id] = await runner.executor.handle(
                    "TEMPLATE", "BTCUSDT", ts, [Enter(Direction.LONG, price * 0.97, price * 1.03, f"probe {i}")],
                    price)
                leg = L.require_leg(store, leg_id)
                reqs = list(sim.server.requests)[n_req:]
                entry = next(r for r in reqs if r["path"] == "/fapi/v1/order" and r["method"] == "POST")
                stop = next(r for r in reqs if r["path"] == "/fapi/v1/algoOrder" and r["method"] == "POST")
                out.naked_ms.append((stop["wall"] - entry["wall"]) * 1000)
                loop_task = asyncio.create_task(runner.loop())
                # a leg lives longer than the exchange's lookup delay before its protection fires (a stop found by
                # its client id at once would measure the sim's -2013 window, not the runner)
                await asyncio.sleep(core.realism.lookup_ms / 1000 + 0.1 + random.random())  # any phase of the loop
                trigger = leg.take_profit if fire == "take_profit" else leg.stop_price
                bump = 1.001 if fire == "take_profit" else 0.999
                acct = core.account("probe")
                stop_rec = next(a for a in acct.algos.values() if a.client_algo_id == leg.sl_client_id)
                core.set_mark("BTCUSDT", None)
                core.move("BTCUSDT", float(trigger) * bump)
                closed = asyncio.ensure_future(
                    _wait(lambda: L.require_leg(store, leg_id).state is L.LegState.CLOSED, timeout_s))
                if fire == "take_profit":  # both watched at once: each figure is its own
                    out.sibling_cancel_ms.append(await _wait(lambda: stop_rec.status == "CANCELED", timeout_s) * 1000)
                out.fill_to_ledger_ms.append(await closed * 1000)
                core.move("BTCUSDT", price)
        finally:
            runner.stop.set()
            if loop_task is not None:
                await loop_task
    return out


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]
