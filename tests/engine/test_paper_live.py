"""A paper account on the live market (`paper_feed = "live"`): candles and time from the local Binance server's public
API, prices streamed from its kline WebSocket into the in-process exchange, orders filled there at the live price.
The exchange clock is stepped by the test through a busy window; the account trades, every open leg has its stop on
the paper exchange, stops fire on the streamed path, and the ledger sums to the paper exchange's positions."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest

from albra.config import load_settings
from albra.engine.runner import Runner
from albra.ledger import legs as L
from albra.ledger.positions import compare_positions
from albra.sim.testing import run_sim_server
from albra.store import Store
from albra.timefmt import parse_time
from tests.engine.test_e2e_sim_serve import MOMENTUM, START  # the e2e's busy window and loose MOMENTUM params

pytestmark = pytest.mark.anyio

STEP_MS = 15 * 60_000
STEPS = 28


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _settings(tmp_path: Path, url: str):
    cfg = tmp_path / "albra.toml"
    cfg.write_text(textwrap.dedent(f"""
        [paths]
        state_dir = "{tmp_path / 'state'}"
        log_dir = "{tmp_path / 'logs'}"

        [telegram]
        enabled = false

        [accounts.pl]
        mode = "paper"
        paper_feed = "live"
        base_url = "{url}"
        paper_balance = 10000
        position_mode = "hedge"

        [[accounts.pl.strategies]]
        name = "MOMENTUM"
        symbols = ["BTCUSDT"]
        timeframe = "15m"
        leverage = 5
        size_pct = 10.0
        params = {MOMENTUM}

        [[accounts.pl.strategies]]
        name = "TEMPLATE"
        symbols = ["BTCUSDT"]
        timeframe = "1h"
        leverage = 5
        size_pct = 10.0
        params = {{ cooldown_hours = 0.0 }}
        """))
    return load_settings(cfg)


async def _until(cond, what: str, timeout: float = 15.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_paper_account_on_streamed_live_candles_trades_and_protects(tmp_path):
    async with run_sim_server(start=START, speed=0) as sim:
        settings = _settings(tmp_path, sim.url)
        store = Store.open(settings.db_path)
        runner = Runner(settings, "pl", store=store)
        task = asyncio.get_running_loop().create_task(runner.run())
        try:
            await _until(lambda: runner.executor is not None and runner.gw.feed.updates > 0, "the runner to start")
            gw = runner.gw
            assert gw.feed.state["BTCUSDT"] == "up"  # prices arrive on the stream, not by polling
            ex = gw.ex
            protected_seen = fired = False
            for _ in range(STEPS):
                now = await sim.admin.advance(STEP_MS)
                runner._wake.set()  # the loop would notice within a second; the test does not wait for it
                want = {"MOMENTUM": (now // 900_000) * 900_000 - 900_000,
                        "TEMPLATE": (now // 3_600_000) * 3_600_000 - 3_600_000}

                def marked() -> bool:
                    got = {r["strategy"]: r["last_ts"] for r in
                           store.query("SELECT strategy, last_ts FROM candle_marks WHERE account='pl'")}
                    return all(got.get(k, -1) >= v for k, v in want.items()) and ex.now >= now

                await _until(marked, f"candles up to {want}")
                await asyncio.sleep(0.05)
                live = L.live_legs(store, "pl")
                algos = {a.client_algo_id for a in ex.open_algos("pl")}
                for g in live:  # every open leg has its stop on the (paper) exchange
                    if g.state is L.LegState.OPEN:
                        assert g.sl_client_id in algos, (g.leg_id, g.sl_client_id, algos)
                        protected_seen = True
                fired |= any(a.status != "NEW" and a.status != "CANCELED" for a in ex.all_algos)
            runner.stop.set()
            summary = await asyncio.wait_for(task, 30)
        finally:
            if not task.done():
                runner.stop.set()
                await asyncio.wait_for(task, 30)
        legs = L.legs_of(store, "pl")
        closed = [g for g in legs if g.state is L.LegState.CLOSED]
        assert protected_seen and closed, [(g.strategy, g.state, g.close_reason) for g in legs]
        reasons = {g.close_reason for g in closed}
        assert fired and "stop_loss" in reasons, reasons  # a stop on the paper exchange fired on the streamed path
        assert reasons - {"stop_loss", "take_profit"}, reasons  # and a strategy exit (its tag) closed a leg too
        # the 00:00 UTC funding time passed with the rate the exchange announced before it (never a default)
        assert ex.now > parse_time("2024-01-14") and not ex.funding_missing
        assert parse_time("2024-01-14") // (8 * 3_600_000) in ex._sym("BTCUSDT").funding
        positions = await gw.fetch_positions()
        assert compare_positions(L.live_legs(store, "pl"), positions) == []  # ledger = paper exchange
        assert summary.funding == {"BTCUSDT": "live: rate announced by the exchange (premiumIndex) before each "
                                              "funding time"}
        store.close()
