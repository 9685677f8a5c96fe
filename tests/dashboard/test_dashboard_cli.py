"""``albra dashboard`` as the operator runs it: a separate process that refuses unsafe binds and a missing store
with exit 2, prints where it listens (never the token), serves the store, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from albra.dashboard.policy import TOKEN_ENV
from tests.dashboard.conftest import Env, call
from tests.dashboard.seed import dump, write_config

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cli-dashboard-token-0123456789abcdefgh"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV and not k.startswith("ALBRA_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", **extra)
    return env


def _run(args: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "albra", "dashboard", *args], capture_output=True, text=True,
                          env=_env(**extra), cwd=ROOT, timeout=60)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.77.1", "example.com"])
def test_off_loopback_without_token_exits_2(env: Env, host: str) -> None:
    r = _run(["--host", host, "--port", "0", "--config", str(env.settings.config_path)])
    assert r.returncode == 2, r.stderr
    assert f"refusing to listen on {host}" in r.stderr and TOKEN_ENV in r.stderr


def test_short_token_exits_2(env: Env) -> None:
    r = _run(["--host", "0.0.0.0", "--port", "0", "--config", str(env.settings.config_path)],
             **{TOKEN_ENV: "q7Zx9k"})
    assert r.returncode == 2 and "too short (24 characters at least)" in r.stderr
    assert "q7Zx9k" not in r.stdout + r.stderr


def test_missing_store_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    r = _run(["--port", "0", "--config", str(cfg)])
    assert r.returncode == 2 and "no albra store here" in r.stderr
    assert not (tmp_path / "state" / "albra.db").exists()


def test_serves_until_sigterm_with_token_and_never_prints_it(env: Env) -> None:
    before = dump(env.db)
    proc = subprocess.Popen([sys.executable, "-m", "albra", "dashboard", "--host", "0.0.0.0", "--port", "0",
                             "--config", str(env.settings.config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(**{TOKEN_ENV: TOKEN}), cwd=ROOT)
    try:
        first = proc.stdout.readline()
        m = re.search(r"on http://0\.0\.0\.0:(\d+)/", first)
        assert m, (first, proc.stderr.read() if proc.poll() is not None else "")
        port = int(m.group(1))
        assert call(port, "GET", "/api/summary").status == 401
        r = call(port, "GET", "/api/summary", {"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200
        assert {a["account"]: a["equity"] for a in json.loads(r.body)["accounts"]} == env.seeded.equity
        assert call(port, "DELETE", "/api/summary", {"Authorization": f"Bearer {TOKEN}"}).status == 405
        call(port, "GET", f"/login?token={TOKEN}")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert TOKEN not in first + out + err
    assert "login?token=<value of ALBRA_DASHBOARD_TOKEN>" in first + out
    assert dump(env.db) == before
