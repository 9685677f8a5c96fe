"""Shared pieces of the fault suites: run ``albra`` as a real process, write configs, snapshot the store.

Why subprocesses: the bad-input and secrets suites must see exactly what an operator sees — the exit code,
stdout/stderr, the files left on disk — including tracebacks, which an in-process CliRunner would swallow.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
FAULT_DATA = REPO / "tests" / "data" / "faults"
GOOD_CANDLES = REPO / "tests" / "data" / "exchange" / "BTCUSDT-15m-2024-01-01..03.csv"

# Variables that would leak the developer's real setup into a run; removed from every child environment.
_SCRUB_PREFIXES = ("ALBRA_", "BINANCE_", "TELEGRAM_", "SUB1_", "MASTER_", "DEMO_", "LIVE1_")


@dataclass
class Result:
    """What an operator would see from one command."""

    args: list[str]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return f"albra {' '.join(self.args)} -> exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without albra/Binance/Telegram variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"  # keep rich from wrapping messages mid-word
    env.update(extra or {})
    return env


def albra(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
          timeout: float = 120, preexec_fn: Callable[[], None] | None = None) -> Result:
    """Run ``python -m albra ARGS`` to completion (stdin closed) and return what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "albra", *args], env=dict(env) if env is not None else clean_env(),
        cwd=str(cwd or REPO), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
    )
    return Result(list(args), proc.returncode, proc.stdout, proc.stderr)


def config_text(root: Path, *, accounts: str | None = None, telegram: str | None = None,
                extra: str = "") -> str:
    """A small, valid config whose state and logs live under ``root`` (absolute paths)."""
    telegram = telegram if telegram is not None else "[telegram]\nenabled = false\n"
    accounts = accounts if accounts is not None else DEMO_ACCOUNT
    return (f'[paths]\nstate_dir = "{root / "state"}"\nlog_dir = "{root / "logs"}"\n\n{telegram}\n{extra}\n'
            f"{accounts}")


DEMO_ACCOUNT = """[accounts.demo]
mode = "paper"
paper_balance = 10000
paper_feed = "replay"
replay = {}
replay_speed = 0

[[accounts.demo.strategies]]
name = "TFPE"
symbols = ["BTCUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 24.0
"""


def live_account(name: str, base_url: str, strategy: str = "TFPE", symbol: str = "BTCUSDT") -> str:
    """A live account sending its requests to ``base_url`` (a local ``albra sim serve``)."""
    return f"""[accounts.{name}]
mode = "live"
base_url = "{base_url}"
position_mode = "one_way"
margin_mode = "isolated"

[[accounts.{name}.strategies]]
name = "{strategy}"
symbols = ["{symbol}"]
timeframe = "15m"
leverage = 10
size_pct = 24.0
"""


def write_config(root: Path, text: str, name: str = "albra.toml") -> Path:
    """Write ``text`` as ``root/config/NAME`` and return its path."""
    path = root / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- store views
def file_hash(path: Path) -> str | None:
    """SHA-256 of a file's bytes (None if absent): proves a command did not write to it at all."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def dump_tables(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted — the store's content independent of page layout."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        conn.close()


def integrity(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def lost_or_changed(before: dict[str, list[tuple]], after: dict[str, list[tuple]],
                    volatile: Iterable[str] = ()) -> list[str]:
    """Rows present before and missing after (a changed row shows as missing), per table.

    ``volatile`` tables (e.g. ``runners``, the heartbeat a start attempt legitimately updates) are skipped.
    New rows are allowed: this answers "was anything already stored lost or changed?".
    """
    problems = []
    skip = set(volatile)
    for table, rows in before.items():
        if table in skip:
            continue
        if table not in after:
            problems.append(f"table {table} disappeared")
            continue
        remaining = list(after[table])
        for row in rows:
            try:
                remaining.remove(row)
            except ValueError:
                problems.append(f"{table}: row lost or changed: {row!r}"[:300])
    return problems
