"""Pre-trade risk: every rule, its order, journaled refusals, and MDD / daily loss surviving a restart."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from albra.exchange.types import Balance, IncomeRow
from albra.ledger import legs as L
from albra.ledger.fills import apply_fill
from albra.model import Direction, PositionMode
from albra.risk import EntryRequest, RiskInputError, RiskLimits, evaluate_entry, update_equity
from albra.risk.sizing import half_kelly_pct
from albra.store import Store, flags, incidents, journal, risk_state
from albra.timefmt import kst_day_start_ms

from tests.ledger.conftest import BTC, ETH, T0, exit_intent, fill_for, open_leg

DAY0 = kst_day_start_ms(T0)
NOON = DAY0 + 12 * 3_600_000
LIM = RiskLimits()


def bal(equity: str, ts: int = NOON) -> Balance:
    e = Decimal(equity)
    return Balance(e, Decimal(0), e, e, ts)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "albra.db")
    yield s
    s.close()


def req(store: Store, *, equity: str = "10000", strategy: str = "TFPE", symbol: str = "BTCUSDT",
        direction: Direction = Direction.LONG, price: str = "65000", size: str = "10",
        mode: PositionMode = PositionMode.ONE_WAY, now: int = NOON, marks=None) -> EntryRequest:
    return EntryRequest("main", strategy, symbol, direction, Decimal(price), None, Decimal(size), mode,
                        BTC if symbol == "BTCUSDT" else ETH, bal(equity, now), L.live_legs(store, "main"), now,
                        marks or {})


def ready(store: Store, equity: str = "10000", now: int = NOON) -> None:
    update_equity(store, "main", bal(equity, now), [], now)


def refusals(store: Store) -> list[tuple[str, str]]:
    return [(e.data["rule"], e.message) for e in journal.entries(store, kinds=("risk_refused",))]


def test_allowed_entry_is_sized_and_quantised(store: Store) -> None:
    ready(store)
    v = evaluate_entry(store, LIM, req(store, size="10"))
    assert v.allowed and v.rule == "ok"
    assert v.qty == Decimal("0.015")  # 1000 / 65000 = 0.01538… floored to the 0.001 step
    assert v.notional == Decimal("975.000")
    assert v.multipliers["kelly"] == 1 and v.multipliers["mdd"] == 1
    assert refusals(store) == []


def test_rule_order_kill_switch_before_pause_before_everything(store: Store) -> None:
    ready(store)
    open_leg(store, strategy="OTHER", direction=Direction.SHORT, now_ms=NOON - 1000, candle_ts=NOON - 900_000)
    flags.pause(store, "main", "TFPE", reason="maintenance", ts=NOON)
    flags.set_kill_switch(store, True, reason="drill", ts=NOON)
    assert evaluate_entry(store, LIM, req(store)).rule == "kill_switch"
    flags.set_kill_switch(store, False, ts=NOON)
    v = evaluate_entry(store, LIM, req(store))
    assert v.rule == "pause" and "main/TFPE" in v.reason
    flags.resume(store, "main", "TFPE", ts=NOON)
    v = evaluate_entry(store, LIM, req(store))
    assert v.rule == "opposite_leg" and "OTHER's open SHORT leg" in v.reason
    assert [r for r, _ in refusals(store)] == ["kill_switch", "pause", "opposite_leg"]
    entry = journal.entries(store, kinds=("risk_refused",))[-1]
    assert entry.level == "WARNING" and entry.strategy == "TFPE" and entry.data["reason"] == v.reason


def test_opposite_leg_allowed_in_hedge_mode(store: Store) -> None:
    ready(store)
    open_leg(store, strategy="OTHER", direction=Direction.SHORT, mode=PositionMode.HEDGE, now_ms=NOON - 1,
             candle_ts=NOON - 900_000)
    assert evaluate_entry(store, LIM, req(store, mode=PositionMode.HEDGE)).allowed
    assert evaluate_entry(store, LIM, req(store, direction=Direction.SHORT, mode=PositionMode.HEDGE)).allowed


def test_max_open_legs(store: Store) -> None:
    ready(store)
    for i in range(2):
        open_leg(store, strategy=f"S{i}", qty="0.001", now_ms=NOON - 1, candle_ts=NOON - 900_000)
    v = evaluate_entry(store, replace(LIM, max_open_legs=2), req(store))
    assert v.rule == "max_open_legs" and "2 open legs" in v.reason
    assert evaluate_entry(store, replace(LIM, max_open_legs=3), req(store)).allowed


def test_daily_loss_per_account_and_reset_across_kst_midnight(store: Store) -> None:
    ready(store, "10000", now=DAY0 + 1000)
    v = evaluate_entry(store, LIM, req(store, equity="9690", now=NOON))
    assert v.rule == "daily_loss" and "3.10%" in v.reason
    assert evaluate_entry(store, LIM, req(store, equity="9710", now=NOON)).allowed
    nxt = DAY0 + 86_400_000 + 60_000  # 00:01 KST next day
    v = evaluate_entry(store, LIM, req(store, equity="9690", now=nxt))
    assert v.rule == "daily_loss" and "no daily anchor" in v.reason  # yesterday's anchor is not today's
    ready(store, "9690", now=nxt)
    assert evaluate_entry(store, LIM, req(store, equity="9690", now=nxt + 1)).allowed


def test_daily_loss_per_strategy_realised_plus_unrealised(store: Store) -> None:
    ready(store, "10000", now=DAY0 + 1000)
    leg = open_leg(store, strategy="TFPE", qty="0.100", price="65000", now_ms=NOON - 10, candle_ts=NOON - 900_000)
    ex = exit_intent(store, leg, "0.050", purpose="reduce")
    apply_fill(store, "main", fill_for(ex, "0.050", "62000", ts=NOON - 5))  # realised −150
    # unrealised on the remaining 0.050 at mark 59000: −300 → −450 = 4.5 % of 10 000
    v = evaluate_entry(store, LIM, req(store, symbol="ETHUSDT", price="3000", marks={"BTCUSDT": Decimal("59000")}))
    assert v.rule == "daily_loss" and "strategy TFPE" in v.reason
    assert evaluate_entry(store, LIM, req(store, strategy="OTHER", symbol="ETHUSDT", price="3000",
                                          direction=Direction.SHORT)).allowed
    v = evaluate_entry(store, LIM, req(store, symbol="ETHUSDT", price="3000"))  # no BTC mark: not zero, refused
    assert v.rule == "no_mark_price" and "no mark price for BTCUSDT" in v.reason  # its own rule, not a loss
    # the next KST day the realised part is yesterday's; only today's unrealised counts
    nxt = DAY0 + 86_400_000 + 1000
    ready(store, "9550", now=nxt)
    assert evaluate_entry(store, LIM, req(store, symbol="ETHUSDT", price="3000", now=nxt + 1, equity="9550",
                                          direction=Direction.SHORT, marks={"BTCUSDT": Decimal("62000")})).allowed


def test_mdd_levels_scale_size_and_halt_opens_incident(store: Store) -> None:
    ready(store, "10000", now=DAY0 + 1)
    cases = [("7500", 0, "1"), ("6900", 1, "0.7"), ("6400", 2, "0.5"), ("5900", 3, "0.3"), ("4900", 4, "0.1")]
    for eq, level, mult in cases:
        u = update_equity(store, "main", bal(eq), [], NOON)
        assert (u.level, u.multiplier) == (level, Decimal(mult))
        v = evaluate_entry(store, replace(LIM, daily_loss_pct=Decimal("99"), strategy_daily_loss_pct=Decimal("99")),
                           req(store, equity=eq, size="10", symbol="ETHUSDT", price="3000"))
        assert v.allowed and v.multipliers["mdd"] == Decimal(mult)
        assert v.qty == ETH.floor_qty(Decimal(eq) * Decimal("0.1") * Decimal(mult) / Decimal("3000"))
    u = update_equity(store, "main", bal("3900"), [], NOON + 1)
    assert u.halted and u.changes[0].new == 5 and u.incident_id and not u.flatten
    assert incidents.get(store, u.incident_id).kind == "mdd_halt"
    v = evaluate_entry(store, replace(LIM, daily_loss_pct=Decimal("99")), req(store, equity="3900"))
    assert v.rule == "mdd" and "halt" in v.reason
    assert [e.data["new"] for e in journal.entries(store, kinds=("mdd_level",))] == [1, 2, 3, 4, 5]


def test_flatten_signal_only_when_configured(store: Store) -> None:
    ready(store, "10000")
    u = update_equity(store, "main", bal("3000"), [], NOON + 1, replace(LIM, flatten_on_halt=True))
    assert u.halted and u.flatten


def test_transfers_from_income_history_move_the_peak(store: Store) -> None:
    ready(store, "10000", now=NOON)
    # withdrawal of 4000: equity 6000 is not a 40 % drawdown
    w = IncomeRow("t1", "TRANSFER", Decimal("-4000"), "USDT", "", NOON + 10)
    u = update_equity(store, "main", bal("6000"), [w], NOON + 20)
    assert u.peak == Decimal("6000") and u.drawdown_pct == 0 and u.level == 0
    assert update_equity(store, "main", bal("6000"), [w], NOON + 30).peak == Decimal("6000")  # idempotent
    # a deposit raises the peak: equity 7000 after +2000 is a drawdown of 1000 / 8000
    d = IncomeRow("t2", "TRANSFER", Decimal("2000"), "USDT", "", NOON + 40)
    u = update_equity(store, "main", bal("7000"), [d], NOON + 50)
    assert u.peak == Decimal("8000") and u.drawdown_pct == Decimal("12.5")
    # daily loss does not count the withdrawal either
    assert evaluate_entry(store, LIM, req(store, equity="7990", now=NOON + 60)).allowed
    # a balance drop with no transfer row is a loss, not a withdrawal
    u = update_equity(store, "main", bal("5000"), [], NOON + 70)
    assert u.level == 2 and u.peak == Decimal("8000")


def test_a_failed_equity_read_is_an_error_never_a_zero(store: Store) -> None:
    ready(store)
    with pytest.raises(RiskInputError):
        update_equity(store, "main", bal("0"), [], NOON)
    with pytest.raises(RiskInputError):
        update_equity(store, "main", None, [], NOON)  # type: ignore[arg-type]
    assert risk_state.get(store, "main", risk_state.MDD_PEAK)["equity"] == "10000"
    v = evaluate_entry(store, LIM, req(store, equity="0"))
    assert not v.allowed and v.rule == "equity"


def test_no_persisted_state_refuses(store: Store) -> None:
    v = evaluate_entry(store, LIM, req(store))
    assert v.rule == "daily_loss" and "update_equity" in v.reason


def test_mdd_and_daily_loss_survive_a_restart(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        update_equity(s, "main", bal("10000", DAY0 + 1), [], DAY0 + 1)
        update_equity(s, "main", bal("6500"), [], NOON)
    with Store.open(p) as s:
        u = update_equity(s, "main", bal("6400"), [], NOON + 1)
        assert u.peak == Decimal("10000") and u.level == 2 and u.day_start_equity == Decimal("10000")
        assert u.changes == []  # 35 % before the restart, 36 % after: the persisted level is still 2
        v = evaluate_entry(s, LIM, req(s, equity="6400"))
        assert v.rule == "daily_loss" and "36.00%" in v.reason


def test_concentration(store: Store) -> None:
    ready(store)
    v = evaluate_entry(store, LIM, req(store, size="45"))
    assert v.rule == "concentration" and "45.00%" in v.reason
    open_leg(store, strategy="TFPE", qty="0.050", now_ms=NOON - 1, candle_ts=NOON - 900_000)  # 3250 = 32.5 %
    v = evaluate_entry(store, LIM, req(store, size="10"))
    assert v.rule == "concentration"


def test_correlation_refuses_second_same_direction_leg(store: Store) -> None:
    ready(store)
    open_leg(store, strategy="A", qty="0.010", now_ms=NOON - 1, candle_ts=NOON - 900_000)
    v = evaluate_entry(store, LIM, req(store, strategy="B", symbol="ETHUSDT", price="3000"))
    assert v.rule == "correlation" and "0.85" in v.reason
    assert evaluate_entry(store, LIM, req(store, strategy="B", symbol="ETHUSDT", price="3000",
                                          direction=Direction.SHORT)).allowed
    assert evaluate_entry(store, replace(LIM, correlation_threshold=Decimal("0.9")),
                          req(store, strategy="B", symbol="ETHUSDT", price="3000")).allowed
    assert evaluate_entry(store, LIM, req(store, strategy="B")).allowed  # same symbol, same direction: stacks


def test_min_notional_and_min_qty_refusals(store: Store) -> None:
    ready(store, "500")
    v = evaluate_entry(store, LIM, req(store, equity="500", size="10"))  # 50 USDT → 0.000 BTC
    assert v.rule == "sizing" and "minimum qty" in v.reason
    v = evaluate_entry(store, LIM, req(store, equity="500", size="3", symbol="ETHUSDT", price="3000"))
    assert v.rule == "sizing" and "minimum notional" in v.reason  # 15 USDT → 0.005 ETH = 15 < 20


def _closed_trades(store: Store, results: list[str], first: int = 0) -> None:
    for i, px in enumerate(results, start=first):
        ts = NOON - 86_400_000 * 3 + i * 900_000
        leg = open_leg(store, strategy="TFPE", qty="0.010", price="65000", now_ms=ts, candle_ts=ts)
        ex = exit_intent(store, leg, "0.010", candle_ts=ts + 1)
        apply_fill(store, "main", fill_for(ex, "0.010", px, ts=ts + 10))


def test_half_kelly_formula_and_clamp() -> None:
    rets = [Decimal("0.02")] * 12 + [Decimal("-0.01")] * 8  # W 0.6, R 2 → f 0.4 → half 20 %
    assert half_kelly_pct(rets, LIM) == Decimal("20")
    assert half_kelly_pct(rets[:19], LIM) is None
    weak = [Decimal("0.01")] * 11 + [Decimal("-0.01")] * 9  # f 0.1 → half 5 %
    assert half_kelly_pct(weak, LIM) == Decimal("5.0")
    mid = [Decimal("0.015")] * 11 + [Decimal("-0.01")] * 9  # f = .55 - .45/1.5 = .25 → 12.5 %
    assert half_kelly_pct(mid, LIM) == Decimal("12.50")
    assert half_kelly_pct([Decimal("-0.01")] * 20, LIM) == Decimal("5")  # clamped up
    assert half_kelly_pct([Decimal("0.01")] * 20, LIM) == Decimal("20")  # clamped down


def test_kelly_uses_persisted_closed_trades_only_from_20(store: Store) -> None:
    ready(store)
    _closed_trades(store, ["66300"] * 11 + ["64350"] * 8)  # 19 trades: configured size
    v = evaluate_entry(store, LIM, req(store, size="10", symbol="ETHUSDT", price="3000", strategy="TFPE"))
    assert v.allowed and v.multipliers["kelly"] == 1 and v.multipliers["kelly_trades"] == 19
    _closed_trades(store, ["64350"], first=19)  # 20th: W .55, R 2 → f .325 → half 16.25 %
    v = evaluate_entry(store, LIM, req(store, size="10", symbol="ETHUSDT", price="3000", strategy="TFPE"))
    assert v.multipliers["size_pct"] == Decimal("16.25") and v.multipliers["kelly"] == Decimal("1.625")
    assert v.qty == ETH.floor_qty(Decimal("10000") * Decimal("0.1625") / Decimal("3000"))
