"""Runner heartbeats: each ``albra run`` (and the bot) records its pid, state and last heartbeat so that
``status`` and ``safe-restart`` can tell up from down without talking to the process."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any, Mapping

from albra.store.db import Store
from albra.timefmt import fmt_kst, now_ms as _now_ms

STALE_AFTER_MS = 30_000


@dataclass(frozen=True)
class RunnerInfo:
    name: str
    pid: int | None
    host: str
    state: str
    started_ms: int | None
    heartbeat_ms: int | None
    detail: dict[str, Any]

    def is_alive(self, now_ms: int | None = None, down_after_ms: int = STALE_AFTER_MS) -> bool:
        """Up by :func:`liveness` (running, heartbeat fresh, and on this host the pid exists)."""
        return liveness(self, now_ms or _now_ms(), down_after_ms).up


RUNNING_STATES = ("starting", "running", "stopping")


def wall_now() -> int:
    """Wall-clock ms: heartbeats are wall time (liveness compares them with the wall clock), never exchange time."""
    return _now_ms()


@dataclass(frozen=True)
class Liveness:
    """A runner's health in the one wording every view uses (CLI, dashboard, bot): ``state`` is ``up``, ``down``
    (went silent: heartbeat older than the configured limit, or its process gone), ``stopped`` (a clean stop) or
    ``never started``; ``since_ms`` is when that began (down: the last heartbeat)."""

    name: str
    state: str
    since_ms: int | None
    heartbeat_age_s: int | None
    text: str

    @property
    def up(self) -> bool:
        return self.state == "up"


def duration_text(ms: int) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``4 d 2 h`` — how long, for people."""
    s = max(0, ms // 1000)
    if s < 60:
        return f"{s} s"
    m = s // 60
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _pid_gone(info: RunnerInfo) -> bool:
    if not info.pid or info.host != socket.gethostname():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def liveness(info: RunnerInfo | None, now_ms: int, down_after_ms: int, name: str = "") -> Liveness:
    """THE definition of a runner being up: a running state, a heartbeat no older than ``down_after_ms`` (the
    configured ``runner.down_after_s``) and, on this host, its process still there. Times are wall-clock: heartbeats
    are written with the wall clock, whatever the exchange's clock says."""
    if info is None:
        return Liveness(name, "never started", None, None, "never started")
    age = None if info.heartbeat_ms is None else max(0, now_ms - info.heartbeat_ms)
    age_s = None if age is None else age // 1000
    last = info.heartbeat_ms
    if info.state not in RUNNING_STATES and info.state != "crashed":  # crashed (a row written by hand): down
        why = info.detail.get("reason") if isinstance(info.detail, dict) else ""
        since = "" if last is None else f" since {fmt_kst(last)}, {duration_text(now_ms - last)}"
        return Liveness(info.name, "stopped", last, age_s, f"stopped{since}" + (f" ({why})" if why else ""))
    if age is None or age > down_after_ms or _pid_gone(info):
        gone = " (process gone)" if age is not None and age <= down_after_ms else ""
        since = "" if last is None else f" since {fmt_kst(last)}, {duration_text(now_ms - last)}"
        return Liveness(info.name, "down", last, age_s, f"DOWN{since}{gone}")
    started = info.started_ms if info.started_ms is not None else last
    return Liveness(info.name, "up", started, age_s,
                    f"up since {fmt_kst(started)}, {duration_text(now_ms - started)} (heartbeat {age_s} s ago)")


def beat(store: Store, name: str, state: str, detail: Mapping[str, Any] | None = None, ts: int | None = None,
         started_ms: int | None = None) -> None:
    t = _now_ms() if ts is None else ts
    store.execute(
        "INSERT INTO runners(name, pid, host, state, started_ms, heartbeat_ms, detail) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT(name) DO UPDATE SET pid=excluded.pid, host=excluded.host, state=excluded.state,"
        " started_ms=COALESCE(excluded.started_ms, runners.started_ms), heartbeat_ms=excluded.heartbeat_ms,"
        " detail=excluded.detail",
        (name, os.getpid(), socket.gethostname(), state, started_ms, t, json.dumps(dict(detail or {}), default=str)),
    )


def get_all(store: Store) -> list[RunnerInfo]:
    return [RunnerInfo(r["name"], r["pid"], r["host"], r["state"], r["started_ms"], r["heartbeat_ms"],
                       json.loads(r["detail"])) for r in store.query("SELECT * FROM runners ORDER BY name")]
