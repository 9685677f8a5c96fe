"""The quiet-candle shortcut of SimExchange.on_candle must be invisible: an exchange that walks every candle's path
gives exactly the same trades, income, wallet, positions and order states over real candles, with stops, take
profits, resting limits, liquidations, hedge legs, funding and isolated margin, including levels placed exactly on
a candle's high or low (the boundary where a shortcut would most easily differ)."""

from __future__ import annotations

import random
from decimal import Decimal as Dec

import pytest

from albra.candles import bundled, load_candles, load_funding
from albra.model import MarginMode, PositionMode
from albra.sim.exchange import SimExchange
from albra.sim.errors import SimError


class WalkEveryCandle(SimExchange):
    """The reference: never takes the shortcut."""

    def _quiet(self, st, ts, o, h, l, c) -> bool:  # noqa: E741 - the candle's low
        return False


def _rows(n: int) -> list[tuple[int, float, float, float, float]]:
    s = load_candles(bundled("BTCUSDT-15m.csv.gz"))
    return list(zip(s.ts.tolist(), s.open.tolist(), s.high.tolist(), s.low.tolist(), s.close.tolist()))[:n]


def _snapshot(ex: SimExchange) -> dict:
    out = {}
    for name, a in ex.accounts.items():
        out[name] = {
            "wallet": a.wallet, "trades": a.trades, "income": a.income,
            "positions": {k: (p.amt, p.entry, p.isolated_margin) for k, p in a.positions.items()},
            "orders": {k: (o.status, o.executed_qty, o.avg_price) for k, o in a.orders.items()},
            "algos": {k: (g.status, g.actual_price, g.reason) for k, g in a.algos.items()},
        }
    out["last"] = ex.last_price("BTCUSDT")
    return out


def _drive(ex: SimExchange, rows, seed: int, mode: PositionMode, isolated: bool, leverage: int) -> None:
    """Trade randomly along real candles: entries, stops/take profits on the candle's own high/low or near it,
    resting limits, occasional exits. Both exchanges see the same calls because the choices only use the seed
    and the candles."""
    rnd = random.Random(seed)
    ex.add_account("a", Dec("2000"), mode)
    ex.set_leverage("a", "BTCUSDT", leverage)
    if isolated:
        ex.set_margin_mode("a", "BTCUSDT", MarginMode.ISOLATED)
    n_ord = 0
    for i, (ts, o, h, l, c) in enumerate(rows):
        ex.set_time(ts)
        ex.on_candle("BTCUSDT", ts, o, h, l, c)
        ex.set_time(ts + 900_000)
        if rnd.random() > 0.08:
            continue
        n_ord += 1
        last = ex.last_price("BTCUSDT")
        long = rnd.random() < 0.5
        pside = ("LONG" if long else "SHORT") if mode is PositionMode.HEDGE else None
        try:
            ex.place_order("a", "BTCUSDT", "BUY" if long else "SELL", "MARKET", Dec("0.05"),
                           position_side=pside, client_id=f"e{n_ord}")
            nxt = rows[min(i + 1, len(rows) - 1)]
            # a stop exactly on the next candle's extreme (boundary), or a little beyond it
            edge = Dec(repr(nxt[3] if long else nxt[2]))
            stop = edge if rnd.random() < 0.5 else (edge - 50 if long else edge + 50)
            kw = {"position_side": pside} if pside else {"close_position": True}
            ex.place_algo("a", "BTCUSDT", "SELL" if long else "BUY", "STOP_MARKET", stop, client_algo_id=f"s{n_ord}",
                          quantity=Dec("0.05") if pside else None, **kw)
            tp = (last + 300) if long else (last - 300)
            ex.place_algo("a", "BTCUSDT", "SELL" if long else "BUY", "TAKE_PROFIT_MARKET", tp,
                          client_algo_id=f"t{n_ord}", quantity=Dec("0.05") if pside else None, **kw)
            if rnd.random() < 0.4:
                lim = (last - 120).quantize(Dec("0.1"))
                ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.01"), price=lim, time_in_force="GTC",
                               position_side="LONG" if pside else None, client_id=f"l{n_ord}")
        except SimError:
            pass  # margin refusals are part of the scenario; both exchanges refuse alike


