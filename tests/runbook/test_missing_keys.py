"""An account whose API key variables are not set is a configuration error (exit 2, the variable named), not an
unreachable exchange (3) — for audit, reconcile, status and emergency-shutdown; the other accounts are still
handled."""

from __future__ import annotations

import asyncio

import pytest

from tests.runbook.drill import BOOK, make_drill, seed_book

pytestmark = pytest.mark.anyio


@pytest.fixture
def keyless(sim, tmp_path):
    d = make_drill(tmp_path, sim.url, missing_keys={"sub1"})
    d.before_command = lambda: sim.admin.weights(reset=True)
    return d


async def test_read_commands_exit_2_naming_the_variable(keyless, capsys) -> None:
    # read-only commands, independent of each other: run concurrently (as separate processes)
    (code, out, err), (rcode, rec, rerr), (scode, st, serr) = await asyncio.gather(
        keyless.albra_json("audit", "--compare-exchange"), keyless.albra_json("reconcile"),
        keyless.albra_json("status"))
    assert code == 2, (out, err)
    by = {a["account"]: a for a in out["accounts"]}
    assert by["sub1"]["config_error"] and "DRILL_SUB1_KEY" in by["sub1"]["reason"]
    assert by["main"]["reachable"] and by["main"]["agrees"]  # the other account is still audited
    from albra.commands.audit import render

    capsys.readouterr()
    render(out)  # what a person reads for the same result
    text = capsys.readouterr().out
    assert "sub1: CONFIG ERROR" in text and "DRILL_SUB1_KEY" in text

    assert rcode == 2, (rec, rerr)
    by = {a["account"]: a for a in rec["accounts"]}
    assert by["sub1"]["config_error"] and "DRILL_SUB1_SECRET" in by["sub1"]["reason"]

    assert scode == 2, (st, serr)
    by = {a["account"]: a for a in st["accounts"]}
    assert by["sub1"]["exchange"]["config_error"] and "DRILL_SUB1_KEY" in by["sub1"]["exchange"]["reason"]
    assert by["main"]["exchange"]["ok"]


async def test_emergency_handles_the_others_and_reports_the_keyless_account_not_handled(sim, keyless,
                                                                                         tmp_path) -> None:
    await seed_book(make_drill(tmp_path / "seed", sim.url), await sim.admin.clock())
    code, out, err = await keyless.albra_json("emergency-shutdown", "--yes")
    assert code == 2, (out, err)
    by = {a["account"]: a for a in out["accounts"]}
    assert by["main"]["status"] == "flat"
    assert by["sub1"]["status"] == "not_handled" and "DRILL_SUB1_KEY" in by["sub1"]["reason"]
    accts = await sim.admin.accounts()
    assert accts["main"]["positions"] == [] and accts["main"]["open_orders"] + accts["main"]["open_algos"] == 0
    assert len(accts["sub1"]["positions"]) == len([b for b in BOOK if b[0] == "sub1"])  # untouched
