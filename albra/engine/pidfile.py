"""The runner's pid file, ``<state_dir>/run-<account>.pid`` (mode 0600).

Why a file when the store's ``runners`` row also holds the pid: ``albra emergency-shutdown`` must stop a runner
even when the store cannot be read (ADR 0001: the emergency path depends on neither), and then this file is what
it has (:func:`albra.runbook.runner_control.pid_file` names the same path). Written at start, removed at an orderly
exit; a SIGKILLed runner leaves it behind, which is harmless: the reader checks that the pid is alive and is an
albra process before signalling it.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_path(state_dir: str | Path, account: str) -> Path:
    return Path(state_dir) / f"run-{account}.pid"


def write_pid_file(state_dir: str | Path, account: str, pid: int | None = None) -> Path:
    """Write this process's pid (or ``pid``), replacing a stale file; the file is created 0600."""
    path = pid_path(state_dir, account)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{pid if pid is not None else os.getpid()}\n".encode())
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def remove_pid_file(state_dir: str | Path, account: str, pid: int | None = None) -> bool:
    """Remove the file if it still names this process (another runner's file is left alone). True if removed."""
    path = pid_path(state_dir, account)
    mine = pid if pid is not None else os.getpid()
    try:
        if int(path.read_text().strip() or "0") != mine:
            return False
        path.unlink()
    except (FileNotFoundError, ValueError):
        return False
    return True
