"""The simulated exchange core: fills, fees, funding, triggers, reduce-only, margin, liquidation."""

from __future__ import annotations

from decimal import Decimal as Dec

import pytest

from albra.model import PositionMode, PositionSide
from albra.sim.errors import SimError
from albra.sim.exchange import SimExchange
from albra.sim.realism import Realism

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a funding time
M15 = 900_000


def make(balance="10000", mode=PositionMode.ONE_WAY, price=40000.0, funding=None) -> SimExchange:
    ex = SimExchange(funding=funding, now_ms=T0)
    ex.add_account("a", Dec(balance), mode)
    ex.open_at("BTCUSDT", T0, price)
    return ex


def pos(ex, side=PositionSide.BOTH, sym="BTCUSDT"):
    return ex.account("a").position(sym, side)


def code(excinfo) -> int:
    return excinfo.value.code


def test_market_fills_at_last_price_with_taker_fee():
    ex = make()
    o = ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"), client_id="m1")
    assert o.status == "FILLED" and o.avg_price == Dec("40000")
    assert pos(ex).amt == Dec("0.1") and pos(ex).entry == Dec("40000")
    fee = Dec("0.1") * 40000 * Dec("0.0005")
    assert ex.account("a").wallet == Dec("10000") - fee
    t = ex.account("a").trades[-1]
    assert t["commission"] == fee and t["maker"] is False


def test_limit_rests_then_fills_at_its_price_with_maker_fee_when_crossed():
    ex = make()
    o = ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.1"), Dec("39500"), client_id="l1")
    assert o.status == "NEW"
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 40100, 39600, 39900)  # low 39600: not crossed
    assert o.status == "NEW"
    ex.on_candle("BTCUSDT", T0 + 2 * M15, 39900, 39950, 39000, 39200)
    assert o.status == "FILLED" and o.avg_price == Dec("39500")
    assert ex.account("a").trades[-1]["maker"] is True
    assert ex.account("a").trades[-1]["commission"] == Dec("0.1") * 39500 * Dec("0.0002")


def test_marketable_limit_fills_at_once_at_the_better_last_price():
    ex = make()
    o = ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.1"), Dec("41000"))
    assert o.status == "FILLED" and o.avg_price == Dec("40000")


def test_funding_at_funding_time_longs_pay_when_rate_positive():
    ex = make(funding={"BTCUSDT": [(T0 + 8 * 3_600_000, 0.001)]})
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("1"))
    w0 = ex.account("a").wallet
    t = T0
    for _ in range(31):  # up to 07:45: no funding yet
        t += M15
        ex.on_candle("BTCUSDT", t, 40000, 40000, 40000, 40000)
    assert ex.account("a").wallet == w0
    ex.on_candle("BTCUSDT", T0 + 32 * M15, 41000, 41000, 41000, 41000)  # 08:00 opens at 41000
    paid = Dec("1") * 41000 * Dec("0.001")
    assert ex.account("a").wallet == w0 - paid
    inc = [r for r in ex.account("a").income if r["incomeType"] == "FUNDING_FEE"]
    assert len(inc) == 1 and inc[0]["income"] == -paid and inc[0]["time"] == T0 + 8 * 3_600_000


def test_short_receives_default_funding():
    ex = make()
    ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("1"))
    w0 = ex.account("a").wallet
    for i in range(1, 33):
        ex.on_candle("BTCUSDT", T0 + i * M15, 40000, 40000, 40000, 40000)
    assert ex.account("a").wallet - w0 == Dec("40000") * Dec("0.0001")


def test_stop_triggers_intrabar_at_trigger_price():
    ex = make()
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    a = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), Dec("0.1"), reduce_only=True,
                      working_type="MARK_PRICE", client_algo_id="sl")
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 40200, 39100, 39900)
    assert a.status == "NEW"
    ex.on_candle("BTCUSDT", T0 + 2 * M15, 39900, 40000, 38500, 38800)
    assert a.status == "FINISHED" and a.actual_price == Dec("39000")
    assert pos(ex).amt == 0
    child = ex.account("a").orders[a.actual_order_id]
    assert child.source == "trigger" and child.avg_price == Dec("39000")


