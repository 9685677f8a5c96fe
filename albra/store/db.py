"""Opening, validating and migrating the SQLite store.

Why it is shaped like this:
- WAL mode and a busy timeout let several processes (one runner per account, the bot, commands) read while
  one writes; every write goes through :meth:`Store.tx`, which takes ``BEGIN IMMEDIATE`` so writers queue
  instead of failing half-way.
- A database that is corrupted, not SQLite at all, or from a newer albra refuses to open with a message that
  says how to recover. The store never recreates itself over an existing file: losing the ledger silently
  is worse than stopping.
- Migrations are forward-only SQL files (``migrations/NNNN_name.sql``), applied in one transaction each,
  after a file copy of the database is kept beside it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000


class StoreError(RuntimeError):
    """Base class for store failures that must stop trading."""


class CorruptStoreError(StoreError):
    """The file is not a usable albra database."""


class NewerSchemaError(StoreError):
    """The database was written by a newer albra (schema version above what this code knows)."""


def _migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, sorted by version."""
    out: list[tuple[int, str, str]] = []
    for entry in resources.files("albra.store").joinpath("migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        version = int(name.split("_", 1)[0])
        out.append((version, name[:-4], entry.read_text(encoding="utf-8")))
    out.sort()
    for i, (v, _, _) in enumerate(out, start=1):
        if v != i:
            raise RuntimeError(f"store migrations are not numbered 1..N (found {v} at position {i})")
    return out


SCHEMA_VERSION = len(_migrations())


@dataclass
class IntegrityReport:
    """Result of :meth:`Store.check_integrity`; ``ok`` only when every check passed."""

    path: str
    schema_version: int
    expected_version: int
    integrity: list[str] = field(default_factory=list)
    foreign_key_violations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "schema_version": self.schema_version,
            "expected_version": self.expected_version,
            "integrity": self.integrity,
            "foreign_key_violations": self.foreign_key_violations,
            "problems": self.problems,
        }


def recovery_hint(path: Path) -> str:
    return (
        f"Trading must not continue on this store. Keep the file for the incident report, then either restore "
        f"the latest backup of {path} or move it aside and rebuild the ledger from the exchange with "
        f"`albra reconcile --apply` (positions are adopted as unattributed legs). emergency-shutdown still works: "
        f"it uses the exchange as the source of truth."
    )


#: Write-through read caches of single-writer throwaway stores, by connection (see :meth:`Store.enable_memo`).
_MEMOS: dict[int, dict[str, dict]] = {}
#: per memo connection, one list of undo actions per open transaction (innermost last): see :func:`on_rollback`
_UNDO: dict[int, list[list[Callable[[], None]]]] = {}
#: memo parts that hold values not yet written to the file (not read caches): a failed transaction undoes its own
#: changes to them (:func:`on_rollback`) instead of emptying them
RISK_STATE_UNWRITTEN = "risk_state_unwritten"
DURABLE_PARTS = frozenset({RISK_STATE_UNWRITTEN})
#: per memo connection inside a batch: writes kept back, table → {row key: (sql, params)} (see :func:`defer_write`)
_DEFERRED: dict[int, dict[str, dict[Any, tuple[str, tuple]]]] = {}
#: run with (connection, memo) before a memo store's batch commits: modules that keep values in memory during a run
#: write them here (risk state: :mod:`albra.store.risk_state`)
BEFORE_COMMIT: list[Callable[[Any, dict], None]] = []


#: connections of memo stores with an open :meth:`Store.batch` (values may wait in memory until it commits)
_BATCHED: set[int] = set()


def batched(conn: Any) -> bool:
    """Whether ``conn`` is a memo store's inside an open batch: the only place a value may be kept in memory and
    written when the batch commits (:data:`BEFORE_COMMIT`)."""
    return id(conn) in _BATCHED and id(conn) in _MEMOS


