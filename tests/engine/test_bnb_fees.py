"""Commissions paid in BNB (issue 13, failure 9): booked in their asset, valued in USDT at the fill's minute.

With BNB burn on (``POST /fapi/v1/feeBurn``, "Toggle BNB Burn On Futures Trade"), Binance charges USDⓈ-M trading
fees in BNB at 10 % off and the trade row's ``commissionAsset`` says BNB. Before, albra added the BNB amount to a
leg's USDT fees (at BNB ≈ 600 USDT that understates them ~600×) — leg PnL, the daily loss and Kelly were wrong.
Real runner, real ccxt (the BNB burn switched on through ccxt's own ``fapiPrivatePostFeeBurn``), the realistic
local server charging BNB and serving BNBUSDT klines at a price set for the run.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.ledger import daily_pnl
from albra.ledger import legs as L
from albra.model import Direction
from albra.sim.oco_probe import live_rig
from albra.timefmt import kst_date
from albra.strategies.base import Enter, Exit

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BNB = Decimal("600")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_fees_paid_in_bnb_are_valued_at_the_fill_minute() -> None:
    async with live_rig() as rig:
        await rig.sim.admin.asset_price("BNB", BNB, account="probe", deposit="5")
        client = rig.runner.gw.client if hasattr(rig.runner.gw, "client") else rig.runner.gw.inner.client
        await client.fapiPrivatePostFeeBurn({"feeBurn": "true"})
        assert (await client.fapiPrivateGetFeeBurn())["feeBurn"] is True

        price = float(rig.core.last_price("BTCUSDT"))
        ts = 1_704_153_600_000
        [leg_id] = await rig.runner.executor.handle(
            "TEMPLATE", "BTCUSDT", ts, [Enter(Direction.LONG, price * 0.97, None, "bnb fees")], price)
        await rig.runner.executor.handle("TEMPLATE", "BTCUSDT", ts + 3_600_000,
                                         [Exit(leg_id, 1.0, "close it", "test_exit")], price)
        leg = L.require_leg(rig.store, leg_id)
        assert leg.state is L.LegState.CLOSED

        rows = rig.store.query("SELECT price, qty, fee, fee_asset, fee_quote FROM fills WHERE leg_id=?", (leg_id,))
        assert len(rows) == 2 and {r["fee_asset"] for r in rows} == {"BNB"}
        expected_usdt = Decimal(0)
        for r in rows:
            usdt = Decimal(r["price"]) * Decimal(r["qty"]) * Decimal("0.0005") * Decimal("0.9")  # taker, 10 % off
            assert abs(Decimal(r["fee"]) - usdt / BNB) < Decimal("0.00000002")  # the fee in its own asset
            assert abs(Decimal(r["fee_quote"]) - usdt) < Decimal("0.00002")    # its USDT value at the fill
            expected_usdt += Decimal(r["fee_quote"])
        assert leg.fees == expected_usdt and leg.fees > Decimal("0.1")     # not the BNB amount (~0.0004)
        # the daily loss the risk layer reads: price PnL − fees valued in USDT (every fill is on one KST day here)
        day = kst_date(rig.store.query("SELECT ts FROM fills WHERE leg_id=?", (leg_id,))[0]["ts"])
        assert daily_pnl.realized_on(rig.store, "probe", "TEMPLATE", day) == leg.realized_pnl - leg.fees
        # the exchange's USDT wallet paid no fee: the BNB balance did
        acct = rig.core.account("probe")
        assert acct.bnb < Decimal("5")
