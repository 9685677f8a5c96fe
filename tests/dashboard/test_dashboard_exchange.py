"""The opt-in exchange view (``albra dashboard --exchange``, page ``?exchange=1``) against the local Binance server:
live balance and positions through the runners' own gateway, per-leg unrealised PnL from the mark, a cache so the
page cannot hammer the exchange, and a failed read reported as an error (never an empty list)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from albra.config import load_settings
from albra.dashboard.server import start
from albra.exchange.factory import gateway_for
from albra.exchange.types import OrderRequest
from albra.model import OrderType, Side
from albra.sim.testing import run_sim_server
from albra.store import Store
from albra.timefmt import FixedClock

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
DATA = {"BTCUSDT": str(ROOT / "tests" / "data" / "exchange" / "BTCUSDT-15m-2024-01-01..03.csv")}
CONFIG = """\
[paths]
state_dir = "{state}"
log_dir = "{logs}"

[telegram]
enabled = false

[accounts.live1]
mode = "demo"
base_url = "{url}"
api_key_env = "DASH_LIVE1_KEY"
api_secret_env = "DASH_LIVE1_SECRET"

[[accounts.live1.strategies]]
name = "TFPE"
symbols = ["BTCUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 24.0

[accounts.demo]
mode = "paper"

[[accounts.demo.strategies]]
name = "TFPE"
symbols = ["BTCUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 24.0
"""


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(url) as r:
        return r.status, json.loads(await r.text())


async def test_exchange_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with run_sim_server(start="2024-01-02", speed=0, data=DATA) as sim:
        key, secret = sim.accounts["main"]
        monkeypatch.setenv("DASH_LIVE1_KEY", key)
        monkeypatch.setenv("DASH_LIVE1_SECRET", secret)
        cfg = tmp_path / "albra.toml"
        cfg.write_text(CONFIG.format(state=tmp_path / "state", logs=tmp_path / "logs", url=sim.url), encoding="utf-8")
        settings = load_settings(cfg)
        # a real position on the local exchange, and the ledger's leg for it
        gw = gateway_for("live1", settings.accounts["live1"], settings.require_secrets("live1"))
        try:
            fill = await gw.place_order(OrderRequest("dash-test-entry-1", "BTCUSDT", Side.BUY, OrderType.MARKET,
                                                     Decimal("0.010")))
        finally:
            await gw.close()
        entry = fill.avg_price
        with Store.open(settings.db_path) as s:
            s.execute("INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty,"
                      " qty_initial, entry_price, stop_price, opened_ms, updated_ms) VALUES ('L-x1', 'live1',"
                      " 'BTCUSDT', 'TFPE', 'LONG', 'BOTH', 'open', '0.010', '0.010', ?, '40000', 1, 1)",
                      (format(entry, "f"),))
        clock = FixedClock(1_800_000_000_000)
        store = Store.open(settings.db_path, create=False, migrate=False)
        on = await start(settings, store, "127.0.0.1", 0, None, clock=clock, exchange=True)
        off = await start(settings, store, "127.0.0.1", 0, None, clock=clock)
        try:
            async with aiohttp.ClientSession() as http:
                base = on.url.rstrip("/")
                n0 = len(await sim.admin.requests())
                status, d = await _get(http, f"{base}/api/exchange?account=live1")
                assert status == 200 and d["cached"] is False
                [pos] = d["positions"]
                assert (pos["symbol"], pos["qty"], pos["entry"]) == ("BTCUSDT", "0.01", format(entry.normalize(), "f"))
                mark = Decimal(pos["mark"])
                expected = (mark - entry) * Decimal("0.010")
                assert d["leg_unrealized"]["L-x1"] == format(expected.quantize(Decimal("0.01")), "+,.2f")
                assert Decimal(d["balance"]["equity"].replace(",", "")) > 0
                # cached: the second read within the window makes no request to the exchange
                n_before = len(await sim.admin.requests())
                status, d2 = await _get(http, f"{base}/api/exchange?account=live1")
                assert status == 200 and d2["cached"] is True and d2["positions"] == d["positions"]
                assert len(await sim.admin.requests()) == n_before
                # the view only read: every request the dashboard made was a GET
                made = (await sim.admin.requests())[n0:]
                assert made and {r["method"] for r in made} == {"GET"}
                assert {r["path"] for r in made} >= {"/fapi/v3/account", "/fapi/v3/positionRisk"}
                status, d = await _get(http, f"{base}/api/exchange?account=demo")
                assert status == 409 and "paper account" in d["error"]
                status, d = await _get(http, f"{base}/api/exchange?account=ghost")
                assert status == 404 and "unknown account 'ghost'" in d["error"]
                status, d = await _get(http, f"{base}/api/summary")
                assert d["exchange_view"] is True
                status, d = await _get(http, f"{off.url.rstrip('/')}/api/exchange?account=live1")
                assert status == 404 and "--exchange" in d["error"]
                # the exchange stops answering: after the cache window the page gets an error, not an empty list
                await sim.admin.fault("GET", "/fapi/v3/account", "status", status=401, count=None,
                                      body='{"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}')
                clock.advance(60_000)
                status, d = await _get(http, f"{base}/api/exchange?account=live1")
                assert status == 502 and "exchange read failed (AuthFailed)" in d["error"], d
                assert "positions" not in d
        finally:
            await on.stop()
            await off.stop()
            store.close()


async def test_missing_keys_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASH_LIVE1_KEY", raising=False)
    monkeypatch.delenv("DASH_LIVE1_SECRET", raising=False)
    cfg = tmp_path / "albra.toml"
    cfg.write_text(CONFIG.format(state=tmp_path / "state", logs=tmp_path / "logs", url="http://127.0.0.1:9"),
                   encoding="utf-8")
    settings = load_settings(cfg)
    Store.open(settings.db_path).close()
    store = Store.open(settings.db_path, create=False, migrate=False)
    on = await start(settings, store, "127.0.0.1", 0, None, exchange=True)
    try:
        async with aiohttp.ClientSession() as http:
            status, d = await _get(http, f"{on.url}api/exchange?account=live1")
        assert status == 503 and "DASH_LIVE1_KEY" in d["error"]
    finally:
        await on.stop()
        store.close()
