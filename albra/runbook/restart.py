"""``safe-restart --validate-state``: restart the runners only into a state albra can vouch for.

Checks, each producing exact blockers: the kill switch is off for the accounts and no incident is open (each may be
accepted by name: ``--accept-kill-switch``, ``--accept-incident ID``); the store's full integrity check (integrity, schema version, foreign keys);
no order intent without a known outcome; the audit against the exchange is clean (an unreadable exchange is a
blocker, never "clean"). Then ``systemctl restart albra@ACCOUNT`` and a wait until the runner's heartbeat row says
``running`` with a start after the restart. Without systemd albra cannot restart anything itself; it says so and
prints the command to run. ``force`` restarts despite blockers (they are still listed and journaled).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from albra.timefmt import fmt_kst, now_ms as _now_ms

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.store.db import Store


@dataclass
class RestartPlan:
    accounts: list[str]
    blockers: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    restarted: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    forced: bool = False

    @property
    def exit_code(self) -> int:
        if self.dry_run:
            return 1 if self.blockers else 0
        if self.blockers and not self.forced:
            return 1
        return 0 if self.restarted and all(r["ready"] for r in self.restarted) else 1

    def as_dict(self) -> dict[str, Any]:
        return {"accounts": self.accounts, "checks": self.checks, "blockers": self.blockers, "dry_run": self.dry_run,
                "forced": self.forced, "restarted": self.restarted, "exit_code": self.exit_code}


def control_blockers(store: "Store", accounts: list[str], accept_kill_switch: bool = False,
                     accept_incidents: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(checks, blockers) from what an operator decided: a kill switch that blocks any of ``accounts`` and every
    open incident are blockers unless accepted by name (an accepted one is listed as a check, saying so).
    ``accept_incidents`` naming an incident that is not open is itself a blocker (a typo accepts nothing)."""
    from albra.store import flags, incidents

    checks: list[str] = []
    blockers: list[str] = []
    switches = {f.account: f for a in accounts if (f := flags.kill_switch(store, a)) is not None}
    for f in switches.values():
        if accept_kill_switch:
            checks.append(f"accepted: {flags.block_text(f)} (the runner starts but opens nothing)")
        else:
            blockers.append(f"{flags.block_text(f)} — or pass --accept-kill-switch to restart with it on")
    if not switches:
        checks.append("kill switch off for " + ", ".join(accounts))
    open_ = {i.incident_id: i for i in incidents.list_incidents(store, status="open", limit=1000)}
    for iid in accept_incidents:
        if iid not in open_:
            blockers.append(f"--accept-incident {iid}: no such open incident (open: {', '.join(open_) or 'none'})")
    for iid, inc in open_.items():
        if iid in accept_incidents:
            checks.append(f"accepted open incident {iid}: {inc.title}")
        else:
            blockers.append(f"open incident {iid} ({inc.kind}, opened {fmt_kst(inc.opened_ms)}): {inc.title} — "
                            f"review it (`albra incident-report --incident-id {iid}`), then pass "
                            f"--accept-incident {iid}")
    return checks, blockers


async def validate(settings: "Settings", store: "Store", accounts: list[str], accept_kill_switch: bool = False,
                   accept_incidents: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(checks passed, blockers) — every blocker names what to do about it."""
    from albra.ledger import intents as I
    from albra.runbook.audit import audit_accounts

    checks, blockers = control_blockers(store, accounts, accept_kill_switch, accept_incidents)
    rep = store.check_integrity()
    if rep.ok:
        checks.append(f"store integrity ok (schema v{rep.schema_version})")
    else:
        blockers += [f"store: {p}" for p in rep.problems]
    for a in accounts:
        open_ = I.unresolved(store, a)
        if open_:
            blockers.append(f"{a}: {len(open_)} order intent(s) without a known outcome ("
                            + ", ".join(f"{i.client_id} {i.purpose} {i.state}" for i in open_[:5])
                            + ") — run `albra reconcile --apply`")
        else:
            checks.append(f"{a}: no unresolved order intents")
    for au in await audit_accounts(settings, store, accounts):
        if not au.reachable:
            blockers.append(f"{au.account}: exchange unreadable — {au.reason}")
        elif au.findings:
            blockers += [f"{au.account}: {f.kind} {f.symbol}: {f.detail}" for f in au.findings]
        else:
            checks.append(f"{au.account}: ledger agrees with the exchange")
    return checks, blockers


def wait_ready(store: "Store", account: str, after_ms: int, timeout_s: float,
               sleep: Callable[[float], None] = time.sleep) -> tuple[bool, str]:
    """Wait until ``run:ACCOUNT`` reports ``running`` with a start at/after ``after_ms`` and a fresh heartbeat."""
    from albra.store import runners

    deadline = time.monotonic() + timeout_s
    last = "no heartbeat row"
    while True:
        r = next((x for x in runners.get_all(store) if x.name == f"run:{account}"), None)
        if r is not None:
            last = f"state {r.state}, started {fmt_kst(r.started_ms)}, heartbeat {fmt_kst(r.heartbeat_ms)}"
            if r.state == "running" and (r.started_ms or 0) >= after_ms and r.is_alive():
                return True, last
        if time.monotonic() >= deadline:
            return False, f"not ready after {timeout_s:g}s ({last})"
        sleep(0.2)


def safe_restart(settings: "Settings", store: "Store", accounts: list[str], *, dry_run: bool, force: bool,
                 ready_timeout_s: float = 90.0, accept_kill_switch: bool = False,
                 accept_incidents: tuple[str, ...] = ()) -> RestartPlan:
    from albra.runbook.runner_control import restart_unit, systemctl, unit_loaded, unit_name
    from albra.store import journal

    plan = RestartPlan(accounts, dry_run=dry_run, forced=force)
    plan.checks, plan.blockers = asyncio.run(validate(settings, store, accounts, accept_kill_switch,
                                                      tuple(accept_incidents)))
    if dry_run:
        for a in accounts:
            how = (f"systemctl restart {unit_name(a)}" if unit_loaded(a) else
                   f"cannot restart {a} here (no loaded {unit_name(a)}): start it with `albra run --account {a}`"
                   " or install the unit with `albra service install`")
            plan.restarted.append({"account": a, "would": how, "ready": False})
        return plan
    if plan.blockers and not force:
        journal.append(store, "restart_refused", f"safe-restart refused: {len(plan.blockers)} blocker(s)",
                       level="WARNING", data={"blockers": plan.blockers[:50]}, actor="safe-restart")
        return plan
    for a in accounts:
        if systemctl() is None or not unit_loaded(a):
            plan.restarted.append({"account": a, "ready": False, "detail":
                                   f"no systemd unit {unit_name(a)} here: albra cannot restart it; run "
                                   f"`systemctl restart {unit_name(a)}` on the server or `albra run --account {a}`"})
            continue
        t0 = _now_ms()
        ok, detail = restart_unit(a)
        ready, why = wait_ready(store, a, t0, ready_timeout_s) if ok else (False, "")
        plan.restarted.append({"account": a, "ready": ready, "detail": detail + (f"; {why}" if why else "")})
        journal.append(store, "restart", f"{a}: {detail}; {'ready' if ready else 'NOT ready'}",
                       level="INFO" if ready else "ERROR", account=a,
                       data={"forced": force, "blockers": plan.blockers[:20]}, actor="safe-restart")
    return plan
