"""The SQLite store: creation, migration, refusal of corrupt or newer databases, append-only journal,
concurrent writers from several processes, flags, incidents."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from albra.store import CorruptStoreError, NewerSchemaError, SCHEMA_VERSION, Store, StoreError
from albra.store import flags, incidents, journal, risk_state
from albra.timefmt import parse_time


def test_new_store_is_wal_versioned_and_private(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "state" / "albra.db")
    assert s.schema_version() == SCHEMA_VERSION >= 1
    assert s.query_one("PRAGMA journal_mode")[0] == "wal"
    rep = s.check_integrity()
    assert rep.ok, rep.problems
    assert (tmp_path / "state" / "albra.db").stat().st_mode & 0o777 == 0o600
    applied = s.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in applied] == list(range(1, SCHEMA_VERSION + 1))
    s.close()


def test_reopen_keeps_data_and_does_not_remigrate(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        journal.append(s, "test", "hello")
    with Store.open(p) as s:
        assert [e.message for e in journal.entries(s)] == ["hello"]
        assert len(s.query("SELECT * FROM schema_migrations")) == SCHEMA_VERSION


def test_migration_from_older_version_keeps_rows_and_backs_up(tmp_path: Path, monkeypatch) -> None:
    """A v1 database gains a later migration forward-only, with a backup copy and data intact."""
    import albra.store.db as db

    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        flags.pause(s, "master", reason="before upgrade")
    extra = (SCHEMA_VERSION + 1, f"{SCHEMA_VERSION + 1:04d}_test_extra",
             "CREATE TABLE test_extra (id INTEGER PRIMARY KEY, note TEXT NOT NULL);")
    real = db._migrations
    monkeypatch.setattr(db, "_migrations", lambda: real() + [extra])
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store.open(p) as s:
        assert s.schema_version() == SCHEMA_VERSION + 1
        assert s.query("SELECT * FROM test_extra") == []
        assert flags.entry_block(s, "master", "TFPE").reason == "before upgrade"
    assert (tmp_path / f"albra.db.pre-v{SCHEMA_VERSION + 1}.bak").exists()


def test_newer_schema_refuses_and_leaves_file_unchanged(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        s.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    before = p.read_bytes()
    with pytest.raises(NewerSchemaError, match=r"newer than this albra understands"):
        Store.open(p)
    assert p.read_bytes() == before


def test_garbage_file_refuses_with_recovery_hint(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    p.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CorruptStoreError, match=r"not an SQLite database.*reconcile --apply"):
        Store.open(p)
    assert p.read_bytes().startswith(b"this is not")  # never recreated over the file


def test_truncated_database_refuses(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        for i in range(500):
            journal.append(s, "fill", f"row {i} " + "x" * 200)
        s.checkpoint()
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptStoreError):
        s2 = Store.open(p)
        # some truncations are only visible on a full check
        rep = s2.check_integrity()
        if not rep.ok:
            raise CorruptStoreError("; ".join(rep.problems))


def test_corrupted_page_is_detected(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        for i in range(300):
            journal.append(s, "fill", f"row {i} " + "y" * 300)
        s.checkpoint()
    raw = bytearray(p.read_bytes())
    page = 4096
    for off in range(page * 3, min(len(raw), page * 6)):
        raw[off] = 0xA5
    p.write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match="integrity|unreadable|malformed"):
        Store.open(p)


def test_missing_store_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no albra store"):
        Store.open(tmp_path / "nope.db", create=False)


def test_journal_is_append_only(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as s:
        seq = journal.append(s, "x", "first")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            s.execute("UPDATE journal SET message='changed' WHERE seq=?", (seq,))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            s.execute("DELETE FROM journal")
        assert journal.entries(s)[0].message == "first"


def test_transaction_rolls_back_whole(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as s:
        with pytest.raises(RuntimeError):
            with s.tx() as c:
                journal.append(s, "x", "inside", conn=c)
                raise RuntimeError("boom")
        assert journal.entries(s) == []


def test_flags_scopes_and_precedence(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as s:
        assert flags.entry_block(s, "master", "TFPE") is None
        flags.pause(s, "master", "TFPE", reason="drill")
        assert flags.entry_block(s, "master", "TFPE").scope == "master/TFPE"
        assert flags.entry_block(s, "master", "ZLMACD_ICHIMOKU") is None
        assert flags.entry_block(s, "sub1", "TFPE") is None
        flags.pause(s, reason="all")
        assert flags.entry_block(s, "sub1", "TFPE").scope == "all"
        flags.resume(s)
        flags.resume(s, "master", "TFPE")
        assert flags.entry_block(s, "master", "TFPE") is None
        flags.set_kill_switch(s, True, reason="emergency")
        assert flags.entry_block(s, "sub1", "X").kind == "kill_switch"
        kinds = [e.kind for e in journal.entries(s)]
        assert kinds == ["pause_set", "pause_set", "pause_cleared", "pause_cleared", "kill_switch_set"]
        with pytest.raises(ValueError):
            flags.pause(s, "", "TFPE")


def test_incident_ids_are_dated_and_sequential(tmp_path: Path) -> None:
    t = parse_time("2026-11-24T03:00:00Z")  # 12:00 KST
    with Store.open(tmp_path / "a.db") as s:
        a = incidents.open_incident(s, "emergency_shutdown", "drill", ts=t)
        b = incidents.open_incident(s, "mdd_halt", "mdd", account="master", ts=t + 1)
        c = incidents.open_incident(s, "mdd_halt", "mdd again", account="master", ts=t + 2, reuse_open=True)
        assert (a.incident_id, b.incident_id, c.incident_id) == ("INC-20261124-001", "INC-20261124-002",
                                                                 "INC-20261124-002")
        late = incidents.open_incident(s, "kill_switch", "after KST midnight", ts=parse_time("2026-11-24T15:30:00Z"))
        assert late.incident_id == "INC-20261125-001"
        incidents.close_incident(s, a.incident_id, "resolved")
        assert [i.incident_id for i in incidents.list_incidents(s, "open")] == ["INC-20261125-001", "INC-20261124-002"]


def test_risk_state_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "a.db"
    with Store.open(p) as s:
        risk_state.put(s, "master", risk_state.MDD_PEAK, {"equity": "10500.5", "ts": 1})
    with Store.open(p) as s:
        assert risk_state.get(s, "master", risk_state.MDD_PEAK) == {"equity": "10500.5", "ts": 1}
        assert risk_state.get(s, "sub1", risk_state.MDD_PEAK, default="none") == "none"


def _writer(path: str, who: str, n: int) -> None:
    s = Store.open(path)
    for i in range(n):
        with s.tx() as c:
            journal.append(s, "concurrency", f"{who}-{i}", conn=c)
            risk_state.put(s, who, "counter", i, conn=c)
    s.close()


def test_concurrent_writers_from_two_processes(tmp_path: Path) -> None:
    p = str(tmp_path / "albra.db")
    Store.open(p).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(p, who, 200)) for who in ("runner-a", "runner-b")]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join(60)
        assert pr.exitcode == 0
    with Store.open(p) as s:
        msgs = [e.message for e in journal.entries(s)]
        assert len(msgs) == 400 and len(set(msgs)) == 400
        assert risk_state.get(s, "runner-a", "counter") == 199
        assert risk_state.get(s, "runner-b", "counter") == 199
        assert s.check_integrity().ok
