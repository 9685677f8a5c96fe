"""Fills drive legs: idempotency, atomicity with the fill insert, adds, partial and full exits, funding."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from albra.exchange.types import IncomeRow
from albra.ledger import daily_pnl, kelly
from albra.ledger import legs as L
from albra.ledger.fills import allocate_funding, apply_fill
from albra.model import Direction, Fill, PositionMode, PositionSide, Side
from albra.store import Store, journal
from albra.timefmt import kst_date

from tests.ledger.conftest import T0, entry_intent, exit_intent, fill_for, open_leg


def test_fill_is_idempotent_on_trade_id(store: Store) -> None:
    intent, leg = entry_intent(store)
    f = fill_for(intent, "0.010", "65000", fee="0.325")
    assert apply_fill(store, "main", f).applied
    again = apply_fill(store, "main", f)
    assert not again.applied
    got = L.require_leg(store, leg.leg_id)
    assert got.qty == Decimal("0.010") and got.fees == Decimal("0.325") and got.state is L.LegState.OPEN
    assert store.query_one("SELECT COUNT(*) AS n FROM fills")["n"] == 1


def test_replayed_fills_of_a_closed_leg_and_unattributed_ones_change_and_journal_nothing(store: Store) -> None:
    """The fill row's insert is the idempotency check: a replay of the fill that closed a leg (whose leg now refuses
    an exit-side fill) and of a fill nobody owns is "already applied" — no second row, no journal entry."""
    leg = open_leg(store, qty="0.010", price="65000")
    ex = exit_intent(store, leg, "0.010")
    close = fill_for(ex, "0.010", "66000", fee="0.1")
    assert apply_fill(store, "main", close).applied
    stray = Fill("stray-1", "o-stray", "", "BTCUSDT", Side.SELL, PositionSide.BOTH, Decimal("66000"), Decimal("0.001"),
                 Decimal(0), Decimal(0), T0 + 5)
    assert apply_fill(store, "main", stray).applied
    before = (store.query_one("SELECT COUNT(*) AS n FROM fills")["n"], len(journal.entries(store)),
              L.require_leg(store, leg.leg_id))
    for f in (close, stray):
        again = apply_fill(store, "main", f)
        assert (again.applied, again.note) == (False, "already applied")
    assert (store.query_one("SELECT COUNT(*) AS n FROM fills")["n"], len(journal.entries(store)),
            L.require_leg(store, leg.leg_id)) == before


def test_failure_between_fill_insert_and_leg_update_leaves_nothing_half_applied(store: Store) -> None:
    intent, leg = entry_intent(store)
    f = fill_for(intent, "0.010", "65000")
    with store.tx() as c:  # a real failure inside the same transaction: the leg update aborts
        c.execute("CREATE TEMP TRIGGER boom BEFORE UPDATE ON legs BEGIN SELECT RAISE(ABORT, 'disk gone'); END")
    with pytest.raises(sqlite3.DatabaseError, match="disk gone"):
        apply_fill(store, "main", f)
    assert store.query_one("SELECT COUNT(*) AS n FROM fills")["n"] == 0
    assert L.require_leg(store, leg.leg_id).qty == 0
    with store.tx() as c:
        c.execute("DROP TRIGGER boom")
    assert apply_fill(store, "main", f).applied
    assert L.require_leg(store, leg.leg_id).qty == Decimal("0.010")


def test_adds_move_the_average_entry(store: Store) -> None:
    intent, leg = entry_intent(store)
    apply_fill(store, "main", fill_for(intent, "0.010", "60000"))
    apply_fill(store, "main", fill_for(intent, "0.030", "64000"))
    got = L.require_leg(store, leg.leg_id)
    assert got.qty == got.qty_initial == Decimal("0.040")
    assert got.entry_price == Decimal("63000")


def test_partial_then_full_exit_realises_pnl_and_closes(store: Store) -> None:
    leg = open_leg(store, qty="0.010", price="60000", fee="0.3")
    part = exit_intent(store, leg, "0.004", purpose="reduce")
    r = apply_fill(store, "main", fill_for(part, "0.004", "61000", fee="0.12"))
    assert r.realized == Decimal("4.000") and r.leg_state == "open"
    mid = L.require_leg(store, leg.leg_id)
    assert mid.qty == Decimal("0.006") and mid.exit_price == Decimal("61000")
    full = exit_intent(store, mid, "0.006", purpose="exit", candle_ts=T0 + 3_600_000)
    r2 = apply_fill(store, "main", fill_for(full, "0.006", "59000", fee="0.18"))
    assert r2.leg_state == "closed"
    done = L.require_leg(store, leg.leg_id)
    assert done.qty == 0 and done.realized_pnl == Decimal("4.000") + Decimal("-6.000")
    assert done.fees == Decimal("0.60") and done.close_reason == "exit" and done.closed_ms is not None
    assert done.exit_price == Decimal("59800")  # (0.004×61000 + 0.006×59000) / 0.010
    assert daily_pnl.realized_on(store, "main", "TFPE", kst_date(T0)) == Decimal("-2.600")


def test_short_leg_pnl_sign(store: Store) -> None:
    leg = open_leg(store, direction=Direction.SHORT, price="60000")
    ex = exit_intent(store, leg, "0.010")
    apply_fill(store, "main", fill_for(ex, "0.010", "57000"))
    assert L.require_leg(store, leg.leg_id).realized_pnl == Decimal("30.000")


def test_fill_found_by_exchange_order_id_when_the_trade_has_no_client_id(store: Store) -> None:
    intent, leg = entry_intent(store)
    store.execute("UPDATE order_intents SET exchange_order_id='777' WHERE client_id=?", (intent.client_id,))
    r = apply_fill(store, "main", fill_for(intent, "0.010", "65000", client_id="", order_id="777"))
    assert r.leg_id == leg.leg_id


def test_unattributable_fill_is_recorded_without_a_leg_and_journaled(store: Store) -> None:
    f = Fill("m1", "999", "manual-1", "BTCUSDT", Side.BUY, PositionSide.BOTH, Decimal("65000"), Decimal("0.5"),
             Decimal("0"), Decimal("0"), T0)
    r = apply_fill(store, "main", f)
    assert r.applied and r.leg_id is None
    assert store.query_one("SELECT leg_id FROM fills WHERE trade_id='m1'")["leg_id"] is None
    assert [e.kind for e in journal.entries(store, kinds=("fill_unattributed",))] == ["fill_unattributed"]


def test_exit_fill_bigger_than_the_leg_closes_it_and_flags_the_excess(store: Store) -> None:
    leg = open_leg(store, qty="0.010", price="60000")
    ex = exit_intent(store, leg, "0.010")
    apply_fill(store, "main", fill_for(ex, "0.015", "60000"))
    assert L.require_leg(store, leg.leg_id).state is L.LegState.CLOSED
    assert journal.entries(store, kinds=("fill_over_close",))[0].data["excess"] == "0.005"


def test_funding_is_spread_pro_rata_over_legs_on_the_side(store: Store) -> None:
    a = open_leg(store, strategy="A", qty="0.010")
    b = open_leg(store, strategy="B", qty="0.030")
    rows = [IncomeRow("f1", "FUNDING_FEE", Decimal("-2"), "USDT", "BTCUSDT", T0 + 10),
            IncomeRow("x1", "COMMISSION", Decimal("-1"), "USDT", "BTCUSDT", T0 + 10)]
    out = allocate_funding(store, "main", rows, now_ms=T0 + 20)
    assert out[0].shares == {a.leg_id: Decimal("-0.5"), b.leg_id: Decimal("-1.5")}
    assert L.require_leg(store, a.leg_id).funding == Decimal("-0.5")
    assert allocate_funding(store, "main", rows, now_ms=T0 + 30) == []  # idempotent on tran id
    assert L.require_leg(store, b.leg_id).funding == Decimal("-1.5")


def test_funding_on_both_hedge_sides_is_matched_by_size_or_rate(store: Store) -> None:
    lo = open_leg(store, strategy="A", qty="0.030", mode=PositionMode.HEDGE)
    sh = open_leg(store, strategy="B", qty="0.010", mode=PositionMode.HEDGE, direction=Direction.SHORT)
    rows = [IncomeRow("f1", "FUNDING_FEE", Decimal("0.6"), "USDT", "BTCUSDT", T0 + 10),
            IncomeRow("f2", "FUNDING_FEE", Decimal("-1.8"), "USDT", "BTCUSDT", T0 + 10)]
    allocate_funding(store, "main", rows, now_ms=T0 + 20)
    assert L.require_leg(store, lo.leg_id).funding == Decimal("-1.8")
    assert L.require_leg(store, sh.leg_id).funding == Decimal("0.6")
    # same size on both sides: only the rate's sign can tell; without it nothing is guessed
    tie = [IncomeRow("f3", "FUNDING_FEE", Decimal("1"), "USDT", "ETHUSDT", T0 + 10),
           IncomeRow("f4", "FUNDING_FEE", Decimal("-1"), "USDT", "ETHUSDT", T0 + 10)]
    el = open_leg(store, strategy="A", symbol="ETHUSDT", qty="0.100", price="3000", mode=PositionMode.HEDGE)
    es = open_leg(store, strategy="B", symbol="ETHUSDT", qty="0.100", price="3000", mode=PositionMode.HEDGE,
                  direction=Direction.SHORT)
    out = allocate_funding(store, "main", tie, now_ms=T0 + 20)
    assert out[0].shares == {} and "same size" in out[0].note
    assert L.require_leg(store, el.leg_id).funding == 0 and L.require_leg(store, es.leg_id).funding == 0
    rated = [IncomeRow("f5", "FUNDING_FEE", Decimal("2"), "USDT", "ETHUSDT", T0 + 28_800_000),
             IncomeRow("f6", "FUNDING_FEE", Decimal("-2"), "USDT", "ETHUSDT", T0 + 28_800_000)]
    allocate_funding(store, "main", rated, now_ms=T0 + 28_800_001,
                     rates={("ETHUSDT", T0 + 28_800_000): Decimal("0.0001")})
    assert L.require_leg(store, el.leg_id).funding == Decimal("-2")
    assert L.require_leg(store, es.leg_id).funding == Decimal("2")


def test_kelly_inputs_are_closed_leg_returns(store: Store) -> None:
    for i, px in enumerate(["66000", "64000"]):
        leg = open_leg(store, candle_ts=T0 + i * 900_000, price="65000")
        ex = exit_intent(store, leg, "0.010", candle_ts=T0 + i * 900_000 + 1)
        apply_fill(store, "main", fill_for(ex, "0.010", px))
    rets = kelly.trade_returns(store, "main", "TFPE")
    assert [round(r, 6) for r in rets] == [Decimal("0.015385"), Decimal("-0.015385")]
    assert kelly.trade_returns(store, "main", "OTHER") == []


def test_a_closing_fill_records_the_strategys_tag_else_the_purpose(store: Store) -> None:
    tagged = open_leg(store, qty="0.010", price="65000")
    ex = exit_intent(store, tagged, "0.010")
    apply_fill(store, "main", fill_for(ex, "0.004", "66000"), close_reason="kijun_touch")
    assert L.require_leg(store, tagged.leg_id).close_reason is None  # not closed yet: nothing recorded
    apply_fill(store, "main", fill_for(ex, "0.006", "66000"), close_reason="kijun_touch" * 30)
    assert L.require_leg(store, tagged.leg_id).close_reason == ("kijun_touch" * 30)[:200]
    plain = open_leg(store, qty="0.010", price="65000", candle_ts=T0 + 3_600_000)
    ex2 = exit_intent(store, plain, "0.010")
    apply_fill(store, "main", fill_for(ex2, "0.010", "66000"))
    assert L.require_leg(store, plain.leg_id).close_reason == "exit"