def test_stop_gap_fills_at_the_open_beyond_it():
    ex = make()
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    a = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), Dec("0.1"), reduce_only=True)
    ex.on_candle("BTCUSDT", T0 + M15, 38000, 38500, 37900, 38200)  # opens below the stop
    assert a.status == "FINISHED" and a.actual_price == Dec("38000")


def test_stop_on_forced_mark_price_fills_at_last():
    ex = make()
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    mark_stop = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), Dec("0.05"), reduce_only=True,
                              working_type="MARK_PRICE")
    last_stop = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), Dec("0.05"), reduce_only=True,
                              working_type="CONTRACT_PRICE")
    ex.set_mark("BTCUSDT", Dec("38900"))
    assert mark_stop.status == "FINISHED" and mark_stop.actual_price == Dec("40000")
    assert last_stop.status == "NEW"


def test_take_profit_triggers_upward():
    ex = make()
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    tp = ex.place_algo("a", "BTCUSDT", "SELL", "TAKE_PROFIT_MARKET", Dec("41000"), close_position=True)
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 41500, 39990, 41200)
    assert tp.status == "FINISHED" and tp.actual_price == Dec("41000") and pos(ex).amt == 0
    pnl = [r for r in ex.account("a").income if r["incomeType"] == "REALIZED_PNL"]
    assert pnl[-1]["income"] == Dec("100")


def test_would_immediately_trigger_is_rejected():
    ex = make()
    with pytest.raises(SimError) as e:
        ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("40500"), Dec("0.1"))
    assert code(e) == -2021


def test_reduce_only_never_increases_or_flips():
    ex = make()
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.1"), reduce_only=True)
    assert code(e) == -2022
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.2"), reduce_only=True)
    assert code(e) == -2022
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"), reduce_only=True)
    assert code(e) == -2022
    # a resting reduce-only limit is cut to what is left when it fills
    lim = ex.place_order("a", "BTCUSDT", "SELL", "LIMIT", Dec("0.1"), Dec("41000"), reduce_only=True)
    ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.06"), reduce_only=True)
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 41500, 39990, 41200)
    assert lim.executed_qty == Dec("0.04") and pos(ex).amt == 0


def test_reduce_only_stop_is_capped_to_position_when_it_fires():
    ex = make()
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    sl = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), Dec("0.1"), reduce_only=True)
    ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.07"))
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 40000, 38000, 38500)
    assert sl.status == "FINISHED" and pos(ex).amt == 0


def test_close_position_closes_exactly_the_position_at_trigger_time():
    ex = make()
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    sl = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), close_position=True)
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.123"))
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 40000, 38000, 38500)
    child = ex.account("a").orders[sl.actual_order_id]
    assert child.executed_qty == Dec("0.223") and pos(ex).amt == 0


def test_close_position_with_nothing_to_close_finishes_with_an_expired_child():
    """Binance: FINISHED means the child order is done in the matching engine, filled *or* not: a
    closePosition child that finds no position expires with nothing executed, and the algo says FINISHED."""
    ex = make()
    sl = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), close_position=True)
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 40000, 38000, 38500)
    assert sl.status == "FINISHED" and pos(ex).amt == 0
    child = ex.account("a").orders[sl.actual_order_id]
    assert child.status == "EXPIRED" and child.executed_qty == 0 and sl.actual_price == 0
    assert ex.account("a").trades == []


def test_hedge_mode_rules_and_close_position_closes_its_side_only():
    ex = make(mode=PositionMode.HEDGE)
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    assert code(e) == -4061
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.1"), position_side="LONG", reduce_only=True)
    assert code(e) == -1106
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"), position_side="LONG")
    ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.2"), position_side="SHORT")
    assert pos(ex, PositionSide.LONG).amt == Dec("0.1") and pos(ex, PositionSide.SHORT).amt == Dec("-0.2")
    with pytest.raises(SimError) as e:  # closing more than the long holds
        ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.2"), position_side="LONG")
    assert code(e) == -2022
    sl = ex.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Dec("39000"), close_position=True, position_side="LONG")
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 40000, 38000, 38500)
    assert sl.status == "FINISHED"
    assert pos(ex, PositionSide.LONG).amt == 0 and pos(ex, PositionSide.SHORT).amt == Dec("-0.2")


