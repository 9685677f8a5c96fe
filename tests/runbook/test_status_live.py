"""``albra status`` (live) end to end: store picture plus each account's exchange view; exit 3 only when every
exchange account is unreachable."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.runbook.drill import make_drill, seed_book

pytestmark = pytest.mark.anyio


async def test_live_status_shows_legs_with_exchange_pnl(sim, drill) -> None:
    await seed_book(drill, await sim.admin.clock())
    await sim.admin.mark("ETHUSDT", "3500")
    (code, out, err), (_, text, _) = await asyncio.gather(drill.albra_json("status"), drill.albra("status"))
    assert code == 0, (err, text)
    by = {a["account"]: a for a in out["accounts"]}
    assert by["main"]["exchange"]["ok"] and by["sub1"]["exchange"]["ok"]
    legs = {(g["strategy"], g["symbol"]): g for g in by["sub1"]["exchange"]["legs"]}
    mom = legs[("MOMENTUM", "ETHUSDT")]
    assert mom["mark"] == "3500" and Decimal(mom["unrealized"]) > 0  # long ETH, mark above entry
    assert "Positions by strategy" in text and "MOMENTUM" in text


async def test_one_account_down_is_shown_all_down_exits_3(sim, tmp_path) -> None:
    one = make_drill(tmp_path, sim.url, wrong_keys={"sub1"})
    both = make_drill(tmp_path / "all", sim.url, wrong_keys={"main", "sub1"})
    (code, out, _), (all_code, _, _), (offline_code, _, _) = await asyncio.gather(
        one.albra_json("status"), both.albra_json("status"), both.albra_json("status", "--offline"))
    assert code == 0
    by = {a["account"]: a for a in out["accounts"]}
    assert by["sub1"]["exchange"]["ok"] is False and "refused the API key" in by["sub1"]["exchange"]["reason"]
    assert all_code == 3
    assert offline_code == 0  # the store view never needs the exchange


async def test_ledger_legs_the_exchange_does_not_hold_exit_1(sim, drill) -> None:
    """Issue 14: ``status`` exited 0 while the exchange had no position and the ledger open legs."""
    await seed_book(drill, await sim.admin.clock(), [b for b in __import__("tests.runbook.drill", fromlist=["BOOK"]
                                                                           ).BOOK if b[0] == "main"][:1])
    await sim.admin.mark("BTCUSDT", "54500")  # the stop fires on the exchange; the ledger still has the leg
    await sim.admin.settle()
    code, out, err = await drill.albra_json("status")
    assert code == 1, (out, err)
    main = next(a for a in out["accounts"] if a["account"] == "main")
    [m] = main["exchange"]["mismatches"]
    assert m["symbol"] == "BTCUSDT" and m["exchange_qty"] == "0" and m["ledger_qty"] != "0"
    code, text, _ = await drill.albra("status")
    assert code == 1 and "mismatch" in text and "albra reconcile" in text
