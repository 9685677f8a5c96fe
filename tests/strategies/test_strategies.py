"""Strategy contract, registry, params, warm-up, exit rules and pinned behaviour on real candles."""

from __future__ import annotations

import re
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from albra.candles import CandleSeries
from albra.model import Direction
from conftest import candles_15m, cut_frames, frames_for
from albra.strategies import registry
from albra.strategies.base import (Enter, Exit, Features, LegView, MoveStop, StrategyError, UpdateLegState,
                             align_higher, closed_candles, flat_after, tighter_stop)
from walkforward import walk

STRATS = registry.all()
IDS = [c.name for c in STRATS]
H = 3_600_000


# --- registry ----------------------------------------------------------------------------------

def test_registry_names_and_case_insensitive_get() -> None:
    # the shipped strategies are registered; a user's own strategy module may add more (never pinned here)
    names = registry.names()
    assert {"MOMENTUM", "TEMPLATE", "TFPE", "ZLHMA_EMA_CROSS", "ZLMACD_ICHIMOKU"} <= set(names)
    assert names == sorted(names)
    assert registry.get("tfpe") is registry.get("TFPE") is registry.get(" Tfpe ")
    assert registry.get("zlmacd_ichimoku").name == "ZLMACD_ICHIMOKU"


def test_unknown_strategy_is_a_clear_error() -> None:
    known = re.escape(", ".join(registry.names()))
    with pytest.raises(registry.RegistryError, match=rf"unknown strategy 'nope'; known: {known}$"):
        registry.get("nope")


def _package(tmp_path: Path, name: str, files: dict[str, str]) -> str:
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for fname, src in files.items():
        (pkg / fname).write_text(textwrap.dedent(src))
    sys.path.insert(0, str(tmp_path))
    return name


USER_STRAT = '''
    from pydantic import BaseModel, ConfigDict
    from albra.strategies.base import Features, Strategy

    class Mine(Strategy):
        name = "{name}"
        timeframes = ("1h",)
        history = 10

        class Params(BaseModel):
            model_config = ConfigDict(extra="forbid")

        def prepare(self, frames):
            s = frames["1h"]
            return Features.build(s, {{"close": s.close}})

        def decide(self, features, i, legs, last_entry_ts=None):
            return []
'''


def test_user_strategy_file_is_discovered(tmp_path: Path) -> None:
    pkg = _package(tmp_path, "userstrats_a", {"mystrat.py": USER_STRAT.format(name="MyStrat"),
                                              "_helper.py": "X = 1\n"})
    try:
        found = registry.discover(pkg)
        assert list(found) == ["MYSTRAT"]
        assert found["MYSTRAT"]().params is not None
    finally:
        sys.path.remove(str(tmp_path))


def test_duplicate_names_and_broken_modules_are_errors(tmp_path: Path) -> None:
    pkg = _package(tmp_path, "userstrats_b", {"a.py": USER_STRAT.format(name="Same"),
                                              "b.py": USER_STRAT.format(name="SAME")})
    pkg2 = _package(tmp_path, "userstrats_c", {"bad.py": "import does_not_exist_anywhere\n"})
    try:
        with pytest.raises(registry.RegistryError, match="duplicate strategy name"):
            registry.discover(pkg)
        with pytest.raises(registry.RegistryError, match="userstrats_c.bad failed to import"):
            registry.discover(pkg2)
    finally:
        sys.path.remove(str(tmp_path))


