"""Stopping and restarting the per-account runners (``albra run --account NAME``) from a runbook command.

How a runner is found, most reliable first:

1. the systemd template unit ``albra@NAME.service`` when ``systemctl`` exists and the unit is loaded —
   ``systemctl stop`` waits for the stop (SIGTERM, then systemd's own SIGKILL after TimeoutStopSec);
2. otherwise the pid in the store's ``runners`` row ``run:NAME`` (same host only) and the pid file
   ``<state_dir>/run-NAME.pid``: SIGTERM, wait, then SIGKILL after ``timeout_s``.

A pid is only signalled if it is alive and its command line mentions ``albra`` (on Linux, from /proc): a stale pid
file must never make us kill an unrelated process that reused the number. The store may be unreadable during an
emergency; the pid file path then still works.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

UNIT_TEMPLATE = "albra@{account}.service"


@dataclass
class RunnerStop:
    """What was done to stop one account's runner. ``ok`` means no runner of the account is running now."""

    account: str
    method: str  # systemd | signal | none
    ok: bool
    detail: str
    pids: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "method": self.method, "ok": self.ok, "detail": self.detail,
                "pids": self.pids, "seconds": round(self.seconds, 3)}


def unit_name(account: str) -> str:
    return UNIT_TEMPLATE.format(account=account)


def systemctl() -> str | None:
    """Path of systemctl if this host has it (and systemd is PID 1's manager). ``ALBRA_NO_SYSTEMD=1`` (set by
    ``albra drill`` for its commands) means never: a drill must not stop or restart the real ``albra@`` units."""
    if os.environ.get("ALBRA_NO_SYSTEMD", "").strip() in ("1", "true", "yes"):
        return None
    path = shutil.which("systemctl")
    if path is None or not Path("/run/systemd/system").is_dir():
        return None
    return path


def unit_loaded(account: str) -> bool:
    """True when systemd knows the unit ``albra@ACCOUNT.service`` (installed with ``albra service install``)."""
    sc = systemctl()
    if sc is None:
        return False
    try:
        out = subprocess.run([sc, "show", "-p", "LoadState", "--value", unit_name(account)], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "loaded"


def pid_file(state_dir: Path, account: str) -> Path:
    return state_dir / f"run-{account}.pid"


def _is_albra(pid: int) -> bool | None:
    """Whether ``pid`` is alive and looks like an albra process: True/False, None when it does not exist."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (not Linux): the pid file/heartbeat is all we have
    try:
        raw = cmdline.read_bytes()
    except OSError:
        return None
    if not raw:  # a zombie has an empty cmdline: it is already dead
        return None
    return b"albra" in raw


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def candidate_pids(account: str, state_dir: Path, runner_pid: int | None, runner_host: str | None) -> list[int]:
    """Pids that may be the account's runner: the store's heartbeat row (this host only) and the pid file."""
    out: list[int] = []
    if runner_pid and (not runner_host or runner_host == socket.gethostname()):
        out.append(int(runner_pid))
    pf = pid_file(state_dir, account)
    try:
        text = pf.read_text().strip()
        if text.isdigit():
            out.append(int(text))
    except OSError:
        pass
    return list(dict.fromkeys(out))


def stop_runner(account: str, state_dir: Path, runner_pid: int | None = None, runner_host: str | None = None, *,
                timeout_s: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> RunnerStop:
    """Stop the account's runner by systemd or by signal (see module docstring). Never raises."""
    t0 = time.monotonic()
    if unit_loaded(account):
        sc = systemctl()
        assert sc is not None
        try:
            out = subprocess.run([sc, "stop", unit_name(account)], capture_output=True, text=True,
                                 timeout=timeout_s + 60)
            ok = out.returncode == 0
            detail = f"systemctl stop {unit_name(account)}" + ("" if ok else f" failed: {out.stderr.strip()[:200]}")
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, detail = False, f"systemctl stop {unit_name(account)} failed: {e}"
        if ok:
            return RunnerStop(account, "systemd", True, detail, seconds=time.monotonic() - t0)
        # fall through to signals: a unit that would not stop must not leave its process trading
    pids = candidate_pids(account, state_dir, runner_pid, runner_host)
    live: list[int] = []
    notes: list[str] = []
    for pid in pids:
        kind = _is_albra(pid)
        if kind is None:
            notes.append(f"pid {pid} is not running")
        elif kind is False:
            notes.append(f"pid {pid} is not an albra process; left alone")
        else:
            live.append(pid)
    if not live:
        detail = "no running runner found" + (f" ({'; '.join(notes)})" if notes else "")
        return RunnerStop(account, "none", True, detail, pids, time.monotonic() - t0)
    for pid in live:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError as e:
            notes.append(f"pid {pid}: cannot signal ({e})")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in live):
        sleep(0.05)
    killed = []
    for pid in live:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
            except PermissionError as e:
                notes.append(f"pid {pid}: cannot SIGKILL ({e})")
    if killed:
        end = time.monotonic() + 5.0
        while time.monotonic() < end and any(_alive(p) for p in killed):
            sleep(0.05)
    still = [p for p in live if _alive(p)]
    detail = f"SIGTERM to pid {', '.join(map(str, live))}"
    if killed:
        detail += f"; SIGKILL to {', '.join(map(str, killed))} after {timeout_s:g}s"
    if still:
        detail += f"; STILL RUNNING: {', '.join(map(str, still))}"
    if notes:
        detail += f" ({'; '.join(notes)})"
    return RunnerStop(account, "signal", not still, detail, live, time.monotonic() - t0)


def restart_unit(account: str, timeout_s: float = 90.0) -> tuple[bool, str]:
    """``systemctl restart albra@ACCOUNT.service``: (ok, what happened)."""
    sc = systemctl()
    if sc is None:
        return False, "systemctl is not available on this host"
    try:
        out = subprocess.run([sc, "restart", unit_name(account)], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"systemctl restart {unit_name(account)} failed: {e}"
    if out.returncode != 0:
        return False, f"systemctl restart {unit_name(account)} failed: {out.stderr.strip()[:300]}"
    return True, f"systemctl restart {unit_name(account)}"
