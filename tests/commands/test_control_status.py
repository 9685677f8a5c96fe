"""pause / resume / status --offline as separate processes sharing one store (as runners, bot and CLI do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from albra.store import Store, flags, journal

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "albra.example.toml"


def albra(args: list[str], state: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ALBRA_PATHS__STATE_DIR=str(state), ALBRA_PATHS__LOG_DIR=str(state / "logs"))
    env.pop("ALBRA_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "albra", *args, "--config", str(EXAMPLE)],
                          capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_pause_resume_across_processes_is_journaled(state: Path) -> None:
    r = albra(["pause", "--account", "master", "--strategy", "tfpe", "--reason", "drill 1"], state)
    assert r.returncode == 0, r.stderr
    assert "paused new entries: master/TFPE" in r.stdout
    with Store.open(state / "albra.db") as s:  # another process sees the flag
        assert flags.entry_block(s, "master", "TFPE").reason == "drill 1"
        assert flags.entry_block(s, "master", "OTHER") is None
        assert flags.entry_block(s, "sub1", "TFPE") is None
    r = albra(["pause", "--reason", "all stop"], state)
    assert r.returncode == 0
    st = albra(["status", "--offline", "--json"], state)
    data = json.loads(st.stdout)
    assert {f["scope"] for f in data["flags"]} == {"all", "master/TFPE"}
    assert [a["account"] for a in data["accounts"]] == ["demo", "demo-rehearsal", "master", "paper-live", "sub1"]
    r = albra(["resume", "--account", "master", "--strategy", "TFPE", "--json"], state)
    out = json.loads(r.stdout)
    assert out["entries_blocked_by"] == "all"  # the broader pause still applies, and the operator is told
    assert albra(["resume"], state).returncode == 0
    with Store.open(state / "albra.db") as s:
        assert flags.entry_block(s, "master", "TFPE") is None
        entries = journal.entries(s)
        assert [(e.kind, e.strategy, e.data.get("reason")) for e in entries] == [
            ("pause_set", "TFPE", "drill 1"), ("pause_set", "", "all stop"),
            ("pause_cleared", "TFPE", ""), ("pause_cleared", "", "")]
        assert all(e.actor.startswith("cli:") for e in entries)  # who: the login user


@pytest.mark.parametrize("args, message", [
    (["pause", "--account", "nope"], "unknown account 'nope'"),
    (["pause", "--strategy", "TFPE"], "--strategy needs --account"),
    (["pause", "--account", "master", "--strategy", "MOMENTUM"], "runs no strategy 'MOMENTUM'"),
    (["status", "--offline", "--account", "ghost"], "unknown account 'ghost'"),
])
def test_bad_scope_is_a_usage_error_and_changes_nothing(state: Path, args: list[str], message: str) -> None:
    r = albra(args, state)
    assert r.returncode == 2
    assert message in r.stderr
    if (state / "albra.db").exists():
        with Store.open(state / "albra.db") as s:
            assert flags.active_flags(s) == []


def test_corrupt_store_stops_commands_with_recovery_hint(state: Path) -> None:
    state.mkdir(parents=True)
    (state / "albra.db").write_bytes(b"garbage" * 1000)
    r = albra(["status", "--offline"], state)
    assert r.returncode == 2
    assert "not an SQLite database" in r.stderr and "reconcile --apply" in r.stderr
    assert (state / "albra.db").read_bytes() == b"garbage" * 1000
