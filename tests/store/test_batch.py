"""Store.batch(): one outer transaction whose inner tx() calls are savepoints (backtests' commit batching).

Pins the semantics the ledger relies on when a backtest wraps its run in a batch: each tx() stays all or nothing,
an inner failure undoes only its own writes and still raises, reads see the batch's writes, the batch commits at
the end (or every N transactions), and a process that dies before the commit leaves nothing of the batch behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from albra.store import Store, StoreError
from albra.store import journal


def _kinds(s: Store) -> list[str]:
    return [r["kind"] for r in s.query("SELECT kind FROM journal ORDER BY seq")]


def _other_handle_kinds(path: Path) -> list[str]:
    with Store.open(path) as other:
        return _kinds(other)


def test_batch_commits_at_the_end_and_reads_inside_see_writes(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        with s.batch() as b:
            journal.append(s, "one", "first")
            journal.append(s, "two", "second")
            assert _kinds(s) == ["one", "two"]  # this handle reads its own uncommitted writes
            assert _other_handle_kinds(p) == []  # another connection sees nothing yet
            assert b.commits == 0
        assert b.commits == 1
        assert _other_handle_kinds(p) == ["one", "two"]


def test_inner_failure_rolls_back_only_that_tx_and_propagates(tmp_path: Path) -> None:
    with Store.open(tmp_path / "albra.db") as s:
        with s.batch():
            journal.append(s, "kept", "before")
            with pytest.raises(RuntimeError, match="boom"):
                with s.tx() as c:
                    c.execute("INSERT INTO journal(ts, level, kind, message) VALUES (1, 'INFO', 'lost', 'x')")
                    assert "lost" in _kinds(s)  # visible inside its own savepoint
                    raise RuntimeError("boom")
            assert _kinds(s) == ["kept"]
            journal.append(s, "after", "still in the batch")
        assert _kinds(s) == ["kept", "after"]


def test_nested_tx_inside_a_batch_are_nested_savepoints(tmp_path: Path) -> None:
    with Store.open(tmp_path / "albra.db") as s:
        with s.batch():
            with s.tx() as c:
                c.execute("INSERT INTO journal(ts, level, kind, message) VALUES (1, 'INFO', 'outer', 'x')")
                with pytest.raises(ValueError):
                    with s.tx() as c2:
                        c2.execute("INSERT INTO journal(ts, level, kind, message) VALUES (2, 'INFO', 'inner', 'y')")
                        raise ValueError("inner fails")
                assert _kinds(s) == ["outer"]
        assert _kinds(s) == ["outer"]


def test_exception_escaping_the_batch_rolls_back_the_uncommitted_part(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        with pytest.raises(KeyError):
            with s.batch():
                journal.append(s, "gone", "never committed")
                raise KeyError("abort")
        assert _kinds(s) == []
        journal.append(s, "normal", "a plain tx works again after the batch")  # no transaction left open
    assert _other_handle_kinds(p) == ["normal"]


def test_commit_every_n_commits_along_the_way(tmp_path: Path) -> None:
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        with pytest.raises(RuntimeError):
            with s.batch(commit_every=2) as b:
                for i in range(5):
                    journal.append(s, f"k{i}", "x")
                assert b.commits == 2
                raise RuntimeError("crash after five")
    assert _other_handle_kinds(p) == ["k0", "k1", "k2", "k3"]  # the fifth was not committed yet


def test_batches_do_not_nest_and_bad_commit_every_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "albra.db") as s:
        with pytest.raises(ValueError, match="commit_every"):
            with s.batch(commit_every=0):
                pass
        with s.batch():
            with pytest.raises(StoreError, match="do not nest"):
                with s.batch():
                    pass
            journal.append(s, "ok", "outer batch still usable")
        assert _kinds(s) == ["ok"]


def test_a_process_dying_before_the_commit_loses_the_batch(tmp_path: Path) -> None:
    """Documented price of batching (backtests only): nothing of an uncommitted batch survives a crash, and the
    file is intact for the next opener."""
    p = tmp_path / "albra.db"
    with Store.open(p) as s:
        journal.append(s, "durable", "committed before the batch")
    code = (
        "import os, sys\n"
        "from albra.store import Store, journal\n"
        f"s = Store.open({str(p)!r})\n"
        "with s.batch():\n"
        "    journal.append(s, 'lost', 'written in the batch')\n"
        "    sys.stdout.flush()\n"
        "    os._exit(3)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert res.returncode == 3
    with Store.open(p) as s:
        assert _kinds(s) == ["durable"]
        assert s.check_integrity().ok