def test_one_way_rejects_position_side_and_mode_change_rules():
    ex = make()
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"), position_side="LONG")
    assert code(e) == -4061
    with pytest.raises(SimError) as e:
        ex.set_position_mode("a", False)
    assert code(e) == -4059
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    with pytest.raises(SimError) as e:
        ex.set_position_mode("a", True)
    assert code(e) == -4068
    with pytest.raises(SimError) as e:
        ex.set_margin_mode("a", "BTCUSDT", "cross")
    assert code(e) == -4046
    with pytest.raises(SimError) as e:
        ex.set_leverage("a", "BTCUSDT", 126)
    assert code(e) == -4028


def test_insufficient_margin_min_notional_filters_and_bad_symbol():
    ex = make(balance="100")
    ex.set_leverage("a", "BTCUSDT", 1)
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.01"))  # 400 USDT at 1x
    assert code(e) == -2019
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.002"))  # 80 < 100
    assert code(e) == -4164
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.0025"))
    assert code(e) == -1111
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.003"), Dec("39000.05"))
    assert code(e) == -4014
    with pytest.raises(SimError) as e:
        ex.place_order("a", "NOPEUSDT", "BUY", "MARKET", Dec("1"))
    assert code(e) == -1121
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "STOP_MARKET", Dec("0.01"))
    assert code(e) == -4120
    assert len(ex.rejections) == 6


def test_duplicate_client_id_of_open_order_rejected_and_lookup_by_client_id():
    ex = make()
    ex.latency_clock = None  # the windows on the exchange's own time, stepped by hand below
    ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.01"), Dec("39000"), client_id="dup")
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.01"), Dec("38000"), client_id="dup")
    assert code(e) == -4116
    with pytest.raises(SimError) as e:
        ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("0.01"), Dec("38000"), client_id="bad id!")
    assert code(e) == -4015
    with pytest.raises(SimError) as e:  # eventual visibility: not found by its client id right away
        ex.get_order("a", "BTCUSDT", client_id="dup")
    assert code(e) == -2013
    ex.set_time(ex.now + ex.realism.lookup_ms)
    assert ex.get_order("a", "BTCUSDT", client_id="dup").price == Dec("39000")
    ex.place_algo("a", "BTCUSDT", "BUY", "STOP_MARKET", Dec("41000"), Dec("0.01"), client_algo_id="s1")
    with pytest.raises(SimError) as e:
        ex.get_algo("a", client_algo_id="s1")
    assert code(e) == -2013
    ex.set_time(ex.now + ex.realism.lookup_ms)
    assert ex.get_algo("a", client_algo_id="s1").trigger_price == Dec("41000")
    with pytest.raises(SimError) as e:
        ex.get_order("a", "BTCUSDT", client_id="nope")
    assert code(e) == -2013
    with pytest.raises(SimError) as e:
        ex.cancel_algo("a", client_algo_id="nope")
    assert code(e) == -2011


def test_lookup_by_client_id_finds_the_open_one_else_the_latest_per_account_and_symbol():
    """A reused client id (allowed once the earlier order is closed) finds the open order, else the most recent
    one of that account on that symbol — also for orders placed after an earlier lookup (the index catches up)."""
    ex = SimExchange(now_ms=T0, realism=Realism.replay())
    for name in ("a", "b"):
        ex.add_account(name, Dec("100000"))
    ex.open_at("BTCUSDT", T0, 40000.0)
    ex.open_at("ETHUSDT", T0, 2000.0)

    def limit(acct, sym, px, cid="x"):
        return ex.place_order(acct, sym, "BUY", "LIMIT", Dec("0.1") if sym == "BTCUSDT" else Dec("1"), Dec(px),
                              client_id=cid)

    first = limit("a", "BTCUSDT", "39000")
    ex.cancel_order("a", "BTCUSDT", client_id="x")
    assert ex.get_order("a", "BTCUSDT", client_id="x") is first
    second = limit("a", "BTCUSDT", "38000")  # placed after the lookup above
    other = limit("b", "BTCUSDT", "37000")
    assert ex.get_order("a", "BTCUSDT", client_id="x") is second  # the open one
    ex.cancel_order("a", "BTCUSDT", client_id="x")
    eth = limit("a", "ETHUSDT", "1900")
    assert ex.get_order("a", "BTCUSDT", client_id="x") is second  # the latest closed one, not the first
    assert ex.get_order("a", "ETHUSDT", client_id="x") is eth
    assert ex.get_order("b", "BTCUSDT", client_id="x") is other
    algos = []
    for trig in ("41000", "42000", "43000"):
        algos.append(ex.place_algo("a", "BTCUSDT", "BUY", "STOP_MARKET", Dec(trig), Dec("0.01"),
                                   client_algo_id="s"))
        assert ex.get_algo("a", client_algo_id="s") is algos[-1]
        ex.cancel_algo("a", client_algo_id="s")
        assert ex.get_algo("a", client_algo_id="s") is algos[-1]
    with pytest.raises(SimError) as e:
        ex.get_algo("b", client_algo_id="s")
    assert code(e) == -2013
    del ex.account("a").algos[algos[-1].algo_id]  # the latest purged from history: the one before it is found
    assert ex.get_algo("a", client_algo_id="s") is algos[-2]
    del ex.account("a").orders[second.order_id]
    assert ex.get_order("a", "BTCUSDT", client_id="x") is first


