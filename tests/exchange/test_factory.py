"""gateway_for: settings decide ccxt (live/demo/base_url) or paper; the client factory's settings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import SecretStr

from albra.config.schema import AccountSettings
from albra.exchange.ccxt_gateway import CcxtGateway
from albra.exchange.client import is_loopback, make_ccxt_client
from albra.exchange.factory import EMERGENCY_BREAKER_COOLDOWN_S, TEST_MODE_ENV, gateway_for
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
    demo = make_ccxt_client("demo", "k", "s")
    try:
        assert live.enableRateLimit is True and live.urls["api"]["fapiPrivate"].startswith("https://fapi.binance.com")
        assert demo.urls["api"]["fapiPrivate"].startswith("https://demo-fapi.binance.com/")
    finally:
        await live.close()
        await demo.close()
    for bad, word in ((("nope", "k", "s"), "mode"), (("testnet", "k", "s"), "mode"), (("local", "k", "s"), "base_url"),
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


@pytest.mark.parametrize("url, loopback", [
    ("http://127.0.0.1:8080", True), ("http://127.5.6.7/x", True), ("https://[::1]:9000/", True),
    ("http://localhost:1234", True), (None, False), ("", False), ("https://fapi.binance.com", False),
    ("http://localhost.example.com", False), ("http://127.0.0.1.nip.io", False), ("http://10.0.0.1", False),
    ("ftp://127.0.0.1", False), ("127.0.0.1:8080", False),
])
def test_is_loopback(url, loopback):
    assert is_loopback(url) is loopback


async def test_env_test_mode_never_turns_the_throttler_off_against_binance(monkeypatch, tmp_path):
    monkeypatch.setenv(TEST_MODE_ENV, "1")
    keys = secrets("k", "s")
    made = []
    try:
        for url, throttled in ((None, True), ("https://fapi.binance.com", True), ("http://127.0.0.1:9", False)):
            for mode in ("live", "demo"):
                gw = gateway_for("main", AccountSettings(mode=mode, base_url=url), keys, state_dir=tmp_path)
                made.append(gw)
                assert gw.client.enableRateLimit is throttled, (url, mode)
        monkeypatch.delenv(TEST_MODE_ENV)
        gw = gateway_for("main", AccountSettings(mode="live", base_url="http://127.0.0.1:9"), keys)
        made.append(gw)
        assert gw.client.enableRateLimit is True  # loopback alone does not switch it off either
    finally:
        for gw in made:
            await gw.close()
    with pytest.raises(ValueError, match="loopback"):
        make_ccxt_client("live", "k", "s", test_mode=True)
    with pytest.raises(ValueError, match="loopback"):
        gateway_for("main", AccountSettings(mode="live"), keys, test_mode=True)


async def test_emergency_profile_short_breaker_and_shared_weight_limiter(tmp_path):
    gw = gateway_for("main", AccountSettings(mode="live"), secrets("k", "s"), state_dir=tmp_path, emergency=True)
    normal = gateway_for("main", AccountSettings(mode="live"), secrets("k", "s"), state_dir=tmp_path)
    try:
        assert gw.client.enableRateLimit is False and normal.client.enableRateLimit is True
        assert gw.resilience.breaker.cooldown_s == EMERGENCY_BREAKER_COOLDOWN_S < normal.resilience.breaker.cooldown_s
        fast, slow = gw.resilience.read_policy, normal.resilience.read_policy
        assert fast.max_attempts == slow.max_attempts and fast.retry_on == slow.retry_on  # as many tries, sooner
        assert [fast.backoff(i) for i in (1, 2, 3)] == [0.1, 0.2, 0.4] < [slow.backoff(i) for i in (1, 2, 3)]
        assert gw.resilience.placement_policy == normal.resilience.placement_policy  # never re-sends a placement
        assert gw.resilience.limiter.shared_path == tmp_path / "weight.json"
        assert normal.resilience.limiter.shared_path == tmp_path / "weight.json"
    finally:
        await gw.close()
        await normal.close()
