"""Faults injected by the local Binance server, through the real ccxt client, in both directions: on a read
(retried, or raised as the right class — never an empty result) and on a placement (never re-sent; the outcome
is unknown and resolved by client id, or the refusal is definite)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from albra.exchange import errors as E
from albra.exchange.client import point_at
from albra.exchange.client_ids import make_client_id
from albra.exchange.resolve import resolve_unknown
from albra.exchange.types import OrderRequest
from albra.model import OrderStatus, OrderType, Side

pytestmark = pytest.mark.anyio
BTC = "BTCUSDT"
T0 = 1_704_153_600_000
HTML = "<html><body>oops</body></html>"


def cid(purpose: str, gen: int = 0) -> str:
    return make_client_id("main", "TURTLE", BTC, T0, purpose, gen)


def market(purpose: str = "entry", gen: int = 0, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(cid(purpose, gen), BTC, Side.BUY, OrderType.MARKET, Decimal(qty))


def stop(gen: int = 0) -> OrderRequest:
    return OrderRequest(cid("stop_loss", gen), BTC, Side.SELL, OrderType.STOP_MARKET, Decimal("0.01"),
                        trigger_price=Decimal("40000"), reduce_only=True)


async def count(sim, client_id: str) -> int:
    return (await sim.admin.orders("main", client_id))["counts"].get(client_id, 0)


async def prime(gw):
    """Markets and the time sync are loaded, so a fault hits only the call under test."""
    await gw.load_markets()
    await gw.fetch_balance()


# --- timeout ------------------------------------------------------------------------------------------------------

async def test_timeout_on_read_is_retried_then_raised(sim, make_gw, fake_time):
    gw = make_gw(sim.url, *sim.accounts["main"], timeout_ms=300)
    await prime(gw)
    await sim.admin.fault("GET", "/fapi/v3/account", "latency", delay_ms=900, count=1)
    assert (await gw.fetch_balance()).wallet == Decimal("10000")
    assert fake_time.slept == [0.25]
    await sim.admin.fault("GET", "/fapi/v3/positionRisk", "latency", delay_ms=900, count=None)
    with pytest.raises(E.NetworkFailure):
        await gw.fetch_positions()


async def test_timeout_on_placement_is_outcome_unknown_and_resolved(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"], timeout_ms=300)
    await prime(gw)
    await sim.admin.fault("POST", "/fapi/v1/order", "commit_lose", lose="timeout", delay_ms=900)
    with pytest.raises(E.OutcomeUnknown) as ei:
        await gw.place_order(market())
    assert ei.value.client_id == cid("entry") and not ei.value.is_algo
    found = await resolve_unknown(gw, BTC, cid("entry"), False, spacing_s=0.2)  # spaced: visibility is eventual
    assert found is not None and found.status is OrderStatus.FILLED
    assert await count(sim, cid("entry")) == 1  # sent exactly once, never re-sent


# --- 5xx ----------------------------------------------------------------------------------------------------------

async def test_5xx_on_read_retried_or_raised(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    body = json.dumps({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."})
    await sim.admin.fault("GET", "/fapi/v1/klines", "status", status=503, body=body, count=2)
    assert len(await gw.fetch_candles(BTC, "15m", limit=3)) == 3
    await sim.admin.fault("GET", "/fapi/v1/openOrders", "status", status=502, body=HTML, content_type="text/html",
                          count=None)
    with pytest.raises(E.NetworkFailure):
        await gw.fetch_open_orders(BTC)


async def test_5xx_on_placement_is_unknown_and_not_placed(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    await sim.admin.fault("POST", "/fapi/v1/algoOrder", "status", status=502, body=HTML, content_type="text/html")
    with pytest.raises(E.OutcomeUnknown) as ei:
        await gw.place_order(stop())
    assert ei.value.is_algo
    assert await resolve_unknown(gw, BTC, cid("stop_loss"), True, attempts=2, sleep=_no_wait) is None
    assert await count(sim, cid("stop_loss")) == 0


# --- HTML body with status 200 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, call", [
    ("GET", "/fapi/v3/positionRisk", lambda g: g.fetch_positions()),
    ("GET", "/fapi/v3/account", lambda g: g.fetch_balance()),
    ("GET", "/fapi/v1/klines", lambda g: g.fetch_candles(BTC, "1h")),
    ("GET", "/fapi/v1/openOrders", lambda g: g.fetch_open_orders(BTC)),
    ("GET", "/fapi/v1/openAlgoOrders", lambda g: g.fetch_open_orders(BTC, algo=True)),
    ("GET", "/fapi/v1/userTrades", lambda g: g.fetch_trades(BTC)),
    ("GET", "/fapi/v1/income", lambda g: g.fetch_income()),
    ("GET", "/fapi/v1/order", lambda g: g.fetch_order(BTC, cid("entry"), False)),
    ("GET", "/fapi/v1/positionSide/dual", lambda g: g.fetch_position_mode()),
    ("GET", "/fapi/v1/time", lambda g: g.server_time()),
])
async def test_html_200_on_read_is_malformed_never_empty(sim, make_gw, method, path, call):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    await sim.admin.fault(method, path, "status", status=200, body=HTML, content_type="text/html", count=None)
    with pytest.raises(E.MalformedResponse):
        await call(gw)
    await sim.admin.clear_faults()
    await sim.admin.fault(method, path, "status", status=200, body="", count=1)  # one empty body: retried
    await call(gw)


async def test_html_200_on_placement_is_outcome_unknown(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    await sim.admin.fault("POST", "/fapi/v1/order", "status", status=200, body=HTML, content_type="text/html")
    with pytest.raises(E.OutcomeUnknown):
        await gw.place_order(market())
    assert await count(sim, cid("entry")) == 0


# --- 429 / 418 ----------------------------------------------------------------------------------------------------

async def test_429_on_read_backs_off_alerts_and_succeeds(sim, make_gw, fake_time, events):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    body = json.dumps({"code": -1003, "msg": "Too many requests"})
    await sim.admin.fault("GET", "/fapi/v3/positionRisk", "status", status=429, body=body, count=1)
    assert await gw.fetch_positions() == []
    assert fake_time.slept and fake_time.slept[0] >= gw.resilience.limiter.default_429_s
    assert [e for e in events if e.kind == "rate_limited" and e.alert]


async def test_429_on_placement_is_definite_and_not_placed(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    await sim.admin.fault("POST", "/fapi/v1/order", "status", status=429,
                          body=json.dumps({"code": -1003, "msg": "Too many requests"}))
    with pytest.raises(E.RateLimited) as ei:
        await gw.place_order(market())
    assert not isinstance(ei.value, E.OutcomeUnknown)
    assert await count(sim, cid("entry")) == 0


async def test_real_weight_limit_429_is_rate_limited(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    await sim.admin.weights(limit=1, clock="sim", reset=True)
    with pytest.raises(E.RateLimited):
        for _ in range(5):
            await gw.fetch_positions()
    await sim.admin.weights(limit=2400, reset=True)


@pytest.mark.parametrize("placement", [False, True])
async def test_418_ban_stops_every_call(sim, make_gw, events, placement):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    body = json.dumps({"code": -1003, "msg": "Way too many requests; IP banned."})
    path = "/fapi/v1/order" if placement else "/fapi/v3/account"
    await sim.admin.fault("POST" if placement else "GET", path, "status", status=418, body=body)
    with pytest.raises(E.IpBanned):
        await (gw.place_order(market()) if placement else gw.fetch_balance())
    assert [e for e in events if e.kind == "ip_banned" and e.alert]
    before = len(await sim.admin.requests())
    with pytest.raises(E.IpBanned, match="not sent"):
        await gw.fetch_positions()
    assert len(await sim.admin.requests()) == before  # nothing reached the exchange
    assert await count(sim, cid("entry")) == 0


# --- -1021 with a skewed clock ------------------------------------------------------------------------------------

async def test_clock_skew_resyncs_then_succeeds_on_read_and_placement(sim, make_gw, events):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    await sim.admin.advance(3_600_000)  # the exchange jumps an hour ahead of what the client synced to
    await sim.admin.forget_time_sync()
    assert (await gw.fetch_balance()).wallet == Decimal("10000")
    assert gw.resilience.stats["resyncs"] == 1
    await sim.admin.advance(3_600_000)
    await sim.admin.forget_time_sync()
    res = await gw.place_order(market())
    assert res.status is OrderStatus.FILLED
    assert gw.resilience.stats["resyncs"] == 2
    assert await count(sim, cid("entry")) == 1
    assert [e for e in events if e.kind == "time_resync"]


# --- insufficient margin / reduce-only rejected (placement only; the read direction cannot have them) -----------

async def test_insufficient_margin_and_reduce_only_rejected(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    with pytest.raises(E.InsufficientMargin):
        await gw.place_order(market(qty="50"))
    with pytest.raises(E.InvalidOrder) as ei:
        await gw.place_order(OrderRequest(cid("exit"), BTC, Side.SELL, OrderType.MARKET, Decimal("0.01"),
                                          reduce_only=True))
    assert ei.value.code == -2022
    assert gw.resilience.stats["retries"] == 0


# --- response lost after commit -----------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", [False, True])
async def test_lost_response_order_exists_exactly_once(sim, make_gw, algo):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    if algo:
        await gw.place_order(market("entry", 5))  # something for the reduce-only stop to protect
    req = stop() if algo else market()
    await sim.admin.fault("POST", "/fapi/v1/algoOrder" if algo else "/fapi/v1/order", "commit_lose", lose="drop")
    with pytest.raises(E.OutcomeUnknown):
        await gw.place_order(req)
    found = await resolve_unknown(gw, BTC, req.client_id, algo, spacing_s=0.2)  # spaced: visibility is eventual
    assert found is not None and found.client_id == req.client_id and found.is_algo is algo
    assert await count(sim, req.client_id) == 1


async def test_lost_response_on_read_is_retried(sim, make_gw):
    gw = make_gw(sim.url, *sim.accounts["main"])
    await prime(gw)
    await sim.admin.fault("GET", "/fapi/v3/positionRisk", "drop")
    assert await gw.fetch_positions() == []
    # (aiohttp itself re-sends an idempotent GET once when a kept-alive connection drops; albra retries otherwise)
    log = [r["status"] for r in await sim.admin.requests() if r["path"] == "/fapi/v3/positionRisk"]
    assert log == ["dropped", 200]


# --- connection refused -------------------------------------------------------------------------------------------

async def test_connection_refused_opens_breaker_then_recovers(make_gw, start_sim, fake_time, events):
    async with start_sim() as first:
        gw = make_gw(first.url, *first.accounts["main"], threshold=3, cooldown_s=30)
        await prime(gw)
    # the server is gone: each call retries within its budget, then fails; three failures open the breaker
    for _ in range(3):
        with pytest.raises(E.NetworkFailure):
            await gw.fetch_balance()
    assert gw.resilience.breaker.state == "open"
    with pytest.raises(E.CircuitOpen):
        await gw.fetch_positions()
    with pytest.raises(E.CircuitOpen):  # placements are refused too, before anything is sent
        await gw.place_order(market())
    async with start_sim() as second:
        point_at(gw.client, second.url)
        with pytest.raises(E.CircuitOpen):  # still cooling down
            await gw.fetch_balance()
        fake_time.t += 30
        assert gw.resilience.breaker.state == "half_open"
        assert (await gw.fetch_balance()).wallet == Decimal("10000")  # the probe succeeds
        assert gw.resilience.breaker.state == "closed"
        assert await count(second, cid("entry")) == 0
    kinds = [e.kind for e in events if e.kind.startswith("breaker")]
    assert kinds == ["breaker_open", "breaker_half_open", "breaker_closed"]


async def _no_wait(_s: float) -> None:
    return None
