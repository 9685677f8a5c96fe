"""End to end (issue 5's "done when"): ``albra run --account e2e`` as a real process against ``albra sim serve`` as a
real process, through the real ccxt client, hedge mode, two strategies on one symbol, the exchange clock stepped by
the test. The runner is SIGKILLed at seeded-random moments and restarted each time. Afterwards:

* legs opened and closed for both strategies, opposite legs open at the same time (hedge);
* protective orders placed sized to each leg, and replaced on a strategy's MoveStop (new generation, old cancelled);
* no client id ever reached the exchange twice (the simulator's per-id counts), also with one lost response
  (``commit_lose``: executed, answer dropped) on each of the order and algo-order endpoints;
* the ledger equals the exchange per (symbol, position side) and every open leg has its stop on the exchange.

A one-way variant (in-process paper runner over the same window) shows the opposite entry refused with its
journaled reason.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine_helpers import QuietNotifier

from albra.exchange import binance_parse as P
from albra.exchange.client_ids import parse_client_id
from albra.ledger import legs as L
from albra.ledger.positions import compare_positions
from albra.sim.testing import SimAdmin, sim_process
from albra.store import Store, journal
from albra.timefmt import parse_time

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

START = "2024-01-13T22:00:00Z"  # a busy window: both strategies trade, opposite legs overlap, stops trail
STEP_MS = 30 * 60_000           # the test advances the exchange clock half an hour at a time
STEPS = 28
KEY, SECRET = "e2e-key", "e2e-secret"
MOMENTUM = ("{ adx_min = 15, di_diff_min = 3, volume_ratio_min = 0.8, acceleration_min = 0.0, position_long_min = 0.6,"
            " position_short_max = 0.4, channel_width_min = 0.0, trailing_start_atr = 0.5, trailing_step_atr = 0.25,"
            " exit_adx_below = 0.0, cooldown_hours = 0.5 }")


def _config(tmp_path: Path, *, mode_lines: str, position_mode: str) -> Path:
    cfg = tmp_path / "albra.toml"
    cfg.write_text(textwrap.dedent(f"""
        [paths]
        state_dir = "{tmp_path / 'state'}"
        log_dir = "{tmp_path / 'logs'}"

        [telegram]
        enabled = false

        [accounts.e2e]
        {mode_lines}
        position_mode = "{position_mode}"

        [[accounts.e2e.strategies]]
        name = "MOMENTUM"
        symbols = ["BTCUSDT"]
        timeframe = "15m"
        leverage = 5
        size_pct = 10.0
        params = {MOMENTUM}

        [[accounts.e2e.strategies]]
        name = "TEMPLATE"
        symbols = ["BTCUSDT"]
        timeframe = "1h"
        leverage = 5
        size_pct = 10.0
        params = {{ cooldown_hours = 0.0 }}
        """))
    return cfg


def _runner(cfg: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, E2E_KEY=KEY, E2E_SECRET=SECRET, ALBRA_DEV="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "albra", "run", "--account", "e2e", "--config", str(cfg)],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env, cwd=str(Path(__file__).parents[2]))


def _marks(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        out = {r[0]: r[1] for r in con.execute("SELECT strategy, last_ts FROM candle_marks WHERE account='e2e'")}
        for pid, state in con.execute("SELECT pid, state FROM runners WHERE name='run:e2e'"):
            out["pid"] = pid if state == "running" else -1
        return out
    except sqlite3.OperationalError:  # schema not created yet by a runner that is just starting
        return {}
    finally:
        con.close()


def _wait_marks(db: Path, now: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Until the runner has evaluated every closed candle up to exchange time ``now``."""
    want = {"MOMENTUM": (now // 900_000) * 900_000 - 900_000, "TEMPLATE": (now // 3_600_000) * 3_600_000 - 3_600_000}
    t0 = time.monotonic()
    while True:
        m = _marks(db)
        if m.get("pid") == proc.pid and all(m.get(k, -1) >= v for k, v in want.items()):
            return
        if proc.poll() is not None:
            pytest.fail(f"runner exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"runner did not evaluate up to {now} (marks {m}, want {want}):\n{log.read_text()[-4000:]}")
        time.sleep(0.05)


async def _exchange_positions(admin: SimAdmin) -> list:
    return P.parse_positions((await admin.accounts())["e2e"]["positions"], None)


async def test_run_against_sim_serve_survives_sigkill(tmp_path: Path) -> None:
    start = parse_time(START)
    with sim_process("--start", START, "--speed", "0", "--hedge", "e2e", "--balance", "10000",
                     accounts={"e2e": (KEY, SECRET)}) as (url, _sim):
        admin = SimAdmin(url)
        try:
            cfg = _config(tmp_path, position_mode="hedge", mode_lines=textwrap.dedent(f"""\
                mode = "live"
                base_url = "{url}"
                api_key_env = "E2E_KEY"
                api_secret_env = "E2E_SECRET\""""))
            db = tmp_path / "state" / "albra.db"
            log = tmp_path / "runner.log"
            rnd = random.Random(20240113)
            kill_steps = set(rnd.sample(range(2, STEPS - 2), 4))
            proc = _runner(cfg, log)
            now = await admin.clock()
            assert now == start
            _wait_marks(db, now, proc, log, timeout=60)
            # one lost response on each placement endpoint: the order takes effect, the answer never arrives, so
            # the executor (or a restart) must resolve the outcome by client id — never by sending it again
            lost = [await admin.fault("POST", "/fapi/v1/order", "commit_lose", count=1),
                    await admin.fault("POST", "/fapi/v1/algoOrder", "commit_lose", count=1)]
            both_sides_seen = False
            kills = 0
            for step in range(STEPS):
                now = await admin.advance(STEP_MS)
                if step in kill_steps:
                    time.sleep(rnd.uniform(0.0, 0.5))  # somewhere inside the runner's turn
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    kills += 1
                    proc = _runner(cfg, log)
                _wait_marks(db, now, proc, log)
                sides = {p.position_side.value for p in await _exchange_positions(admin)}
                both_sides_seen |= {"LONG", "SHORT"} <= sides
            # a last restart after the clock stopped: start-up resolution + reconciliation, then an ordered stop
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = _runner(cfg, log)
            _wait_marks(db, now, proc, log)
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(40) == 0, log.read_text()[-4000:]
            assert kills == 4

            orders = await admin.orders("e2e")
            positions = await _exchange_positions(admin)
            faults = {f["id"]: f for f in (await admin._req("GET", "faults"))["faults"]}
            lost_requests = [r for r in await admin.requests() if str(r.get("status", "")).startswith("lost")]
        finally:
            await admin.close()

    store = Store.open(db)
    try:
        legs = L.legs_of(store, "e2e")
        closed = [g for g in legs if g.state is L.LegState.CLOSED]
        live = L.live_legs(store, "e2e")
        # legs opened and closed for both strategies, none lost track of (no adoption, no blind close)
        assert {g.strategy for g in closed} == {"MOMENTUM", "TEMPLATE"}, [(g.strategy, g.state) for g in legs]
        assert all(g.strategy != L.UNATTRIBUTED for g in legs)
        assert all(g.close_reason != "missing_on_exchange" for g in closed)
        # opposite legs at the same time (hedge mode): in the ledger and on the exchange
        def overlap(a, b) -> bool:
            return a.opened_ms < (b.closed_ms or 1 << 62) and b.opened_ms < (a.closed_ms or 1 << 62)
        assert any(a.strategy != b.strategy and a.direction is not b.direction and overlap(a, b)
                   for a in legs for b in legs if a.state is not L.LegState.FAILED and b.state is not L.LegState.FAILED)
        assert both_sides_seen
        # both lost responses happened (the request took effect, its answer was dropped) ...
        assert [faults[i]["fired"] for i in lost] == [1, 1], faults
        assert len(lost_requests) == 2 and all(r["status"] == "lost (200)" for r in lost_requests), lost_requests
        # ... and no client id reached the exchange twice, across 2 lost responses and 5 SIGKILLs (invariant 1)
        counts = orders["counts"]
        assert counts and max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
        from urllib.parse import parse_qs
        for r in lost_requests:  # the lost orders' intents got their outcome from a lookup by client id
            q = parse_qs(r["query"])
            cid = (q.get("newClientOrderId") or q.get("clientAlgoId"))[0]
            row = store.query_one("SELECT state FROM order_intents WHERE client_id=?", (cid,))
            assert row is not None and row["state"] not in ("pending", "sent", "unknown"), (cid, row)
            assert counts[cid] == 1
        # protective orders: placed sized to each leg, and replaced on a MoveStop (new generation, old cancelled)
        algos = {a["clientAlgoId"]: a for a in orders["algos"]}
        for g in legs:
            if g.qty_initial > 0 and g.state is not L.LegState.FAILED:
                first = [a for cid, a in algos.items()
                         if (pc := parse_client_id(cid)) and pc.purpose == "stop_loss" and pc.generation == 0
                         and pc.belongs_to("e2e", g.strategy, "BTCUSDT") and pc.candle_ts == g.entry_ts]
                assert len(first) == 1 and first[0]["quantity"] in (str(g.qty_initial), float(g.qty_initial),
                                                                    format(g.qty_initial, "f")), (g.leg_id, first)
        moved = journal.entries(store, kinds=("stop_replaced",))
        assert moved, "no MoveStop replaced a stop in the window"
        for m in moved:
            old, new = m.data["old"], m.data["new"]
            assert parse_client_id(new).generation > parse_client_id(old).generation
            assert algos[old]["algoStatus"] in ("CANCELED", "EXPIRED")
            assert algos[new]["triggerPrice"] is not None
        # the ledger equals the exchange per (symbol, position side); every open leg has its stop there
        assert compare_positions(live, positions) == []
        open_stops = {cid: a for cid, a in algos.items() if a["algoStatus"] == "NEW"}
        for g in live:
            assert g.sl_client_id in open_stops, g.leg_id
            assert P.parse_algo(open_stops[g.sl_client_id]).qty == g.qty
        # every runner process (one per restart) had its user data stream up and resynced on connecting
        assert len(journal.entries(store, kinds=("stream_connected",))) >= kills + 1
    finally:
        store.close()


async def test_one_way_opposite_entry_is_refused_with_reason(tmp_path: Path) -> None:
    from albra.config import load_settings
    from albra.engine.runner import Runner, build_paper

    cfg = _config(tmp_path, position_mode="one_way", mode_lines=textwrap.dedent(f"""\
        mode = "paper"
        paper_balance = 10000
        replay_start = "{START}"
        replay_end = "2024-01-14T14:00:00Z"
        replay_speed = 0"""))
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "e2e")
    store = Store.open(settings.db_path)
    try:
        await Runner(settings, "e2e", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier()).run()
        refused = [j for j in journal.entries(store, kinds=("risk_refused",)) if j.data["rule"] == "opposite_leg"]
        assert refused, "no opposite entry happened in the window"
        assert "one-way mode" in refused[0].message and "would net" in refused[0].data["reason"]
        legs = L.legs_of(store, "e2e")
        assert not any(a.direction is not b.direction and a.opened_ms < (b.closed_ms or 1 << 62)
                       and b.opened_ms < (a.closed_ms or 1 << 62) for a in legs for b in legs
                       if a.state is not L.LegState.FAILED and b.state is not L.LegState.FAILED)
    finally:
        store.close()
