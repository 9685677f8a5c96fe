"""Demo trading: the URL ccxt builds for every Binance call albra makes, in demo and live mode.

"Every call" is found, not listed by hand: each ccxt implicit endpoint name (``fapiPrivatePostAlgoOrder`` …) written
anywhere in the albra package is resolved through the real pinned ccxt client and signed. The table below pins the
method and URL of each, so a new call fails here until someone has checked where demo mode sends it. No network:
``sign`` builds the request without sending it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import albra
from albra.exchange.client import DEMO, LIVE, REST_ORIGIN, WS_ORIGIN, endpoint, make_ccxt_client

pytestmark = pytest.mark.anyio

IMPLICIT = re.compile(r"fapi(Public|Private|Data)(V\d)?(Get|Post|Put|Delete)\w+")

#: implicit endpoint → (HTTP method, path); the origin is the mode's
EXPECTED = {
    "fapiPrivateDeleteAlgoOpenOrders": ("DELETE", "/fapi/v1/algoOpenOrders"),
    "fapiPrivateDeleteAlgoOrder": ("DELETE", "/fapi/v1/algoOrder"),
    "fapiPrivateDeleteAllOpenOrders": ("DELETE", "/fapi/v1/allOpenOrders"),
    "fapiPrivateDeleteOrder": ("DELETE", "/fapi/v1/order"),
    "fapiPrivateGetAlgoOrder": ("GET", "/fapi/v1/algoOrder"),
    "fapiPrivateGetIncome": ("GET", "/fapi/v1/income"),
    "fapiPrivateGetOpenAlgoOrders": ("GET", "/fapi/v1/openAlgoOrders"),
    "fapiPrivateGetOpenOrders": ("GET", "/fapi/v1/openOrders"),
    "fapiPrivateGetOrder": ("GET", "/fapi/v1/order"),
    "fapiPrivateGetPositionSideDual": ("GET", "/fapi/v1/positionSide/dual"),
    "fapiPrivateGetUserTrades": ("GET", "/fapi/v1/userTrades"),
    "fapiPrivatePostAlgoOrder": ("POST", "/fapi/v1/algoOrder"),
    "fapiPrivatePostLeverage": ("POST", "/fapi/v1/leverage"),
    "fapiPrivatePostListenKey": ("POST", "/fapi/v1/listenKey"),
    "fapiPrivatePostMarginType": ("POST", "/fapi/v1/marginType"),
    "fapiPrivatePostOrder": ("POST", "/fapi/v1/order"),
    "fapiPrivatePostPositionSideDual": ("POST", "/fapi/v1/positionSide/dual"),
    "fapiPrivatePutListenKey": ("PUT", "/fapi/v1/listenKey"),
    "fapiPrivateV3GetAccount": ("GET", "/fapi/v3/account"),
    "fapiPrivateV3GetPositionRisk": ("GET", "/fapi/v3/positionRisk"),
    "fapiPublicGetExchangeInfo": ("GET", "/fapi/v1/exchangeInfo"),
    "fapiPublicGetFundingRate": ("GET", "/fapi/v1/fundingRate"),
    "fapiPublicGetKlines": ("GET", "/fapi/v1/klines"),
    "fapiPublicGetMarkPriceKlines": ("GET", "/fapi/v1/markPriceKlines"),
    "fapiPublicGetPremiumIndex": ("GET", "/fapi/v1/premiumIndex"),
    "fapiPublicGetTime": ("GET", "/fapi/v1/time"),
}


def calls_albra_makes() -> set[str]:
    """Every implicit ccxt endpoint named in a string literal of the albra package."""
    out: set[str] = set()
    for path in Path(albra.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and IMPLICIT.fullmatch(node.value):
                out.add(node.value)
    return out


def _entry(client, name):
    for klass in type(client).__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    raise AssertionError(f"ccxt has no implicit endpoint {name}")


def test_the_table_covers_every_call_albra_makes():
    found = calls_albra_makes()
    assert "fapiPrivatePostAlgoOrder" in found and "fapiPrivatePostOrder" in found  # the scan works
    assert found - set(EXPECTED) == set(), "a new Binance call: check its demo URL and add it to EXPECTED"
    # and the table pins nothing albra no longer calls (time sync may reach fapiPublicGetTime through fetch_time)
    assert set(EXPECTED) - found <= {"fapiPublicGetTime"}


@pytest.mark.parametrize("mode", [DEMO, LIVE])
async def test_every_call_goes_to_the_modes_origin(mode):
    client = make_ccxt_client(mode, "key", "secret")
    try:
        if mode == DEMO:
            assert client.options["enableDemoTrading"] is True and not client.isSandboxModeEnabled
        for name, (method, path) in sorted(EXPECTED.items()):
            e = _entry(client, name)
            req = client.sign(e.path, e.api, e.method, {})
            assert (req["method"], req["url"].split("?")[0]) == (method, REST_ORIGIN[mode] + path), name
            if "Private" in name:
                assert req["headers"]["X-MBX-APIKEY"] == "key", name
    finally:
        await client.close()


async def test_user_stream_and_config_check_endpoint():
    from albra.exchange.ccxt_gateway import CcxtGateway

    for mode in (DEMO, LIVE):
        client = make_ccxt_client(mode, "key", "secret")
        gw = CcxtGateway("a", client)
        try:
            url = gw.user_stream_url("LK")
            assert url.startswith(WS_ORIGIN[mode] + "/") and url.endswith("/LK")
        finally:
            await gw.close()
    assert endpoint(DEMO) == "https://demo-fapi.binance.com"
    assert endpoint(LIVE, "http://127.0.0.1:8999/x") == "http://127.0.0.1:8999"
