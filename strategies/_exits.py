"""Exit rules shared by several strategies (partial take-profits, the trailing peak).

Kept out of ``base`` because they are strategy logic, not contract; the leading underscore keeps
the registry from scanning this module for strategies.
"""

from __future__ import annotations

from typing import Sequence

from albra.model import Direction
from albra.strategies.base import Decision, Exit, LegView, UpdateLegState

PEAK = "peak"


def tracked_peak(leg: LegView, close: float, out: list[Decision]) -> float:
    """The leg's most favourable close so far (entry price before any close), including
    ``close``; appends an :class:`UpdateLegState` when it moved so the engine persists it."""
    prev = float(leg.state.get(PEAK, leg.entry_price))
    peak = max(prev, close) if leg.direction is Direction.LONG else min(prev, close)
    if peak != prev or PEAK not in leg.state:
        out.append(UpdateLegState(leg.leg_id, {PEAK: peak}))
    return peak


def partial_exits(leg: LegView, gain: float, levels: Sequence[tuple[float, float]], name: str
                  ) -> list[Exit]:
    """Partial exits for each (gain level, fraction of the initial qty) reached and not yet done.

    Tags are ``partial_<level in %>`` (e.g. ``partial_5``). The last level of the schedule closes
    everything that remains (fraction 1.0), so exchange step rounding never leaves dust.
    """
    out: list[Exit] = []
    done = set(leg.partial_exits_done)
    tags = [partial_tag(lv) for lv, _ in levels]
    for (level, frac), tag in zip(levels, tags):
        if gain >= level and tag not in done:
            done.add(tag)
            last = all(t in done for t in tags)
            out.append(Exit(leg.leg_id, 1.0 if last else frac,
                            f"{name} {leg.direction.value.lower()}: +{gain * 100:.2f}% reached the "
                            f"+{level * 100:g}% partial take-profit, closing {frac * 100:g}% of the "
                            f"initial size" + (" (the rest)" if last else ""), tag))
    return out


def partial_tag(level: float) -> str:
    return f"partial_{level * 100:g}"


def check_partial_levels(levels: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Pydantic validator: gain levels strictly increasing and > 0, fractions in (0, 1] summing
    to at most 1 (of the initial size)."""
    if not levels:
        raise ValueError("at least one partial level is needed")
    prev = 0.0
    for level, frac in levels:
        if level <= prev:
            raise ValueError(f"partial gain levels must be positive and increasing, got {levels}")
        if not 0 < frac <= 1:
            raise ValueError(f"partial fraction {frac} is not in (0, 1]")
        prev = level
    if sum(f for _, f in levels) > 1.0 + 1e-9:
        raise ValueError(f"partial fractions sum to more than 100 % of the initial size: {levels}")
    return levels
