"""albra optimize: walk-forward plan, search spaces checked against Params, and a real walk-forward search on the
bundled candles with two worker processes sharing one local study, reproducible with the same seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from albra.candles import bundled
from albra.optimize.folds import DAY_MS, plan
from albra.optimize.job import Job
from albra.optimize.space import FloatRange, IntRange, SpaceError, space_of
from albra.optimize.study import SearchSpec, default_storage, search
from albra.timefmt import parse_time
from albra.strategies import registry


def test_walk_forward_plan_trains_before_it_tests():
    start = parse_time("2024-01-01")
    folds = plan(start, start + 100 * DAY_MS, 3, 0.2)
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3", "final"]
    for f in folds[:-1]:
        assert f.train.end_ms == f.test.start_ms and f.train.days == 20 and f.test.days == 20
    assert folds[0].train.start_ms == start and folds[2].test.end_ms == start + 80 * DAY_MS
    final = folds[-1]
    assert (final.train.start_ms, final.train.end_ms, final.test.end_ms) == (start, start + 80 * DAY_MS,
                                                                             start + 100 * DAY_MS)
    with pytest.raises(ValueError, match="cannot be split"):
        plan(start, start + 3 * DAY_MS, 3, 0.2)


class _Bad:
    name = "BAD"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        x: float = Field(1.0, gt=0, lt=2)

    search_space = {"x": FloatRange(0.5, 3.0)}


def test_search_space_is_checked_against_params():
    with pytest.raises(SpaceError, match=r"BAD.search_space\['x'\].*less than 2"):
        space_of(_Bad)
    _Bad.search_space = {"y": IntRange(1, 2)}
    with pytest.raises(SpaceError, match="BAD has no parameter 'y'"):
        space_of(_Bad)
    assert set(space_of(registry.get("TFPE"))) >= {"adx_min", "stop_loss_atr"}
    with pytest.raises(SpaceError, match="--only nope"):
        space_of(registry.get("TEMPLATE"), ["nope"])


def _spec(tmp: Path, name: str, seed: int) -> SearchSpec:
    job = Job("TEMPLATE", {"BTCUSDT": [str(bundled("BTCUSDT-15m.csv.gz"))]},
              {"BTCUSDT": str(bundled("BTCUSDT-funding.csv"))}, objective="profit", min_trades=3,
              fixed={"cooldown_hours": 4})
    only = ["stop_loss_pct", "take_profit_pct"]
    folds = plan(parse_time("2024-01-01"), parse_time("2024-02-10"), 2, 0.25)
    return SearchSpec(job, space_of(registry.get("TEMPLATE"), only), only, folds, trials=4, workers=2, seed=seed,
                      batch=2, storage_url=default_storage(tmp, name), study_name=name)


def _strip(result: dict) -> dict:
    """The result without the study's name (the only thing allowed to differ between two runs)."""
    out = json.loads(json.dumps(result))
    out.pop("study")
    return out


def test_walk_forward_search_two_workers_reproducible(tmp_path):
    a = search(_spec(tmp_path, "wf-a", seed=11))
    b = search(_spec(tmp_path, "wf-b", seed=11))
    assert _strip(a) == _strip(b)
    assert [f["name"] for f in a["folds"]] == ["fold1", "fold2"] and a["final"]["name"] == "final"
    for f in a["folds"] + [a["final"]]:
        assert f["trials"] == 4 and f["best"] is not None
        assert f["out_of_sample"]["trades"] >= 0 and f["test"][0] == f["train"][1]
    # every trial ran in a worker process, never in the coordinator
    import optuna

    from albra.optimize.study import open_storage

    st = optuna.load_study(study_name="wf-a", storage=open_storage(default_storage(tmp_path, "wf-a")))
    workers = {t.user_attrs.get("worker") for t in st.trials if t.state.name in ("COMPLETE", "PRUNED")}
    assert workers and all(w and not w.endswith(f":{os.getpid()}") for w in workers)
    assert sum(1 for t in st.trials if t.state.name in ("COMPLETE", "PRUNED")) == 12


def test_cli_refuses_unknown_objective_and_strategy_without_space(tmp_path):
    base = [sys.executable, "-m", "albra", "optimize", "--symbol", "BTCUSDT", "--data",
            f"BTCUSDT={bundled('BTCUSDT-15m.csv.gz')}"]
    out = subprocess.run(base + ["-s", "TEMPLATE", "--objective", "luck"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "--objective" in out.stderr + out.stdout
    out = subprocess.run(base + ["-s", "MOMENTUM"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "declares no search_space" in out.stderr + out.stdout


def test_cli_refuses_a_window_without_funding(tmp_path):
    out = subprocess.run([sys.executable, "-m", "albra", "optimize", "-s", "TEMPLATE", "--symbol", "BTCUSDT",
                          "--data", f"BTCUSDT={bundled('BTCUSDT-15m.csv.gz')}", "--start", "2024-01-01",
                          "--end", "2024-12-01"], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={**os.environ, "ALBRA_DATA_DIR": str(tmp_path / "data")})
    assert out.returncode == 2 and "the candles given cover 2024-01-01" in out.stderr + out.stdout
    empty = tmp_path / "funding.csv"
    empty.write_text("timestamp,funding_rate\n")
    out = subprocess.run([sys.executable, "-m", "albra", "optimize", "-s", "TEMPLATE", "--symbol", "BTCUSDT",
                          "--data", f"BTCUSDT={bundled('BTCUSDT-15m.csv.gz')}", "--funding", f"BTCUSDT={empty}"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "funding is not known for the whole window" in out.stderr + out.stdout


def test_a_trial_that_cannot_run_stops_the_search_with_its_reason(tmp_path):
    """A worker that hits an error reports it on the trial; the coordinator stops naming it (no silent score)."""
    from albra.optimize.study import SearchError

    spec = _spec(tmp_path, "wf-err", seed=1)
    bad = Job("TEMPLATE", {"BTCUSDT": [str(bundled("BTCUSDT-15m.csv.gz"))]}, {}, min_trades=3,
              fixed={"cooldown_hours": 4}, position_mode="sideways")  # not a position mode: every run raises
    spec.job = bad
    spec.folds = spec.folds[:1]
    spec.trials = 2
    with pytest.raises(SearchError, match=r"fold1 could not be evaluated: ValueError: 'sideways'"):
        search(spec)
