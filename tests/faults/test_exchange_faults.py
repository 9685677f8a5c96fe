"""Exchange faults over time (issue 9): ``albra run`` trades while the local Binance server injects faults.

Same rig as the crash suite (``tests/faults/harness.py``: ``albra run`` live against ``albra sim serve``, real
processes, real ccxt, hedge mode, MOMENTUM + TEMPLATE on BTCUSDT). Once the runner is up, the server gets
background fault rules at a stated rate (``RATE``: about 10 % of all requests, placements more often) plus one
scheduled occurrence of every kind, and the exchange clock is stepped through ``STEPS`` half hours:

* ``http_5xx``   503 ``{"code":-1001}`` on any route;
* ``html_200``   a 200 with an HTML body on any route (ccxt returns junk for it);
* ``rate_429``   429 -1003 with ``Retry-After: 1``;  ``ban_418`` 418 with ``Retry-After: 2``;
* ``timeout``    a GET answered after 10.5 s (the runner's ccxt timeout is 10 s);
* ``commit_lose`` an order / algo order POST that takes effect and whose answer is lost (connection closed);
* ``drop``       an order / algo order POST whose connection is closed unanswered (nothing placed);
* ``clock_skew`` ``forget_time_sync`` (the server forgets the time offsets it served, like a server clock jump):
  signed requests get -1021 until the client re-syncs. Every -1021 answer counts.

Afterwards the rules are cleared, the runner is stopped in order (exit 0) and started once more (start-up
resolution and reconciliation), and the crash suite's invariants must hold: no client id sent twice, ledger =
exchange, no unattributed leg, every open leg stopped and sized, no intent without an outcome, risk state intact,
store integrity.

What was injected comes from the server's request log (each answer it faked carries its rule id; -1021s by code).
"Visible in the journal" means: a placement fault has a journal entry of the runner naming its client id and saying
its outcome was unknown/resolved; any other fault has a journal entry of the kind the resilience layer reports it as
(``retry``, ``rate_limited``, ``ip_banned``, ``time_resync``, ``breaker_open``: the runner's gateway journals them
through ``albra.engine.exchange_events``) or a loop/reconcile error; a placement's lost answer shows as
``order_outcome_unknown`` and ``order_resolved`` naming the client id.

By hand, longer: ``ALBRA_SOAK_FAULT_STEPS=200 .venv/bin/pytest -s -q tests/faults/test_exchange_faults.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from albra.sim.testing import SimAdmin, sim_process
from albra.store import Store, journal
from tests.faults.harness import (
    ACCOUNT,
    Rig,
    RunnerDied,
    Watermarks,
    settled_problems,
    sim_accounts,
    sim_args,
    soak_int,
)

pytestmark = [pytest.mark.slow]

STEP_MS = 30 * 60_000
STEPS = soak_int("ALBRA_SOAK_FAULT_STEPS", 16)
RATE = 0.10
PLACEMENT_PATHS = ("/fapi/v1/order", "/fapi/v1/algoOrder")
ERR_5XX = json.dumps({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."})
HTML = "<html><head><title>502 Bad Gateway</title></head><body>cloudfront</body></html>"
RATE_BODY = json.dumps({"code": -1003, "msg": "Too many requests."})

#: kind → fault rule (without method/path/probability/count); clock_skew is an admin action, not a rule
RULES: dict[str, dict[str, Any]] = {
    "http_5xx": {"action": "status", "status": 503, "body": ERR_5XX},
    "html_200": {"action": "status", "status": 200, "body": HTML, "content_type": "text/html"},
    "rate_429": {"action": "status", "status": 429, "body": RATE_BODY, "headers": {"Retry-After": "1"}},
    "ban_418": {"action": "status", "status": 418, "body": RATE_BODY, "headers": {"Retry-After": "2"}},
    "timeout": {"action": "latency", "delay_ms": 10_500},
    "commit_lose": {"action": "commit_lose", "lose": "drop"},
    "drop": {"action": "drop"},
}
#: background rules: (kind, method, path, probability, count). Placement-only kinds first (the table fires the first
#: matching rule), then ~RATE spread over every route; costly ones (timeouts, bans) capped.
BACKGROUND: list[tuple[str, str, str, float, int | None]] = [
    *[("commit_lose", "POST", p, 0.15, None) for p in PLACEMENT_PATHS],
    *[("drop", "POST", p, 0.05, None) for p in PLACEMENT_PATHS],
    ("http_5xx", "*", "*", 0.05, None),
    ("html_200", "*", "*", 0.04, None),
    ("rate_429", "*", "*", 0.01, 3),
    ("ban_418", "*", "*", 0.005, 1),
    ("timeout", "GET", "*", 0.005, 1),
]
#: one guaranteed occurrence of each kind at a step (so every kind is exercised whatever the dice say)
SCHEDULED: list[tuple[int, str, str, str]] = [
    (1, "http_5xx", "GET", "/fapi/v3/positionRisk"), (2, "html_200", "GET", "/fapi/v1/klines"),
    (3, "clock_skew", "", ""), (4, "rate_429", "*", "*"), (5, "commit_lose", "POST", "/fapi/v1/order"),
    (6, "drop", "POST", "/fapi/v1/algoOrder"), (7, "ban_418", "*", "*"), (8, "timeout", "GET", "/fapi/v1/klines"),
    (9, "commit_lose", "POST", "/fapi/v1/algoOrder"), (10, "clock_skew", "", ""),
]
#: journal kinds that show a non-placement fault was seen and handled
READ_EVIDENCE = {
    "http_5xx": ("retry", "breaker_open", "loop_error", "reconcile_skipped", "intent_unresolved", "execution_error"),
    "html_200": ("retry", "breaker_open", "loop_error", "reconcile_skipped", "intent_unresolved", "execution_error"),
    "timeout": ("retry", "breaker_open", "loop_error", "reconcile_skipped", "intent_unresolved", "execution_error"),
    "drop": ("retry", "breaker_open", "loop_error", "reconcile_skipped", "intent_unresolved", "execution_error"),
    "rate_429": ("rate_limited",),
    "ban_418": ("ip_banned",),
    "clock_skew": ("time_resync",),
}
#: journal kinds that show a placement's unknown outcome was seen (and how it was resolved)
PLACEMENT_EVIDENCE = ("order_outcome_unknown", "order_resolved", "order_unknown", "intent_resolved", "intents_resolved",
                      "intent_unresolved", "outcome_unknown")


@dataclass
class Injected:
    kind: str
    method: str
    path: str
    client_id: str | None
    sim_ms: int


@dataclass
class Outcome:
    injected: list[Injected] = field(default_factory=list)
    requests: int = 0
    problems: list[str] = field(default_factory=list)
    runner_exits: list[str] = field(default_factory=list)
    journal_rows: list[journal.JournalEntry] = field(default_factory=list)
    alerts: list[tuple[str, str]] = field(default_factory=list)
    trades: int = 0


def _client_id(entry: dict) -> str | None:
    q = dict(parse_qsl(entry.get("query") or "", keep_blank_values=True))
    return q.get("newClientOrderId") or q.get("clientAlgoId")


async def _add(admin: SimAdmin, kind: str, method: str, path: str, probability: float, count: int | None,
               ids: dict[int, str]) -> None:
    ids[await admin.fault(method, path, probability=probability, count=count, **RULES[kind])] = kind


async def _scenario(tmp_path: Path) -> Outcome:
    out = Outcome()
    rnd = random.Random(9)
    with sim_process(*sim_args(), accounts=sim_accounts()) as (url, _sim):
        admin = SimAdmin(url)
        try:
            await admin.weights(limit=0)
            rig = Rig(tmp_path, url)
            wm = Watermarks()
            rig.start()
            now = await admin.clock()
            rig.wait_caught_up(now)
            ids: dict[int, str] = {}
            for kind, method, path, p, count in BACKGROUND:
                await _add(admin, kind, method, path, p, count, ids)
            for step in range(STEPS):
                for at, kind, method, path in SCHEDULED:
                    if at != step:
                        continue
                    if kind == "clock_skew":
                        await admin.forget_time_sync()
                    else:  # probability 1, once: fires on the first matching request no background rule took
                        await _add(admin, kind, method, path, 1.0, 1, ids)
                now = await admin.advance(STEP_MS)
                time.sleep(rnd.uniform(0.0, 0.3))
                try:
                    rig.wait_caught_up(now, timeout=120)
                except RunnerDied as e:  # systemd would restart it (Restart=on-failure); a finding either way
                    out.runner_exits.append(f"exit {e.code} at step {step}: {e.tail[-1500:]}")
                    rig.start()
                    rig.wait_caught_up(now, timeout=120)
            await admin.clear_faults()
            code = rig.stop()
            if code != 0:
                out.runner_exits.append(f"ordered stop under faults exited {code}: {rig.tail(1500)}")
            rig.start()
            rig.wait_caught_up(now)
            out.problems = await settled_problems(admin, rig, wm)
            if rig.stop() != 0:
                out.runner_exits.append(f"final ordered stop exited {rig.proc.returncode}: {rig.tail(1500)}")
            reqs = await admin.requests()
            out.trades = len((await admin.history(ACCOUNT))["trades"])
        finally:
            await admin.close()
    # the server's log of what it faked: rule ids it answered with, and every -1021
    for e in reqs:
        if e["path"].startswith("/_sim/"):
            continue
        out.requests += 1
        if e.get("fault") is not None:
            out.injected.append(Injected(ids[e["fault"]], e["method"], e["path"], _client_id(e), e["time"]))
        elif e.get("code") == -1021:
            out.injected.append(Injected("clock_skew", e["method"], e["path"], None, e["time"]))
    store = Store.open(rig.db)
    try:
        out.journal_rows = journal.entries(store, account=ACCOUNT)
        out.alerts = [(r["kind"], r["text"]) for r in store.query("SELECT kind, text FROM alerts WHERE account=?",
                                                                  (ACCOUNT,))]
    finally:
        store.close()
    return out


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return asyncio.run(_scenario(tmp_path_factory.mktemp("exchange_faults")))


def _visible(out: Outcome) -> tuple[list[tuple[Injected, bool]], Counter]:
    """Each injected fault and whether the journal shows it (see the module doc)."""
    placed = [j for j in out.journal_rows if j.kind in PLACEMENT_EVIDENCE]
    by_kind = Counter(j.kind for j in out.journal_rows)
    budget = Counter()  # read evidence is matched by count: each journal row explains one fault
    rows: list[tuple[Injected, bool]] = []
    for f in out.injected:
        if f.method == "POST" and f.path in PLACEMENT_PATHS and f.client_id:
            seen = any(f.client_id in j.message or f.client_id in json.dumps(j.data) for j in placed)
        else:
            kinds = READ_EVIDENCE[f.kind]
            seen = False
            for k in kinds:
                if budget[k] < by_kind[k]:
                    budget[k] += 1
                    seen = True
                    break
        rows.append((f, seen))
    return rows, by_kind


def _report(out: Outcome) -> str:
    rows, by_kind = _visible(out)
    per = Counter(f.kind for f, _ in rows)
    ok = Counter(f.kind for f, seen in rows if seen)
    lines = [f"exchange faults: injected {len(rows)} over {out.requests} requests "
             f"({100 * len(rows) / max(1, out.requests):.1f} %), visible in the journal {sum(ok.values())}, "
             f"invariants {'hold' if not out.problems else 'BROKEN'}; exchange trades {out.trades}"]
    for k in sorted(per):
        lines.append(f"  {k:12s} injected {per[k]:3d}  in journal {ok[k]:3d}")
    lines.append(f"  runner journal kinds: {dict(sorted(by_kind.items()))}")
    lines.append(f"  alert kinds: {dict(Counter(k for k, _ in out.alerts))}")
    return "\n".join(lines)


def test_every_fault_kind_was_injected(outcome: Outcome) -> None:
    print("\n" + _report(outcome))
    kinds = Counter(f.kind for f in outcome.injected)
    assert set(kinds) >= set(RULES) | {"clock_skew"}, kinds
    assert outcome.trades > 0, "nothing traded: the faults never met an order"


def test_invariants_hold_after_faults_over_time(outcome: Outcome) -> None:
    assert not outcome.runner_exits, outcome.runner_exits
    assert not outcome.problems, outcome.problems


def test_every_injected_fault_shows_in_the_journal(outcome: Outcome) -> None:
    rows, _ = _visible(outcome)
    missing = Counter(f.kind for f, seen in rows if not seen)
    assert not missing, f"faults without a journal trace, by kind: {dict(missing)}\n{_report(outcome)}"