def test_package_init_is_import_light() -> None:
    import subprocess

    code = ("import sys, strategies; "
            "print(sorted(m for m in ('numpy', 'pandas', 'ta', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(registry.__file__).parents[1])
    assert out.stdout.strip() == "[]"


# --- params ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", STRATS, ids=IDS)
def test_params_reject_unknown_keys_and_wrong_types(cls) -> None:
    with pytest.raises(StrategyError, match=rf"strategy {cls.name}: invalid params: typo_key: Extra inputs"):
        cls({"typo_key": 1})
    field = next(iter(cls.Params.model_fields))
    with pytest.raises(StrategyError, match=field):
        cls({field: "not a number"})
    with pytest.raises(StrategyError, match="params must be a mapping"):
        cls(42)  # type: ignore[arg-type]
    assert cls().params == cls({}).params == cls(cls.Params()).params


def test_params_override_and_defaults_are_the_original_numbers() -> None:
    t = registry.get("TFPE")()
    assert (t.params.adx_min, t.params.signal_threshold, t.params.stop_loss_atr, t.params.take_profit_atr,
            t.params.cooldown_hours) == (25, 4, 1.5, 5.0, 4.0)
    assert registry.get("TFPE")({"adx_min": 30}).params.adx_min == 30
    z = registry.get("ZLMACD_ICHIMOKU")()
    assert z.params.partial_levels == ((0.05, 0.25), (0.10, 0.35), (0.15, 0.40))
    with pytest.raises(StrategyError, match="more than 100 %"):
        registry.get("ZLHMA_EMA_CROSS")({"partial_levels": [[0.05, 0.8], [0.1, 0.5]]})


# --- decisions and helpers ---------------------------------------------------------------------

def leg(direction=Direction.LONG, entry=100.0, stop=98.0, tp=None, done=(), state=None, entry_ts=0):
    return LegView("L", direction, entry, entry_ts, Decimal("1"), Decimal("1"), stop, tp,
                   frozenset(done), state or {})


def test_decisions_validate_themselves() -> None:
    with pytest.raises(StrategyError, match="fraction"):
        Exit("L", 0.0, "r", "t")
    with pytest.raises(StrategyError, match="fraction"):
        Exit("L", 1.5, "r", "t")
    with pytest.raises(StrategyError, match="stop_loss"):
        Enter(Direction.LONG, float("nan"), None, "r")
    with pytest.raises(StrategyError, match="Direction"):
        Enter("LONG", 1.0, None, "r")  # type: ignore[arg-type]
    e = Enter(Direction.SHORT, 110.0, 90.0, "r", leg_state={"a": 1.0})
    with pytest.raises(TypeError):
        e.leg_state["b"] = 2  # type: ignore[index]
    assert UpdateLegState("L", {"peak": 1.0}).updates == {"peak": 1.0}


def test_tighter_stop_never_loosens() -> None:
    assert tighter_stop(leg(stop=98.0), 97.0, "r") is None
    assert tighter_stop(leg(stop=98.0), 99.0, "r") == MoveStop("L", 99.0, "r")
    short = leg(Direction.SHORT, stop=102.0)
    assert tighter_stop(short, 103.0, "r") is None
    assert tighter_stop(short, 101.0, "r") == MoveStop("L", 101.0, "r")
    assert flat_after([leg()], [Exit("L", 1.0, "r", "x")])
    assert not flat_after([leg()], [Exit("L", 0.25, "r", "partial_5")])


# --- closed candles and timeframe alignment ----------------------------------------------------

def series(ts: list[int], tf: str, spread: float = 1.0) -> CandleSeries:
    n = len(ts)
    c = np.full(n, 100.0)
    return CandleSeries("BTCUSDT", tf, np.array(ts, dtype=np.int64), c, c + spread, c - spread, c, np.ones(n))


def test_closed_candles_drops_the_forming_kline() -> None:
    m15 = 900_000
    s = series([0, m15, 2 * m15], "15m")
    assert len(closed_candles(s, 3 * m15 - 1)) == 2  # last one still forming
    assert len(closed_candles(s, 3 * m15)) == 3  # closed exactly now
    assert len(closed_candles(s, 2 * m15 + 5)) == 2
    assert len(closed_candles(s, 10)) == 0


def test_higher_timeframe_uses_only_its_last_closed_candle() -> None:
    m15, h4 = 900_000, 4 * H
    p = series([i * m15 for i in range(40)], "15m")
    hi = series([0, h4, 2 * h4], "4h")
    idx = align_higher(p, hi)
    assert idx[14] == -1  # 03:30-03:45 closes before the first 4h candle closes at 04:00
    assert idx[15] == 0  # 03:45-04:00 closes exactly with it
    assert idx[16] == 0 and idx[30] == 0  # during 04:00-08:00 the 04:00 candle is still forming
    assert idx[31] == 1


# --- warm-up ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", STRATS, ids=IDS)
def test_no_decisions_during_warm_up(cls) -> None:
    frames = frames_for(cls, candles_15m("BTCUSDT"))
    strat = cls()
    f = strat.prepare(frames)
    first = f.valid.index(True)
    assert first >= (27 if "atr" in f.cols else 20)  # Wilder ADX 14: 27 rows; SMA 20 + previous bar
    assert not any(f.valid[:first])
    lv = leg(entry=f["close"][0] * 1.5, stop=f["close"][0] * 1.6, direction=Direction.SHORT)
    for i in range(first):
        assert strat.decide(f, i, []) == []
        assert strat.decide(f, i, [lv]) == []
    for i in range(first, len(f)):
        assert all(np.isfinite(v[i]) for v in f.cols.values())


@pytest.mark.parametrize("cls", STRATS, ids=IDS)
def test_flat_prices_zero_atr_never_decide(cls) -> None:
    """Constant candles give ATR 0 (ta would say 0.0 from row 0): nothing may be decided."""
    tf = cls.timeframes[0]
    step = frames_for(cls, candles_15m("BTCUSDT").take(0, 8))[tf].interval_ms
    n = 3000 if tf == "15m" else 1600
    base = series([i * 900_000 for i in range(n * step // 900_000)], "15m", spread=0.0)
    frames = {t: base.resample(t) for t in cls.timeframes}
    strat = cls()
    f = strat.prepare(frames)
    if "atr" in f.cols:
        assert not any(f.valid)
    assert all(strat.decide(f, i, []) == [] for i in range(len(f)))


# --- exit rules on hand-made features ---------------------------------------------------------

def feats(**cols: float) -> Features:
    """One bar (index 1) after one dummy bar, so a leg entered at ts 0 can exit at ts 1."""
    return Features("BTCUSDT", "1h", [0, H], {k: [v, v] for k, v in cols.items()}, [True, True])


ZL_BASE = dict(close=100.0, high=101.0, low=99.0, diff=1.0, prev_diff=1.0, tenkan=99.0, kijun=90.0,
               senkou_a=95.0, senkou_b=94.0, cloud_top=95.0, cloud_bottom=94.0, adx=10.0, atr=1.0)


def zl_decide(close: float, lv: LegView, **over: float):
    s = registry.get("ZLMACD_ICHIMOKU")()
    cols = {**ZL_BASE, "close": close, "high": close + 1, "low": close - 1, **over}
    return s.decide(feats(**cols), 1, [lv])


def test_zlmacd_max_loss_kijun_cloud_and_cross_exits() -> None:
    assert [d.tag for d in zl_decide(97.9, leg(stop=90.0))] == ["max_loss"]
    assert [d.tag for d in zl_decide(100.0, leg(), kijun=99.5)] == ["kijun_touch"]
    assert [d.tag for d in zl_decide(100.0, leg(), cloud_bottom=100.5, cloud_top=101)] == ["cloud_break"]
    assert [d.tag for d in zl_decide(100.0, leg(), diff=-0.1, prev_diff=0.2)] == ["opposite_cross"]
    short = leg(Direction.SHORT, stop=102.0)
    assert [d.tag for d in zl_decide(100.0, short, kijun=100.5, cloud_top=90, cloud_bottom=89)] == ["kijun_touch"]


def test_zlmacd_partials_breakeven_and_trailing() -> None:
    ds = zl_decide(106.0, leg())
    exits = [d for d in ds if isinstance(d, Exit)]
    assert [(e.tag, e.fraction) for e in exits] == [("partial_5", 0.25)]
    assert UpdateLegState("L", {"peak": 106.0}) in ds
    moves = [d for d in ds if isinstance(d, MoveStop)]
    assert [m.new_stop for m in moves] == [pytest.approx(100.2)]
    ds = zl_decide(116.0, leg(done={"partial_5"}))
    assert [(d.tag, d.fraction) for d in ds if isinstance(d, Exit)] == [("partial_10", 0.35), ("partial_15", 1.0)]
    assert not any(isinstance(d, MoveStop) for d in ds)  # the leg is fully closed
    # peak 120 (+20 %) activates the trail: 10 % below = 108; close 107 gives back more -> exit
    lv = leg(done={"partial_5", "partial_10", "partial_15"}, state={"peak": 120.0})
    assert [d.tag for d in zl_decide(107.0, lv)] == ["trailing_stop"]
    ms = [d for d in zl_decide(112.0, lv) if isinstance(d, MoveStop)]
    assert ms and ms[0].new_stop == pytest.approx(108.0)


MOM_BASE = dict(close=100.0, adx=40.0, pdi=30.0, ndi=10.0, pos=0.5, width_pct=0.02, roc=0.0,
                accel=0.0, vol_ratio=1.0, atr=1.0)


def mom_decide(lv: LegView, **over: float):
    return registry.get("MOMENTUM")().decide(feats(**{**MOM_BASE, **over}), 1, [lv])


def test_momentum_adx_drop_di_reversal_and_ratchet() -> None:
    lv = leg(stop=96.0, state={"entry_atr": 2.0})
    assert [d.tag for d in mom_decide(lv, adx=24.0)] == ["adx_drop"]
    assert [d.tag for d in mom_decide(lv, pdi=10.0, ndi=12.0)] == ["di_reversal"]
    # best close +2.4 ATR (104.8): floor to 2.0 ATR of steps, trail 1.5 ATR -> entry + 0.5 ATR = 101
    ds = mom_decide(lv, close=104.8)
    assert [d.new_stop for d in ds if isinstance(d, MoveStop)] == [pytest.approx(101.0)]
    ds = mom_decide(lv, close=102.9)  # +1.45 ATR: not yet
    assert not any(isinstance(d, MoveStop) for d in ds)
    ds = mom_decide(lv, close=103.0)  # +1.5 ATR: breakeven
    assert [d.new_stop for d in ds if isinstance(d, MoveStop)] == [pytest.approx(100.0)]
    # the ratchet uses the stored peak: close back at 100.5 is beyond the 101 level -> exit
    assert [d.tag for d in mom_decide(leg(stop=101.0, state={"entry_atr": 2.0, "peak": 104.8}),
                                      close=100.5)] == ["trailing_stop"]


ZH_BASE = dict(close=100.0, prev_close=100.0, zlhma=99.0, z1=98.9, z2=98.8, z3=98.7, ema50=101.0,
               ema200=100.0, diff=1.0, prev_diff=1.0, adx=30.0, atr=1.0)


def zh_decide(lv: LegView, **over: float):
    return registry.get("ZLHMA_EMA_CROSS")().decide(feats(**{**ZH_BASE, **over}), 1, [lv])


def test_zlhma_ema_cross_exit_reverses() -> None:
    ds = zh_decide(leg(), diff=-0.1, prev_diff=0.1, zlhma=101.0, z1=101.1, z2=101.2, z3=101.3)
    assert isinstance(ds[0], Exit) and ds[0].tag == "ema_cross"
    assert isinstance(ds[1], Enter) and ds[1].direction is Direction.SHORT
    assert ds[1].stop_loss == pytest.approx(101.5) and ds[1].take_profit == pytest.approx(95.0)


def test_zlhma_cross_trailing_and_partials() -> None:
    assert [d.tag for d in zh_decide(leg(), prev_close=100.0, z1=99.5, close=99.0, zlhma=99.5)] == ["zlhma_cross"]
    ds = zh_decide(leg(), close=106.0, prev_close=105.0, zlhma=104.0, z1=103.0)
    assert [(d.tag, d.fraction) for d in ds if isinstance(d, Exit)] == [("partial_5", 0.25)]
    assert [d.new_stop for d in ds if isinstance(d, MoveStop)] == [pytest.approx(106.0 * 0.98)]
    lv = leg(done={"partial_5"}, state={"peak": 108.0})
    assert [d.tag for d in zh_decide(lv, close=105.5, prev_close=106, zlhma=104, z1=103.9)] == ["trailing_stop"]


def test_exits_wait_for_the_bar_after_entry() -> None:
    lv = leg(stop=90.0, entry_ts=H)  # entered on the close of bar 1 itself
    assert not any(isinstance(d, Exit) for d in zl_decide(97.0, lv))
    assert [d.tag for d in zl_decide(97.0, leg(stop=90.0, entry_ts=0))] == ["max_loss"]


# --- real candles: determinism, pinned counts, live path ---------------------------------------

PINNED = {  # (entries, longs, shorts, decisions) over the bundled 2024-01..06 candles
    ("MOMENTUM", "BTCUSDT"): (1, 1, 0, 1),
    ("MOMENTUM", "ETHUSDT"): (1, 1, 0, 6),
    ("TEMPLATE", "BTCUSDT"): (231, 114, 117, 387),
    ("TEMPLATE", "ETHUSDT"): (230, 111, 119, 359),
    ("TFPE", "BTCUSDT"): (166, 87, 79, 166),
    ("TFPE", "ETHUSDT"): (176, 102, 74, 176),
    ("ZLHMA_EMA_CROSS", "BTCUSDT"): (10, 5, 5, 39),
    ("ZLHMA_EMA_CROSS", "ETHUSDT"): (12, 6, 6, 51),
    ("ZLMACD_ICHIMOKU", "BTCUSDT"): (36, 14, 22, 135),
    ("ZLMACD_ICHIMOKU", "ETHUSDT"): (55, 31, 24, 194),
}


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
@pytest.mark.parametrize("cls", STRATS, ids=IDS)
def test_deterministic_and_pinned_on_real_candles(cls, symbol: str) -> None:
    frames = frames_for(cls, candles_15m(symbol))
    a, b = walk(cls(), frames), walk(cls(), frames)
    assert a.decisions == b.decisions
    if (cls.name, symbol) in PINNED:  # shipped strategies; a user's added strategy is checked for the rest only
        assert (a.entries, a.longs, a.shorts, len(a.decisions)) == PINNED[(cls.name, symbol)]
    for _, d in a.decisions:
        assert d.reason if not isinstance(d, UpdateLegState) else d.updates
        if isinstance(d, Enter):
            assert d.reason.startswith(f"{cls.name} {d.direction.value.lower()}")


@pytest.mark.parametrize("cls", STRATS, ids=IDS)
def test_evaluate_uses_a_bounded_window(cls) -> None:
    """evaluate == decide on the last bar of the last ``history`` bars, whatever came before."""
    frames = frames_for(cls, candles_15m("BTCUSDT"))
    strat = cls()
    hist = cls.history_by_timeframe()
    f = strat.prepare(frames)
    busy = [i for i, _ in walk(strat, frames).decisions if i >= hist[cls.timeframes[0]]][:5]
    for t in busy + [len(f) - 1]:
        cut = cut_frames(cls, frames, t)
        window = {tf: s.take(max(0, len(s) - hist[tf]), len(s)) for tf, s in cut.items()}
        assert strat.evaluate(cut, []) == strat.decide(strat.prepare(window), len(window[cls.timeframes[0]]) - 1, [])
        # what came before the window does not matter: only the window is read
        old = {tf: s.take(len(s) - min(len(s), hist[tf]), len(s)) for tf, s in cut.items()}
        assert strat.evaluate(old, []) == strat.evaluate(cut, [])


def test_evaluate_refuses_missing_or_mislabelled_frames() -> None:
    tfpe = registry.get("TFPE")()
    s = candles_15m("BTCUSDT").take(0, 500)
    with pytest.raises(StrategyError, match="needs a 4h frame"):
        tfpe.evaluate({"15m": s})
    with pytest.raises(StrategyError, match="frame '4h' holds 15m candles"):
        tfpe.evaluate({"15m": s, "4h": s})


def test_strategies_outside_the_package_via_strategy_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ALBRA_STRATEGY_PATH folders register their strategies (the bench's EMA cross lives in one); a broken file
    there is an error naming it, and a name clashing with a shipped strategy is a duplicate."""
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "outside.py").write_text(textwrap.dedent(USER_STRAT.format(name="OUTSIDE_TEST_ONLY")))
    (ext / "_private.py").write_text("raise RuntimeError('never imported')")
    monkeypatch.setenv(registry.PATH_ENV, str(ext))
    registry.refresh()
    try:
        assert registry.get("outside_test_only").name == "OUTSIDE_TEST_ONLY"
        assert "OUTSIDE_TEST_ONLY" in registry.names() and "TFPE" in registry.names()
        (ext / "broken.py").write_text("import nope_not_a_module\n")
        registry.refresh()
        with pytest.raises(registry.RegistryError, match=r"broken.py failed to import: ModuleNotFoundError"):
            registry.names()
        (ext / "broken.py").write_text(textwrap.dedent(USER_STRAT.format(name="TFPE")))
        registry.refresh()
        with pytest.raises(registry.RegistryError, match="duplicate strategy name 'TFPE'"):
            registry.names()
        monkeypatch.setenv(registry.PATH_ENV, str(tmp_path / "missing"))
        registry.refresh()
        with pytest.raises(registry.RegistryError, match="is not a directory"):
            registry.names()
    finally:
        monkeypatch.delenv(registry.PATH_ENV)
        registry.refresh()
