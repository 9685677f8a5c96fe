"""`albra drill` end to end, as an operator runs it: the shipped example configuration (three accounts, two
strategies) against the local server on the short profile, runners trading, the staged incident, every runbook
command a real process — and a staged failure that must make it exit 1 naming the step.

Each run takes about 40-60 s on two shared cores (mostly the runbook's nine `albra` processes starting): they are the
drill, not a model of it. The operator's state directory is checked untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "albra.example.toml"


def _drill(tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALBRA_")}
    out = subprocess.run([sys.executable, "-m", "albra", "drill", "--profile", "short", "--dir", str(tmp_path / "d"),
                          "--config", str(EXAMPLE), "--json", *args], capture_output=True, text=True, timeout=400,
                         cwd=str(tmp_path), env=env)
    try:
        return out.returncode, json.loads(out.stdout), out.stderr
    except json.JSONDecodeError:
        raise AssertionError(f"exit {out.returncode}, no JSON: {out.stdout[-2000:]} {out.stderr[-3000:]}") from None


def _state_fingerprint() -> list[tuple[str, int, int]]:
    state = ROOT / "state"
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in state.rglob("*")) if state.exists() else []


def test_short_drill_passes_on_the_example_config(tmp_path: Path) -> None:
    before = _state_fingerprint()
    code, d, err = _drill(tmp_path)
    assert code == 0 and d["ok"], json.dumps(d, indent=1) + err[-3000:]
    with open(EXAMPLE, "rb") as fh:
        accounts = tomllib.load(fh)["accounts"]
    assert d["accounts"] == sorted(a for a, v in accounts.items() if v["mode"] != "paper")  # the ones on an exchange
    assert [x.split(":")[0] for x in d["left_out"]] == [a for a, v in accounts.items() if v["mode"] == "paper"]
    assert len(d["staged"]) == 4  # runner killed, stop cancelled, manual trade, outage
    names = [s["step"] for s in d["steps"]]
    assert names == ["emergency-shutdown", "audit --compare-exchange", "status", "reconcile", "reconcile --apply",
                     "audit after repair", "kill-switch off", "safe-restart --validate-state", "incident-report"]
    assert all(s["ok"] and s["ran"] for s in d["setup"] + d["steps"])
    assert "flat and order-free" in d["steps"][0]["detail"]
    assert all(p["met"] and p["seconds"] <= p["target_s"] for p in d["phases"])
    report = Path(d["report"]).read_text()
    assert "PASSED" in report and "| emergency-shutdown | stop |" in report
    assert (tmp_path / "d" / f"incident-{d['incident_id']}.md").exists()
    assert _state_fingerprint() == before  # the operator's store was never opened
    print("\n" + "\n".join(f"{s['step']}: {s['seconds']:.1f}s" for s in d["setup"] + d["steps"]))


def test_a_repair_that_cannot_work_fails_the_drill_naming_the_step(tmp_path: Path) -> None:
    code, d, err = _drill(tmp_path, "--keep-positions", "--break", "reconcile")
    assert code == 1 and not d["ok"], json.dumps(d, indent=1)
    assert d["failed"] == ["reconcile --apply"], d["failed"]
    by = {s["step"]: s for s in d["steps"]}
    assert by["emergency-shutdown"]["ok"] and "kept (frozen)" in by["emergency-shutdown"]["detail"]
    assert by["audit --compare-exchange"]["ok"] and not by["audit --compare-exchange"]["detail"].startswith("0 ")
    assert not by["reconcile --apply"]["ok"] and by["reconcile --apply"]["ran"]
    assert not by["safe-restart --validate-state"]["ran"] and not by["incident-report"]["ran"]
    assert "FAILED: reconcile --apply" in Path(d["report"]).read_text()