def defer_write(conn: Any, table: str, key: Any, sql: str, params: tuple) -> bool:
    """Keep one row's write back on a memo store inside a batch; False elsewhere (the caller executes it now).

    Why: a backtest writes some rows only to rewrite them a moment later (an order's intent is recorded, marked sent
    and answered within one call of the paper gateway; an equity snapshot per entry nobody reads in the run). A kept
    write runs before any later statement that names ``table`` (so every reader and writer of the table sees the
    file as if it had run) or when the batch commits. A later write kept for the same (table, key) replaces it —
    the caller keeps whole row images (an upsert), so the last one is the row; a transaction that fails puts back
    what it changed (:func:`on_rollback`)."""
    if not batched(conn):
        return False
    rows = _DEFERRED.setdefault(id(conn), {}).setdefault(table, {})
    before = rows.pop(key, None)
    rows[key] = (sql, params)
    on_rollback(conn, lambda: _restore(rows, key, before))
    return True


def _restore(rows: dict, key: Any, value: Any) -> None:
    rows.pop(key, None)
    if value is not None:
        rows[key] = value


def _run_deferred(conn: sqlite3.Connection, sql: str | None = None) -> None:
    """Run the kept writes of every table ``sql`` names (all of them when ``sql`` is None), oldest first."""
    tables = _DEFERRED.get(id(conn))
    if not tables:
        return
    for table, rows in tables.items():
        if rows and (sql is None or table in sql):
            ran = dict(rows)
            for q, params in ran.values():
                _raw_execute(conn, q, params)
            rows.clear()
            # they ran inside the open transaction: if it fails its rollback takes them back out of the file, so
            # they are kept back again (unless a newer write of the same row is kept by then)
            on_rollback(conn, lambda rows=rows, ran=ran: [rows.setdefault(k, v) for k, v in ran.items()])


def on_rollback(conn: Any, undo: Callable[[], None]) -> None:
    """On a memo store, run ``undo`` if the innermost open transaction fails (and, once it succeeded, if an
    enclosing one fails). Outside a transaction, or on a live store, nothing is registered: the change stands."""
    stack = _UNDO.get(id(conn))
    if stack:
        stack[-1].append(undo)


def memo_of(conn: Any) -> dict[str, dict] | None:
    """The read cache of the store ``conn`` belongs to, or None (the normal case: every read goes to SQLite)."""
    return _MEMOS.get(id(conn)) if _MEMOS else None


def cached_row(conn: Any, part: str, table: str, key_col: str, key: Any, parse: Callable[[dict], Any]) -> Any:
    """The row of ``table`` whose ``key_col`` is ``key``, parsed (None when there is none). On a memo store the
    parsed row is answered from, and remembered in, the memo's ``part`` (parsed rows must be immutable); the
    connection's write watch keeps it current. ``table``/``key_col`` are the caller's constants, never input."""
    m = memo_of(conn)
    cache = None if m is None else m.setdefault(part, {})
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    cur = conn.execute(f"SELECT * FROM {table} WHERE {key_col} = ?", (key,))
    row = cur.fetchone()
    if row is None:
        return None
    out = parse(dict(zip([d[0] for d in cur.description], row)))
    if cache is not None:
        remember(cache, key, out)
    return out


#: a memo part holds at most this many rows: the ledger re-reads what it wrote moments ago (an intent during its
#: order's round trip, a leg while it is open), never a trade from months back, so a bounded cache loses nothing
#: and a three-year backtest's memory stays flat
MEMO_ROWS = 2048


