"""A backtest store's write-through cache (Store.enable_memo): every intent and risk-state value it answers is
what a second, uncached handle reads from the file, and a failed transaction leaves nothing cached."""

from __future__ import annotations

from dataclasses import astuple
from decimal import Decimal
from pathlib import Path

import pytest

from albra.exchange.types import OrderResult
from albra.ledger import intents as I
from albra.model import OrderStatus
from albra.store import Store, risk_state

from tests.ledger.conftest import T0, entry_intent


def _fresh(path: Path, client_id: str) -> I.Intent | None:
    with Store.open(path, create=False) as other:  # no memo: straight from the file
        return I.get_intent(other, client_id)


def test_cached_intents_and_risk_state_equal_the_file_and_rollback_forgets(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    store = Store.open(path)
    store.enable_memo()
    try:
        intent, _ = entry_intent(store)
        sent = I.mark_sent(store, intent.client_id, now_ms=T0 + 1)
        res = OrderResult(intent.client_id, "91", intent.symbol, intent.side, intent.order_type, OrderStatus.FILLED,
                          intent.position_side, intent.qty or Decimal(0), Decimal("0.010"), Decimal("65000.10"), None,
                          None, False, False, False, T0 + 2)
        done = I.mark_outcome(store, res, now_ms=T0 + 2)
        for got in (sent, done):
            assert got is not None
        cached = I.get_intent(store, intent.client_id)
        assert cached is done  # answered from memory
        assert [str(v) for v in astuple(cached)] == [str(v) for v in astuple(_fresh(path, intent.client_id))]

        risk_state.put(store, "main", risk_state.MDD_PEAK, {"equity": "100.50", "ts": T0}, ts=T0)
        assert risk_state.get(store, "main", risk_state.MDD_PEAK) == {"equity": "100.50", "ts": T0}
        with Store.open(path, create=False) as other:
            assert risk_state.get(other, "main", risk_state.MDD_PEAK) == {"equity": "100.50", "ts": T0}

        # a transaction that fails after writing: the file keeps the old values and so does every later read
        with pytest.raises(RuntimeError):
            with store.tx() as c:
                risk_state.put(store, "main", risk_state.MDD_PEAK, {"equity": "1", "ts": T0}, conn=c)
                assert risk_state.raw(c, "main", risk_state.MDD_PEAK) == '{"equity": "1", "ts": 1718000000000}'
                raise RuntimeError("boom")
        assert store.memo is not None and not store.memo["risk_state"] and not store.memo["intents"]  # emptied
        assert risk_state.get(store, "main", risk_state.MDD_PEAK) == {"equity": "100.50", "ts": T0}
        assert I.get_intent(store, intent.client_id) == _fresh(path, intent.client_id)
    finally:
        store.close()
    assert store.memo is None
