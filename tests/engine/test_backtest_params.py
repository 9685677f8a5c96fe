"""`albra backtest --param`: overrides validated by the strategy's own Params (exit 2 naming the key), applied
to the run; the summary carries the trader's metrics."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from albra.candles import bundled
from albra.engine.backtest import BacktestSetup, StrategySpec, run_backtest
from albra.strategy_params import ParamError, parse_params
from albra.timefmt import parse_time
from albra.strategies import registry

TFPE, TEMPLATE = registry.get("TFPE"), registry.get("TEMPLATE")


def test_parse_params_validates_and_targets():
    assert parse_params(["adx_min=30", "stop_loss_atr=2"], [TFPE]) == {"TFPE": {"adx_min": 30, "stop_loss_atr": 2}}
    both = parse_params(["TEMPLATE.cooldown_hours=0", "tfpe.adx_min=25"], [TFPE, TEMPLATE])
    assert both == {"TFPE": {"adx_min": 25}, "TEMPLATE": {"cooldown_hours": 0}}
    with pytest.raises(ParamError, match=r"--param adx_mn: TFPE has no parameter 'adx_mn' \(known: adx_min"):
        parse_params(["adx_mn=30"], [TFPE])
    with pytest.raises(ParamError, match=r"--param adx_min='x'.*valid number"):
        parse_params(["adx_min=x"], [TFPE])
    with pytest.raises(ParamError, match=r"--param stop_loss_pct=2: .*less than 1"):
        parse_params(["stop_loss_pct=2"], [TEMPLATE])
    with pytest.raises(ParamError, match="TEMPLATE has no parameter 'adx_min'"):  # unqualified: every strategy
        parse_params(["adx_min=30"], [TFPE, TEMPLATE])
    with pytest.raises(ParamError, match="expected KEY=VALUE"):
        parse_params(["adx_min"], [TFPE])
    with pytest.raises(ParamError, match="strategy 'MOMENTUM' is not one of"):
        parse_params(["MOMENTUM.x=1"], [TFPE])


def test_cli_unknown_param_exits_2_naming_it(tmp_path):
    cmd = [sys.executable, "-m", "albra", "backtest", "-s", "TEMPLATE", "--symbol", "BTCUSDT", "--data",
           f"BTCUSDT={bundled('BTCUSDT-15m.csv.gz')}", "--param", "stop_loss_pc=0.01"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "stop_loss_pc" in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_params_change_the_run_and_summary_has_metrics(btc15m):
    def run(params):
        return run_backtest(BacktestSetup([StrategySpec("TEMPLATE", params)], {"BTCUSDT": [btc15m]},
                                          parse_time("2024-03-01"), parse_time("2024-04-01")))
    a, b = run({}), run({"stop_loss_pct": 0.005, "cooldown_hours": 0})
    assert a.trades != b.trades
    tot = a.summary["total"]
    for k in ("profit_factor", "expectancy", "sharpe", "sortino", "calmar", "max_drawdown_pct",
              "max_drawdown_duration_days", "exposure_pct", "monthly_returns_pct", "exit_reasons"):
        assert k in tot
    assert list(tot["monthly_returns_pct"]) == ["2024-03"]
    assert sum(tot["exit_reasons"].values()) == tot["trades"]  # closed trades by exit reason
    assert a.curve[0] == (parse_time("2024-03-01"), 10000.0)
    json.dumps(a.summary)  # no inf / nan
