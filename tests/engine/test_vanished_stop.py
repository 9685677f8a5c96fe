"""A live stop that vanished (cancelled by hand on the exchange, or purged from its history) never crashes the
runner: its intent ends ``canceled`` with a note, the fact is journaled and alerted, and the leg is re-protected —
on restart (start-up sync) and in the periodic reconciliation round."""

from __future__ import annotations

import pytest

from albra.config import load_settings
from albra.engine.runner import Runner, build_paper
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.store import Store, journal

from engine_helpers import QuietNotifier, write_config

pytestmark = pytest.mark.anyio


async def _runner_with_open_leg(tmp_path):
    cfg = write_config(tmp_path, position_mode="hedge", replay_start="2024-02-01", replay_end="2024-03-01")
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    store = Store.open(settings.db_path)
    for _ in range(60):  # 50 candles at a time until a leg is open at the end of a run
        await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier(), max_candles=50).run()
        if L.live_legs(store, "demo"):
            return settings, gw, ctx, store
    pytest.fail("no leg open at the end of any 50-candle run")


def _behind_the_back(ctx, cid: str, forget: bool) -> None:
    ctx.ex.cancel_algo("demo", None, cid)  # as the operator would on Binance's web page
    if forget:  # the exchange's history no longer has it either: lookups by client id find nothing
        acct = ctx.ex.account("demo")
        for k in [k for k, a in acct.algos.items() if a.client_algo_id == cid]:
            del acct.algos[k]
        assert not any(a.client_algo_id == cid for a in acct.algos.values())


def _assert_reprotected(ctx, store, leg_before) -> None:
    old = I.get_intent(store, leg_before.sl_client_id)
    assert old.state == "canceled"
    leg = L.require_leg(store, leg_before.leg_id)
    assert leg.state is L.LegState.OPEN and leg.sl_client_id != leg_before.sl_client_id
    live = {a.client_algo_id: a for a in ctx.ex.open_algos("demo")}
    assert leg.sl_client_id in live and live[leg.sl_client_id].qty == leg.qty
    assert live[leg.sl_client_id].trigger_price == leg.stop_price
    kinds = [e.kind for e in journal.entries(store, account="demo")]
    assert "protective_vanished" in kinds and "leg_reprotected" in kinds
    alerts = store.query("SELECT kind FROM alerts WHERE account='demo' AND event_id LIKE ?",
                         (f"unprotected_leg:{leg.leg_id}:{leg_before.sl_client_id}%",))
    assert [a["kind"] for a in alerts] == ["unprotected_leg"]


@pytest.mark.parametrize("forget", [False, True], ids=["cancelled", "unknown_to_exchange"])
async def test_restart_reprotects_a_stop_cancelled_behind_its_back(tmp_path, forget):
    settings, gw, ctx, store = await _runner_with_open_leg(tmp_path)
    try:
        leg = L.live_legs(store, "demo")[0]
        assert I.get_intent(store, leg.sl_client_id).state == "open"
        _behind_the_back(ctx, leg.sl_client_id, forget)
        r = Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier(), max_candles=1)
        await r.start()  # start-up: sync_protective sees it first
        _assert_reprotected(ctx, store, leg)
        if forget:
            assert "gone from the exchange" in (I.get_intent(store, leg.sl_client_id).error or "")
        rep = await r.reconcile()
        assert rep is not None and rep.clean, rep  # converged: nothing left for the round
        await r.shutdown()
    finally:
        store.close()


async def test_reconciliation_round_reprotects_a_vanished_stop(tmp_path):
    settings, gw, ctx, store = await _runner_with_open_leg(tmp_path)
    try:
        r = Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier(), max_candles=1)
        await r.start()
        leg = L.live_legs(store, "demo")[0]
        _behind_the_back(ctx, leg.sl_client_id, forget=True)
        rep = await r.reconcile()  # the periodic path (the sync has not looked yet)
        assert rep is not None and leg.sl_client_id in rep.protective_updated
        _assert_reprotected(ctx, store, leg)
        assert L.require_leg(store, leg.leg_id).sl_client_id in rep.protected
        again = await r.reconcile()
        assert again is not None and again.clean, again
        await r.shutdown()
    finally:
        store.close()
