"""A runner restarted after a 4-day outage against the local Binance server (the clock advanced through the admin
API): the missed candles are caught up, but no entry for a candle older than the maximum signal age reaches the
exchange; exits that became due while it was down run at once; TFPE (400-bar warm-up) evaluates again.

Also the pure classification (:mod:`albra.engine.catch_up`) and the re-seed of a gap longer than one klines request.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from albra.config import load_settings
from albra.engine import catch_up as C
from albra.engine.runner import Runner
from albra.engine.scheduler import Due, Track, get_mark, last_closed_open
from albra.exchange.client_ids import parse_client_id
from albra.ledger import legs as L
from albra.model import Direction, PositionMode
from albra.store import Store, journal
from albra.timefmt import DAY_MS, HOUR_MS
from albra.strategies.base import Enter, Exit, MoveStop
from engine_helpers import QuietNotifier
from tests.runbook.drill import KEYS, Drill, open_leg

pytestmark = pytest.mark.anyio

START = "2024-03-04T06:07:00Z"




def _settings(tmp_path: Path, url: str, max_age: int = 1):
    cfg = tmp_path / "albra.toml"
    cfg.write_text(textwrap.dedent(f"""
        [paths]
        state_dir = "{tmp_path / 'state'}"
        log_dir = "{tmp_path / 'logs'}"
        [telegram]
        enabled = false
        [runner]
        max_signal_age_bars = {max_age}
        [accounts.sub1]
        mode = "live"
        base_url = "{url}"
        api_key_env = "CU_KEY"
        api_secret_env = "CU_SECRET"
        position_mode = "hedge"
        [[accounts.sub1.strategies]]
        name = "TFPE"
        symbols = ["BTCUSDT"]
        timeframe = "15m"
        leverage = 10
        size_pct = 10.0
        [[accounts.sub1.strategies]]
        name = "TEMPLATE"
        symbols = ["BTCUSDT"]
        timeframe = "1h"
        leverage = 10
        size_pct = 10.0
        params = {{ cooldown_hours = 0.0 }}
        """))
    return load_settings(cfg)


async def _turn(settings, store) -> int:
    """A runner's start, one evaluation pass (the catch-up) and a clean stop; how many candles it evaluated."""
    r = Runner(settings, "sub1", store=store, notifier=QuietNotifier())
    await r.start()
    n = await r.evaluate_due()
    await r.shutdown()
    return n


@pytest.fixture
async def sim():
    from albra.sim.realism import Realism
    from albra.sim.testing import run_sim_server

    async with run_sim_server(start=START, speed=0, accounts=dict(KEYS), hedge={"sub1"}, weight_limit=0,
                              realism=Realism.ideal()) as handle:
        yield handle


def test_classification() -> None:
    tr = Track("TEMPLATE", "BTCUSDT", "1h")
    now = 100 * HOUR_MS + 5 * 60_000
    newest = last_closed_open(now, HOUR_MS)
    assert C.is_fresh(Due(tr, newest), now, 1) and not C.is_fresh(Due(tr, newest - HOUR_MS), now, 1)
    assert C.is_fresh(Due(tr, newest - HOUR_MS), now, 2) and not C.is_fresh(Due(tr, newest - 2 * HOUR_MS), now, 2)
    assert C.age_text(Due(tr, newest - 2 * HOUR_MS), now) == "2 h 5 min"
    assert C.age_text(Due(tr, newest - 26 * HOUR_MS), now) == "1 d 2 h"
    split = C.split_stale([Enter(Direction.LONG, 1.0, None, "x"), Exit("L1", 1.0, "y", "t"), MoveStop("L1", 2.0, "z")])
    assert [type(d).__name__ for d in split.apply_now] == ["Exit"] and len(split.skipped) == len(split.moves) == 1
    pending = C.PendingMoves()
    pending.add(("T", "S"), 1, [MoveStop("L1", 2.0, "a"), MoveStop("L2", 3.0, "b")])
    pending.add(("T", "S"), 2, [MoveStop("L1", 2.5, "c")])
    pending.drop_leg(("T", "S"), "L2")
    assert pending.take(("T", "S")) == [(2, MoveStop("L1", 2.5, "c"))] and pending.keys() == []


