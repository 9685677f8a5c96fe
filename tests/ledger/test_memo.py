"""A backtest store's write-through cache (Store.enable_memo): every intent and risk-state value it answers is
what a second, uncached handle reads from the file, and a failed transaction leaves nothing cached."""

from __future__ import annotations

from dataclasses import astuple
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

from albra.exchange.types import OrderResult
from albra.ledger import intents as I
from albra.model import OrderStatus
from albra.store import Store, risk_state

from tests.ledger.conftest import T0, entry_intent


@pytest.fixture
def memo(tmp_path: Path) -> Iterator[Store]:
    """A backtest's kind of store on a fresh file (memo=True, memo enabled), closed after the test."""
    with Store.open(tmp_path / "bt.db", memo=True) as store:
        store.enable_memo()
        yield store


def _fresh(path: Path, client_id: str) -> I.Intent | None:
    with Store.open(path, create=False) as other:  # no memo: straight from the file
        return I.get_intent(other, client_id)


def test_cached_intents_and_risk_state_equal_the_file_and_rollback_forgets(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    store = Store.open(path, memo=True)
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


def test_any_write_to_legs_drops_the_cached_leg(tmp_path: Path) -> None:
    from albra.ledger import legs as L
    from albra.store.db import StoreError

    with Store.open(tmp_path / "plain.db") as plain, pytest.raises(StoreError, match="memo=True"):
        plain.enable_memo()
    store = Store.open(tmp_path / "bt.db", memo=True)
    store.enable_memo()
    try:
        _, leg = entry_intent(store)
        first = L.require_leg(store, leg.leg_id)
        assert L.require_leg(store, leg.leg_id) is first  # cached
        # a writer with SQL of its own (as the executor writes strategy state): the next read sees it
        store.execute("UPDATE legs SET strategy_state=?, updated_ms=? WHERE leg_id=?", ('{"k": 1}', T0 + 5, leg.leg_id))
        assert L.require_leg(store, leg.leg_id).strategy_state == {"k": 1}
        store.execute("UPDATE legs SET updated_ms = updated_ms + 1")  # not keyed: the whole cache goes
        assert store.memo is not None and not store.memo["legs"]
        assert L.require_leg(store, leg.leg_id).updated_ms == T0 + 6
    finally:
        store.close()


def test_ledger_writers_return_what_is_stored_on_a_memo_store(tmp_path: Path) -> None:
    """The returned-equals-stored checks, again with every re-read answered by the memo."""
    from tests.ledger import test_returned_equals_stored as R

    for i, fn in enumerate((R.test_entry_and_its_leg_as_returned_are_as_stored,
                            R.test_state_changes_with_errors_and_non_string_ids_are_as_stored,
                            R.test_protective_and_exit_intents_and_leg_transitions_are_as_stored)):
        store = Store.open(tmp_path / f"m{i}.db", memo=True)
        store.enable_memo()
        try:
            fn(store)
        finally:
            store.close()


def test_cached_legs_after_every_ledger_step_equal_the_file(memo: Store) -> None:
    """Leg writers put the leg they wrote in the memo (no read-back): after each step — entry, entry fill,
    protection, close-reason, exit fill — the cached leg is what an uncached handle reads from the file."""
    from albra.ledger import legs as L
    from albra.ledger.fills import apply_fill

    from tests.ledger.conftest import exit_intent, fill_for

    path = memo.path
    store = memo

    def same_as_file(leg_id: str) -> L.Leg:
        assert store.memo is not None
        cached = store.memo["legs"].get(leg_id)
        assert cached is not None, "the writer did not leave the leg it wrote in the memo"
        with Store.open(path, create=False) as other:
            assert [str(v) for v in astuple(cached)] == [str(v) for v in astuple(L.require_leg(other, leg_id))]
        return cached

    intent, leg = entry_intent(store, qty="0.010")
    same_as_file(leg.leg_id)
    apply_fill(store, "main", fill_for(intent, "0.004", "65000.5", fee="0.01"))
    apply_fill(store, "main", fill_for(intent, "0.006", "65001", fee="0.02", trade_id="memo-t2"))
    assert same_as_file(leg.leg_id).state is L.LegState.OPEN
    L.set_protection(store, leg.leg_id, now_ms=T0 + 7, stop_price=Decimal("60000.10"), sl_client_id="sl-1")
    assert same_as_file(leg.leg_id).sl_client_id == "sl-1"
    L.set_protection(store, leg.leg_id, now_ms=T0 + 8, take_profit=Decimal("70000"), tp_client_id="tp-1")
    got = same_as_file(leg.leg_id)
    assert (got.stop_price, got.take_profit) == (Decimal("60000.10"), Decimal("70000"))  # None kept a field
    ex = exit_intent(store, L.require_leg(store, leg.leg_id), "0.010")
    assert same_as_file(leg.leg_id).state is L.LegState.CLOSING
    apply_fill(store, "main", fill_for(ex, "0.010", "66000", fee="0.03", trade_id="memo-t3"))
    assert same_as_file(leg.leg_id).state is L.LegState.CLOSED
    L.set_close_reason(store, leg.leg_id, "take the money")
    assert same_as_file(leg.leg_id).close_reason == "take the money"


def test_cached_flags_follow_every_write(memo: Store) -> None:
    """A backtest store answers active flags from memory; a pause (an INSERT … ON CONFLICT) or a resume drops it."""
    from albra.store import flags

    store = memo
    assert flags.entry_block(store, "main", "TFPE") is None
    assert store.memo is not None and store.memo["flags"]["active"] == ()
    flags.pause(store, "main", "TFPE", reason="test", ts=T0)
    assert flags.entry_block(store, "main", "TFPE") is not None
    flags.resume(store, "main", "TFPE", reason="test", ts=T0 + 1)
    assert flags.entry_block(store, "main", "TFPE") is None
    flags.set_kill_switch(store, True, reason="drill", ts=T0 + 2)
    assert flags.entry_block(store, "main", "OTHER") is not None


def test_intents_of_a_leg_from_memory_equal_the_file(memo: Store) -> None:
    """A memo store lists a leg's intents (and counts a purpose's generations) from memory; after every step the
    list is exactly what an uncached handle reads, and a write the memo cannot follow makes it read the file."""
    from albra.ledger import legs as L

    from tests.ledger.conftest import exit_intent, fill_for
    from albra.ledger.fills import apply_fill

    path = memo.path
    store = memo

    def check(leg_id: str) -> None:
        with Store.open(path, create=False) as other:
            for purpose in (None, "entry", "stop_loss", "exit"):
                mine = I.intents_of_leg(store, leg_id, purpose)
                theirs = I.intents_of_leg(other, leg_id, purpose)
                assert [astuple(i) for i in mine] == [astuple(i) for i in theirs]
                if purpose:
                    assert I.next_generation(store, leg_id, purpose) == I.next_generation(other, leg_id, purpose)

    intent, leg = entry_intent(store)
    assert store.memo is not None and store.memo["leg_intents"][leg.leg_id] == [intent.client_id]
    check(leg.leg_id)
    apply_fill(store, "main", fill_for(intent, "0.010", "65000"))
    I.mark_sent(store, intent.client_id, now_ms=T0 + 1)
    check(leg.leg_id)
    ex = exit_intent(store, L.require_leg(store, leg.leg_id), "0.004")
    check(leg.leg_id)
    assert store.memo["leg_intents"][leg.leg_id] == [intent.client_id, ex.client_id]  # appended, not re-read
    store.execute("UPDATE order_intents SET error = 'x' WHERE leg_id = ?", (leg.leg_id,))  # not keyed
    check(leg.leg_id)  # the intents it lists left the memo: read from the file again


def test_fill_found_by_exchange_order_id_from_memory_and_from_the_file(memo: Store) -> None:
    """A trade row names the order id only: a memo store finds its intent by the id it was recorded with, without a
    query; when that id was changed behind the memo's back the file answers."""
    from albra.ledger.fills import apply_fill

    from tests.ledger.conftest import fill_for

    store = memo
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    intent, leg = entry_intent(store)
    I.mark_sent(store, intent.client_id, now_ms=T0 + 1)
    res = OrderResult(intent.client_id, "91", intent.symbol, intent.side, intent.order_type, OrderStatus.FILLED,
                      intent.position_side, Decimal("0.010"), Decimal("0.004"), Decimal("65000"), None, None,
                      False, False, False, T0 + 2)
    I.mark_outcome(store, res, now_ms=T0 + 2)
    seen.clear()
    got = apply_fill(store, "main", fill_for(intent, "0.004", "65000", client_id="", order_id="91"))
    assert got.applied and got.client_id == intent.client_id and got.leg_id == leg.leg_id
    assert not [q for q in seen if "exchange_order_id=" in q.replace(" ", "")]
    store.execute("UPDATE order_intents SET exchange_order_id = '92' WHERE client_id = ?", (intent.client_id,))
    got = apply_fill(store, "main", fill_for(intent, "0.006", "65000", client_id="", order_id="92"))
    assert got.applied and got.client_id == intent.client_id
    nobody = apply_fill(store, "main", fill_for(intent, "0.001", "65000", client_id="", order_id="91"))
    assert nobody.applied and nobody.leg_id is None  # "91" is no intent's id any more: recorded unattributed


def test_risk_state_waits_in_memory_during_a_batch_and_a_failed_tx_puts_it_back(memo: Store) -> None:
    """Inside a backtest's batch risk state is kept in memory (no upsert per change) and written when the batch
    commits; a failed transaction restores the value it changed, nested ones included, and reads see the truth."""
    from albra.ledger import daily_pnl

    path = memo.path
    store = memo
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    with store.batch():
        risk_state.put(store, "main", risk_state.MDD_PEAK, {"equity": "100", "ts": T0}, ts=T0)
        with store.tx() as c:
            daily_pnl.add(c, "main", "TFPE", T0, Decimal("2.5"), T0)
        assert not [q for q in seen if "INTO risk_state" in q]  # nothing written yet
        with pytest.raises(RuntimeError):
            with store.tx() as c:
                risk_state.put(store, "main", risk_state.MDD_PEAK, {"equity": "1", "ts": T0}, conn=c)
                with store.tx() as c2:
                    daily_pnl.add(c2, "main", "TFPE", T0, Decimal("1"), T0)
                assert daily_pnl.realized_on(store, "main", "TFPE", "2024-06-10") == Decimal("3.5")
                raise RuntimeError("boom")
        assert risk_state.get(store, "main", risk_state.MDD_PEAK) == {"equity": "100", "ts": T0}
        assert daily_pnl.realized_on(store, "main", "TFPE", "2024-06-10") == Decimal("2.5")
        assert risk_state.all_for(store, "main")[("", risk_state.MDD_PEAK)] == {"equity": "100", "ts": T0}
    assert len([q for q in seen if "INTO risk_state" in q]) == 2  # written at the commit, once per key
    with Store.open(path, create=False) as other:
        assert risk_state.get(other, "main", risk_state.MDD_PEAK) == {"equity": "100", "ts": T0}
        assert daily_pnl.realized_on(other, "main", "TFPE", "2024-06-10") == Decimal("2.5")


def test_decoded_risk_state_is_what_its_text_decodes_to_and_the_caller_owns_it(memo: Store) -> None:
    """Values read back from a memo store's decoded cache equal json.loads of the stored text (key order and types
    included); changing what a read returned changes nothing stored; non-JSON values (Decimal) go through the text."""
    import json

    store = memo
    with store.batch(), store.tx() as c:
        v = {"z": [1, 2.5, {"b": True, "a": None}], "a": "x", "n": -0.0}
        risk_state.put(store, "main", "k", v, conn=c)
        got = risk_state.value(c, "main", "k")
        assert got == json.loads(risk_state.raw(c, "main", "k")) and list(got) == ["a", "n", "z"]
        assert list(got["z"][2]) == ["a", "b"] and type(got["z"][1]) is float
        got["a"] = "changed"
        got["z"].append(3)
        assert risk_state.value(c, "main", "k") == json.loads(json.dumps(v, sort_keys=True))
        risk_state.put(store, "main", "d", {"amount": Decimal("1.50")}, conn=c)
        assert risk_state.value(c, "main", "d") == {"amount": "1.50"}  # as the text says, not the Decimal
        assert risk_state.get(store, "main", "d") == {"amount": "1.50"}


def test_kept_back_writes_are_seen_by_every_reader_and_follow_rollbacks(memo: Store) -> None:
    """Inside a backtest's batch an intent's row and the equity snapshot are kept back as images: any statement that
    names their table writes them first, the order's answer replaces the image, a failed transaction puts back what
    it changed (a kept write that ran inside it included), and the batch's commit writes what is left."""
    from albra.store.db import defer_write

    path = memo.path
    store = memo
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    snap = ("INSERT OR REPLACE INTO equity_snapshots(account, ts, wallet, unrealized, equity, available)"
            " VALUES (?,?,?,?,?,?)")
    with store.batch():
        intent, _ = entry_intent(store)
        seen.clear()
        I.mark_sent(store, intent.client_id, now_ms=T0 + 1)
        assert not [q for q in seen if q.startswith("UPDATE order_intents")]  # kept back
        assert [i.client_id for i in I.unresolved(store, "main")] == [intent.client_id]
        assert store.query_one("SELECT state FROM order_intents WHERE client_id=?",
                               (intent.client_id,))["state"] == "sent"  # the reader made it run first

        other, _ = entry_intent(store, candle_ts=T0 + 900_000)
        I.mark_sent(store, other.client_id, now_ms=T0 + 2)
        res = OrderResult(other.client_id, "93", other.symbol, other.side, other.order_type, OrderStatus.FILLED,
                          other.position_side, Decimal("0.010"), Decimal("0.010"), Decimal("65000"), None, None,
                          False, False, False, T0 + 3)
        seen.clear()
        I.mark_outcome(store, res, now_ms=T0 + 3)
        assert not [q for q in seen if "order_intents" in q]  # the answer replaced the kept image: no write
        assert store.query_one("SELECT state FROM order_intents WHERE client_id=?",
                               (other.client_id,))["state"] == "filled"  # the reader wrote it first

        with store.tx() as c:
            assert defer_write(c, "equity_snapshots", ("main", 1), snap, ("main", 1, "1", "0", "1", "1"))
        with pytest.raises(RuntimeError):
            with store.tx() as c:
                assert defer_write(c, "equity_snapshots", ("main", 1), snap, ("main", 1, "9", "0", "9", "9"))
                assert store.query_one("SELECT equity FROM equity_snapshots WHERE ts=1")["equity"] == "9"
                raise RuntimeError("boom")
        assert store.query_one("SELECT equity FROM equity_snapshots WHERE ts=1")["equity"] == "1"
        with store.tx() as c:
            assert defer_write(c, "equity_snapshots", ("main", 2), snap, ("main", 2, "2", "0", "2", "2"))
        with pytest.raises(RuntimeError):
            with store.tx() as c:  # it runs inside a transaction that fails: kept back again, not lost
                assert c.execute("SELECT COUNT(*) FROM equity_snapshots").fetchone()[0] == 2
                raise RuntimeError("boom")
        assert store.query_one("SELECT COUNT(*) AS n FROM equity_snapshots")["n"] == 2
    with Store.open(path, create=False) as plain:
        assert plain.query_one("SELECT equity FROM equity_snapshots WHERE ts=1")["equity"] == "1"
        assert plain.query_one("SELECT equity FROM equity_snapshots WHERE ts=2")["equity"] == "2"
        assert I.get_intent(plain, intent.client_id).state == "sent"  # type: ignore[union-attr]
        assert I.get_intent(plain, other.client_id).state == "filled"  # type: ignore[union-attr]


def test_kept_risk_state_tells_1_from_1_0_and_true(memo: Store) -> None:
    """An unchanged value is not kept twice, but 1, 1.0 and True are different JSON: each replaces the other."""
    import json

    store = memo
    with store.batch(), store.tx() as c:
        for v in ({"a": 1}, {"a": 1.0}, {"a": True}, {"a": -0.0}, {"a": 0.0}):
            risk_state.put(store, "main", "k", v, conn=c)
            got = risk_state.value(c, "main", "k")
            assert json.dumps(got) == json.dumps(v) and type(got["a"]) is type(v["a"])
            assert risk_state.raw(c, "main", "k") == json.dumps(v, sort_keys=True)


def test_live_legs_from_memory_equal_the_file(memo: Store) -> None:
    """A memo store answers live_legs from the account's live leg ids kept by the leg writers; after every step
    (entry, fill, closing, close, a write of its own by other code) it is what an uncached handle reads."""
    from albra.ledger import legs as L
    from albra.ledger.fills import apply_fill

    from tests.ledger.conftest import exit_intent, fill_for

    path = memo.path
    store = memo

    def check() -> None:
        with Store.open(path, create=False) as other:
            for sym in (None, "BTCUSDT", "ETHUSDT"):
                mine = [astuple(g) for g in L.live_legs(store, "main", sym)]
                assert mine == [astuple(g) for g in L.live_legs(other, "main", sym)], sym

    check()
    a, leg_a = entry_intent(store)
    b, leg_b = entry_intent(store, symbol="ETHUSDT", candle_ts=T0 - 900_000)
    check()
    apply_fill(store, "main", fill_for(a, "0.010", "65000"))
    apply_fill(store, "main", fill_for(b, "0.010", "3000"))
    check()
    ex = exit_intent(store, L.require_leg(store, leg_a.leg_id), "0.010")
    check()
    apply_fill(store, "main", fill_for(ex, "0.010", "66000"))
    assert [g.leg_id for g in L.live_legs(store, "main")] == [leg_b.leg_id]
    check()
    store.execute("UPDATE legs SET state = 'cancelled' WHERE leg_id = ?", (leg_b.leg_id,))  # behind its back
    assert L.live_legs(store, "main") == []
    check()


def test_kept_intent_images_follow_a_failed_transaction(memo: Store) -> None:
    """An intent recorded, or moved on, inside a transaction that fails is gone from memory and file alike; the
    image kept before it stands and is what the commit writes."""
    from albra.ledger import legs as L

    from tests.ledger.conftest import exit_intent

    path = memo.path
    store = memo
    with store.batch():
        intent, leg = entry_intent(store)
        I.mark_sent(store, intent.client_id, now_ms=T0 + 1)
        res = OrderResult(intent.client_id, "95", intent.symbol, intent.side, intent.order_type,
                          OrderStatus.FILLED, intent.position_side, Decimal("0.010"), Decimal("0.010"),
                          Decimal("65000"), None, None, False, False, False, T0 + 2)
        with pytest.raises(RuntimeError):
            with store.tx():
                I.mark_outcome(store, res, now_ms=T0 + 2)
                raise RuntimeError("boom")
        assert I.get_intent(store, intent.client_id).state == "sent"  # type: ignore[union-attr]
        from albra.ledger.fills import apply_fill

        from tests.ledger.conftest import fill_for

        apply_fill(store, "main", fill_for(intent, "0.010", "65000"))
        with pytest.raises(RuntimeError):
            with store.tx():
                gone = exit_intent(store, L.require_leg(store, leg.leg_id), "0.010")
                raise RuntimeError("boom")
        assert I.get_intent(store, gone.client_id) is None
        assert L.require_leg(store, leg.leg_id).state is L.LegState.OPEN  # its closing move rolled back too
    with Store.open(path, create=False) as plain:
        assert I.get_intent(plain, intent.client_id).state == "sent"  # type: ignore[union-attr]
        assert I.get_intent(plain, gone.client_id) is None
        assert [i.client_id for i in I.intents_of_leg(plain, leg.leg_id)] == [intent.client_id]

