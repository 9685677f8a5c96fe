"""Shared rig of the crash-recovery and exchange-fault suites: ``albra run`` (live mode, real ccxt) as a real process
against ``albra sim serve`` as a real process, and the invariant checks both suites assert after every crash or
fault run.

Why real processes: a SIGKILL must kill exactly what an operator's ``kill -9`` (or the OOM killer, or a power cut
short of the disk) kills — the Python process with its sockets and half-finished SQLite transaction — and the
restart must go through the same start-up path systemd uses. The exchange is the local Binance server, so every
order is counted by client id on the far side of a real HTTP connection.

The invariants (DESIGN.md 1–5) are checked from outside the runner, as ``albra audit`` would:

* no client id reached the exchange twice (the simulator's per-client-id counts, accepted + rejected);
* the ledger equals the exchange per (symbol, position side) (:func:`albra.ledger.positions.compare_positions`),
  with no ``UNATTRIBUTED`` leg (an adoption after a crash means the runner lost track of its own order);
* every open leg has its stop live on the exchange, sized to the leg;
* no order intent left without an outcome once the runner has settled;
* risk state intact: the MDD peak and daily anchor rows exist, the peak never goes down (no transfers happen in
  these runs), candle marks never move backwards;
* the store passes ``check_integrity``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from albra.exchange import binance_parse as P
from albra.ledger import legs as L
from albra.ledger.intents import UNRESOLVED
from albra.ledger.positions import compare_positions
from albra.sim.testing import SimAdmin
from albra.store import Store
from albra.store import risk_state as RS

from tests.faults.helpers import REPO, clean_env

ACCOUNT = "flt"
KEY, SECRET = "flt-key", "flt-secret"
#: a busy window (the engine e2e test's): MOMENTUM with loosened thresholds and TEMPLATE both trade on BTCUSDT,
#: opposite legs overlap (hedge mode), trailing stops move.
START = "2024-01-13T22:00:00Z"
MOMENTUM = ("{ adx_min = 15, di_diff_min = 3, volume_ratio_min = 0.8, acceleration_min = 0.0, position_long_min = 0.6,"
            " position_short_max = 0.4, channel_width_min = 0.0, trailing_start_atr = 0.5, trailing_step_atr = 0.25,"
            " exit_adx_below = 0.0, cooldown_hours = 0.5 }")
TF_MS = {"MOMENTUM": 900_000, "TEMPLATE": 3_600_000}


def sim_args(start: str = START) -> tuple[str, ...]:
    """Arguments of ``albra sim serve`` for the rig (clock still until the test moves it, hedge account)."""
    return ("--start", start, "--speed", "0", "--hedge", ACCOUNT, "--balance", "10000")


def sim_accounts() -> dict[str, tuple[str, str]]:
    return {ACCOUNT: (KEY, SECRET)}


def write_config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "albra.toml"
    cfg.write_text(textwrap.dedent(f"""
        [paths]
        state_dir = "{tmp_path / 'state'}"
        log_dir = "{tmp_path / 'logs'}"

        [telegram]
        enabled = false

        [accounts.{ACCOUNT}]
        mode = "live"
        base_url = "{url}"
        api_key_env = "FLT_KEY"
        api_secret_env = "FLT_SECRET"
        position_mode = "hedge"

        [[accounts.{ACCOUNT}.strategies]]
        name = "MOMENTUM"
        symbols = ["BTCUSDT"]
        timeframe = "15m"
        leverage = 5
        size_pct = 10.0
        params = {MOMENTUM}

        [[accounts.{ACCOUNT}.strategies]]
        name = "TEMPLATE"
        symbols = ["BTCUSDT"]
        timeframe = "1h"
        leverage = 5
        size_pct = 10.0
        params = {{ cooldown_hours = 0.0 }}
        """))
    return cfg


class RunnerDied(Exception):
    """The runner process ended while the rig waited for it (the caller decides whether that was expected)."""

    def __init__(self, code: int, tail: str) -> None:
        super().__init__(f"runner exited {code}")
        self.code = code
        self.tail = tail


@dataclass
class Rig:
    """One account's runner process plus the files it leaves (config, store, log)."""

    tmp_path: Path
    url: str
    cfg: Path = field(init=False)
    db: Path = field(init=False)
    log: Path = field(init=False)
    proc: subprocess.Popen | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.cfg = write_config(self.tmp_path, self.url)
        self.db = self.tmp_path / "state" / "albra.db"
        self.log = self.tmp_path / "runner.log"

    def start(self, crashpoint: str | None = None) -> subprocess.Popen:
        """Start ``albra run --account flt``; ``crashpoint`` (``name`` or ``name:N``) arms ALBRA_CRASHPOINT."""
        extra = {"FLT_KEY": KEY, "FLT_SECRET": SECRET, "ALBRA_DEV": "1"}
        if crashpoint:
            extra["ALBRA_CRASHPOINT"] = crashpoint
        with self.log.open("ab") as fh:
            fh.write(f"\n===== start #{self.starts} crashpoint={crashpoint or '-'}\n".encode())
        self.proc = subprocess.Popen([sys.executable, "-m", "albra", "run", "--account", ACCOUNT, "--config",
                                      str(self.cfg)], stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     env=clean_env(extra), cwd=str(REPO))
        self.starts += 1
        return self.proc

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the runner (no shutdown path runs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait: the ordered shutdown; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        return self.proc.returncode

    def marks(self) -> dict[str, int]:
        """strategy → last evaluated candle, plus ``pid`` of the runner the heartbeat row calls running."""
        if not self.db.exists():
            return {}
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            out = {r[0]: r[1] for r in con.execute("SELECT strategy, last_ts FROM candle_marks WHERE account=?",
                                                   (ACCOUNT,))}
            for pid, state in con.execute("SELECT pid, state FROM runners WHERE name=?", (f"run:{ACCOUNT}",)):
                out["pid"] = pid if state == "running" else -1
            return out
        except sqlite3.OperationalError:  # schema not created yet by a runner that is just starting
            return {}
        finally:
            con.close()

    def caught_up(self, now: int) -> bool:
        m = self.marks()
        want = {s: (now // tf) * tf - tf for s, tf in TF_MS.items()}
        return self.proc is not None and m.get("pid") == self.proc.pid and all(m.get(k, -1) >= v
                                                                              for k, v in want.items())

    def wait_caught_up(self, now: int, timeout: float = 60.0) -> None:
        """Until the runner has evaluated every closed candle up to exchange time ``now``. Raises
        :class:`RunnerDied` if it ends first, AssertionError on timeout."""
        t0 = time.monotonic()
        while not self.caught_up(now):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RunnerDied(self.proc.returncode, self.tail())
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"runner did not evaluate up to {now} within {timeout}s (marks {self.marks()})"
                                     f":\n{self.tail()}")
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------------------------------
# invariants


@dataclass
class Watermarks:
    """What was seen so far, so later checks can tell a value that went backwards."""

    marks: dict[tuple[str, str, str], int] = field(default_factory=dict)
    peak: Decimal | None = None


def _risk_problems(store: Store, wm: Watermarks) -> list[str]:
    out: list[str] = []
    peak = RS.get(store, ACCOUNT, RS.MDD_PEAK)
    anchor = RS.get(store, ACCOUNT, RS.DAILY_ANCHOR)
    if peak is None or "equity" not in peak:
        out.append(f"risk_state {RS.MDD_PEAK} missing ({peak!r})")
    else:
        p = Decimal(str(peak["equity"]))
        if wm.peak is not None and p < wm.peak:
            out.append(f"MDD peak lowered without a transfer: {wm.peak} -> {p}")
        wm.peak = p if wm.peak is None else max(wm.peak, p)
    if anchor is None or "start_equity" not in anchor:
        out.append(f"risk_state {RS.DAILY_ANCHOR} missing ({anchor!r})")
    for r in store.query("SELECT strategy, symbol, timeframe, last_ts FROM candle_marks WHERE account=?", (ACCOUNT,)):
        k = (r["strategy"], r["symbol"], r["timeframe"])
        if k in wm.marks and r["last_ts"] < wm.marks[k]:
            out.append(f"candle mark {k} moved backwards: {wm.marks[k]} -> {r['last_ts']}")
        wm.marks[k] = max(wm.marks.get(k, r["last_ts"]), r["last_ts"])
    return out


async def invariant_problems(admin: SimAdmin, db: Path, wm: Watermarks) -> list[str]:
    """Every broken invariant, each as one line naming what is wrong (empty: all hold)."""
    orders = await admin.orders(ACCOUNT)
    positions = P.parse_positions((await admin.accounts())[ACCOUNT]["positions"], None)
    out: list[str] = []
    dup = {k: v for k, v in orders["counts"].items() if v > 1}
    if dup:
        out.append(f"client ids sent more than once: {dup}")
    store = Store.open(db)
    try:
        live = L.live_legs(store, ACCOUNT)
        for d in compare_positions(live, positions):
            out.append(f"ledger != exchange: {d.as_dict()}")
        adopted = [g.leg_id for g in L.legs_of(store, ACCOUNT) if g.strategy == L.UNATTRIBUTED]
        if adopted:
            out.append(f"unattributed legs (runner lost track of its own orders): {adopted}")
        open_stops = {a["clientAlgoId"]: a for a in orders["algos"] if a["algoStatus"] == "NEW"}
        for g in live:
            if g.state is L.LegState.PENDING or g.qty <= 0 or g.strategy == L.UNATTRIBUTED:
                continue
            a = open_stops.get(g.sl_client_id or "")
            if a is None:
                out.append(f"leg {g.leg_id} ({g.strategy} {g.direction.value} {g.qty}) has no live stop on the "
                           f"exchange (ledger says {g.sl_client_id})")
            elif P.parse_algo(a).qty != g.qty:
                out.append(f"leg {g.leg_id}: stop {g.sl_client_id} is for {P.parse_algo(a).qty}, leg holds {g.qty}")
        pending = store.query(f"SELECT client_id, state, purpose FROM order_intents WHERE account=? AND state IN "
                              f"({','.join('?' * len(UNRESOLVED))})", (ACCOUNT, *UNRESOLVED))
        if pending:
            out.append(f"intents without an outcome: {[(r['client_id'], r['state'], r['purpose']) for r in pending]}")
        out += _risk_problems(store, wm)
        out += store.check_integrity().problems
    finally:
        store.close()
    return out


async def settled_problems(admin: SimAdmin, rig: Rig, wm: Watermarks, timeout: float = 8.0) -> list[str]:
    """Invariant problems once the runner has settled: re-checked until none remain or ``timeout`` passes (a check
    can land between an entry's fill and its stop, which the runner closes within its turn). A runner that died
    is a problem in itself."""
    t0 = time.monotonic()
    while True:
        probs = await invariant_problems(admin, rig.db, wm)
        if not rig.alive():
            probs.append(f"runner not running (exit {rig.proc.returncode if rig.proc else None}):\n{rig.tail(1500)}")
        if not probs or time.monotonic() - t0 > timeout:
            return probs
        time.sleep(0.25)


def summary_line(title: str, rows: list[dict[str, Any]], ok_key: str = "ok") -> str:
    """A one-line count for the report (``title: tried N / clean M``) plus the failing rows."""
    bad = [r for r in rows if not r.get(ok_key)]
    head = f"{title}: tried {len(rows)} / recovered cleanly {len(rows) - len(bad)}"
    return head + "".join(f"\n  FAILED {r}" for r in bad)


def soak_int(name: str, default: int) -> int:
    """An integer knob for the long hand-run versions (e.g. ``ALBRA_SOAK_CRASHES=200``); bad values are an error."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if v < 0:
        raise ValueError(f"{name} must be ≥ 0, got {v}")
    return v
