"""The paper gateway's direct answers (``albra.sim.answers``, ADR 0022) equal the Binance round trip they replace —
``binance_parse.parse_*(payloads.*(record))`` through real JSON — field for field and representation for
representation (Decimal("1.5") is not Decimal("1.50") once it is written to the ledger).

Two ways, over one scenario corpus (market entry, quantised quantities, partial fill, stop and take-profit algo
orders, trigger → child order → FINISHED through the realistic TRIGGERING/TRIGGERED stages, cancels of working
and of already-fired orders, hedge-mode sides and reduce-only, isolated margin, rejections with Binance codes,
funding and BNB fee rows, history ``since``/``limit`` windows):

- *twins*: two identical simulated exchanges driven in lockstep, one behind the paper gateway, one behind the
  same gateway answering through the round trip; every call's answer, or error (class, code, message), must match;
- *sweep*: after every step, every record the account holds (orders, algo orders as the API shows them, trades,
  income, positions, balance) converted both ways.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any, Callable

import pytest

from albra.exchange import binance_parse as P
from albra.exchange.client_ids import make_client_id
from albra.exchange.paper import PaperGateway
from albra.exchange.types import OrderRequest
from albra.model import MarginMode, OrderStatus, OrderType, PositionMode, PositionSide, Side
from albra.sim import answers as A
from albra.sim import payloads
from albra.sim.exchange import SimExchange
from albra.sim.realism import Realism

pytestmark = pytest.mark.anyio
BTC, ETH = "BTCUSDT", "ETHUSDT"
T0 = 1_704_153_600_000  # 2024-01-02 00:00 UTC, a funding time
H8 = 8 * 3_600_000


def _wire(payload: Any) -> Any:
    return json.loads(json.dumps(payload))  # what crosses the HTTP boundary of `albra sim serve`


class RoundTrip:
    """The answers as the paper gateway built them before ADR 0022: Binance JSON, then the ccxt gateway's parsers."""

    @staticmethod
    def order(o):
        return P.parse_order(_wire(payloads.order(o)))

    @staticmethod
    def algo(a):
        return P.parse_algo(_wire(payloads.algo(a)))

    @staticmethod
    def fill(t):
        return P.parse_trades(_wire([payloads.trade(t)]), t["symbol"])[0]

    @staticmethod
    def income(r):
        return P.parse_income(_wire([payloads.income(r)]))[0]

    @staticmethod
    def positions(ex, acct, symbols):
        return P.parse_positions(_wire([payloads.position_row_v3(ex, acct, p) for p in acct.live_positions()]),
                                 symbols)

    @staticmethod
    def balance(ex, acct, now):
        return P.parse_balance(_wire(payloads.account(ex, acct, now)), acct.asset, now)


def same(direct: Any, trip: Any, what: str) -> None:
    assert direct == trip, what
    assert repr(direct) == repr(trip), what  # Decimal exponents, enum members, None vs 0


def sweep(ex: SimExchange, account: str = "paper") -> int:
    """Every record of ``account`` converted both ways; returns how many were compared."""
    acct = ex.account(account)
    n = 0
    for o in acct.orders.values():
        same(A.order(o), RoundTrip.order(o), f"order {o.order_id} {o.status}")
        n += 1
    for a in acct.algos.values():
        for view in (a, ex.algo_view(a)):
            same(A.algo(view), RoundTrip.algo(view), f"algo {a.algo_id} {view.status}")
            n += 1
    for t in acct.trades:
        same(A.fill(t), RoundTrip.fill(t), f"trade {t['id']}")
        n += 1
    for r in acct.income:
        same(A.income(r), RoundTrip.income(r), f"income {r['tranId']} {r['incomeType']}")
        n += 1
    for symbols in (None, [BTC], [ETH], []):
        same(A.positions(ex, acct, symbols), RoundTrip.positions(ex, acct, symbols), f"positions {symbols}")
    same(A.balance(ex, acct, ex.now), RoundTrip.balance(ex, acct, ex.now), "balance")
    return n