@pytest.mark.parametrize("mode,isolated,leverage,seed", [
    (PositionMode.ONE_WAY, False, 10, 1),
    (PositionMode.HEDGE, False, 20, 2),
    (PositionMode.ONE_WAY, True, 50, 3),     # isolated, high leverage: liquidations happen
    (PositionMode.HEDGE, True, 100, 4),
])
def test_shortcut_matches_the_full_walk(mode, isolated, leverage, seed):
    rows = _rows(3000)
    funding = {"BTCUSDT": load_funding(bundled("BTCUSDT-funding.csv"))}
    fast, ref = (SimExchange(funding=funding, latency_clock="exchange"),  # deterministic stamps
                 WalkEveryCandle(funding=funding, latency_clock="exchange"))
    for ex in (fast, ref):
        _drive(ex, rows, seed, mode, isolated, leverage)
    assert _snapshot(fast) == _snapshot(ref)
    algos = ref.account("a").algos.values()
    assert any(g.status == "FINISHED" and g.order_type.value == "STOP_MARKET" for g in algos)
    assert any(g.status == "FINISHED" and g.order_type.value == "TAKE_PROFIT_MARKET" for g in algos)
    assert fast._slow_candles < ref._slow_candles  # the shortcut really was taken


def test_liquidation_inside_a_quiet_looking_range_is_not_skipped():
    """A 100x long whose liquidation price sits inside the next candle's range must be liquidated there."""
    for cls in (SimExchange, WalkEveryCandle):
        ex = cls()
        ex.add_account("a", Dec("100"))
        ex.set_leverage("a", "BTCUSDT", 100)
        ex.on_candle("BTCUSDT", 0, 40000.0, 40000.0, 40000.0, 40000.0)
        ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
        acct = ex.account("a")
        lp = ex.liquidation_price(acct, acct.position("BTCUSDT", next(iter(acct.positions))[1]))
        assert lp is not None and lp > 39000
        ex.on_candle("BTCUSDT", 900_000, 40000.0, 40010.0, float(lp) - 1, 39990.0)
        assert acct.income and any(t["clientOrderId"].startswith("autoclose-") for t in acct.trades), cls


H8 = 8 * 3_600_000
M15 = 900_000


def _liq_price(ex: SimExchange, symbol: str = "BTCUSDT") -> Dec:
    acct = ex.account("a")
    (pos,) = acct.live_positions(symbol)
    lp = ex.liquidation_price(acct, pos)
    assert lp is not None
    return lp


def _liquidated(ex: SimExchange) -> bool:
    return any(t["clientOrderId"].startswith("autoclose-") for t in ex.account("a").trades)


def _long_at_100x(cls: type[SimExchange], wallet: str) -> SimExchange:
    """0.1 BTC long at 40,000 with 100x cross leverage, then three quiet candles (the cache is filled)."""
    ex = cls(funding={"BTCUSDT": [(H8, 0.013)]}, latency_clock="exchange")
    ex.add_account("a", Dec(wallet))
    ex.set_leverage("a", "BTCUSDT", 100)
    ex.on_candle("BTCUSDT", 0, 40000.0, 40000.0, 40000.0, 40000.0)
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    lp = float(_liq_price(ex))
    slow = ex._slow_candles
    for k in (1, 2, 3):
        ex.on_candle("BTCUSDT", k * M15, 40000.0, 40100.0, lp + 300, 40000.0)
    assert ex._slow_candles == slow or cls is WalkEveryCandle  # quiet: the cached liquidation price was used
    return ex


@pytest.mark.parametrize("change", ["funding", "withdrawal", "isolated position", "cross position", "wallet set"])
def test_a_quiet_candle_sees_the_liquidation_price_after_the_account_changed(change):
    """The quiet check keeps each account's liquidation price while nothing it depends on changed. Each change
    here raises the long's liquidation price above the next candle's low (but not above the cached one's): the
    candle must liquidate, exactly as the full walk does. Funding settles on a candle of its own whose range
    stays clear of both prices."""
    out = []
    for cls in (SimExchange, WalkEveryCandle):
        ex = _long_at_100x(cls, "100")
        acct = ex.account("a")
        before = _liq_price(ex)
        ts = 4 * M15
        if change == "funding":  # 0.1 × 40,000 × 1.3 % = 52 USDT paid at 08:00
            ex.on_candle("BTCUSDT", H8, 40000.0, 40100.0, float(before) + 700, 40000.0)
            assert acct.income[-1]["incomeType"] == "FUNDING_FEE"
            ts = H8 + M15
        elif change == "withdrawal":
            ex.transfer("a", Dec("-20"))
        elif change == "wallet set":  # as a test or an admin would, behind the exchange's back
            acct.wallet -= Dec("20")
        else:  # a second position takes margin (isolated) or loses money (cross) and pulls the BTC price up
            iso = change == "isolated position"
            if iso:
                ex.set_margin_mode("a", "ETHUSDT", "ISOLATED")
            ex.set_leverage("a", "ETHUSDT", 100)
            ex.on_candle("ETHUSDT", 0, 2000.0, 2000.0, 2000.0, 2000.0)
            ex.place_order("a", "ETHUSDT", "BUY", "MARKET", Dec("1" if iso else "0.5"))
            if not iso:
                ex.on_candle("ETHUSDT", 3 * M15, 2000.0, 2000.0, 1975.0, 1975.0)
        after = _liq_price(ex)
        assert after > before + 100, (change, before, after)
        low = float(before + after) / 2
        assert not _liquidated(ex)
        ex.on_candle("BTCUSDT", ts, 40000.0, 40050.0, low, 40000.0)
        assert _liquidated(ex), (cls.__name__, change)
        out.append(_snapshot(ex))
    assert out[0] == out[1]


