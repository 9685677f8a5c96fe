"""`albra report --month` on a store produced by a replayed month: a paper runner trades the bundled BTCUSDT candles
of March 2024 (KST month), is stopped and restarted half way, an operator pauses and resumes, an incident opens and
closes. Every figure is checked against the ledger (legs and fills, summed here independently), the equity change,
and the runners' own summaries; the HTML is opened in headless Chromium with no network."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from albra.config import Settings, load_settings
from albra.engine.runner import Runner, build_paper
from albra.review.month import Window, build
from albra.review.render import html, markdown
from albra.store import Store, flags, incidents
from albra.systemd import Notifier
from albra.store.operations import CallRecorder
from tests.dashboard.conftest import browser_ctx  # noqa: F401  (the dashboard tests' headless Chromium)

ROOT = Path(__file__).resolve().parents[2]
MONTH = "2024-03"
W = Window.parse(MONTH)
CONFIG = """
[paths]
state_dir = "{state}"
log_dir = "{logs}"
[telegram]
enabled = false
[accounts.demo]
mode = "paper"
paper_balance = 10000
replay_start = "2024-02-29T15:00:00+00:00"
replay_end = "2024-03-31T15:00:00+00:00"
[[accounts.demo.strategies]]
name = "TFPE"
symbols = ["BTCUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 24.0
[[accounts.demo.strategies]]
name = "ZLMACD_ICHIMOKU"
symbols = ["BTCUSDT"]
timeframe = "1h"
leverage = 10
size_pct = 24.0
"""


@dataclass
class Month:
    cfg: Path
    settings: Settings
    runner_pnl: Decimal
    runner_trades: int


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    root = tmp_path_factory.mktemp("month")
    cfg = root / "albra.toml"
    cfg.write_text(CONFIG.format(state=root / "state", logs=root / "logs"))
    settings = load_settings(str(cfg))
    gw, ctx = build_paper(settings, "demo")
    store = Store.open(settings.db_path)

    async def replay() -> tuple:
        first = await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=Notifier(env={}),
                             max_candles=1400).run()
        t = ctx.ex.now
        # an operator pauses TFPE for six hours while the runner is down, and an incident opens and closes
        flags.pause(store, "demo", "TFPE", reason="review test", actor="cli", ts=t)
        flags.resume(store, "demo", "TFPE", actor="cli", ts=t + 6 * 3_600_000)
        inc = incidents.open_incident(store, "breaker_open", "demo: exchange circuit open", account="demo",
                                      severity="HIGH", ts=t + 1000)
        incidents.close_incident(store, inc.incident_id, ts=t + 1000 + 90 * 60_000)
        second = await Runner(settings, "demo", gateway=gw, replay=ctx, store=store, notifier=Notifier(env={})).run()
        return first, second

    first, second = asyncio.run(replay())
    # exchange call figures: the paper exchange has no network, so these are recorded as a live runner records them
    rec = CallRecorder(store, "demo")
    for i, ms in enumerate([12.0, 15.0, 18.0, 40.0, 250.0]):
        rec.record(W.start_ms + 86_400_000 + i, "create_order", True, "ok", ms)
    for i in range(93):
        rec.record(W.start_ms + 86_400_000 + i, "fetch_positions", False, "ok", 5.0)
    rec.record(W.start_ms + 2 * 86_400_000, "fetch_positions", False, "ExchangeUnavailable", 3.0)
    rec.record(W.start_ms + 2 * 86_400_000, "create_order", True, "OutcomeUnknown", 15000.0)
    rec.flush()
    store.close()
    assert second.exhausted and first.trades > 0
    return Month(cfg, settings, second.pnl, second.trades)


def _ledger(settings: Settings) -> dict:
    """The month's figures summed straight from the ledger, independently of albra.review."""
    with Store.open(settings.db_path, create=False) as s:
        legs = s.query("SELECT * FROM legs WHERE account='demo' AND state='closed' AND closed_ms >= ? AND closed_ms < ?",
                       (W.start_ms, W.end_ms))
        fills = s.query("SELECT COALESCE(f.fee_quote, f.fee) AS fee, f.realized_pnl FROM fills f JOIN legs l ON f.leg_id = l.leg_id WHERE"
                        " l.account='demo' AND l.state='closed' AND l.closed_ms >= ? AND l.closed_ms < ?",
                        (W.start_ms, W.end_ms))
        eq = s.query("SELECT equity FROM equity_snapshots WHERE account='demo' AND ts >= ? AND ts < ? ORDER BY ts",
                     (W.start_ms, W.end_ms))
    nets = {l["strategy"]: [] for l in legs}
    for l in legs:
        nets[l["strategy"]].append(Decimal(l["realized_pnl"]) - Decimal(l["fees"]) + Decimal(l["funding"]))
    return {"legs": legs, "fills": fills, "nets": nets, "eq": [Decimal(r["equity"]) for r in eq]}


def test_figures_match_the_ledger(month: Month) -> None:
    led = _ledger(month.settings)
    with Store.open(month.settings.db_path, create=False) as s:
        rep = build(month.settings, s, MONTH, None, W.end_ms + 1)
    perf = rep["accounts"][0]["performance"]
    every = [n for ns in led["nets"].values() for n in ns]
    assert perf["trades"] == len(led["legs"]) == month.runner_trades  # the runner's own count of closed legs
    assert Decimal(perf["net_pnl"]) == sum(every) == month.runner_pnl
    assert Decimal(perf["fees"]) == sum(Decimal(f["fee"]) for f in led["fills"])  # leg fees = its fills' fees
    assert Decimal(perf["realized_pnl"]) == sum(Decimal(f["realized_pnl"]) for f in led["fills"])
    # flat at both ends of the month: the equity change is the month's net PnL
    assert Decimal(perf["equity"]["change"]) == led["eq"][-1] - led["eq"][0] == sum(every)
    assert perf["wins"] == sum(1 for n in every if n > 0)
    gain, loss = sum(n for n in every if n > 0), -sum(n for n in every if n < 0)
    assert perf["profit_factor"] == pytest.approx(float(gain / loss), abs=1e-4)
    peak, worst = led["eq"][0], Decimal(0)
    for e in led["eq"]:
        peak = max(peak, e)
        worst = max(worst, peak - e)
    assert Decimal(perf["equity"]["max_drawdown"]) == worst
    by = {s["strategy"]: s for s in perf["strategies"]}
    assert set(by) == set(led["nets"]) == {"TFPE", "ZLMACD_ICHIMOKU"}
    for name, ns in led["nets"].items():
        assert by[name]["trades"] == len(ns) and Decimal(by[name]["net_pnl"]) == sum(ns)
        assert 0 < by[name]["exposure_pct"] <= perf["exposure_pct"] <= 100
    days = perf["daily"]
    assert len(days) == 31 and sum(Decimal(d["net_pnl"]) for d in days) == sum(every)
    assert rep["totals"]["net_pnl"] == perf["net_pnl"]


def test_risk_and_operations(month: Month) -> None:
    with Store.open(month.settings.db_path, create=False) as s:
        rep = build(month.settings, s, MONTH, "demo", W.end_ms + 1)
    up = rep["accounts"][0]["operations"]["uptime"]
    # two runs with the pause between them: one restart, both stopped cleanly; the paper clock stands still while
    # its runner is down, so a replay is never down (downtime is pinned in test_uptime_gaps_and_crashes)
    assert up["starts"] == 2 and up["restarts"] == 1 and up["unclean_stops"] == 0
    assert up["uptime_pct"] == 100.0
    periods = rep["risk"]["flag_periods"]
    assert [(p["flag"], p["scope"], p["hours"]) for p in periods] == [("pause", "demo/TFPE", 6.0)]
    assert {m["kind"] for m in rep["risk"]["manual_interventions"]} == {"pause_set", "pause_cleared",
                                                                            "incident_closed"}  # by cli
    (inc,) = rep["incidents"]
    assert inc["kind"] == "breaker_open" and inc["duration_h"] == 1.5 and inc["status"] == "closed"
    ex = rep["accounts"][0]["operations"]["exchange"]
    assert ex["calls"] == 100 and ex["errors"] == 2 and ex["error_rate_pct"] == 2.0
    assert ex["errors_by_class"] == {"ExchangeUnavailable": {"n": 1, "rate_pct": 1.0},
                                     "OutcomeUnknown": {"n": 1, "rate_pct": 1.0}}
    assert ex["placements"] == 6
    assert ex["placement_latency_ms"] == {"p50": 18.0, "p90": 15000.0, "p99": 15000.0, "max": 15000.0}


def test_markdown_html_and_json_agree(month: Month, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from albra.cli import app

    cli = CliRunner()
    out = cli.invoke(app, ["report", "--month", MONTH, "--config", str(month.cfg), "--json"])
    assert out.exit_code == 0, out.output
    rep = json.loads(out.stdout)
    md = markdown(rep)
    assert "## Performance" in md and "| demo | TFPE |" in md and "breaker_open" in md
    page = html(rep)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    bad = cli.invoke(app, ["report", "--month", "2024-13", "--config", str(month.cfg)])
    assert bad.exit_code == 2 and "--month '2024-13'" in bad.output and "Traceback" not in bad.output
    bad = cli.invoke(app, ["report", "--month", MONTH, "--account", "nope", "--config", str(month.cfg)])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_html_in_headless_chromium(month: Month, tmp_path: Path, browser_ctx) -> None:
    out = subprocess.run([sys.executable, "-m", "albra", "report", "--month", MONTH, "--config", str(month.cfg),
                          "--output", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    page_file = tmp_path / f"review-{MONTH}.html"
    assert (tmp_path / f"review-{MONTH}.md").exists() and oct(page_file.stat().st_mode & 0o777) == "0o600"
    with Store.open(month.settings.db_path, create=False) as s:
        rep = build(month.settings, s, MONTH, None, W.end_ms + 1)
    problems: list[str] = []
    requests: list[str] = []
    page = browser_ctx.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())
    perf = rep["accounts"][0]["performance"]
    eq_chart = page.locator('[data-testid="equity-chart-demo"]')
    assert int(eq_chart.get_attribute("data-points")) == len(perf["equity"]["curve"]) > 100
    assert eq_chart.bounding_box()["height"] > 100  # drawn, not collapsed
    bars = page.locator('[data-testid="daily-chart-demo"] rect')
    assert bars.count() == 31
    assert page.locator('[data-testid="total-trades"]').inner_text() == str(perf["trades"])
    shown = page.locator('[data-testid="total-net"]').inner_text()
    assert Decimal(shown.replace(",", "")) == Decimal(perf["net_pnl"]).quantize(Decimal("0.01"))
    rows = page.locator('[data-testid="performance"] tbody tr')
    assert rows.count() == 3 and "TFPE" in rows.nth(1).inner_text()
    assert "breaker_open" in page.locator('[data-testid="incidents"]').inner_text()
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    page.close()
    assert not problems, problems
    assert requests == [page_file.as_uri()]  # the page loads nothing else


def test_uptime_gaps_and_crashes(tmp_path: Path) -> None:
    """A live runner: a crash (no clean stop), a hang longer than the staleness limit, a clean stop; uptime is the
    time covered by heartbeats over the time since the runner was first seen."""
    from albra.store.operations import UptimeTracker

    cfg = tmp_path / "albra.toml"
    cfg.write_text(CONFIG.format(state=tmp_path / "state", logs=tmp_path / "logs"))
    settings = load_settings(str(cfg))
    h = 3_600_000
    t0 = W.start_ms + 24 * h
    with Store.open(settings.db_path) as s:
        up = UptimeTracker(s, "run:demo", gap_ms=90 * 60_000)
        up.start(t0)
        for k in range(1, 11):
            up.beat(t0 + k * h)          # ten hours up, then the process dies (no stop)
        up = UptimeTracker(s, "run:demo", gap_ms=90 * 60_000)
        up.start(t0 + 12 * h)            # systemd restarts it two hours later
        up.beat(t0 + 13 * h)
        up.beat(t0 + 15 * h)             # the loop hung for two hours: a new segment, the gap is downtime
        up.stop(t0 + 20 * h)
        rep = build(settings, s, MONTH, "demo", t0 + 20 * h)
    u = rep["accounts"][0]["operations"]["uptime"]
    assert (u["starts"], u["restarts"], u["unclean_stops"]) == (3, 2, 2)
    assert u["up_h"] == 10 + 1 + 5 and u["observed_h"] == 20 and u["uptime_pct"] == 80.0
