"""Runner heartbeats: each ``albra run`` (and the bot) records its pid, state and last heartbeat so that
``status`` and ``safe-restart`` can tell up from down without talking to the process."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any, Mapping

from albra.store.db import Store
from albra.timefmt import now_ms as _now_ms

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

    def is_alive(self, now_ms: int | None = None) -> bool:
        """Running, heartbeat fresh, and (on this host) the pid exists."""
        if self.state not in ("starting", "running", "stopping") or self.heartbeat_ms is None:
            return False
        if (now_ms or _now_ms()) - self.heartbeat_ms > STALE_AFTER_MS:
            return False
        if self.pid and self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True


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