async def test_restart_after_four_days_sends_no_old_entry_runs_due_exits_and_tfpe_evaluates(
        sim, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CU_KEY", KEYS["sub1"][0])
    monkeypatch.setenv("CU_SECRET", KEYS["sub1"][1])
    monkeypatch.setenv("ALBRA_EXCHANGE_TEST_MODE", "1")
    settings = _settings(tmp_path, sim.url)
    store = Store.open(settings.db_path)
    try:
        await _turn(settings, store)
        t0 = await sim.admin.clock()
        # two TEMPLATE legs, opened as the engine does, stops far away: whichever way the averages cross in four days,
        # an exit signal becomes due while the runner is down
        gw = Drill(tmp_path, sim.url).gateway("sub1")
        c0 = last_closed_open(t0, HOUR_MS)
        legs = [await open_leg(store, gw, "TEMPLATE", "BTCUSDT", d, "0.010", stop, PositionMode.HEDGE, t0,
                               candle_ts=c0 - i * HOUR_MS)
                for i, (d, stop) in enumerate(((Direction.LONG, "30000"), (Direction.SHORT, "150000")), start=1)]
        await gw.close()

        await sim.admin.advance(4 * DAY_MS)  # the outage
        t1 = await sim.admin.clock()
        r2 = Runner(settings, "sub1", store=store, notifier=QuietNotifier())
        await r2.start()
        t = time.perf_counter()
        n = await r2.evaluate_due()
        took = time.perf_counter() - t
        await r2.shutdown()
        print(f"\ncatch-up of a 4-day gap: {n} candles evaluated in {took:.2f} s")

        # no entry order for a candle older than the newest closed one of its timeframe reached the exchange
        orders = await sim.admin.orders(account="sub1")
        entries = [(cid, p) for cid in orders["counts"] if (p := parse_client_id(cid)) and p.purpose == "entry"]
        late = [(cid, p.candle_ts) for cid, p in entries if p.candle_ts > c0]
        fresh_floor = {t: last_closed_open(t1, t) for t in (15 * 60_000, HOUR_MS)}
        assert all(ts >= min(fresh_floor.values()) for _, ts in late), late
        skipped = journal.entries(store, kinds=("entry_skipped_stale",))
        assert skipped, "four days of candles and not one stale entry signal: the test proves nothing"
        assert all(e.data["age_ms"] > 0 and "NOT sent" in e.message for e in skipped)
        # the exits that became due while down ran at once, said so, and the legs are closed on the exchange too
        exits = journal.entries(store, kinds=("catch_up_exit",))
        assert exits and all("applied now at market" in e.message for e in exits)
        closed = [L.get_leg(store, g.leg_id) for g in legs]
        assert any(g.state is L.LegState.CLOSED for g in closed)
        # TFPE (a 400-bar warm-up: more than the 4.7 days one normal fetch covers) evaluated up to the newest candle
        tfpe = Track("TFPE", "BTCUSDT", "15m")
        assert get_mark(store, "sub1", tfpe) == last_closed_open(t1, 15 * 60_000)
        rows = {e.strategy: e for e in journal.entries(store, kinds=("catch_up",))}
        assert rows["TFPE"].data["candles"] == 4 * 96 - 1 and rows["TFPE"].data["reseeded"] == 0
        assert rows["TEMPLATE"].data["exits_applied"] >= 1  # the newest candle is fresh: evaluated as usual
    finally:
        store.close()


async def test_gap_longer_than_one_klines_request_is_reseeded_and_evaluates(sim, tmp_path: Path,
                                                                              monkeypatch) -> None:
    monkeypatch.setenv("CU_KEY", KEYS["sub1"][0])
    monkeypatch.setenv("CU_SECRET", KEYS["sub1"][1])
    monkeypatch.setenv("ALBRA_EXCHANGE_TEST_MODE", "1")
    settings = _settings(tmp_path, sim.url)
    store = Store.open(settings.db_path)
    try:
        await _turn(settings, store)
        await sim.admin.advance(14 * DAY_MS)  # 1344 15m candles + TFPE's 400-bar warm-up > 1500 per request
        t1 = await sim.admin.clock()
        await _turn(settings, store)
        assert get_mark(store, "sub1", Track("TFPE", "BTCUSDT", "15m")) == last_closed_open(t1, 15 * 60_000)
        rep = {e.strategy: e for e in journal.entries(store, kinds=("catch_up",))}["TFPE"]
        assert rep.data["candles"] == 14 * 96 - 1 and rep.data["reseeded"] > 0
        assert "re-seeded" in rep.message
        orders = await sim.admin.orders(account="sub1")
        assert all(p.candle_ts >= last_closed_open(t1, HOUR_MS) for cid in orders["counts"]
                   if (p := parse_client_id(cid)) and p.purpose == "entry")
    finally:
        store.close()
