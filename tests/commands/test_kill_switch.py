"""``albra kill-switch``: set, show and clear (with confirmation) as separate processes sharing one store, the words
``resume`` and ``status`` use when the kill switch is what blocks, and safe-restart's refusal while it is on."""

from __future__ import annotations

import json

import pytest

from albra.runbook.restart import control_blockers
from albra.store import Store, flags, incidents, journal
from tests.commands.test_control_status import albra


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def test_on_status_resume_off_across_processes(state) -> None:
    r = albra(["kill-switch", "on", "--reason", "drill: exchange acting up"], state)
    assert r.returncode == 0, r.stderr
    assert "kill switch ON" in r.stdout
    st = json.loads(albra(["kill-switch", "--json"], state).stdout)
    assert st["on"] and st["switches"][0]["scope"] == "all" and st["switches"][0]["reason"] == "drill: exchange acting up"
    # resume does not pretend: the kill switch is named as what still blocks, with how to clear it
    r = albra(["resume"], state)
    assert r.returncode == 0 and "still BLOCKED" in r.stdout and "albra kill-switch off" in r.stdout
    assert "resumed new entries: all" not in r.stdout
    out = json.loads(albra(["resume", "--account", "master", "--json"], state).stdout)
    assert out["blocked_by_kind"] == "kill_switch" and "KILL SWITCH ON for every account" in out["trading_blocked"]
    data = json.loads(albra(["status", "--offline", "--json"], state).stdout)
    assert data["kill_switch"] and all("KILL SWITCH ON" in a["trading_blocked"] for a in data["accounts"])
    # off asks; a script without --yes is refused and nothing changes
    r = albra(["kill-switch", "off"], state)
    assert r.returncode == 2 and "--yes" in r.stderr
    with Store.open(state / "albra.db") as s:
        assert flags.kill_switch(s) is not None
    r = albra(["kill-switch", "off", "--yes", "--reason", "drill over"], state)
    assert r.returncode == 0 and "kill switch cleared" in r.stdout and "off everywhere" in r.stdout
    with Store.open(state / "albra.db") as s:
        assert flags.kill_switches(s) == []
        rows = [(e.kind, e.data["reason"]) for e in journal.entries(s) if e.kind.startswith("kill_switch")]
        assert rows == [("kill_switch_set", "drill: exchange acting up"), ("kill_switch_cleared", "drill over")]
        assert all(e.actor.startswith("cli:") for e in journal.entries(s))


def _inproc(args: list[str], state, monkeypatch):
    """The same command in this process (Typer's runner): the bad-input cases need no process of their own."""
    from typer.testing import CliRunner

    from albra.cli import app
    from tests.commands.test_control_status import EXAMPLE

    monkeypatch.setenv("ALBRA_PATHS__STATE_DIR", str(state))
    monkeypatch.setenv("ALBRA_PATHS__LOG_DIR", str(state / "logs"))
    monkeypatch.delenv("ALBRA_CONFIG", raising=False)
    return CliRunner().invoke(app, [*args, "--config", str(EXAMPLE)])


def test_account_scope_and_bad_input(state, monkeypatch) -> None:
    assert _inproc(["kill-switch", "on", "--account", "sub1"], state, monkeypatch).exit_code == 0
    with Store.open(state / "albra.db") as s:
        assert flags.entry_block(s, "sub1", "TFPE").kind == "kill_switch"
        assert flags.entry_block(s, "master", "TFPE") is None  # the other account trades on
    for args, msg in ((["kill-switch", "sideways"], "unknown action"),
                      (["kill-switch", "on", "--account", "ghost"], "unknown account 'ghost'"),
                      (["kill-switch", "on", "--reason", "x" * 201], "at most 200"),
                      (["pause", "--reason", "y" * 300], "at most 200")):
        r = _inproc(args, state, monkeypatch)
        assert r.exit_code == 2 and msg in r.output, (args, r.output)
    r = _inproc(["pause", "--reason", "\x1b[31mred\x1b[0m\nforged line", "--json"], state, monkeypatch)
    assert json.loads(r.stdout)["reason"] == "red forged line"  # control characters never reach a terminal
    r = _inproc(["kill-switch", "off", "--account", "sub1", "--yes", "--json"], state, monkeypatch)
    assert json.loads(r.stdout)["cleared"] == [{"scope": "sub1"}]


def test_safe_restart_blocks_on_kill_switch_and_open_incidents_unless_accepted(tmp_path) -> None:
    with Store.open(tmp_path / "albra.db") as s:
        assert control_blockers(s, ["main"])[1] == []
        flags.set_kill_switch(s, True, reason="emergency-shutdown", account="main")
        inc = incidents.open_incident(s, "emergency_shutdown", "emergency shutdown — VERIFIED")
        _, blockers = control_blockers(s, ["main", "sub1"])
        assert len(blockers) == 2
        assert "KILL SWITCH ON for account main" in blockers[0] and "--accept-kill-switch" in blockers[0]
        assert inc.incident_id in blockers[1] and f"--accept-incident {inc.incident_id}" in blockers[1]
        assert len(control_blockers(s, ["sub1"])[1]) == 1  # sub1 has no kill switch of its own
        checks, blockers = control_blockers(s, ["main"], accept_kill_switch=True,
                                            accept_incidents=(inc.incident_id,))
        assert blockers == [] and any("accepted open incident" in c for c in checks)
        assert "no such open incident" in control_blockers(s, ["sub1"], accept_incidents=("INC-1",))[1][0]
