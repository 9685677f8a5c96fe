"""``albra service notify-failure UNIT``: what the ``OnFailure=`` unit runs when a runner (or the bot) unit fails.

systemd starts ``albra-alert@<unit>.service`` when ``albra@master.service`` crashed, was killed, missed its watchdog
or hit its start limit. This journals ``runner_failed`` (CRITICAL) with systemd's own words for the failure and
delivers a CRITICAL alert to Telegram from here — the bot may be the unit that failed, or down with the host's
network, so the alert does not wait for it (it stays queued in the outbox for the bot if Telegram cannot be reached).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from albra.timefmt import now_ms as _now_ms

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.store.db import Store

UNIT_RE = re.compile(r"^[A-Za-z0-9@._:-]{1,200}$")


@dataclass(frozen=True)
class FailureReport:
    unit: str
    account: str
    detail: str
    event_id: str
    delivery: str


def account_of(unit: str) -> str:
    """``albra@master.service`` → ``master``; the bot's unit or anything else → ''."""
    m = re.match(r"^albra@(.+?)(\.service)?$", unit)
    return m.group(1) if m else ""


def systemd_detail(unit: str) -> str:
    """systemd's account of the failure (Result, exit code/signal), or '' where systemctl cannot say."""
    from albra.runbook.runner_control import systemctl

    sc = systemctl()
    if sc is None:
        return ""
    try:
        out = subprocess.run([sc, "show", "-p", "Result,ExecMainCode,ExecMainStatus,NRestarts", unit],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return ", ".join(line for line in out.stdout.splitlines() if "=" in line) if out.returncode == 0 else ""


async def notify_failure(settings: "Settings", store: "Store", unit: str, timeout_s: float = 20.0,
                         now_ms: int | None = None) -> FailureReport:
    """Journal and alert (CRITICAL, delivered now when Telegram is configured) that ``unit`` failed."""
    from albra.notify import AlertEvent, emit, make_event_id
    from albra.runbook.alert_now import deliver_now
    from albra.store import journal

    if not UNIT_RE.match(unit):
        raise ValueError(f"unit name {unit!r} is not a systemd unit name")
    now = _now_ms() if now_ms is None else now_ms
    account = account_of(unit)
    detail = systemd_detail(unit)
    what = f"runner {account}" if account else unit
    msg = (f"{what}: systemd unit {unit} FAILED" + (f" ({detail})" if detail else "")
           + ". Positions keep their exchange-side stops; nothing trades on this account until it is restarted: "
           "`albra status`, then `albra safe-restart --validate-state" + (f" --account {account}`" if account else "`"))
    journal.append(store, "runner_failed", msg, level="CRITICAL", account=account, actor="systemd:OnFailure",
                   data={"unit": unit, "systemd": detail}, ts=now)
    ev = AlertEvent(make_event_id("runner_failed", unit, now // 60_000), "runner_failed", account=account,
                    message=msg, ts=now)
    emit(store, ev, now_ms=now)
    delivery, _ = await deliver_now(settings, store, ev.event_id, timeout_s)
    return FailureReport(unit, account, detail, ev.event_id, delivery)
