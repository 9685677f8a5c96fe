"""The runner's pid file: written 0600 at start with the runner's pid, the path the runbook's emergency stop reads
when the store is unreadable, removed at an orderly exit; another process's file is never removed."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

from albra.engine.pidfile import pid_path, remove_pid_file, write_pid_file
from albra.runbook.runner_control import candidate_pids, pid_file

from engine_helpers import write_config


def test_runner_writes_pid_file_and_removes_it_on_sigterm(tmp_path):
    cfg = write_config(tmp_path, replay_speed=900.0, replay_start="2024-02-01", replay_end="2024-06-01")
    state = tmp_path / "state"
    path = pid_path(state, "demo")
    assert path == pid_file(state, "demo")  # the runbook's emergency path looks exactly here
    p = subprocess.Popen([sys.executable, "-m", "albra", "run", "--account", "demo", "--config", str(cfg)],
                         cwd=tmp_path, env=dict(os.environ, ALBRA_DEV="1"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.05)
        assert path.read_text().strip() == str(p.pid)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # the store is not consulted: the file alone names the runner
        assert candidate_pids("demo", state, None, None) == [p.pid]
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=40)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert not path.exists()


def test_pid_file_of_another_process_is_left_alone(tmp_path):
    path = write_pid_file(tmp_path, "demo", pid=4242)
    assert not remove_pid_file(tmp_path, "demo")  # not ours
    assert path.read_text().strip() == "4242"
    write_pid_file(tmp_path, "demo")  # a new runner replaces a stale file
    assert remove_pid_file(tmp_path, "demo") and not path.exists()
    assert not remove_pid_file(tmp_path, "demo")  # already gone: fine
