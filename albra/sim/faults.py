"""Fault injection for the local Binance server, per (method, path).

A rule can answer with a chosen status and body, add latency, drop the connection without an
answer, let the request take effect and then lose the response ("commit but lose"), or answer Binance's
-1007 backend timeout after executing the request now, never, by a coin, or later ("backend_timeout"). Rules
fire ``count`` times (None: until cleared) with ``probability`` (seeded, so runs repeat).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

ACTIONS = ("status", "latency", "drop", "commit_lose", "backend_timeout")


@dataclass
class Fault:
    method: str
    path: str
    action: str
    status: int = 500
    body: str = ""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)  # status: extra response headers (e.g. Retry-After)
    delay_ms: int = 0
    lose: str = "drop"  # commit_lose: "drop" the connection or "timeout" (hold the answer delay_ms)
    execute: bool | None = True  # backend_timeout: the request takes effect (True), not (False), or a coin (None)
    execute_after_ms: int = 0  # backend_timeout: the request takes effect this much later (an order that turns up)
    count: int | None = 1
    probability: float = 1.0
    fired: int = 0
    id: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.method in (method, "*") and self.path in (path, "*")


@dataclass
class FaultTable:
    rules: list[Fault] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(1234))
    _next: int = 1

    def add(self, spec: dict) -> Fault:
        """Add a rule from its JSON description (see ``albra/sim/README.md``); bad specs raise ValueError."""
        known = {"method", "path", "action", "status", "body", "content_type", "headers", "delay_ms", "lose",
                 "count", "probability", "execute", "execute_after_ms"}
        extra = set(spec) - known
        if extra:
            raise ValueError(f"unknown fault fields: {sorted(extra)}; known: {sorted(known)}")
        for req in ("method", "path", "action"):
            if req not in spec:
                raise ValueError(f"fault needs {req!r}")
        if spec["action"] not in ACTIONS:
            raise ValueError(f"fault action must be one of {ACTIONS}, got {spec['action']!r}")
        if spec.get("lose", "drop") not in ("drop", "timeout"):
            raise ValueError("fault 'lose' must be 'drop' or 'timeout'")
        if spec.get("execute", True) not in (True, False, None):
            raise ValueError("fault 'execute' must be true, false or null (a seeded coin)")
        if not isinstance(spec.get("execute_after_ms", 0), int) or spec.get("execute_after_ms", 0) < 0:
            raise ValueError("fault 'execute_after_ms' must be a non-negative integer")
        if not isinstance(spec.get("headers", {}), dict):
            raise ValueError("fault 'headers' must be an object of header name → value")
        f = Fault(**{**spec, "method": str(spec["method"]).upper(),
                     "headers": {str(k): str(v) for k, v in spec.get("headers", {}).items()}})
        if not 0 < f.probability <= 1:
            raise ValueError("probability must be in (0, 1]")
        f.id = self._next
        self._next += 1
        self.rules.append(f)
        return f

    def take(self, method: str, path: str) -> Fault | None:
        """The first live rule for this request, consuming one use of it."""
        for f in self.rules:
            if not f.matches(method, path):
                continue
            if f.count is not None and f.fired >= f.count:
                continue
            if f.probability < 1 and self.rng.random() >= f.probability:
                continue
            f.fired += 1
            return f
        return None

    def clear(self) -> None:
        self.rules.clear()

    def describe(self) -> list[dict]:
        return [asdict(f) for f in self.rules]
