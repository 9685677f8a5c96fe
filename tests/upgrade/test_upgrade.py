"""`albra upgrade` end to end, offline: the previous commit of this repository is installed as a release, a real
store is made by its runner (paper replay), the runner is left trading, then

* the upgrade to the current commit stops it, backs the store up (verified), builds the new release in a fresh venv
  beside the old one, migrates a copy and then the store, validates, switches ``current`` and restarts the runner
  on the new release;
* a forced failure (a commit that adds a migration and whose safe-restart validation blocks) rolls back: ``current``
  points at the previous release again, the store is restored from the backup (the new table is gone, the schema
  version is back), the runner runs the previous release again.

Releases are installed with ``--offline`` (``pip --no-index --no-deps --no-build-isolation`` into a venv that
shares this environment's packages), so nothing is downloaded. About 20 s: three pip builds of albra.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albra.config import load_settings
from albra.store import Store, runners
from albra.upgrade.layout import Layout, stable_albra_bin
from albra.upgrade.procedure import Upgrade

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[paths]
state_dir = "state"
log_dir = "logs"
[telegram]
enabled = false
[accounts.demo]
mode = "paper"
paper_balance = 10000
replay_start = "2024-02-01"
replay_end = "2024-06-01"
replay_speed = {speed}
[[accounts.demo.strategies]]
name = "TFPE"
symbols = ["BTCUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 24.0
"""


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _runner(db: Path) -> runners.RunnerInfo | None:
    with Store.open(db, create=False, any_version=True) as s:  # the previous release's store may be an older schema
        return next((r for r in runners.get_all(s) if r.name == "run:demo"), None)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _wait_running(db: Path, timeout: float = 60) -> runners.RunnerInfo:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = _runner(db)
        if r is not None and r.state == "running" and r.is_alive():
            return r
        time.sleep(0.2)
    raise AssertionError(f"runner not running: {_runner(db)}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clone of this repository (committed history only), so a test commit never touches the real one."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", "HEAD~1"],
                      capture_output=True).returncode != 0:
        pytest.skip("this checkout has no previous commit (a shallow clone)")
    dst = tmp_path / "repo"
    _git(tmp_path, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dst))
    _git(dst, "config", "user.email", "test@albra.invalid")
    _git(dst, "config", "user.name", "albra test")
    return dst


