"""systemd: unit rendering and sd_notify datagrams on a real unix socket."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from albra.systemd import Notifier, UnitOptions, install_units, runner_unit


def test_runner_unit_has_restart_watchdog_stop_timeout_and_hardening(tmp_path: Path) -> None:
    o = UnitOptions(tmp_path, tmp_path / ".venv/bin/albra", tmp_path / "config/albra.toml", user="albra")
    text = runner_unit(o)
    for line in ("Type=notify", "Restart=on-failure", "WatchdogSec=60", "TimeoutStopSec=45", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", f"ReadWritePaths={tmp_path}/state {tmp_path}/logs", "User=albra",
                 f"ExecStart={tmp_path}/.venv/bin/albra run --account %i --config {tmp_path}/config/albra.toml"):
        assert line in text.splitlines(), line
    with pytest.raises(ValueError, match="35"):
        runner_unit(UnitOptions(tmp_path, tmp_path, tmp_path, stop_timeout_sec=20))


def test_install_writes_both_units(tmp_path: Path) -> None:
    o = UnitOptions(tmp_path, tmp_path / "albra", tmp_path / "c.toml")
    paths = install_units(o, tmp_path / "units")
    assert sorted(p.name for p in paths) == ["albra-alert@.service", "albra-bot.service", "albra@.service"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in paths)


ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "albra.example.toml"


def _install(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, ALBRA_PATHS__STATE_DIR=str(tmp_path / "var" / "state"),
               ALBRA_PATHS__LOG_DIR=str(tmp_path / "var" / "log"))
    env.pop("ALBRA_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "albra", "service", "install", "--dir", str(tmp_path / "units"),
                           *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_cli_service_install_uses_the_configs_dirs_and_writes_the_failure_unit(tmp_path: Path) -> None:
    import os
    import shutil

    user = "daemon"  # an existing non-root system user (systemd warns about 'nobody')
    out = _install(tmp_path, "--config", str(EXAMPLE), "--user", user)
    assert out.returncode == 0, out.stderr
    units = tmp_path / "units"
    assert f"wrote {units}/albra@.service" in out.stdout and f"wrote {units}/albra-alert@.service" in out.stdout
    runner = (units / "albra@.service").read_text()
    state, logs = tmp_path / "var" / "state", tmp_path / "var" / "log"
    for line in ("WatchdogSec=60", f"ReadWritePaths={state} {logs}", "OnFailure=albra-alert@%n.service",
                 f"User={user}"):
        assert line in runner.splitlines(), line
    assert "OnFailure=albra-alert@%n.service" in (units / "albra-bot.service").read_text()
    alert = (units / "albra-alert@.service").read_text()
    assert "Type=oneshot" in alert and "service notify-failure %i --config " + str(EXAMPLE) in alert
    assert state.is_dir() and logs.is_dir() and state.stat().st_mode & 0o777 == 0o700
    if os.geteuid() == 0:  # created with the service user as owner
        import pwd

        assert state.stat().st_uid == pwd.getpwnam(user).pw_uid
    analyze = shutil.which("systemd-analyze")
    if analyze:  # systemd's own check of what we wrote (an instance of each template)
        shutil.copy(units / "albra@.service", units / "albra@master.service")
        shutil.copy(units / "albra-alert@.service", units / "albra-alert@albra@master.service.service")
        got = subprocess.run([analyze, "verify", "--man=no", str(units / "albra@master.service"),
                              str(units / "albra-bot.service"), str(units / "albra-alert@albra@master.service.service")],
                             capture_output=True, text=True)
        assert got.returncode == 0 and got.stderr.strip() == "", got.stderr


def test_cli_service_install_refuses_a_missing_config_and_root_without_user(tmp_path: Path) -> None:
    import os

    out = _install(tmp_path, "--config", str(tmp_path / "nope.toml"), "--user", "daemon")
    assert out.returncode == 2 and "no such file" in out.stderr and "nope.toml" in out.stderr
    assert not (tmp_path / "units").exists()
    if os.geteuid() == 0:
        out = _install(tmp_path, "--config", str(EXAMPLE))
        assert out.returncode == 2 and "as root" in out.stderr and "--user" in out.stderr
        assert not (tmp_path / "units").exists()
        out = _install(tmp_path, "--config", str(EXAMPLE), "--user", "root", "--dry-run")
        assert out.returncode == 0 and "WARNING" in out.stderr and "ROOT" in out.stderr


def test_notify_failure_journals_and_queues_a_critical_alert(tmp_path: Path) -> None:
    import os

    from albra.store import Store, journal

    env = dict(os.environ, ALBRA_PATHS__STATE_DIR=str(tmp_path / "state"), ALBRA_TELEGRAM__ENABLED="false")
    env.pop("ALBRA_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "albra", "service", "notify-failure", "albra@master.service",
                          "--config", str(EXAMPLE)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "albra@master.service failed" in out.stdout and "stays queued" in out.stdout
    with Store.open(tmp_path / "state" / "albra.db") as s:
        [e] = journal.entries(s, kinds=("runner_failed",))
        assert e.level == "CRITICAL" and e.account == "master" and "albra@master.service FAILED" in e.message
        row = s.query_one("SELECT level, kind, account FROM alerts WHERE kind='runner_failed'")
        assert (row["level"], row["account"]) == ("CRITICAL", "master")
    bad = subprocess.run([sys.executable, "-m", "albra", "service", "notify-failure", "x; rm -rf /",
                          "--config", str(EXAMPLE)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert bad.returncode == 2 and "not a systemd unit name" in bad.stderr


def test_sd_notify_sends_ready_watchdog_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
        assert n.enabled and n.watchdog_interval_s == 10.0
        assert n.ready("trading")
        assert srv.recv(256) == b"READY=1\nSTATUS=trading"
        assert n.watchdog()
        assert srv.recv(256) == b"WATCHDOG=1"
        assert n.stopping()
        assert srv.recv(256) == b"STOPPING=1"
    finally:
        srv.close()


def test_notifier_is_noop_outside_systemd() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert n.ready() is False and n.watchdog() is False
