"""``albra sim serve`` as a real process: URL first on stdout, serves, exits 0 on SIGTERM."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from albra.sim.testing import sim_process


def test_serve_prints_url_first_and_exits_zero_on_sigterm():
    with sim_process("--start", "2024-02-01", "--speed", "0", "--hedge", "sub1") as (url, proc):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with urllib.request.urlopen(f"{url}/fapi/v1/time", timeout=5) as r:
            assert json.load(r)["serverTime"] == 1_706_745_600_000
        with urllib.request.urlopen(f"{url}/_sim/accounts", timeout=5) as r:
            accts = json.load(r)
        assert accts["sub1"]["mode"] == "hedge" and accts["main"]["mode"] == "one_way"
    assert proc.returncode == 0


def test_serve_rejects_bad_arguments_with_exit_2():
    r = subprocess.run([sys.executable, "-m", "albra", "sim", "serve", "--account", "broken"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "NAME:KEY:SECRET" in r.stderr
    r = subprocess.run([sys.executable, "-m", "albra", "sim", "serve", "--account", "a:k:s", "--data",
                        "BTCUSDT=/nonexistent.csv"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not found" in r.stderr
