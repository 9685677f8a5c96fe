"""gateway_for: settings decide ccxt (live/testnet/base_url) or paper; the client factory's settings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import SecretStr

from albra.config.schema import AccountSettings
from albra.exchange.ccxt_gateway import CcxtGateway
from albra.exchange.client import make_ccxt_client
from albra.exchange.factory import gateway_for
from albra.exchange.paper import PaperGateway
from albra.model import PositionMode
from albra.secrets import AccountSecrets, Secret

pytestmark = pytest.mark.anyio


def secrets(key: str, secret: str) -> AccountSecrets:
    return AccountSecrets(Secret("K", "test", SecretStr(key)), Secret("S", "test", SecretStr(secret)))


async def test_client_settings_and_url_rewrite():
    ex = make_ccxt_client("local", "k", "s", base_url="http://127.0.0.1:1234/ignored", timeout_ms=1500,
                          test_mode=True)
    try:
        apis = {k: v for k, v in ex.urls["api"].items() if isinstance(v, str)}
        assert apis and all(v.startswith("http://127.0.0.1:1234/") for v in apis.values())
        assert ex.urls["api"]["fapiPrivateV3"] == "http://127.0.0.1:1234/fapi/v3"
        assert ex.options["fetchCurrencies"] is False and ex.options["adjustForTimeDifference"] is True
        assert ex.options["recvWindow"] == 5000 and ex.options["fetchOpenOrders"]["warnWithoutSymbol"] is False
        assert ex.timeout == 1500 and ex.enableRateLimit is False and ex.timeout_on_exit == 0
        assert ex.exceptions["exact"]["-2019"].__name__ == "InsufficientFunds"  # linear table merged
    finally:
        await ex.close()
    live = make_ccxt_client("live", "k", "s")
    testnet = make_ccxt_client("testnet", "k", "s")
    try:
        assert live.enableRateLimit is True and live.urls["api"]["fapiPrivate"].startswith("https://fapi.binance.com")
        assert "testnet" in testnet.urls["api"]["fapiPrivate"]
    finally:
        await live.close()
        await testnet.close()
    for bad, word in ((("nope", "k", "s"), "mode"), (("local", "k", "s"), "base_url"),
                      (("live", "k", None), "together")):
        with pytest.raises(ValueError, match=word):
            make_ccxt_client(*bad)


async def test_gateway_for_live_with_base_url_reaches_the_local_server(sim, tmp_path):
    acc = AccountSettings(mode="live", base_url=sim.url)
    gw = gateway_for("main", acc, secrets(*sim.accounts["main"]), state_dir=tmp_path, test_mode=True)
    try:
        assert isinstance(gw, CcxtGateway)
        assert (await gw.fetch_balance()).wallet == Decimal("10000")
        assert (tmp_path / "weight.json").is_file()  # the shared weight view
    finally:
        await gw.close()
    with pytest.raises(ValueError, match="key"):
        gateway_for("main", acc, None)


async def test_gateway_for_paper_uses_replay_and_settings():
    acc = AccountSettings(mode="paper", paper_balance=Decimal("2500"), position_mode=PositionMode.HEDGE,
                          replay_start="2024-02-01")
    gw = gateway_for("demo", acc)
    assert isinstance(gw, PaperGateway)
    assert (await gw.fetch_balance()).wallet == Decimal("2500")
    assert await gw.fetch_position_mode() is PositionMode.HEDGE
    candles = await gw.fetch_candles("ETHUSDT", "1h", limit=2)
    assert candles[-1].ts == 1_706_745_600_000 and not candles[-1].closed
