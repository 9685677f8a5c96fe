"""No look-ahead: a decision for bar t never depends on candles after t.

For random cut points t, ``decide`` on the features of candles up to bar t (higher timeframes: only
candles closed by then) must equal ``decide`` at bar t on the features of the whole series --
with no legs and with a synthetic open leg. Cut points are drawn both uniformly and from the bars
where the full series produced decisions (so non-empty decisions are compared too).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from albra.model import Direction
from conftest import candles_15m, cut_frames, frames_for
from albra.strategies import registry
from albra.strategies.base import Features, LegView, Strategy
from walkforward import walk

# Enough 15m bars for every strategy to warm up (ZLHMA's EMA200 on 1h needs 800 x 15m).
N15 = 9000
STRATS = registry.all()
_cache: dict[str, tuple[dict, Features, list[int]]] = {}


def prepared(cls: type[Strategy]) -> tuple[dict, Features, list[int]]:
    if cls.name not in _cache:
        base = candles_15m("ETHUSDT").take(0, N15)
        frames = frames_for(cls, base)
        strat = cls()
        feats = strat.prepare(frames)
        busy = sorted({i for i, _ in walk(strat, frames).decisions})
        _cache[cls.name] = (frames, feats, busy)
    return _cache[cls.name]


def synthetic_leg(feats: Features, t: int, age: int, long: bool, partial_done: bool) -> LegView:
    e = max(0, t - age)
    entry = feats["close"][e]
    d = Direction.LONG if long else Direction.SHORT
    return LegView(
        leg_id="L1", direction=d, entry_price=entry, entry_ts=feats.ts[e],
        qty_initial=Decimal("1"), qty=Decimal("0.75") if partial_done else Decimal("1"),
        stop_price=entry * (1 - d.sign * 0.03), take_profit=None,
        partial_exits_done=frozenset({"partial_5"}) if partial_done else frozenset(),
        state={"peak": entry * (1 + d.sign * 0.04), "entry_atr": entry * 0.004},
    )


@pytest.mark.parametrize("cls", STRATS, ids=[c.name for c in STRATS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_prefix_decisions_equal_full_series(cls: type[Strategy], data: st.DataObject) -> None:
    frames, full, busy = prepared(cls)
    n = len(full)
    pick = st.sampled_from(busy) if busy else st.integers(0, n - 1)
    t = data.draw(st.one_of(st.integers(0, n - 1), pick), label="t")
    with_leg = data.draw(st.booleans(), label="with_leg")
    strat = cls()
    part = strat.prepare(cut_frames(cls, frames, t))
    assert len(part) == t + 1
    legs = []
    if with_leg:
        legs = [synthetic_leg(full, t, data.draw(st.integers(1, 60), label="age"),
                              data.draw(st.booleans(), label="long"), data.draw(st.booleans(), label="partial"))]
    last = data.draw(st.one_of(st.none(), st.integers(0, 40)), label="bars_since_entry")
    last_ts = None if last is None else full.ts[max(0, t - last)]
    assert strat.decide(part, t, legs, last_ts) == strat.decide(full, t, legs, last_ts)
    assert part.valid[t] == full.valid[t]
    # every feature of bar t is bit-identical (NaN where NaN)
    for k, col in full.cols.items():
        a, b = part.cols[k][t], col[t]
        assert a == b or (np.isnan(a) and np.isnan(b)), (k, a, b)


def test_the_comparison_catches_a_peeking_strategy() -> None:
    """The same comparison fails for a strategy whose features read the next candle (the
    original TFPE's centred swing window did this), so the property test can fail."""
    from albra.strategies.base import Features as F
    from albra.strategies.template import MaCrossTemplate

    class Peeking(MaCrossTemplate):
        name = "PEEKING_TEST_ONLY"

        def prepare(self, frames):  # type: ignore[override]
            f = super().prepare(frames)
            nxt = f["diff"][1:] + [float("nan")]  # the next bar's value: look-ahead
            return F(f.symbol, f.timeframe, f.ts, {**f.cols, "diff": nxt}, f.valid)

    frames, full_t, busy = prepared(MaCrossTemplate)
    strat = Peeking()
    full = strat.prepare(frames)
    mismatches = 0
    for t in busy[:40]:
        part = strat.prepare(cut_frames(Peeking, frames, t))
        if strat.decide(part, t, []) != strat.decide(full, t, []):
            mismatches += 1
    assert mismatches > 0
