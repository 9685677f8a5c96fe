"""``albra emergency-shutdown`` end to end: a real process, the real ccxt client, the local Binance server.

Failure paths from the runbook: a dead runner, a live runner that must be SIGTERM'd, an unreadable store, a route
failing half the time, an account with wrong keys, --keep-positions.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from albra.ledger import legs as L
from albra.store import flags, incidents, journal, runners
from tests.runbook.drill import BOOK, KEYS, make_drill, seed_book

pytestmark = pytest.mark.anyio


async def _exchange_state(sim, account: str) -> tuple[list, int]:
    acct = (await sim.admin.accounts())[account]
    return acct["positions"], acct["open_orders"] + acct["open_algos"]


async def test_flattens_every_account_closes_legs_and_opens_incident(sim, drill) -> None:
    now = await sim.admin.clock()
    await seed_book(drill, now)
    for a in KEYS:
        pos, orders = await _exchange_state(sim, a)
        assert pos and orders  # something to shut down on both accounts
    code, out, err = await drill.albra_json("emergency-shutdown", "--yes")
    assert code == 0, (out, err)
    assert [a["status"] for a in out["accounts"]] == ["flat", "flat"]
    for a in KEYS:
        assert await _exchange_state(sim, a) == ([], 0)
    # hedge account: both sides closed with the side's own orders (no reduceOnly sent in hedge mode)
    sub1 = out["accounts"][1]
    assert {(c["symbol"], c["position_side"]) for c in sub1["close_orders"]} == {
        ("BTCUSDT", "LONG"), ("BTCUSDT", "SHORT"), ("ETHUSDT", "LONG")}
    with drill.store() as s:
        assert flags.kill_switch(s) is not None
        assert all(not L.live_legs(s, a) for a in KEYS)  # each leg closed by its own fill, with its PnL
        closed = s.query("SELECT strategy, close_reason, exit_price FROM legs WHERE state='closed'")
        assert len(closed) == len(BOOK) and all(r["close_reason"] == "emergency" and r["exit_price"] for r in closed)
        inc = incidents.get(s, out["incident_id"])
        assert inc is not None and inc.kind == "emergency_shutdown" and "VERIFIED" in inc.title
        kinds = {e.kind for e in journal.entries(s)}
        assert {"kill_switch_set", "orders_cancelled", "position_closed", "emergency_shutdown"} <= kinds
        assert s.query_one("SELECT COUNT(*) AS n FROM alerts WHERE kind='emergency_shutdown'")["n"] == 1
    # a second run finds nothing to do and is still verified
    code, out2, _ = await drill.albra_json("emergency-shutdown", "--yes")
    assert code == 0 and all(not a["close_orders"] for a in out2["accounts"])


async def test_stops_a_live_runner_and_ignores_a_dead_one(sim, drill) -> None:
    now = await sim.admin.clock()
    await seed_book(drill, now, BOOK[:1])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "albra", "run", "--account",
                                "main"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        with drill.store() as s:
            runners.beat(s, "run:main", "running", started_ms=now)
            s.execute("UPDATE runners SET pid=? WHERE name='run:main'", (sleeper.pid,))
            runners.beat(s, "run:sub1", "running", started_ms=now)
            s.execute("UPDATE runners SET pid=? WHERE name='run:sub1'", (dead.pid,))
        code, out, err = await drill.albra_json("emergency-shutdown", "--yes", "--stop-timeout", "5")
        assert code == 0, (out, err)
        by = {r["account"]: r for r in out["runners"]}
        assert by["main"]["method"] == "signal" and by["main"]["ok"] and sleeper.pid in by["main"]["pids"]
        assert sleeper.wait(timeout=10) == -15  # SIGTERM
        assert by["sub1"]["method"] == "none" and "not running" in by["sub1"]["detail"]
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


async def test_unreadable_store_still_flattens_through_the_exchange(sim, drill) -> None:
    now = await sim.admin.clock()
    await seed_book(drill, now)
    drill.db.write_bytes(b"this is not a database" * 100)
    for p in drill.state.glob("albra.db-*"):
        p.unlink()
    code, out, err = await drill.albra_json("emergency-shutdown", "--yes")
    assert code == 0, (out, err)
    assert out["kill_switch"].startswith("NOT SET") and "not an SQLite database" in out["kill_switch"]
    assert out["incident_id"] is None and "store unavailable" in out["notified"]
    for a in KEYS:
        assert await _exchange_state(sim, a) == ([], 0)
    assert drill.db.read_bytes() == b"this is not a database" * 100  # never recreated over


async def test_route_failing_half_the_time_is_retried_to_flat(sim, drill) -> None:
    now = await sim.admin.clock()
    await seed_book(drill, now)
    for method, path in (("POST", "/fapi/v1/order"), ("DELETE", "/fapi/v1/algoOpenOrders"),
                         ("GET", "/fapi/v3/positionRisk")):
        await sim.admin.fault(method, path, "status", status=503, body='{"code":-1001,"msg":"Internal error"}',
                              count=None, probability=0.5)
    # the faults are seeded: with this book the slower account needs 10 rounds; 16 leaves room for request order
    code, out, err = await drill.albra_json("emergency-shutdown", "--yes", "--rounds", "16")
    assert code == 0, json.dumps(out["accounts"], indent=1)[:6000]
    await sim.admin.clear_faults()
    for a in KEYS:
        assert await _exchange_state(sim, a) == ([], 0)
    fired = [r for r in await sim.admin.requests() if r["status"] == 503]
    assert fired  # the faults really happened
    # no order was ever sent twice under one client id
    counts = (await sim.admin.orders())["counts"]
    assert all(n == 1 for cid, n in counts.items() if cid.startswith("al-em-"))


async def test_wrong_keys_exit_3_for_that_account_others_still_flattened(sim, tmp_path) -> None:
    drill = make_drill(tmp_path, sim.url, wrong_keys={"sub1"})
    drill.before_command = lambda: sim.admin.weights(reset=True)
    now = await sim.admin.clock()
    good = make_drill(tmp_path / "seed", sim.url)
    await seed_book(good, now)
    code, out, err = await drill.albra_json("emergency-shutdown", "--yes")
    assert code == 3, (out, err)
    by = {a["account"]: a for a in out["accounts"]}
    assert by["main"]["status"] == "flat" and by["sub1"]["status"] == "unreachable"
    assert "refused the API key" in by["sub1"]["reason"]
    assert await _exchange_state(sim, "main") == ([], 0)
    assert (await _exchange_state(sim, "sub1"))[0]  # untouched: we could not reach it
    assert "wrong-secret" not in str(out) + err


async def test_keep_positions_cancels_orders_only(sim, drill) -> None:
    now = await sim.admin.clock()
    await seed_book(drill, now)
    code, out, _ = await drill.albra_json("emergency-shutdown", "--yes", "--keep-positions", "--account", "main")
    assert code == 0
    assert [a["status"] for a in out["accounts"]] == ["frozen"]
    pos, orders = await _exchange_state(sim, "main")
    assert pos and orders == 0
    assert (await _exchange_state(sim, "sub1"))[1] > 0  # other account untouched
    with drill.store() as s:  # and so is its trading: the kill switch covers the account named, not every one
        assert flags.kill_switch(s, "main").account == "main" and flags.kill_switch(s, "sub1") is None
    assert "for main" in out["kill_switch"]


async def test_without_yes_and_without_a_terminal_it_refuses(drill) -> None:
    code, out, err = await drill.albra("emergency-shutdown")
    assert code == 2 and "--yes" in err
    with drill.store() as s:
        assert flags.kill_switch(s) is None


async def test_a_wrong_empty_positions_read_strips_no_stop_and_is_not_verified(sim, drill) -> None:
    """Issue 13 finding 12: one positions read answers a valid empty list while the positions are open. The shutdown
    must not take it for flat: no stop is cancelled while its position is open (watched on every exchange event),
    and "flat" is claimed only once a second, independent read (the account's own positions) agrees."""
    await seed_book(drill, await sim.admin.clock())
    core = sim.server.ex
    stripped: list[str] = []

    def watch(kind: str, obj: object) -> None:
        if kind == "algo" and getattr(obj, "status", "") == "CANCELED":
            acct = core.accounts[obj.account]
            if acct.position(obj.symbol, obj.position_side).amt != 0:
                stripped.append(f"{obj.account} {obj.symbol} {obj.position_side.value} {obj.client_algo_id}")

    core.listeners.append(watch)
    await sim.admin.fault("GET", "/fapi/v3/positionRisk", "status", status=200, body="[]", count=2)
    code, out, err = await drill.albra_json("emergency-shutdown", "--yes")
    assert code == 0, (out, err)
    assert stripped == [], f"stops cancelled while their position was open: {stripped}"
    assert [a["status"] for a in out["accounts"]] == ["flat", "flat"]
    for a in KEYS:
        assert await _exchange_state(sim, a) == ([], 0)
    reads = [r for r in await sim.admin.requests() if r["path"] == "/fapi/v3/positionRisk"]
    assert any(r.get("fault") for r in reads)  # the wrong answers were served
