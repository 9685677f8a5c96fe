"""Funding in the runner: while legs are open across funding times, the periodic sync reads FUNDING_FEE rows
since the persisted cursor and allocates them to the legs (as backtests do) — every payment the simulated
exchange made is on a leg, once, also across a restart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.config import load_settings
from albra.engine.funding import FUNDING_CURSOR, sync_funding
from albra.engine.runner import Runner, build_paper
from albra.ledger import legs as L
from albra.store import Store, journal, risk_state

from engine_helpers import QuietNotifier, write_config

pytestmark = pytest.mark.anyio


async def test_funding_paid_across_funding_times_lands_on_the_legs(tmp_path):
    cfg = write_config(tmp_path, position_mode="hedge", replay_start="2024-02-01", replay_end="2024-02-20")
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    store = Store.open(settings.db_path)
    try:
        await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier(), max_candles=700).run()
        await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier()).run()  # restart
        paid = [r for r in ctx.ex.account("demo").income if r["incomeType"] == "FUNDING_FEE"]
        assert len(paid) >= 3, "the window must hold legs across several funding times"
        total = sum((Decimal(str(r["income"])) for r in paid), Decimal(0))
        legs = L.legs_of(store, "demo")
        on_legs = sum((g.funding for g in legs), Decimal(0))
        # what the ledger could not attribute is journaled, never guessed (a leg whose stop fill is stamped at the
        # funding time itself counts as gone by then: the ledger's rule, the same as in backtests)
        left = sum((Decimal(j.data["amount"]) for j in journal.entries(store, kinds=("funding_unallocated",))),
                   Decimal(0))
        assert on_legs + left == total  # every payment accounted for, none twice across the restart
        assert abs(on_legs) > abs(left) and sum(1 for g in legs if g.funding != 0) >= 3
        stored = store.query_one("SELECT COUNT(*) AS n FROM income WHERE account='demo' AND income_type='FUNDING_FEE'")
        assert stored["n"] == len(paid)
        cursor = risk_state.get(store, "demo", FUNDING_CURSOR)
        assert cursor["ts"] == max(int(r["time"]) for r in paid)
        # a further sync finds nothing new and changes nothing
        assert await sync_funding(store, gw, "demo", now_ms=ctx.ex.now) == []
        assert sum((g.funding for g in L.legs_of(store, "demo")), Decimal(0)) == on_legs
    finally:
        store.close()
