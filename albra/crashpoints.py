"""Named crash points for the crash-recovery suite (tests/faults, issue 9).

``crashpoint(name)`` does nothing unless the environment variable ``ALBRA_CRASHPOINT`` equals ``name`` (or
``name:N``: on the N-th time the point is reached, counting from 1), in which case the process SIGKILLs itself on
the spot — no flush, no ``finally``, no atexit: exactly what a power cut or the OOM killer does at that line. The
variable is read once at import, so an unset variable costs one ``is None`` test per call.

The points, and the state a restart must recover from:

``after_intent_commit``
    An order intent is committed (write-ahead row, state ``pending``) and nothing was sent. Restart: start-up
    resolution looks the client id up, finds nothing, marks it ``not_found`` and journals that it was never sent;
    the candle is evaluated again, derives the same id and finds that outcome, so the order is **not** sent then:
    an entry is sent **at most once**. Why not exactly once: the restart may come hours later, and an entry sent
    for an old signal is worse than a missed one (the maximum signal age that would make a late send safe is not
    built yet); the journal (``intent_resolved``, "never sent") says what happened to it.
``after_order_sent``
    The placement request was answered by the gateway, its outcome not yet recorded (the intent is ``sent``).
    Restart: the id is looked up and the exchange's answer recorded (fills applied); never re-sent.

Both are reached by every order the order manager sends (``albra.orders.manager.OrderManager.submit``: entries,
exits, stops, re-protection, stop moves and re-sizes), in the order they happen, so ``name:N`` counts all of them.
``order_unknown_before_lookup``
    Inside the order manager's unknown-outcome path: the placement failed without an answer (timeout, 5xx, -1007),
    the intent is recorded ``unknown``, and no lookup has run yet. Restart: start-up resolution looks the id up
    (spaced lookups) and records what the exchange did — an entry that executed after all opens its leg with its
    fills and the protection check places its stop; one that never reached the book is ``not_found``.
``after_entry_fill``
    An entry's answer says it filled; its stop is not yet placed and its trade rows not yet applied (the stop goes
    out on the answer, before the rows reach trade history). Restart: start-up applies the fills and the
    protection check places the missing stop (before any candle is evaluated).
``mid_stop_replace``
    Inside the stop replacement protocol (``albra.ledger.protection``) between its two exchange calls: after
    placing the new stop and before cancelling the old one (alone on its side), or after cancelling the old one and
    before placing the new one (shared side). Restart: duplicates are cancelled, a missing stop is placed.
``mid_reconcile``
    Inside a reconciliation round, right after its first repair (a protective order recorded/re-placed, a leg
    closed or adopted). Restart: the next round finishes the job and then finds nothing (it converges).
``mid_journal_write``
    Inside the executor's journal append, in the open transaction before its commit: the entry is lost, nothing
    else is half-written. (Only when armed does the executor wrap the append in an explicit transaction.)

Names are checked: a variable naming a point not in :data:`POINTS` is refused at import (ValueError), so a typo
in a test cannot silently never fire.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({"after_intent_commit", "after_order_sent", "order_unknown_before_lookup", "after_entry_fill",
                    "mid_stop_replace", "mid_reconcile", "mid_journal_write"})


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"ALBRA_CRASHPOINT={value!r}: unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}")
    try:
        n = int(nth) if nth else 1
    except ValueError:
        raise ValueError(f"ALBRA_CRASHPOINT={value!r}: the hit count after ':' must be an integer") from None
    if n < 1:
        raise ValueError(f"ALBRA_CRASHPOINT={value!r}: the hit count must be at least 1")
    return name, n


_ARMED = _parse(os.environ.get("ALBRA_CRASHPOINT"))
_hits = 0


def armed(name: str) -> bool:
    """Whether ``ALBRA_CRASHPOINT`` names this point (code that must take a slower path to offer the point, such as
    an explicit transaction around a journal write, takes it only then)."""
    return _ARMED is not None and _ARMED[0] == name


def crashpoint(name: str) -> None:
    """SIGKILL this process here if ``ALBRA_CRASHPOINT`` names this point (and this is its N-th hit)."""
    global _hits
    if _ARMED is None:
        return
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    if name != _ARMED[0]:
        return
    _hits += 1
    if _hits >= _ARMED[1]:
        os.kill(os.getpid(), signal.SIGKILL)