def remember(cache: dict, key: Any, value: Any) -> None:
    """Put ``value`` in a memo part; a full part drops its oldest half (dicts keep insertion order)."""
    cache.pop(key, None)
    cache[key] = value
    if len(cache) > MEMO_ROWS:
        for k in list(itertools.islice(cache, len(cache) // 2)):
            del cache[k]


#: table -> (memo part, key column) of the caches a memo store keeps; see :class:`_WatchedConnection`
_WATCHED = {"legs": ("legs", "leg_id"), "order_intents": ("intents", "client_id"), "risk_state": ("risk_state", ""),
            "control_flags": ("flags", "")}
#: the memo part listing each leg's intent client ids in order (kept by the ledger's intent and leg writers)
LEG_INTENTS = "leg_intents"
#: tables whose cache holds a query over the whole table (not rows by key): any INSERT, too, makes it stale
_INSERT_CLEARS = frozenset({"control_flags"})
#: memo parts that answer a query over a table (not rows by key): any write to it the watch sees empties them
LIVE_LEGS = "live_legs"
_ALSO_CLEARS = {"legs": (LIVE_LEGS,)}
_KEYED_UPDATE = {t: re.compile(rf"\bWHERE\s+{k}\s*=\s*\?\s*$", re.I) for t, (_, k) in _WATCHED.items() if k}


class _WatchedConnection(sqlite3.Connection):
    """The connection of a memo store: every write to a cached table drops what it may have made stale, whoever
    wrote it — ``UPDATE … WHERE <key> = ?`` that one row, any other UPDATE or DELETE (or INSERT OR REPLACE) the
    whole table's cache. Plain INSERTs create rows nobody has cached (reads of missing rows are not cached);
    risk state's upsert is kept in step by :func:`albra.store.risk_state.put` itself. So a module that writes
    these tables with SQL of its own can never leave a stale cached row behind."""

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:  # type: ignore[override]
        if _DEFERRED:
            _run_deferred(self, sql)
        cur = super().execute(sql, params)
        what = _write_target(sql)
        if what is not None:
            m = _MEMOS.get(id(self))
            for also in _ALSO_CLEARS.get(what[2], ()) if m else ():
                if m.get(also):  # type: ignore[union-attr]
                    m[also].clear()  # type: ignore[index]
            part = m.get(what[0]) if m else None
            if part:
                if what[1] and isinstance(params, (tuple, list)) and params:
                    part.pop(params[-1], None)
                else:
                    part.clear()
        return cur

    def executemany(self, sql: str, seq: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if _DEFERRED:
            _run_deferred(self, sql)
        cur = super().executemany(sql, seq)
        what = _write_target(sql)
        m = _MEMOS.get(id(self))
        if what is not None and m:
            for name in (what[0], *_ALSO_CLEARS.get(what[2], ())):
                if m.get(name):
                    m[name].clear()
        return cur


@functools.lru_cache(maxsize=1024)
def execute_unwatched(conn: Any, sql: str, params: tuple) -> sqlite3.Cursor:
    """Execute a write whose module keeps the memo in step itself (it remembers the row it wrote and updates the
    memo's query answers): the memo's write watch, which would drop them, is skipped. Kept-back writes of the
    tables the statement names still run first (:func:`defer_write`)."""
    if _DEFERRED:
        _run_deferred(conn, sql)
    return _raw_execute(conn, sql, params)


def _write_target(sql: str) -> tuple[str, bool, str] | None:
    """For a statement that may make cached rows stale: (memo part, whether its last parameter is the row's key,
    table); None for reads, savepoints, plain INSERTs and tables nobody caches. Cached per statement text."""
    words = sql.split(None, 5)
    verb = words[0].upper() if words else ""
    upper = [w.upper() for w in words]
    if verb == "UPDATE" and len(words) > 1:
        table = words[1]
    elif verb == "DELETE" and len(words) > 2:
        table = words[2]
    elif verb in ("REPLACE", "INSERT") and "INTO" in upper:
        i = upper.index("INTO")
        table = words[i + 1] if i + 1 < len(words) else ""
    else:
        return None
    name = table.split("(")[0].strip().lower()
    if verb == "INSERT" and upper[1] != "OR" and name not in _INSERT_CLEARS:
        return None  # a plain INSERT makes a row nobody has cached (reads of missing rows are not cached)
    spec = _WATCHED.get(name)
    if spec is None:
        return None
    rx = _KEYED_UPDATE.get(table.lower())
    return spec[0], bool(verb == "UPDATE" and rx is not None and rx.search(sql)), name


class Store:
    """A process's handle on the shared SQLite store (one connection per thread)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self._batch: _Batch | None = None
        self.memo: dict[str, dict] | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True, migrate: bool = True,
             any_version: bool = False, memo: bool = False) -> "Store":
        """Open (and if needed create and migrate) the store at ``path``.

        ``any_version`` (``albra upgrade``, which runs beside a store of another albra version): open whatever schema
        version the file has, migrate nothing, and only read tables every version has (``runners``).

        ``memo=True`` (a backtest's throwaway file, written by this handle only) watches writes so that
        :meth:`enable_memo` caches can never go stale; see there.

        Raises :class:`CorruptStoreError` for a damaged or foreign file and :class:`NewerSchemaError` for a
        database from a newer albra. ``create=False`` refuses to create a missing file (read-only commands).
        """
        p = Path(path)
        exists = p.exists() and p.stat().st_size > 0
        if not exists and not create:
            raise StoreError(f"{p}: no albra store here (run `albra run` once, or check --config / paths.state_dir)")
        if exists:
            cls._check_header(p)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(p.parent, 0o700)
        try:
            conn = sqlite3.connect(p, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False,
                                   factory=_WatchedConnection if memo else sqlite3.Connection)
        except sqlite3.Error as e:
            raise CorruptStoreError(f"{p}: cannot open store: {e}. {recovery_hint(p)}") from None
        if not exists:
            with contextlib.suppress(OSError):
                os.chmod(p, 0o600)
        store = cls(p, conn)
        try:
            store._configure()
            version = store.schema_version()
            if any_version:
                if not exists:
                    raise StoreError(f"{p}: no albra store here")
                return store
            if version > SCHEMA_VERSION:
                raise NewerSchemaError(
                    f"{p}: schema version {version} is newer than this albra understands ({SCHEMA_VERSION}). "
                    f"Upgrade albra (or run the version that wrote it); the file was not changed."
                )
            if exists:
                store._quick_check()
            if version < SCHEMA_VERSION:
                if not migrate:
                    raise StoreError(f"{p}: schema version {version} needs migration to {SCHEMA_VERSION}")
                store._migrate(version, backup=exists and version > 0)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise CorruptStoreError(f"{p}: store unreadable: {e}. {recovery_hint(p)}") from None
        except StoreError:
            conn.close()
            raise
        return store

    @staticmethod
    def _check_header(p: Path) -> None:
        try:
            with open(p, "rb") as fh:
                head = fh.read(16)
        except OSError as e:
            raise CorruptStoreError(f"{p}: cannot read store: {e}. {recovery_hint(p)}") from None
        if head != SQLITE_MAGIC:
            raise CorruptStoreError(f"{p}: not an SQLite database (bad header). {recovery_hint(p)}")

    def _configure(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: could not switch the store to WAL mode (got {mode})")
        c.execute("PRAGMA synchronous = NORMAL")
        c.execute("PRAGMA foreign_keys = ON")

    def _quick_check(self) -> None:
        rows = [r[0] for r in self._conn.execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            raise CorruptStoreError(
                f"{self.path}: integrity check failed: {'; '.join(rows[:5])}. {recovery_hint(self.path)}"
            )

    def _migrate(self, current: int, backup: bool) -> None:
        if backup:
            dst = self.path.with_name(f"{self.path.name}.pre-v{SCHEMA_VERSION}.bak")
            self.checkpoint()
            shutil.copy2(self.path, dst)
            with contextlib.suppress(OSError):
                os.chmod(dst, 0o600)
        for version, name, sql in _migrations():
            if version <= current:
                continue
            with self.tx() as c:
                # re-read inside the write lock: another process may have migrated meanwhile
                now = c.execute("PRAGMA user_version").fetchone()[0]
                if now >= version:
                    continue
                for statement in _split_sql(sql):
                    c.execute(statement)
                c.execute(f"PRAGMA user_version = {version}")
                c.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                    " applied_ms INTEGER NOT NULL)"
                )
                c.execute(
                    "INSERT INTO schema_migrations(version, name, applied_ms) VALUES (?, ?, strftime('%s','now')*1000)",
                    (version, name),
                )

    # ------------------------------------------------------------------ access
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def enable_memo(self) -> dict[str, dict]:
        """Let the ledger keep what it writes in memory and answer its own re-reads from there (intents by client
        id, risk state by key): for a store only this handle writes — a backtest's throwaway file — where every
        re-read of a row just written is wasted work. Never for the shared live store: another process (a command,
        the bot, emergency-shutdown) may write it, and a cache would not see that. Each cache is filled only by
        the module that owns the table's writes; a failed transaction empties every cache (its writes were rolled
        back), so the cache is never ahead of the database."""
        if not isinstance(self._conn, _WatchedConnection):
            raise StoreError("enable_memo needs a store opened with Store.open(..., memo=True)")
        with self._lock:
            self.memo = _MEMOS[id(self._conn)] = {}
            _UNDO[id(self._conn)] = []
            return self.memo

    def _forget_memo(self, everything: bool = False) -> None:
        """Empty the read caches after a rollback (their rows may be gone). Parts holding values not yet written
        (:data:`DURABLE_PARTS`) were put back by their undo actions; only a whole batch's rollback empties them."""
        if self.memo is not None:
            for name, part in self.memo.items():
                if everything or name not in DURABLE_PARTS:
                    part.clear()

    def _before_commit(self) -> None:
        if self.memo is not None:
            _run_deferred(self._conn)
            for hook in BEFORE_COMMIT:
                hook(self._conn, self.memo)

    def tx(self) -> "_Tx":
        """A write transaction (``BEGIN IMMEDIATE``): all or nothing, serialised across processes.

        Inside :meth:`batch` it is a SAVEPOINT instead: a failure rolls back only this transaction's writes (and
        the exception still propagates); its writes become durable when the batch commits.
        """
        return _Tx(self)

    @contextlib.contextmanager
    def batch(self, commit_every: int | None = None) -> Iterator["_Batch"]:
        """Group many :meth:`tx` calls into one outer transaction (backtests and other throwaway stores).

        Why: a backtest makes ~20 small transactions per trade, and the commits, not the statements, are most of
        their cost. Inside the batch every ``tx()`` becomes a SAVEPOINT, so its all-or-nothing meaning is kept
        (an inner failure rolls back to its savepoint only, the exception propagates, earlier work stays) and
        reads on this store see every write made so far. The batch commits when the block ends (and, with
        ``commit_every=N``, after every N outermost ``tx()`` calls); an exception escaping the block rolls back
        whatever the batch has not committed yet.

        The price is durability: a crash before the batch commits loses everything written since its last commit,
        and the batch holds the database's write lock (other processes' writers wait on the busy timeout) and
        this handle's lock (other threads wait) for its whole length. So live runners never batch: they keep one
        durable commit per ``tx()``. Batches do not nest.
        """
        if commit_every is not None and commit_every < 1:
            raise ValueError(f"commit_every must be ≥ 1 (or None for one commit at the end), got {commit_every}")
        with self._lock:
            if self._batch is not None:
                raise StoreError("a store batch is already open on this handle (batches do not nest)")
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            b = self._batch = _Batch(commit_every)
            _BATCHED.add(id(c))
            try:
                yield b
            except BaseException:
                self._batch = None
                _BATCHED.discard(id(c))
                _DEFERRED.pop(id(c), None)
                c.execute("ROLLBACK")
                self._forget_memo(everything=True)
                raise
            else:
                self._batch = None
                try:
                    self._before_commit()
                finally:
                    _BATCHED.discard(id(c))
                    _DEFERRED.pop(id(c), None)
                c.execute("COMMIT")
                b.commits += 1

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Read rows (dict-like) outside any write transaction."""
        with self._lock:
            cur = self._conn.execute(sql, params)
            cols = [d[0] for d in cur.description or ()]
            return [_Row(cols, r) for r in cur.fetchall()]

    def stream(self, sql: str, params: tuple | dict = ()) -> Iterator["_Row"]:
        """Rows one at a time, for reading a long table without holding all of it (the handle stays locked until
        the iteration ends; write nothing to the tables being read meanwhile)."""
        with self._lock:
            cur = self._conn.execute(sql, params)
            cols = [d[0] for d in cur.description or ()]
            for r in cur:
                yield _Row(cols, r)

    def query_values(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        """Read rows as plain tuples, columns by position (hot paths reading a few columns many times)."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> "_Row | None":
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: tuple | dict = ()) -> None:
        """One write statement in its own transaction."""
        with self.tx() as c:
            c.execute(sql, params)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (before a file copy or backup)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def check_integrity(self) -> IntegrityReport:
        """Full check for commands (safe-restart, status): integrity, schema version, foreign keys."""
        rep = IntegrityReport(str(self.path), self.schema_version(), SCHEMA_VERSION)
        with self._lock:
            rep.integrity = [r[0] for r in self._conn.execute("PRAGMA integrity_check").fetchall()]
            fk = self._conn.execute("PRAGMA foreign_key_check").fetchall()
        rep.foreign_key_violations = [f"{r[0]} rowid {r[1]} -> {r[2]}" for r in fk]
        if rep.integrity != ["ok"]:
            rep.problems.append("integrity_check: " + "; ".join(rep.integrity[:5]))
        if rep.schema_version != SCHEMA_VERSION:
            rep.problems.append(f"schema version {rep.schema_version}, expected {SCHEMA_VERSION}")
        if rep.foreign_key_violations:
            rep.problems.append(f"{len(rep.foreign_key_violations)} foreign key violation(s)")
        return rep

    def close(self) -> None:
        with self._lock:
            _MEMOS.pop(id(self._conn), None)
            _UNDO.pop(id(self._conn), None)
            _DEFERRED.pop(id(self._conn), None)
            self.memo = None
            self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: savepoint names by nesting depth (made once: a backtest opens ~14 transactions per trade)
_SAVEPOINTS = tuple(f"albra_tx_{d}" for d in range(64))
_raw_execute = sqlite3.Connection.execute  # savepoints are not writes: the memo's write watch has nothing to see


class _Tx:
    """The context manager :meth:`Store.tx` returns (a class, not a generator: it runs for every ledger write).
    Holds the store's lock from enter to exit; see :meth:`Store.tx` for the meaning."""

    __slots__ = ("store", "name")

    def __init__(self, store: "Store") -> None:
        self.store = store
        self.name: str | None = None

    def __enter__(self) -> sqlite3.Connection:
        s = self.store
        s._lock.acquire()
        try:
            c = s._conn
            b = s._batch
            if b is not None:
                b.depth += 1
                name = _SAVEPOINTS[b.depth] if b.depth < len(_SAVEPOINTS) else f"albra_tx_{b.depth}"
                try:
                    _raw_execute(c, "SAVEPOINT " + name)
                except BaseException:
                    b.depth -= 1
                    raise
                self.name = name
            else:
                c.execute("BEGIN IMMEDIATE")
            if (stack := _UNDO.get(id(c))) is not None:
                stack.append([])
            return c
        except BaseException:
            s._lock.release()
            raise

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        s = self.store
        c = s._conn
        try:
            if (stack := _UNDO.get(id(c))) is not None and stack:
                frame = stack.pop()
                if et is not None:
                    for undo in reversed(frame):
                        undo()
                elif stack:
                    stack[-1].extend(frame)  # an enclosing transaction that fails undoes this one's changes too
            name = self.name
            if name is not None:
                b = s._batch
                assert b is not None
                try:
                    if et is not None:
                        _raw_execute(c, "ROLLBACK TO " + name)
                        _raw_execute(c, "RELEASE " + name)
                        s._forget_memo()
                        return False
                    _raw_execute(c, "RELEASE " + name)
                finally:
                    b.depth -= 1
                if b.depth == 0:
                    b.done += 1
                    if b.commit_every and b.done >= b.commit_every:
                        s._before_commit()
                        c.execute("COMMIT")
                        c.execute("BEGIN IMMEDIATE")
                        b.done = 0
                        b.commits += 1
                return False
            if et is not None:
                c.execute("ROLLBACK")
                s._forget_memo()
                return False
            c.execute("COMMIT")
            return False
        finally:
            s._lock.release()


@dataclass
class _Batch:
    """State of an open :meth:`Store.batch`: savepoint depth, outermost ``tx()`` calls since the last commit,
    and commits made so far (for tests and benches)."""

    commit_every: int | None
    depth: int = 0
    done: int = 0
    commits: int = 0


class _Row(dict):
    """A row as a dict (column → value), also indexable by position like sqlite3.Row.

    Positional access goes through ``__missing__`` (column names are strings, so an int key always misses) rather
    than a ``__getitem__`` override: lookups by column name, by far the most frequent, stay plain C dict lookups."""

    __slots__ = ()

    def __init__(self, cols: list[str], values: tuple) -> None:
        super().__init__(zip(cols, values))

    def __missing__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        raise KeyError(key)


def _split_sql(sql: str) -> list[str]:
    """Split a migration into statements, keeping CREATE TRIGGER ... END; bodies whole."""
    statements: list[str] = []
    buf: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        buf.append(line)
        joined = "\n".join(buf).strip()
        if sqlite3.complete_statement(joined):
            statements.append(joined)
            buf = []
    if buf and "\n".join(buf).strip():
        raise RuntimeError("migration ends with an incomplete statement")
    return statements