def test_a_deposit_that_lowers_the_liquidation_price_keeps_the_position():
    """The other way round: after a deposit the next candle dips below the liquidation price cached before it but
    stays above the new one; nothing may happen."""
    for cls in (SimExchange, WalkEveryCandle):
        ex = _long_at_100x(cls, "100")
        before = _liq_price(ex)
        ex.transfer("a", Dec("50"))
        after = _liq_price(ex)
        assert after < before - 100
        ex.on_candle("BTCUSDT", 4 * M15, 40000.0, 40050.0, float(before + after) / 2, 40000.0)
        assert not _liquidated(ex) and ex.account("a").live_positions("BTCUSDT")


@pytest.mark.parametrize("order", ["stop", "take profit", "limit"])
def test_an_order_placed_after_quiet_candles_fires_on_the_next_one(order):
    """The resting orders' levels are kept between candles too: an order placed with no fill in between (a moved
    stop, a new limit) must be seen by the very next candle."""
    out = []
    for cls in (SimExchange, WalkEveryCandle):
        ex = _long_at_100x(cls, "1000")
        if order == "limit":
            placed = ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.01"), price=Dec("39900"))
        else:
            stop = order == "stop"
            placed = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET" if stop else "TAKE_PROFIT_MARKET",
                                   Dec("39900" if stop else "40080"), close_position=True)
        ex.on_candle("BTCUSDT", 4 * M15, 40000.0, 40090.0, 39890.0, 40000.0)
        assert placed.status in ("FILLED", "FINISHED"), (cls.__name__, order, placed.status)
        out.append(_snapshot(ex))
    assert out[0] == out[1]


def _rows_of(symbol: str, n: int) -> list[tuple[int, float, float, float, float]]:
    s = load_candles(bundled(f"{symbol}-15m.csv.gz"))
    return list(zip(s.ts.tolist(), s.open.tolist(), s.high.tolist(), s.low.tolist(), s.close.tolist()))[:n]


@pytest.mark.parametrize("mode,leverage,seed,eth_isolated", [(PositionMode.ONE_WAY, 50, 5, False),
                                                              (PositionMode.HEDGE, 75, 6, False),
                                                              (PositionMode.ONE_WAY, 50, 7, True)])
def test_two_symbols_in_cross_margin_match_the_full_walk(mode, leverage, seed, eth_isolated):
    """BTC and ETH positions side by side in cross margin: each one's liquidation price moves with the other's
    mark, which the quiet check recomputes in floats with a margin (with ETH isolated, BTC's is constant again,
    less ETH's isolated wallet). Random entries and stops at high leverage on real candles (liquidations
    included) give exactly what walking every candle gives."""
    rows = {s: _rows_of(s, 1500) for s in ("BTCUSDT", "ETHUSDT")}
    funding = {s: load_funding(bundled(f"{s}-funding.csv")) for s in rows}
    size = {"BTCUSDT": Dec("0.02"), "ETHUSDT": Dec("0.5")}
    exs = (SimExchange(funding=funding, latency_clock="exchange"),
           WalkEveryCandle(funding=funding, latency_clock="exchange"))
    moving = 0
    for ex in exs:
        rnd = random.Random(seed)
        ex.add_account("a", Dec("150"), mode)
        for s in rows:
            ex.set_leverage("a", s, leverage)
        if eth_isolated:
            ex.set_margin_mode("a", "ETHUSDT", "ISOLATED")
        n = 0
        for i in range(len(rows["BTCUSDT"])):
            for s, rs in rows.items():
                ts, o, h, l, c = rs[i]
                ex.set_time(ts)
                ex.on_candle(s, ts, o, h, l, c)
                st = ex._syms[s]
                if ex is exs[0] and st.liq and st.liq[1] and any(e[4] is not None for e in st.liq[1]):
                    moving += 1
            ex.set_time(rows["BTCUSDT"][i][0] + M15)
            for s in rows:
                if rnd.random() > 0.05:
                    continue
                n += 1
                long = rnd.random() < 0.5
                pside = ("LONG" if long else "SHORT") if mode is PositionMode.HEDGE else None
                last = ex.last_price(s)
                try:
                    ex.place_order("a", s, "BUY" if long else "SELL", "MARKET", size[s], position_side=pside,
                                   client_id=f"e{n}")
                    stop = (last * Dec("0.97") if long else last * Dec("1.03")).quantize(Dec("0.1"))
                    kw = {"position_side": pside, "quantity": size[s]} if pside else {"close_position": True}
                    ex.place_algo("a", s, "SELL" if long else "BUY", "STOP_MARKET", stop, client_algo_id=f"s{n}", **kw)
                except SimError:
                    pass
    assert {k: v for k, v in _snapshot(exs[0]).items() if k != "last"} == \
        {k: v for k, v in _snapshot(exs[1]).items() if k != "last"}
    assert (moving == 0) if eth_isolated else (moving > 100)  # the floats of the moving price were used
    assert exs[0]._slow_candles < exs[1]._slow_candles


