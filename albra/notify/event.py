"""The alert event a runner or command hands to :func:`albra.notify.emit`.

Why structured fields rather than a prepared string: every alert must say the same things in the same
place (account, strategy, symbol, side, size, prices, PnL, KST time) so the operator can read it on a
phone at 3 a.m.; the formatter decides the layout once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

Number = Decimal | int | float | str


@dataclass(frozen=True)
class AlertEvent:
    """One thing that happened and should reach the operator (or the log, by its kind's level).

    ``event_id`` is the deduplication key: emitting the same id twice yields one alert. Build it from what
    identifies the occurrence (e.g. ``leg_closed:<leg_id>``, ``kill_switch:<ts>``) — see :func:`make_event_id`.
    ``prices`` is an ordered label → price map (``{"entry": ..., "exit": ...}``); ``details`` adds
    free-form key/value lines. ``ts`` is UTC epoch ms of the occurrence (None = now, at emit).
    """

    event_id: str
    kind: str
    message: str = ""
    account: str = ""
    strategy: str = ""
    symbol: str = ""
    side: str = ""
    size: Number | None = None
    prices: Mapping[str, Number] = field(default_factory=dict)
    pnl: Number | None = None
    pnl_asset: str = "USDT"
    ts: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.event_id or not self.event_id.strip():
            raise ValueError("AlertEvent.event_id must be a non-empty string (it deduplicates alerts)")
        if len(self.event_id) > 200:
            raise ValueError(f"AlertEvent.event_id is {len(self.event_id)} characters; keep it under 200")
        if not self.kind:
            raise ValueError("AlertEvent.kind must be set (see albra.notify.kinds.KINDS)")
        for name in ("size", "pnl"):
            v = getattr(self, name)
            if v is not None:
                _decimal(v, name)
        for label, v in self.prices.items():
            _decimal(v, f"prices[{label!r}]")


def _decimal(v: Number, what: str) -> Decimal:
    try:
        d = Decimal(str(v))
    except ArithmeticError:
        raise ValueError(f"AlertEvent.{what} is not a number: {v!r}") from None
    if not d.is_finite():
        raise ValueError(f"AlertEvent.{what} is not finite: {v!r}")
    return d


def make_event_id(kind: str, *parts: object) -> str:
    """``kind:part1:part2…``; long ids are shortened with a hash so they stay unique and under 200 chars."""
    raw = ":".join([kind, *(str(p) for p in parts)])
    if len(raw) <= 180:
        return raw
    return raw[:140] + ":" + hashlib.sha256(raw.encode()).hexdigest()[:32]
