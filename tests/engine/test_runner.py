"""The runner: paper replay end to end, restart continuing from persisted marks with no duplicate order and a
ledger equal to the exchange, watchdog fed only while healthy, SIGTERM → ordered shutdown and exit 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from albra.config import load_settings
from albra.engine.runner import Runner, build_paper
from albra.store import Store, journal, runners
from albra.systemd import Notifier

from engine_helpers import write_config

pytestmark = pytest.mark.anyio


class _Quiet:
    def ready(self, *_a): return False
    def watchdog(self): return False
    def stopping(self, *_a): return False


async def test_paper_replay_restart_resumes_from_marks_without_duplicates(tmp_path):
    cfg = write_config(tmp_path, position_mode="hedge", replay_start="2024-02-01", replay_end="2024-02-20")
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    store = Store.open(settings.db_path)
    r1 = Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=_Quiet(), max_candles=700)
    s1 = await r1.run()
    store.close()
    assert s1.candles == 700
    # "restart": a new runner and a new store handle on the same exchange; it resumes after the last mark
    store = Store.open(settings.db_path)
    r2 = Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=_Quiet())
    s2 = await r2.run()
    assert s2.exhausted
    seen = store.query("SELECT strategy, last_ts FROM candle_marks WHERE account='demo' ORDER BY strategy")
    assert [r["strategy"] for r in seen] == ["TFPE", "ZLMACD_ICHIMOKU"]
    acct = ctx.ex.account("demo")
    ids = [o.client_id for o in acct.orders.values() if o.source == "api"] + [a.client_algo_id for a in acct.algos.values()]
    assert ids and len(ids) == len(set(ids))
    rep = await r2.reconcile()
    assert rep is not None and rep.clean, rep  # ledger equals the exchange, every open leg has its stop
    assert s2.trades > s1.trades > 0
    store.close()


async def test_every_candle_evaluated_once_across_restart(tmp_path):
    cfg = write_config(tmp_path, replay_start="2024-02-01", replay_end="2024-02-05")
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    store = Store.open(settings.db_path)
    a = await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=_Quiet(), max_candles=100).run()
    b = await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=_Quiet()).run()
    total_15m = a.candles + b.candles
    # TFPE: one evaluation per 15m close; ZLMACD: one per 1h close, plus the hour that had closed at the first
    # turn (with no mark yet only the newest closed candle is due) — none twice, none skipped across the restart
    assert a.evaluations + b.evaluations == total_15m + total_15m // 4 + 1
    store.close()


def test_watchdog_not_fed_while_health_fails(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    try:
        cfg = write_config(tmp_path)
        settings = load_settings(str(cfg))
        now = [1000.0]
        store = Store.open(settings.db_path)
        r = Runner(settings, "demo", store=store, notifier=Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}),
                   wall=lambda: now[0])
        for _ in range(10):
            r.health.record(False, 5.0)  # the exchange keeps failing
        r.health.turned()
        r._heartbeat(force=True)
        with pytest.raises(socket.timeout):
            sock.recv(100)
        for _ in range(20):
            r.health.record(True, 5.0)
        r.health.turned()
        now[0] += 2
        r._heartbeat()
        assert sock.recv(100) == b"WATCHDOG=1"
        # the loop did not turn again: no second ping for the same turn
        now[0] += 2
        r._heartbeat()
        with pytest.raises(socket.timeout):
            sock.recv(100)
        store.close()
    finally:
        sock.close()


def test_sigterm_stops_in_order_and_exits_0(tmp_path):
    cfg = write_config(tmp_path, replay_speed=900.0, replay_start="2024-02-01", replay_end="2024-06-01")
    env = dict(os.environ, ALBRA_DEV="1")
    p = subprocess.Popen([sys.executable, "-m", "albra", "run", "--account", "demo", "--config", str(cfg), "--json"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        db = tmp_path / "state" / "albra.db"
        deadline = time.monotonic() + 60
        running = False
        while time.monotonic() < deadline and not running:
            time.sleep(0.2)
            if db.exists():
                try:
                    with Store.open(db) as st:
                        running = any(r.name == "run:demo" and r.state == "running" for r in runners.get_all(st))
                except Exception:
                    pass
            assert p.poll() is None, p.stderr.read()
        assert running
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=40)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert '"stopped_by": "SIGTERM"' in out
    with Store.open(tmp_path / "state" / "albra.db") as st:
        assert [r.state for r in runners.get_all(st) if r.name == "run:demo"] == ["stopped"]
        kinds = [e.kind for e in journal.entries(st, account="demo")]
        assert kinds.index("runner_started") < kinds.index("runner_stopped")
