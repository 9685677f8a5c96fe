"""``albra audit --compare-exchange`` and ``albra reconcile`` end to end against the local Binance server.

The drill breaks the agreement in every way the runbook names — a stop fired on the exchange, a position opened by
hand, a stop cancelled by hand, a position closed by hand (leaving its leg's stop behind), an order nobody in albra
placed — then checks that audit sees each, reconcile explains and repairs each, and a second run finds nothing.
"""

from __future__ import annotations

import subprocess
import sys

import asyncio
from decimal import Decimal

import pytest

from albra.exchange.types import OrderRequest
from albra.ledger import legs as L
from albra.model import OrderType, PositionSide, Side
from albra.store import incidents, journal, leases
from tests.runbook.drill import make_drill, seed_book

pytestmark = pytest.mark.anyio


async def _break_everything(sim, drill, legs) -> None:
    by = {(g.account, g.strategy): g for g in legs}
    await sim.admin.mark("BTCUSDT", "54500")  # main TFPE's stop (55000) fires; MOMENTUM's (54000) does not
    main, sub1 = drill.gateway("main"), drill.gateway("sub1")
    try:
        await sub1.place_order(OrderRequest("manual-1", "ETHUSDT", Side.SELL, OrderType.MARKET, Decimal("0.1"),
                                            PositionSide.SHORT))
        await sub1.cancel_order("ETHUSDT", by[("sub1", "MOMENTUM")].sl_client_id, True)
        await sub1.place_order(OrderRequest("manual-2", "BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.004"),
                                            PositionSide.LONG))
        await main.place_order(OrderRequest("manual-3", "ETHUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.05"),
                                            price=Decimal("1000")))
    finally:
        await main.close()
        await sub1.close()


async def test_audit_agrees_after_a_clean_start(sim, drill) -> None:
    await seed_book(drill, await sim.admin.clock())
    code, out, err = await drill.albra_json("audit", "--compare-exchange")
    assert code == 0, (out, err)
    main = out["accounts"][0]
    assert main["agrees"] and main["balance"]["equity"]
    btc = next(p for p in main["positions"] if p["symbol"] == "BTCUSDT")
    assert btc["exchange_qty"] == "0.015" and {g["strategy"] for g in btc["legs"]} == {"TFPE", "MOMENTUM"}
    assert set(main["pnl_today"]) >= {"realized_net", "unrealized", "ledger_realized_by_strategy"}


async def test_audit_finds_reconcile_repairs_and_a_second_run_finds_nothing(sim, drill) -> None:
    legs = await seed_book(drill, await sim.admin.clock())
    await _break_everything(sim, drill, legs)

    code, out, err = await drill.albra_json("audit", "--compare-exchange")
    assert code == 1, (out, err)
    kinds = {a["account"]: sorted({f["kind"] for f in a["findings"]}) for a in out["accounts"]}
    assert kinds == {"main": ["missing_stop", "position", "unknown_order"], "sub1": ["missing_stop", "position"]}

    # reconcile without --apply only explains: an audit running alongside sees exactly the same findings
    (code, plan, _), (acode, again, _) = await asyncio.gather(drill.albra_json("reconcile"),
                                                             drill.albra_json("audit", "--compare-exchange"))
    assert code == 1
    causes = [p["cause"] for a in plan["accounts"] for p in a["proposals"]]
    assert any("opened by hand" in c for c in causes) and any("closed on the exchange" in c for c in causes)
    assert acode == 1 and again["accounts"][0]["findings"] == out["accounts"][0]["findings"]
    code, again, _ = await drill.albra_json("audit", "--compare-exchange")  # and after it
    assert code == 1 and again["accounts"][0]["findings"] == out["accounts"][0]["findings"]

    # one writer per account: while a live runner holds main's write lease, --apply repairs nothing there
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with drill.store() as s:
            leases.acquire(s, "main", "run:main", pid=holder.pid)
        code, refused, err = await drill.albra_json("reconcile", "--apply", "--cancel-unknown")
        assert code == 1, (refused, err)
        main = next(a for a in refused["accounts"] if a["account"] == "main")
        assert f"run:main (pid {holder.pid}" in main["blocked"] and main["actions"] == [] and main["remaining"]
        code, again, _ = await drill.albra_json("audit", "--compare-exchange")
        assert again["accounts"][0]["findings"] == out["accounts"][0]["findings"]  # nothing touched on main
    finally:
        holder.kill()
        holder.wait()

    code, done, err = await drill.albra_json("reconcile", "--apply", "--cancel-unknown")
    # everything repaired but the adopted manual short, which has no stop: albra will not invent one, and says so
    # (issue 14: audit exited 0 while an unattributed position was naked); the adoption's CRITICAL alert was raised
    # and tried from the command itself (Telegram is disabled in this drill: it stays queued)
    assert code == 1, (done, err)
    for a in done["accounts"]:
        assert a["remaining"] == [], a
    assert [f["kind"] for a in done["accounts"] for f in a["still_found"]] == ["missing_stop"]
    assert "unattributed leg" in done["accounts"][1]["still_found"][0]["detail"]
    assert "alert(s) raised" in done["alerts"] and "stays queued" in done["alerts"]
    with drill.store() as s:
        assert leases.current(s, "main") is None and leases.current(s, "sub1") is None  # given back
        assert s.query_one("SELECT level FROM alerts WHERE kind='unattributed_leg'")["level"] == "CRITICAL"
    sub1 = drill.gateway("sub1")
    try:  # the operator protects it by hand: a stop albra did not place covers it
        await sub1.place_order(OrderRequest("manual-stop-1", "ETHUSDT", Side.BUY, OrderType.STOP_MARKET,
                                            Decimal("0.1"), PositionSide.SHORT, trigger_price=Decimal("9000")))
    finally:
        await sub1.close()

    (code, second, _), (acode, _, _) = await asyncio.gather(drill.albra_json("reconcile"),
                                                            drill.albra_json("audit", "--compare-exchange"))
    assert code == 0 and all(a["proposals"] == [] for a in second["accounts"])
    assert acode == 0

    with drill.store() as s:
        tfpe = next(g for g in L.legs_of(s, "main", "TFPE"))
        assert tfpe.state is L.LegState.CLOSED and tfpe.exit_price is not None and tfpe.fees > 0
        zl = L.legs_of(s, "sub1", "ZLHMA_EMA_CROSS")[0]
        assert zl.state is L.LegState.CLOSED and zl.close_reason in ("missing_on_exchange", "stop_loss")
        adopted = L.legs_of(s, "sub1", L.UNATTRIBUTED)
        assert [(g.direction.value, g.qty, g.position_side.value) for g in adopted] == [
            ("SHORT", Decimal("0.1"), "SHORT")]
        assert any(i.kind == "unattributed_leg" for i in incidents.list_incidents(s))
        mom = L.legs_of(s, "sub1", "MOMENTUM")[0]
        assert mom.sl_client_id != next(g for g in legs if g.strategy == "MOMENTUM" and g.account == "sub1").sl_client_id
        assert any(e.kind == "reconcile_round" and e.actor == "reconcile" for e in journal.entries(s))
    # the orphaned stop of the closed leg and the unknown order are gone from the exchange
    orders = await sim.admin.orders()
    live = [o for o in orders["algos"] if o["algoStatus"] == "NEW"] + [
        o for o in orders["orders"] if o["status"] == "NEW"]
    assert zl.sl_client_id not in {o.get("clientAlgoId") for o in live}
    assert "manual-3" not in {o.get("clientOrderId") for o in live}


