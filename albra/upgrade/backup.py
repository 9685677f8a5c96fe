"""A verified copy of the store, taken with SQLite's online backup API, and its restore.

Why the online backup API (``sqlite3.Connection.backup``) and not a file copy: the store is in WAL mode and other
processes (the bot, a dashboard) may still write; the API copies a consistent snapshot page by page under SQLite's
own locking, and a copy of the main file alone could miss committed pages still in the WAL. Verification opens the
copy on its own: ``PRAGMA integrity_check`` must say ok, the schema version must be the source's, and the ledger
tables (legs, fills, order intents, incidents) must hold as many rows as the source — the upgrade takes the backup
after the runners stopped, so nothing writes those tables meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

LEDGER_TABLES = ("legs", "fills", "order_intents", "incidents", "control_flags", "risk_state")


class BackupError(RuntimeError):
    """The backup could not be taken or did not verify."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    schema_version: int
    rows: dict[str, int]
    bytes: int


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    out = {}
    for t in LEDGER_TABLES:
        out[t] = int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
    return out


def take(db: Path, dest: Path) -> BackupInfo:
    """Online backup of ``db`` to ``dest`` (0600), verified. Raises :class:`BackupError`."""
    if not db.exists():
        raise BackupError(f"{db}: no store to back up")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(dest.parent, 0o700)
    tmp = dest.with_name(dest.name + ".partial")
    try:
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)
            finally:
                out.close()
            version = int(src.execute("PRAGMA user_version").fetchone()[0])
            rows = _counts(src)
        finally:
            src.close()
    except sqlite3.Error as e:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"backup of {db} failed: {e}") from None
    os.chmod(tmp, 0o600)
    info = verify(tmp, version, rows)
    os.replace(tmp, dest)
    return BackupInfo(dest, info.schema_version, info.rows, dest.stat().st_size)


def verify(path: Path, schema_version: int, rows: dict[str, int]) -> BackupInfo:
    """Open ``path`` on its own and check integrity, schema version and ledger row counts."""
    try:
        c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            check = [r[0] for r in c.execute("PRAGMA integrity_check").fetchall()]
            version = int(c.execute("PRAGMA user_version").fetchone()[0])
            got = _counts(c)
        finally:
            c.close()
    except sqlite3.Error as e:
        raise BackupError(f"backup {path} does not open: {e}") from None
    if check != ["ok"]:
        raise BackupError(f"backup {path} failed integrity_check: {'; '.join(check[:3])}")
    if version != schema_version:
        raise BackupError(f"backup {path} has schema v{version}, the store v{schema_version}")
    if got != rows:
        diff = {t: (rows.get(t), got.get(t)) for t in rows if rows.get(t) != got.get(t)}
        raise BackupError(f"backup {path} row counts differ from the store (store, backup): {diff}")
    return BackupInfo(path, version, got, path.stat().st_size)


def restore(backup: Path, db: Path) -> None:
    """Write ``backup`` back over the live store through the backup API (in place: the WAL and any open reader stay
    consistent), then check the result. Raises :class:`BackupError`."""
    try:
        src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            version = int(src.execute("PRAGMA user_version").fetchone()[0])
            rows = _counts(src)
            dst = sqlite3.connect(db, timeout=10)
            try:
                src.backup(dst)
                dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as e:
        raise BackupError(f"restoring {backup} over {db} failed: {e}") from None
    verify(db, version, rows)
