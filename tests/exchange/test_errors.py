"""Classification table (facts §3.1): the real ccxt client's own error handling produces the exception for a
given Binance reply, and ``classify`` must map it onto albra's retryable / outcome-unknown / fatal classes."""

from __future__ import annotations

import asyncio
import json

import pytest

from albra.exchange import errors as E
from albra.exchange.client import make_ccxt_client

URL = "http://127.0.0.1:9/fapi/v1/order"


@pytest.fixture(scope="module")
def ex():
    client = make_ccxt_client("local", "k", "s", base_url="http://127.0.0.1:9", test_mode=True)
    yield client
    asyncio.run(client.close())


def ccxt_exception(ex, status: int, body: str, headers: dict | None = None) -> Exception:
    """What ccxt raises for this HTTP reply (its real handle_errors / handle_http_status_code)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    try:
        ex.handle_errors(status, "", URL, "POST", headers or {}, body, parsed, {}, "")
        ex.handle_http_status_code(status, "", URL, "POST", body)
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError(f"ccxt raised nothing for {status} {body}")


def err(code: int, msg: str = "x") -> str:
    return json.dumps({"code": code, "msg": msg})


TABLE = [
    # status, body, class on a read, class on a placement
    (429, err(-1003), E.RateLimited, E.RateLimited),
    (418, err(-1003), E.IpBanned, E.IpBanned),
    (400, err(-1003), E.RateLimited, E.RateLimited),
    (400, err(-1021, "Timestamp outside recvWindow"), E.ClockSkew, E.ClockSkew),
    (400, err(-2019, "Margin is insufficient."), E.InsufficientMargin, E.InsufficientMargin),
    (400, err(-2022, "ReduceOnly Order is rejected."), E.InvalidOrder, E.InvalidOrder),
    (400, err(-4164, "min notional"), E.InvalidOrder, E.InvalidOrder),
    (400, err(-2021, "Order would immediately trigger."), E.InvalidOrder, E.InvalidOrder),
    (400, err(-4120, "use algo"), E.InvalidOrder, E.InvalidOrder),
    (400, err(-1121, "Invalid symbol."), E.BadSymbol, E.BadSymbol),
    (400, err(-1106, "Parameter 'reduceOnly' sent when not required."), E.Rejected, E.InvalidOrder),
    (400, err(-2013, "Order does not exist."), E.UnknownOrder, E.UnknownOrder),
    (400, err(-2011, "Unknown order sent."), E.UnknownOrder, E.UnknownOrder),
    (401, err(-2015, "Invalid API-key"), E.AuthFailed, E.AuthFailed),
    (400, err(-1022, "Signature invalid"), E.AuthFailed, E.AuthFailed),
    (503, err(-1001, "Internal error"), E.NetworkFailure, E.OutcomeUnknown),
    (503, err(-1000, "Unknown error"), E.NetworkFailure, E.OutcomeUnknown),
    (503, err(-1008, "Server is currently overloaded"), E.NetworkFailure, E.OutcomeUnknown),
    (500, "", E.NetworkFailure, E.OutcomeUnknown),
    (502, "<html>bad gateway</html>", E.NetworkFailure, E.OutcomeUnknown),
    (504, "<html>gateway timeout</html>", E.NetworkFailure, E.OutcomeUnknown),
]


@pytest.mark.parametrize("status, body, on_read, on_place", TABLE, ids=[f"{t[0]}:{t[1][:30]}" for t in TABLE])
def test_classification_table(ex, status, body, on_read, on_place):
    exc = ccxt_exception(ex, status, body, headers={"Retry-After": "7"})
    read = E.classify(exc, during_placement=False, headers={"Retry-After": "7"})
    place = E.classify(exc, during_placement=True, headers={"Retry-After": "7"}, client_id="al-en-1-0-abcdefghij")
    assert type(read) is on_read, (exc, read)
    assert type(place) is on_place, (exc, place)
    if isinstance(read, E.RateLimited):
        assert read.retry_after_s == 7.0
    if isinstance(place, E.OutcomeUnknown):
        assert place.client_id == "al-en-1-0-abcdefghij"


def test_kinds_partition_the_classes():
    assert issubclass(E.MalformedResponse, E.Retryable) and issubclass(E.IpBanned, E.RateLimited)
    for fatal in (E.InsufficientMargin, E.InvalidOrder, E.UnknownOrder, E.AuthFailed, E.BadSymbol, E.Rejected):
        assert issubclass(fatal, E.Fatal) and not issubclass(fatal, E.Retryable)
    assert not issubclass(E.OutcomeUnknown, (E.Retryable, E.Fatal))
    assert not issubclass(E.CircuitOpen, (E.Retryable, E.Fatal, E.OutcomeUnknown))


def test_ccxt_network_and_parse_failures():
    import ccxt

    timeout = ccxt.RequestTimeout("binanceusdm POST http://127.0.0.1:9/fapi/v1/order")
    refused = ccxt.ExchangeNotAvailable("binanceusdm GET http://127.0.0.1:9/fapi/v1/time")
    assert type(E.classify(timeout, False)) is E.NetworkFailure
    assert type(E.classify(timeout, True)) is E.OutcomeUnknown
    assert type(E.classify(refused, False)) is E.NetworkFailure
    assert type(E.classify(asyncio.TimeoutError(), True)) is E.OutcomeUnknown
    assert type(E.classify(ccxt.BadResponse("junk"), False)) is E.MalformedResponse
    assert type(E.classify(TypeError("'NoneType' object is not subscriptable"), False)) is E.MalformedResponse
    assert type(E.classify(TypeError("junk"), True)) is E.OutcomeUnknown
    junk = E.MalformedResponse("order without id")
    assert E.classify(junk, False) is junk
    assert type(E.classify(junk, True)) is E.OutcomeUnknown
    fatal = E.InsufficientMargin("no")
    assert E.classify(fatal, True) is fatal


def test_error_code_extraction():
    assert E.error_code(Exception('binanceusdm {"code":-2019,"msg":"Margin is insufficient."}')) == -2019
    assert E.error_code(Exception("binanceusdm 502 Bad Gateway")) is None