def _exchange(realism: Realism | None, latency_clock: str | None) -> SimExchange:
    kw: dict[str, Any] = {"now_ms": T0}
    if realism is not None:
        kw["realism"] = realism
    if latency_clock is not None:
        kw["latency_clock"] = latency_clock
    ex = SimExchange(**kw)
    ex.add_account("paper", Decimal("10000"))
    ex.open_at(BTC, T0, 44000.0)
    ex.open_at(ETH, T0, 2300.0)
    return ex


class Twins:
    """Two identical exchanges in lockstep: ``direct`` behind the paper gateway, ``trip`` behind the same gateway
    answering through the round trip."""

    def __init__(self, realism: Realism | None = Realism.replay(), latency_clock: str | None = None) -> None:
        self.ex_direct, self.ex_trip = _exchange(realism, latency_clock), _exchange(realism, latency_clock)
        self.direct = PaperGateway("paper", self.ex_direct)
        self.trip = PaperGateway("paper", self.ex_trip)
        self.trip._answers = RoundTrip  # the only difference between the two
        self.compared = 0

    def market(self, fn: Callable[[SimExchange], Any]) -> None:
        """Move both markets the same way, then sweep the direct exchange's records."""
        fn(self.ex_direct)
        fn(self.ex_trip)
        self.compared += sweep(self.ex_direct)

    async def call(self, method: str, *args: Any, **kw: Any) -> Any:
        """The same call on both gateways: equal answers, or equal errors (class, code, message)."""
        out = []
        for gw in (self.direct, self.trip):
            try:
                out.append(("ok", await getattr(gw, method)(*args, **kw)))
            except Exception as e:  # noqa: BLE001 - the error itself is what is compared
                out.append(("err", (type(e), getattr(e, "code", None), str(e))))
        same(out[0], out[1], f"{method}{args}")
        self.compared += sweep(self.ex_direct) + 1
        kind, value = out[0]
        self.error = value if kind == "err" else None
        return value if kind == "ok" else None

    async def histories(self) -> None:
        """Trade and income history through both gateways, over ``since``/``limit`` windows and income types."""
        times = sorted({t["time"] for t in self.ex_direct.account("paper").trades}
                       | {r["time"] for r in self.ex_direct.account("paper").income})
        for since in [None, *times[:: max(1, len(times) // 4)], times[-1] + 1 if times else T0]:
            for limit in (1, 2, 1000):
                for sym in (BTC, ETH):
                    await self.call("fetch_trades", sym, since=since, limit=limit)
                for kind in (None, "COMMISSION", "FUNDING_FEE", "REALIZED_PNL"):
                    await self.call("fetch_income", since=since, income_type=kind, limit=limit)


def cid(purpose: str, gen: int = 0, strategy: str = "S", symbol: str = BTC) -> str:
    return make_client_id("paper", strategy, symbol, T0, purpose, gen)


def req(purpose: str, side: Side, kind: OrderType, qty: str | None, gen: int = 0, strategy: str = "S",
        symbol: str = BTC, **kw: Any) -> OrderRequest:
    return OrderRequest(cid(purpose, gen, strategy, symbol), symbol, side, kind,
                        Decimal(qty) if qty is not None else None, **kw)


async def test_one_way_entry_stops_partial_fill_funding_and_histories():
    tw = Twins()
    for ex in (tw.ex_direct, tw.ex_trip):
        for sym in (BTC, ETH):
            ex.set_funding(sym, [(T0 + H8, 0.0001), (T0 + 2 * H8, -0.00037)])
    await tw.call("setup_symbol", BTC, 10, MarginMode.ISOLATED)
    await tw.call("setup_symbol", ETH, 5, MarginMode.CROSS)
    entry = await tw.call("place_order", req("entry", Side.BUY, OrderType.MARKET, "0.1009"))
    assert entry.status is OrderStatus.FILLED and entry.qty == Decimal("0.1")
    await tw.call("place_order", req("entry", Side.SELL, OrderType.MARKET, "1.7", symbol=ETH))
    await tw.call("place_order", req("entry", Side.SELL, OrderType.MARKET, "0.3", 1, symbol=ETH))  # -2.0: reads -2
    stop = await tw.call("place_order", req("stop_loss", Side.SELL, OrderType.STOP_MARKET, None,
                                            trigger_price=Decimal("42000.04"), close_position=True))
    await tw.call("place_order", req("take_profit", Side.SELL, OrderType.TAKE_PROFIT_MARKET, "0.05",
                                     trigger_price=Decimal("46000"), reduce_only=True))
    # a reduce-only limit larger than what is left to reduce fills partly (PARTIALLY_FILLED, then EXPIRED)
    await tw.call("place_order", req("exit", Side.SELL, OrderType.LIMIT, "0.1", price=Decimal("45000.07"),
                                     reduce_only=True))
    await tw.call("place_order", req("reduce", Side.SELL, OrderType.MARKET, "0.04", reduce_only=True))
    await tw.call("fetch_open_orders", BTC)
    await tw.call("fetch_open_orders", None, algo=True)
    tw.market(lambda ex: ex.on_candle(BTC, T0 + H8 - 900_000, 44000.0, 45100.0, 43900.0, 45050.5))
    tw.market(lambda ex: ex.on_candle(ETH, T0 + H8 - 900_000, 2300.0, 2310.0, 2290.0, 2301.25))
    tw.market(lambda ex: ex.on_candle(BTC, T0 + H8, 45050.5, 46200.0, 45000.0, 46100.0))  # take-profit, nothing left
    tw.market(lambda ex: ex.on_candle(ETH, T0 + H8, 2301.25, 2302.0, 2299.0, 2299.5))  # funding on the ETH short
    await tw.call("place_order", req("entry", Side.BUY, OrderType.MARKET, "0.03", 2))  # the stop now closes this
    tw.market(lambda ex: ex.on_candle(BTC, T0 + 2 * H8, 46100.0, 46150.0, 41000.0, 41500.0))  # stop fires
    assert (await tw.call("fetch_order", BTC, stop.client_id, True)).status is OrderStatus.FILLED
    # cancel of an already-fired stop, of a finished order, of one that never existed: no such order (None)
    assert await tw.call("cancel_order", BTC, stop.client_id, True) is None
    assert await tw.call("cancel_order", BTC, entry.client_id, False) is None
    assert await tw.call("cancel_order", BTC, cid("manual"), False) is None
    working = await tw.call("place_order", req("entry", Side.BUY, OrderType.LIMIT, "0.01", 1, price=Decimal("30000")))
    cancelled = await tw.call("cancel_order", BTC, working.client_id, False)
    assert cancelled.status is OrderStatus.CANCELED
    held = await tw.call("place_order", req("stop_loss", Side.BUY, OrderType.STOP_MARKET, None, 1, symbol=ETH,
                                            trigger_price=Decimal("2500"), close_position=True))
    assert (await tw.call("cancel_order", ETH, held.client_id, True)).status is OrderStatus.CANCELED
    await tw.call("fetch_order", BTC, working.client_id, False)
    await tw.call("fetch_positions")
    await tw.call("fetch_positions", [ETH])
    await tw.call("fetch_balance")
    statuses = {o.status for o in tw.ex_direct.account("paper").orders.values()}
    assert {"FILLED", "CANCELED", "EXPIRED"} <= statuses  # the partly filled limit expired with its remainder
    assert any(o.executed_qty and o.executed_qty < o.qty for o in tw.ex_direct.account("paper").orders.values())
    assert {r["incomeType"] for r in tw.ex_direct.account("paper").income} >= {
        "TRANSFER", "COMMISSION", "REALIZED_PNL", "FUNDING_FEE"}
    await tw.histories()
    assert tw.compared > 500


async def test_every_emitted_state_including_partially_filled():
    """The simulator makes a reduce-only limit larger than what is left PARTIALLY_FILLED, then EXPIRED at once, so
    a read never meets the middle state; every state an order passes through (as the exchange reports it to its
    user-data stream's observers) is converted both ways instead."""
    tw = Twins()
    emitted: list[Any] = []
    def seen(kind: str, obj: Any, at: int) -> None:  # the order as each fill leaves it, and every closed state
        if kind == "trade":
            emitted.append(replace(obj[0]))
        elif kind in ("order_new", "order_done"):
            emitted.append(replace(obj))
        elif kind == "algo":
            emitted.append(replace(obj[0], status=obj[1]))

    tw.ex_direct.observers.append(seen)
    tw.ex_trip.observers.append(lambda *a: None)  # observers change nothing but keep the twins alike
    await tw.call("place_order", req("entry", Side.BUY, OrderType.MARKET, "0.05"))
    await tw.call("place_order", req("exit", Side.SELL, OrderType.LIMIT, "0.05", price=Decimal("45000"),
                                     reduce_only=True))
    await tw.call("place_order", req("stop_loss", Side.SELL, OrderType.STOP_MARKET, None,
                                     trigger_price=Decimal("43000"), close_position=True))
    await tw.call("place_order", req("reduce", Side.SELL, OrderType.MARKET, "0.02", reduce_only=True))
    tw.market(lambda ex: ex.move(BTC, 45000.5))
    tw.market(lambda ex: ex.move(BTC, 42000.0))
    assert "PARTIALLY_FILLED" in {getattr(o, "status", None) for o in emitted}
    for rec in emitted:
        if hasattr(rec, "algo_id"):
            same(A.algo(rec), RoundTrip.algo(rec), f"emitted algo {rec.status}")
        else:
            same(A.order(rec), RoundTrip.order(rec), f"emitted order {rec.status}")


async def test_hedge_mode_sides_reduce_only_and_rejections():
    tw = Twins()
    await tw.call("set_position_mode", PositionMode.HEDGE)
    await tw.call("place_order", req("entry", Side.BUY, OrderType.MARKET, "0.01", strategy="A",
                                     position_side=PositionSide.LONG))
    await tw.call("place_order", req("entry", Side.SELL, OrderType.MARKET, "0.02", strategy="B",
                                     position_side=PositionSide.SHORT))
    await tw.call("place_order", req("exit", Side.BUY, OrderType.MARKET, "0.005", strategy="B",
                                     position_side=PositionSide.SHORT, reduce_only=True))
    await tw.call("place_order", req("stop_loss", Side.SELL, OrderType.STOP_MARKET, None, strategy="A",
                                     position_side=PositionSide.LONG, trigger_price=Decimal("43000"),
                                     close_position=True))
    await tw.call("place_order", req("stop_loss", Side.BUY, OrderType.STOP_MARKET, "0.015", strategy="B",
                                     position_side=PositionSide.SHORT, trigger_price=Decimal("45000")))
    await tw.call("fetch_positions", [BTC])
    tw.market(lambda ex: ex.set_mark(BTC, Decimal("42900")))
    await tw.call("fetch_positions")
    await tw.call("fetch_balance")
    # rejections: the same error class, Binance code and message both ways (or an InvalidOrder before sending)
    codes = []
    for bad in (
        req("exit", Side.BUY, OrderType.MARKET, "0.01", 1, strategy="A", position_side=PositionSide.LONG,
            reduce_only=True),                                                             # would increase
        req("entry", Side.BUY, OrderType.MARKET, "100", 1, strategy="C", position_side=PositionSide.LONG),  # margin
        req("entry", Side.BUY, OrderType.MARKET, "0.001", 2, strategy="C", position_side=PositionSide.LONG),  # -4164
        req("entry", Side.BUY, OrderType.MARKET, "0.01", 3, strategy="C"),                 # BOTH in hedge mode
        req("entry", Side.BUY, OrderType.MARKET, "1", symbol="NOPEUSDT"),                  # unknown symbol
    ):
        assert await tw.call("place_order", bad) is None and tw.error is not None, bad
        codes.append((tw.error[0].__name__, tw.error[1]))
    assert codes == [("InvalidOrder", None), ("InsufficientMargin", -2019), ("InvalidOrder", -4164),
                     ("InvalidOrder", -4061), ("BadSymbol", None)], codes
    await tw.call("set_position_mode", PositionMode.ONE_WAY)  # refused with open positions: same error both ways
    assert tw.error is not None and tw.error[1] == -4068, tw.error
    await tw.call("cancel_all", BTC)
    await tw.call("fetch_open_orders", BTC, algo=True)
    await tw.histories()


async def test_fired_stop_stages_and_bnb_fees_one_way_reduce_only():
    """Realistic timing: a fired stop is TRIGGERING, TRIGGERED (child id, no price), then FINISHED; fills reach
    trade history later; fees paid in BNB."""
    tw = Twins(realism=None, latency_clock="exchange")
    for ex in (tw.ex_direct, tw.ex_trip):
        ex.asset_prices["BNB"] = Decimal("312.37")
        ex.set_fee_burn("paper", True)
        ex.deposit_bnb("paper", Decimal("0.5"))
    r = tw.ex_direct.realism
    await tw.call("place_order", req("entry", Side.SELL, OrderType.MARKET, "0.1"))
    stop = await tw.call("place_order", req("stop_loss", Side.BUY, OrderType.STOP_MARKET, "0.1",
                                            trigger_price=Decimal("44500"), reduce_only=True))
    tw.market(lambda ex: ex.set_time(ex.now + r.lookup_ms))
    tw.market(lambda ex: ex.move(BTC, 44600.0))
    t = tw.ex_direct.now
    seen = []
    for at in (t, t + r.trigger_ms, t + r.trigger_ms + r.finish_ms):
        tw.market(lambda ex, at=at: ex.set_time(at))
        seen.append((await tw.call("fetch_order", BTC, stop.client_id, True)).status)
        await tw.call("fetch_trades", BTC)
    assert seen == [OrderStatus.TRIGGERED, OrderStatus.TRIGGERED, OrderStatus.FILLED]
    assert await tw.call("cancel_order", BTC, stop.client_id, True) is None  # already fired
    assert {t["commissionAsset"] for t in tw.ex_direct.account("paper").trades} == {"BNB"}
    await tw.call("fetch_income", income_type="COMMISSION")
    await tw.histories()


def test_wire_reads_num_exactly():
    """``payloads.wire(x)`` is ``Decimal(payloads.num(x))`` value and exponent, for the shapes the simulator makes
    (long quotients, round integers, negative zero, tiny values that round away, None)."""
    values = [None, 0, -0.0, Decimal("-0"), Decimal("0E-12"), Decimal("-0.000000004"), 44000, Decimal("44000.00"),
              Decimal("1E+5"), Decimal("123.4500"), 0.1, Decimal(1) / 3, Decimal("-2") / 7, Decimal("5E-9"),
              Decimal("1.000000005"), Decimal("-1.000000015"), Decimal(10) ** 19]
    values += [Decimal(m).scaleb(e) for m in (1, -7, 125, 99999999, -123456789012) for e in range(-12, 7)]
    for x in values:
        for places in (8, 2, 0):
            d = payloads.wire(x, places)
            assert payloads.num(x, places) == format(d, "f")
            read = Decimal(payloads.num(x, places))
            assert (d, d.as_tuple()) == (read, read.as_tuple()), (x, places)
    # Decimals are remembered by value: equal values in other spellings get exactly what computing them gives
    for spelled in ([Decimal("1.50"), Decimal("1.5"), Decimal("15E-1")], [Decimal("44000.00"), Decimal("4.4E+4")],
                    [Decimal("0.123456785"), Decimal("0.1234567850")], [Decimal("-0"), Decimal("0E-12")]):
        for x in spelled:
            fresh = payloads._wire(x, 8)
            assert (payloads.wire(x), payloads.wire(x).as_tuple()) == (fresh, fresh.as_tuple()), x


async def test_the_paper_gateway_builds_no_payload_per_call(monkeypatch):
    """ADR 0022: orders, fills, income, positions and balance are answered without Binance JSON (only the market
    list, read once, still goes through exchangeInfo and its parser)."""
    def built(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the paper gateway built a Binance payload")

    for name in ("order", "algo", "trade", "income", "account", "position_row", "position_row_v3"):
        monkeypatch.setattr(payloads, name, built)
    tw = Twins()
    gw = tw.direct
    entry = await gw.place_order(req("entry", Side.BUY, OrderType.MARKET, "0.01"))
    stop = await gw.place_order(req("stop_loss", Side.SELL, OrderType.STOP_MARKET, None,
                                    trigger_price=Decimal("43000"), close_position=True))
    assert (await gw.fetch_order(BTC, entry.client_id, False)).status is OrderStatus.FILLED
    assert len(await gw.fetch_open_orders(BTC, algo=True)) == 1
    assert len(await gw.fetch_trades(BTC)) == 1 and await gw.fetch_income()
    assert len(await gw.fetch_positions()) == 1 and (await gw.fetch_balance()).positions
    assert (await gw.cancel_order(BTC, stop.client_id, True)).status is OrderStatus.CANCELED
