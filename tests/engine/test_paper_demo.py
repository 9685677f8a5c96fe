"""The paper demo reads like a trading session (issue 14): alert lines stamped with the candle's exchange time and
free of HTML entities, a progress callback over the replay (the command's Rich bar), and a closing summary with
fees, funding, max drawdown and a per-strategy split."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from albra.config import load_settings
from albra.engine.runner import Runner, build_paper
from albra.store import Store
from engine_helpers import QuietNotifier, write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "albra.example.toml"




@pytest.mark.anyio
async def test_progress_follows_the_replay_and_the_summary_has_the_figures(tmp_path) -> None:
    cfg = write_config(tmp_path, replay_start="2024-02-01", replay_end="2024-02-08")
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    seen: list[tuple[int, int]] = []
    with Store.open(settings.db_path) as store:
        s = await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=QuietNotifier(),
                         progress=lambda done, total: seen.append((done, total))).run()
    assert len(seen) > 5 and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == seen[-1][1] == 7 * 86_400_000  # the whole window, once it is exhausted
    d = s.as_dict()
    assert d["trades"] > 0 and d["max_drawdown_pct"] is not None and float(d["fees"]) > 0
    per = d["by_strategy"]
    assert sum(b["trades"] for b in per.values()) == d["trades"]
    assert sum(float(b["pnl"]) for b in per.values()) == pytest.approx(float(d["pnl"]), abs=0.02)


def test_demo_output_lines(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALBRA_")}
    env |= {"ALBRA_PATHS__STATE_DIR": str(tmp_path / "state"), "ALBRA_PATHS__LOG_DIR": str(tmp_path / "logs")}
    r = subprocess.run([sys.executable, "-m", "albra", "run", "--account", "demo", "--config", str(EXAMPLE),
                        "--max-candles", "1000"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    out = " ".join(r.stdout.split())  # Rich wraps at the terminal width
    assert "By strategy" in out and "max drawdown" in out and "after fees" in out
    alerts = [line for line in r.stderr.splitlines() if " alert " in line]
    assert alerts, r.stderr[-2000:]
    # stamped with the candle's exchange time (the bundled data is 2024), never the wall clock; plain text
    assert all(re.match(r"2024-01-\d\d \d\d:\d\d:00 KST ", line) for line in alerts), alerts[:3]
    assert not re.search(r"&(lt|gt|amp|quot|#\d+);", r.stderr)
