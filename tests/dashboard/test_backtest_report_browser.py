"""`albra backtest --html`: the self-contained report opens in headless Chromium with every network request
refused, draws its plots (equity, drawdown, monthly returns, trades on the price chart) and shows the summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from albra.candles import bundled

WAIT_MS = 20_000


def test_html_report_renders_offline(browser_ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    cmd = [sys.executable, "-m", "albra", "backtest", "--strategy", "TEMPLATE", "--symbol", "BTCUSDT", "--data",
           f"BTCUSDT={bundled('BTCUSDT-15m.csv.gz')}", "--start", "2024-03-01", "--end", "2024-05-01",
           "--html", str(out), "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    trades = doc["trades"]
    assert trades
    problems: list[str] = []
    remote: list[str] = []
    page = browser_ctx.new_page()
    page.route("**/*", lambda r: (r.continue_() if r.request.url.startswith("file:")
                                  else (remote.append(r.request.url), r.abort())))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    try:
        page.goto(out.as_uri())
        page.wait_for_selector("#report-figure .main-svg", timeout=WAIT_MS)
        data = page.evaluate("""() => document.getElementById('report-figure').data.map(
            t => ({name: t.name, type: t.type, n: (t.x || []).length}))""")
        by_name = {t["name"]: t for t in data}
        assert by_name["equity"]["n"] > 100 and by_name["drawdown"]["n"] > 100
        assert by_name["monthly return"]["type"] == "bar" and by_name["monthly return"]["n"] == 2  # March, April
        entries = sum(t["n"] for t in data if t["name"].endswith(" entry"))
        assert entries == len(trades) and by_name["BTCUSDT exit"]["n"] == len(trades)
        assert by_name["BTCUSDT close"]["n"] > 1000
        shown = page.locator("#summary").inner_text()
        assert "profit factor" in shown and "sharpe" in shown and "max drawdown duration days" in shown
        assert str(doc["summary"]["total"]["trades"]) in shown
        assert page.locator("#report-figure .main-svg").count() >= 1
    finally:
        page.close()
    assert not problems, problems
    assert not remote, f"the report fetched from the network: {remote}"