def test_isolated_liquidation_price_matches_hand_calculation_and_executes():
    ex = make()
    ex.set_leverage("a", "BTCUSDT", 10)
    ex.set_margin_mode("a", "BTCUSDT", "isolated")
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("1"))
    p = pos(ex)
    # Binance isolated long: LP = (amt*EP - WB - cum) / (amt*(1 - MMR)); 40k notional → bracket 1 (0.4 %, cum 0)
    hand = (Dec(40000) - Dec(4000)) / (Dec(1) - Dec("0.004"))
    assert p.isolated_margin == Dec(4000)
    assert ex.liquidation_price(ex.account("a"), p) == hand
    ex.set_leverage("a", "BTCUSDT", 10)
    short_ex = make()
    short_ex.set_leverage("a", "BTCUSDT", 10)
    short_ex.set_margin_mode("a", "BTCUSDT", "isolated")
    short_ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("1"))
    sp = pos(short_ex)
    assert short_ex.liquidation_price(short_ex.account("a"), sp) == (Dec(40000) + Dec(4000)) / (Dec(1) + Dec("0.004"))
    ex.on_candle("BTCUSDT", T0 + M15, 40000, 40000, 36000, 36500)
    assert p.amt == 0
    liq = [o for o in ex.account("a").orders.values() if o.source == "liquidation"]
    assert len(liq) == 1 and abs(liq[0].avg_price - hand) < Dec("0.1")


def test_cross_liquidation_uses_the_account_wallet():
    ex = make(balance="1000")
    ex.set_leverage("a", "BTCUSDT", 20)
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.4"))
    acct = ex.account("a")
    wb = acct.wallet
    hand = (Dec("0.4") * 40000 - wb) / (Dec("0.4") * (1 - Dec("0.004")))
    assert ex.liquidation_price(acct, pos(ex)) == hand
    assert Dec(37000) < hand < Dec(38000)


def test_income_history_has_transfers_pnl_and_commission():
    ex = make()
    ex.transfer("a", Dec("500"), "deposit")
    ex.transfer("a", Dec("-200"), "withdraw")
    with pytest.raises(SimError) as e:
        ex.transfer("a", Dec("-1000000"))
    assert code(e) == -5013
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.1"))
    ex.move("BTCUSDT", 40500)
    ex.place_order("a", "BTCUSDT", "SELL", "MARKET", Dec("0.1"))
    kinds = [(r["incomeType"], r["income"]) for r in ex.account("a").income]
    assert kinds[:3] == [("TRANSFER", Dec("10000")), ("TRANSFER", Dec("500")), ("TRANSFER", Dec("-200"))]
    assert ("REALIZED_PNL", Dec("50.0")) in kinds
    assert sum(1 for k, _ in kinds if k == "COMMISSION") == 2
    assert ex.account("a").wallet == Dec("10300") + Dec("50") - Dec("2") - Dec("2.025")


def test_available_balance_counts_open_orders_and_positions():
    ex = make()
    ex.set_leverage("a", "BTCUSDT", 10)
    ex.place_order("a", "BTCUSDT", "BUY", "LIMIT", Dec("1"), Dec("30000"))
    n = ex.account_numbers(ex.account("a"))
    assert n["available"] == Dec("10000") - Dec("3000")
    ex.place_order("a", "BTCUSDT", "BUY", "MARKET", Dec("0.5"))
    n = ex.account_numbers(ex.account("a"))
    assert n["available"] == ex.account("a").wallet - Dec("3000") - Dec("2000")
