"""Backtests: same pipeline, deterministic, JSON trades with the documented fields, resampling of missing
timeframes from the finest file (closed buckets only), and `albra backtest` without a config file."""

from __future__ import annotations

import json
import subprocess
import sys

from albra.candles import bundled
from albra.engine.backtest import BacktestSetup, StrategySpec, frames_for, run_backtest
from albra.marketdata.layout import DataDir
from albra.marketdata.sources import find_funding
from albra.timefmt import parse_time
from albra.strategies import registry

FIELDS = {"strategy", "symbol", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price", "pnl",
          "fees", "exit_reason"}


def _setup(btc15m):
    return BacktestSetup([StrategySpec("TFPE"), StrategySpec("ZLMACD_ICHIMOKU")], {"BTCUSDT": [btc15m]},
                         parse_time("2024-03-01"), parse_time("2024-04-01"),
                         funding={"BTCUSDT": find_funding("BTCUSDT", DataDir.resolve("nowhere")).rows})


def test_deterministic_with_trades_of_both_strategies(btc15m):
    a = run_backtest(_setup(btc15m))
    b = run_backtest(_setup(btc15m))
    assert json.dumps({"s": a.summary, "t": a.trades}) == json.dumps({"s": b.summary, "t": b.trades})
    assert a.trades and {t["strategy"] for t in a.trades} == {"TFPE", "ZLMACD_ICHIMOKU"}
    for t in a.trades:
        assert FIELDS <= set(t)
        assert parse_time("2024-03-01") <= t["entry_time"] <= t["exit_time"] < parse_time("2024-04-02")
        assert t["exit_reason"]
    # a strategy exit is named by the strategy's tag, never the order's purpose
    reasons = {t["exit_reason"] for t in a.trades}
    assert "exit" not in reasons and "opposite_cross" in reasons, reasons
    tot = a.summary["total"]
    assert tot["trades"] == len(a.trades) == sum(s["trades"] for s in a.summary["strategies"].values())


def test_missing_timeframes_are_resampled_from_closed_buckets(btc15m):
    # a 15m series that ends mid-hour: the last, incomplete hour must not appear
    part = btc15m.take(0, 4 * 100 + 2)
    frames = frames_for(registry.get("ZLMACD_ICHIMOKU"), [part])
    h = frames["1h"]
    assert len(h) == 100 and int(h.ts[-1]) + 3_600_000 <= int(part.ts[-1]) + 900_000
    assert float(h.high[0]) == float(part.high[0:4].max()) and float(h.close[0]) == float(part.close[3])
    tf = frames_for(registry.get("TFPE"), [part])
    assert set(tf) == {"15m", "4h"} and tf["15m"] is part


def test_cli_without_config_json_and_csv(tmp_path):
    csv_path = tmp_path / "trades.csv"
    cmd = [sys.executable, "-m", "albra", "backtest", "--strategy", "TFPE", "--symbol", "BTCUSDT", "--data",
           f"BTCUSDT={bundled('BTCUSDT-15m.csv.gz')}", "--start", "2024-03-01", "--end", "2024-03-20", "--json",
           "--trades-csv", str(csv_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"summary", "trades"} and doc["trades"]
    assert FIELDS <= set(doc["trades"][0])
    assert len(csv_path.read_text().splitlines()) == len(doc["trades"]) + 1


def test_cli_bad_input_is_a_clear_error(tmp_path):
    cmd = [sys.executable, "-m", "albra", "backtest", "--strategy", "NOPE", "--symbol", "BTCUSDT", "--data",
           f"BTCUSDT={bundled('BTCUSDT-15m.csv.gz')}", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "unknown strategy 'NOPE'" in out.stderr