@pytest.mark.parametrize("long", [True, False])
def test_the_moving_liquidation_price_is_the_decimal_one(long):
    """A cross BTC position beside a cross ETH position (near its 50,000 bracket cap, whose maintenance margin
    counts) and an isolated SOL one (whose wallet does not): with ETH's mark moving — across the cap too — a BTC
    range a hair (1e-7) beyond the Decimal liquidation price is quiet, one a hair inside it is not."""
    ex = SimExchange(latency_clock="exchange")
    ex.add_account("a", Dec("13000"))
    for s, lev in (("BTCUSDT", 100), ("ETHUSDT", 100), ("SOLUSDT", 10)):
        ex.set_leverage("a", s, lev)
    ex.set_margin_mode("a", "SOLUSDT", "ISOLATED")
    for s, p in (("BTCUSDT", 40000.0), ("ETHUSDT", 2000.0), ("SOLUSDT", 100.0)):
        ex.on_candle(s, 0, p, p, p, p)
    ex.place_order("a", "BTCUSDT", "BUY" if long else "SELL", "MARKET", Dec("10"))
    ex.place_order("a", "ETHUSDT", "SELL", "MARKET", Dec("26"))
    ex.place_order("a", "SOLUSDT", "BUY", "MARKET", Dec("10"))
    st = ex._syms["BTCUSDT"]
    for k, eth in enumerate((2000.0, 1990.0, 1900.0, 1930.0, 2010.0), start=1):
        ex.on_candle("ETHUSDT", k * M15, eth, eth, eth, eth)
        lp = float(_liq_price(ex))
        assert abs(lp - 40000) < 1500, lp  # near enough for every margin term to matter
        for beyond, quiet in ((-1e-7, False), (1e-7, True)):  # the first one answers from the last ETH mark's cache
            edge = lp * (1 + beyond) if long else lp * (1 - beyond)
            st.raw = edge  # the previous price too (no candle fed: it would liquidate)
            assert ex._quiet(st, k * M15, edge, edge, edge, edge) is quiet, (eth, beyond)
            if quiet:  # the floats of the moving liquidation price answered
                assert st.liq is not None and st.liq[1] and st.liq[1][0][4] is not None
            assert ex._quiet_exact(st, edge, edge) is quiet
        st.raw = 40000.0  # back where it was: the ETH candles must not see BTC at its liquidation price
    assert not _liquidated(ex)


def test_a_position_whose_notional_moves_into_the_next_bracket_is_liquidated_there():
    """The liquidation price is kept with the maintenance bracket the range was in: a short opened in the first
    bracket (notional under 50,000) whose next candle lies wholly in the second must be measured with the second
    bracket's rate and amount, which puts its liquidation price a few cents lower, inside that candle's range."""
    out = []
    for cls in (SimExchange, WalkEveryCandle):
        ex = cls(latency_clock="exchange")
        ex.add_account("a", Dec("1137"))
        ex.set_leverage("a", "BTCUSDT", 100)
        ex.on_candle("BTCUSDT", 0, 38000.0, 38000.0, 38000.0, 38000.0)
        ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("1.3"))
        for k in (1, 2):
            ex.on_candle("BTCUSDT", k * M15, 38000.0, 38100.0, 37950.0, 38000.0)  # 1.3 × 38,100 < 50,000
        acct = ex.account("a")
        (pos,) = acct.live_positions("BTCUSDT")
        first, second = ex.spec("BTCUSDT").brackets[:2]
        lp1, lp2 = ex._liq(acct, pos, first), ex._liq(acct, pos, second)
        assert lp1 is not None and lp2 is not None and lp2 < lp1 < lp2 + 1
        assert Dec(50000) / Dec("1.3") < 38500 < lp2
        high = float(lp2 + (lp1 - lp2) / 2)  # above the second bracket's price, below the first one's
        ex.on_candle("BTCUSDT", 3 * M15, 38500.0, high, 38500.0, 38500.0)
        assert _liquidated(ex), cls.__name__
        out.append(_snapshot(ex))
    assert out[0] == out[1]
