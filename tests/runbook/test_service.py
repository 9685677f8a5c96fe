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
    assert sorted(p.name for p in paths) == ["albra-bot.service", "albra@.service"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in paths)


def test_cli_service_install(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "albra", "service", "install", "--dir", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"wrote {tmp_path}/albra@.service" in out.stdout
    assert "WatchdogSec=60" in (tmp_path / "albra@.service").read_text()


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