async def test_audit_exit_3_when_a_read_fails_and_for_wrong_keys(sim, tmp_path) -> None:
    drill = make_drill(tmp_path, sim.url, wrong_keys={"sub1"})
    drill.before_command = lambda: sim.admin.weights(reset=True)
    await seed_book(make_drill(tmp_path / "seed", sim.url), await sim.admin.clock())
    code, out, _ = await drill.albra_json("audit", "--compare-exchange")
    assert code == 3
    by = {a["account"]: a for a in out["accounts"]}
    assert by["sub1"]["reachable"] is False and "refused the API key" in by["sub1"]["reason"]
    assert by["main"]["reachable"] is True  # the other account is still audited
    await sim.admin.fault("GET", "/fapi/v3/positionRisk", "status", status=200, body="<html>oops</html>",
                          content_type="text/html", count=None)
    code, out, _ = await drill.albra_json("audit", "--compare-exchange", "--account", "main")
    assert code == 3 and out["accounts"][0]["findings"] == []  # junk is "unknown", never "no positions"


async def test_loss_since_an_incident(sim, drill) -> None:
    await seed_book(drill, await sim.admin.clock())
    with drill.store() as s:
        inc = incidents.open_incident(s, "mdd_halt", "drill", account="main")
        s.execute("INSERT INTO equity_snapshots(account, ts, wallet, unrealized, equity, available) VALUES"
                  " ('main', ?, '10000', '0', '10000', '10000')", (inc.opened_ms - 1000,))
    code, out, _ = await drill.albra_json("audit", "--compare-exchange", "--account", "main", "--incident",
                                          inc.incident_id)
    loss = out["accounts"][0]["loss_since"]
    assert loss["equity_then"] == "10000" and Decimal(loss["equity_change"]) < 0  # fees paid since
    code, _, err = await drill.albra("audit", "--compare-exchange", "--incident", "INC-20000101-001")
    assert code == 2 and "no incident" in err


async def test_a_manual_trade_before_a_leg_is_never_its_stop_out(sim, drill) -> None:
    """Issue 13 finding 3: `reconcile --apply` took a manual sell from two hours before a leg existed for that leg's
    stop-loss (the only live stop on that side), closed the leg with a made-up PnL and adopted the real position
    without a stop. Fills now belong to a leg only through its own orders' ids, inside the order's lifetime."""
    core = sim.server.ex
    core.place_order("sub1", "BTCUSDT", "BUY", "MARKET", Decimal("0.002"), position_side="LONG", client_id="by-hand-1")
    core.place_order("sub1", "BTCUSDT", "SELL", "MARKET", Decimal("0.002"), position_side="LONG", client_id="by-hand-2")
    await sim.admin.advance(2 * 3_600_000)
    legs = await seed_book(drill, await sim.admin.clock())
    zl = next(g for g in legs if g.account == "sub1" and g.strategy == "ZLHMA_EMA_CROSS")  # alone on sub1 BTC LONG
    short = next(g for g in legs if g.account == "sub1" and g.strategy == "TFPE")
    core.cancel_algo("sub1", client_algo_id=short.sl_client_id)  # a finding on BTCUSDT makes --apply read its trades
    code, done, err = await drill.albra_json("reconcile", "--apply")
    assert code == 0, (done, err)
    with drill.store() as s:
        after = L.require_leg(s, zl.leg_id)
        assert after.state is L.LegState.OPEN and after.qty == zl.qty and after.close_reason is None
        assert L.legs_of(s, "sub1", L.UNATTRIBUTED) == []
    live = {a["clientAlgoId"] for a in (await sim.admin.orders(account="sub1"))["algos"] if a["algoStatus"] == "NEW"}
    assert zl.sl_client_id in live  # its real stop was not cancelled as an orphan
