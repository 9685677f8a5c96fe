"""``albra safe-restart --validate-state`` and ``albra incident-report`` end to end (real processes, local server)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
import subprocess
import sys

import pytest

from albra.runbook.restart import wait_ready
from albra.store import incidents, runners
from tests.runbook.drill import seed_book

pytestmark = pytest.mark.anyio


async def test_dry_run_with_a_clean_state_says_what_it_would_do(sim, drill) -> None:
    await seed_book(drill, await sim.admin.clock())
    code, out, err = await drill.albra_json("safe-restart", "--validate-state", "--dry-run")
    assert code == 0, (out, err)
    assert out["blockers"] == [] and any("store integrity ok" in c for c in out["checks"])
    assert all("albra run --account" in r["would"] or "systemctl restart" in r["would"] for r in out["restarted"])


async def test_blocks_on_unresolved_intent_and_exchange_mismatch_refuses_without_force(sim, drill) -> None:
    await seed_book(drill, await sim.admin.clock())
    with drill.store() as s:
        s.execute("UPDATE order_intents SET state='unknown' WHERE purpose='entry' AND account='main' AND"
                  " strategy='TFPE'")
    await sim.admin.mark("BTCUSDT", "54500")  # a stop fires: the ledger no longer matches the exchange
    (code, out, _), (fcode, forced, _) = await asyncio.gather(
        drill.albra_json("safe-restart", "--validate-state"),
        drill.albra_json("safe-restart", "--validate-state", "--force"))
    assert code == 1
    text = "\n".join(out["blockers"])
    assert "without a known outcome" in text and "reconcile --apply" in text and "main: position BTCUSDT" in text
    assert out["restarted"] == []
    assert forced["blockers"] == out["blockers"]  # listed even when forced
    assert fcode == 1 and forced["restarted"] and "cannot restart" in forced["restarted"][0]["detail"]


async def test_unreachable_exchange_blocks(sim, drill) -> None:
    await sim.admin.fault("GET", "/fapi/v3/account", "status", status=502, body="<html>bad gateway</html>",
                          content_type="text/html", count=None)
    code, out, _ = await drill.albra_json("safe-restart", "--validate-state", "--dry-run", "--account", "main")
    assert code == 1 and "exchange unreadable" in out["blockers"][0]


def test_wait_ready_sees_a_real_runner_heartbeat(tmp_path) -> None:
    from albra.store import Store

    db = tmp_path / "albra.db"
    Store.open(db).close()
    code = ("import sys, time; from albra.store import Store, runners; s = Store.open(sys.argv[1]);"
            "t = int(time.time()*1000); runners.beat(s, 'run:main', 'starting', started_ms=t);"
            "time.sleep(0.3); runners.beat(s, 'run:main', 'running'); time.sleep(5)")
    with Store.open(db) as s:
        before = runners.get_all(s)
        assert before == []
        import time
        t0 = int(time.time() * 1000)
        proc = subprocess.Popen([sys.executable, "-c", code, str(db)])
        try:
            ok, why = wait_ready(s, "main", t0, timeout_s=20)
            assert ok, why
            assert not wait_ready(s, "sub1", t0, timeout_s=0.5)[0]
        finally:
            proc.kill()
            proc.wait()


async def test_incident_report_after_an_emergency(sim, drill, tmp_path) -> None:
    await seed_book(drill, await sim.admin.clock())
    with drill.store() as s:
        s.execute("INSERT INTO equity_snapshots(account, ts, wallet, unrealized, equity, available) VALUES"
                  " ('main', 1, '10000', '0', '10000', '10000')")
    code, em, _ = await drill.albra_json("emergency-shutdown", "--yes")
    assert code == 0
    out_file = tmp_path / "reports" / "inc.md"
    # the report commands only read the store: run them side by side
    (_, listing, _), (code, out, err), (bad_code, _, bad_err), (none_code, _, none_err) = await asyncio.gather(
        drill.albra_json("incident-report", "--list"),
        drill.albra("incident-report", "--incident-id", em["incident_id"], "--output", str(out_file)),
        drill.albra("incident-report", "--incident-id", "INC-19990101-001"), drill.albra("incident-report"))
    assert [i["id"] for i in listing["incidents"]] == [em["incident_id"]]
    assert code == 0, err
    md = out_file.read_text()
    for heading in ("## Timeline (KST)", "## Positions and equity before and after", "## Orders sent",
                    "## Loss assessment", "## Actions taken", "## Open questions"):
        assert heading in md
    assert " KST |" in md and "kill_switch_set" in md and "al-em-" in md
    before = sum(Decimal(a["equity_before"]["equity"]) for a in em["accounts"])
    after = sum(Decimal(a["equity_after"]["equity"]) for a in em["accounts"])
    # before: the emergency's own first read of the exchange (more exact than the stale snapshot); after: the
    # post-flatten snapshot it recorded — both in the report, and the loss is the exchange's (fees of the closes)
    assert "TFPE" in md and f"Equity: {before} USDT" in md and f"Equity: {after} USDT" in md
    assert after < before and "Realised since the incident opened" in md and "over 0 fill(s)" not in md
    assert "still open" in md  # the incident itself is still open: an open question
    assert bad_code == 2 and "no incident" in bad_err
    assert none_code == 2 and "exactly one" in none_err