def test_upgrade_previous_to_current_then_forced_rollback(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    cfg = home / "config" / "albra.toml"
    cfg.write_text(CONFIG.format(speed=0))
    settings = load_settings(str(cfg))
    lay = Layout(home)
    prev, cur = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")

    # the previous commit, installed as the first release (no store yet: nothing to stop or back up)
    first = Upgrade(settings, cfg, lay, repo, offline=True).run("HEAD~1")
    assert first.ok, first.as_dict()
    old = lay.current_release()
    assert old == lay.release(prev) and (old / "COMMIT").read_text().strip() == prev
    # its albra makes a real store: a replayed month of trading, then a runner left trading (slowly)
    out = subprocess.run([str(Layout.albra_bin(old)), "run", "--account", "demo", "--config", str(cfg),
                          "--until", "2024-03-01"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cfg.write_text(CONFIG.format(speed=4))
    proc = subprocess.Popen([str(Layout.albra_bin(old)), "run", "--account", "demo", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        r = _wait_running(settings.db_path)
        assert r.pid == proc.pid
        with Store.open(settings.db_path, create=False, any_version=True) as s:  # this code must not migrate it
            journal_before = s.query_one("SELECT COUNT(*) AS n FROM journal")["n"]
            version_before = s.schema_version()

        # ---- previous → current
        res = Upgrade(settings, cfg, lay, repo, offline=True, ready_timeout_s=60).run("HEAD")
        assert res.ok, json.dumps(res.as_dict(), indent=1)
        assert [s.name for s in res.steps] == ["resolve", "install", "migrate-copy", "pause", "stop-runners",
                                               "backup", "switch", "migrate", "validate", "start-runners", "resume"]
        print("\nupgrade steps: " + ", ".join(f"{x.name} {x.seconds:.1f}s" for x in res.steps))
        assert proc.wait(10) == 0  # SIGTERM: the old runner finished its work and exited cleanly
        new = lay.current_release()
        assert new == lay.release(cur) != old and os.path.islink(home / "current")
        r = _wait_running(settings.db_path)
        assert str(Layout.albra_bin(new)) in _cmdline(r.pid)  # the runner now runs the new release
        backup = Path(res.backup or "")
        assert backup.exists() and oct(backup.stat().st_mode & 0o777) == "0o600"
        with sqlite3.connect(backup) as b:
            assert b.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert b.execute("SELECT COUNT(*) FROM journal").fetchone()[0] >= journal_before
        with Store.open(settings.db_path, create=False) as s:
            kinds = [k for (k,) in s.query_values("SELECT kind FROM journal WHERE actor='upgrade' ORDER BY seq")]
            assert kinds[:2] == ["upgrade_started", "pause_set"] and kinds[-2:] == ["pause_cleared", "upgrade_done"]
            assert not [f for f in s.query("SELECT * FROM control_flags WHERE active=1")]  # entries allowed again
            version = s.schema_version()
            migrated = s.query_values("SELECT version FROM schema_migrations WHERE version > ?", (version_before,))
        assert len(migrated) == version - version_before  # the previous release's schema, migrated by the upgrade
        # the units point at the stable link, not at a release
        assert stable_albra_bin(Layout.albra_bin(new)) == home / "current" / "venv" / "bin" / "albra"

        # ---- forced failure: a commit with a new migration whose validation blocks → rollback
        mig = repo / "albra" / "store" / "migrations" / f"{version + 1:04d}_upgrade_probe.sql"
        mig.write_text("CREATE TABLE upgrade_probe (x INTEGER);\n")
        restart = repo / "albra" / "runbook" / "restart.py"
        restart.write_text(restart.read_text().replace(
            '    return checks, blockers\n', '    blockers.append("forced by the upgrade test")\n'
            '    return checks, blockers\n', 1))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "broken release for the rollback test")
        bad = Upgrade(settings, cfg, lay, repo, offline=True, ready_timeout_s=60).run("HEAD")
        assert not bad.ok and bad.failed_step == "validate" and bad.rolled_back, bad.as_dict()
        assert "forced by the upgrade test" in next(s for s in bad.steps if s.name == "validate").detail
        assert all(s.ok for s in bad.steps if s.name != "validate"), bad.as_dict()
        assert all(s.ok for s in bad.rollback), bad.as_dict()
        print("rollback steps: " + ", ".join(f"{x.name} {x.seconds:.1f}s" for x in bad.rollback))
        assert lay.current_release() == new  # back on the release that ran before
        with Store.open(settings.db_path, create=False, migrate=False) as s:
            assert s.schema_version() == version
            assert not s.query("SELECT name FROM sqlite_master WHERE name='upgrade_probe'")
            assert s.query("SELECT * FROM journal WHERE kind='upgrade_rolled_back'")
            assert not s.query("SELECT * FROM control_flags WHERE active=1")
        r = _wait_running(settings.db_path)
        assert str(Layout.albra_bin(new)) in _cmdline(r.pid)
    finally:
        r = _runner(settings.db_path)
        for pid in {proc.pid, r.pid if r else None} - {None}:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def test_upgrade_command_usage_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from albra.cli import app

    (tmp_path / "config").mkdir()
    cfg = tmp_path / "config" / "albra.toml"
    cfg.write_text(CONFIG.format(speed=0))
    res = CliRunner().invoke(app, ["upgrade", "--to", "HEAD", "--root", str(tmp_path / "home"), "--repo",
                                   str(tmp_path / "nope"), "--config", str(cfg), "--yes"])
    assert res.exit_code == 2 and "--repo" in res.output
    res = CliRunner().invoke(app, ["upgrade", "--to", "no-such-ref-xyz", "--root", str(tmp_path / "home"), "--repo",
                                   str(ROOT), "--config", str(cfg), "--yes", "--json"])
    assert res.exit_code == 1
    d = json.loads(res.stdout)
    assert d["failed_step"] == "resolve" and not d["rolled_back"] and "no-such-ref-xyz" in d["steps"][0]["detail"]
    assert not (tmp_path / "home" / "current").exists()
