"""One writer per account (invariant 8): the store's write lease. A second runner for an account refuses to start
and names the holder; a dead or expired holder does not block the account; emergency shutdown preempts the lease
and the running runner stops sending at its next heartbeat; ``reconcile --apply`` refuses while a live runner
holds the account."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from albra.config import load_settings
from albra.engine.runner import Runner, build_paper
from albra.store import Store, journal, leases

from engine_helpers import write_config


class _Quiet:
    def ready(self, *_a): return False
    def watchdog(self): return False
    def stopping(self, *_a): return False


@pytest.fixture
def other_process():
    """A live process that is not us (the 'other runner' holding a lease)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p.pid
    p.kill()
    p.wait()


def test_lease_rules(store, other_process):
    t = 1_800_000_000_000
    held = leases.acquire(store, "acct", "run:acct", now_ms=t, pid=other_process)
    with pytest.raises(leases.LeaseHeld, match=rf"run:acct \(pid {other_process} on .*since") as e:
        leases.acquire(store, "acct", "reconcile", now_ms=t + 1)
    assert e.value.lease.holder == "run:acct"
    assert leases.current(store, "acct", now_ms=t + 1) == held
    # expired without renewal: free
    assert leases.current(store, "acct", now_ms=t + leases.DEFAULT_TTL_MS) is None
    mine = leases.acquire(store, "acct", "reconcile", now_ms=t + leases.DEFAULT_TTL_MS)
    assert mine.pid == os.getpid()
    # preempted by emergency shutdown: the holder's next renewal says so
    taken = leases.acquire(store, "acct", "emergency-shutdown", preempt=True, now_ms=t + leases.DEFAULT_TTL_MS + 1,
                           pid=other_process)
    with pytest.raises(leases.LeaseLost, match="emergency-shutdown"):
        leases.renew(store, mine)
    assert not leases.release(store, mine) and leases.release(store, taken)
    assert leases.current(store, "acct") is None


def test_a_dead_holder_does_not_block(store):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    leases.acquire(store, "acct", "run:acct", pid=p.pid)
    assert leases.current(store, "acct") is None
    assert leases.acquire(store, "acct", "run:acct").pid == os.getpid()


def test_second_runner_refuses_and_names_the_holder(tmp_path, other_process):
    cfg = write_config(tmp_path)
    settings = load_settings(str(cfg))
    with Store.open(settings.db_path) as st:
        leases.acquire(st, "demo", "run:demo", pid=other_process)
    r = subprocess.run([sys.executable, "-m", "albra", "run", "--account", "demo", "--config", str(cfg)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert f"run:demo (pid {other_process}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "state" / "run-demo.pid").exists()  # the holder's pid file is not replaced
    with Store.open(settings.db_path) as st:
        assert leases.current(st, "demo").pid == other_process
        assert not journal.entries(st, kinds=("runner_started",))


@pytest.mark.anyio
async def test_a_preempted_runner_stops_sending(tmp_path, other_process):
    cfg = write_config(tmp_path, replay_start="2024-02-01", replay_end="2024-06-01")
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    store = Store.open(settings.db_path)
    runner = Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=_Quiet())

    async def preempt() -> None:
        while runner.lease is None or runner.summary.candles < 200:
            await asyncio.sleep(0)
        with Store.open(settings.db_path) as other:
            leases.acquire(other, "demo", "emergency-shutdown", preempt=True, pid=other_process)
        preempted_at[0] = runner.summary.candles

    preempted_at = [0]
    task = asyncio.create_task(preempt())
    t0 = time.monotonic()
    summary = await runner.run()
    await task
    assert summary.stopped_by == "write lease lost" and not summary.exhausted
    assert time.monotonic() - t0 < 60
    assert journal.entries(store, kinds=("lease_lost",))
    # the runner did not release (or overwrite) the lease it lost
    assert leases.current(store, "demo").holder == "emergency-shutdown"
    store.close()
