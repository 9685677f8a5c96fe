"""``albra optimize``: walk-forward parameter search over a strategy's declared ``search_space`` (Optuna), scored
by the same backtest as ``albra backtest``; ``albra optimize-worker`` joins a shared study from another machine.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional

import typer

from albra.commands._common import ConfigOption, JsonOption, emit_json, fail


def _paths(specs: list[str], what: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for spec in specs:
        if "=" not in spec:
            fail(f"{what} {spec!r}: expected SYMBOL=FILE")
        sym, path = spec.split("=", 1)
        p = os.path.abspath(path.strip())
        if not os.path.isfile(p):
            fail(f"{what} {spec!r}: no such file {p}")
        out.setdefault(sym.strip().upper(), []).append(p)
    return out


def _day(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d")


def _num(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    t = Table(title=f"Walk-forward search: {result['strategy']}, objective {result['objective']} "
                    f"(min {result['min_trades']} trades, seed {result['seed']})", title_justify="left")
    for col in ("fold", "train (UTC)", "test (UTC)", "best params", "in-sample", "trades", "out-of-sample",
                "trades ", "pruned"):
        t.add_column(col)
    for f in result["folds"] + ([result["final"]] if result["final"] else []):
        best, oos = f["best"] or {}, f["out_of_sample"] or {}
        params = ", ".join(f"{k}={_num(v)}" for k, v in (best.get("params") or {}).items()) or "no trial scored"
        t.add_row(f["name"], f"{_day(f['train'][0])} → {_day(f['train'][1])}",
                  f"{_day(f['test'][0])} → {_day(f['test'][1])}", params, _num(best.get("value")),
                  _num(best.get("trades")), _num(oos.get("value")) + (f" ({oos['why']})" if oos.get("why") else ""),
                  _num(oos.get("trades")), f"{f['pruned']}/{f['trials']}")
    c.print(t)
    fin = result["final"]
    if fin and fin["best"]:
        oos = fin["out_of_sample"] or {}
        c.print(f"final parameters (trained on all in-sample data): "
                + " ".join(f"--param {k}={v}" for k, v in fin["best"]["params"].items()))
        c.print(f"holdout (never optimised on): {result['objective']} {_num(oos.get('value'))}, "
                f"{_num(oos.get('trades'))} trades, PnL {_num(oos.get('pnl'))} USDT")


def optimize(
    strategy: str = typer.Option(..., "--strategy", "-s", help="Strategy whose search_space to search."),
    symbol: List[str] = typer.Option(..., "--symbol", help="Symbol to trade (repeat for several)."),
    data: List[str] = typer.Option(..., "--data", help="SYMBOL=FILE candle file (repeat)."),
    start: Optional[str] = typer.Option(None, "--start", help="First day of the whole window (UTC)."),
    end: Optional[str] = typer.Option(None, "--end", help="End of the whole window (exclusive)."),
    objective: str = typer.Option("profit", "--objective", help="profit, sharpe or calmar (maximised)."),
    min_trades: int = typer.Option(10, "--min-trades", min=0, help="A trial with fewer trades scores nothing."),
    trials: int = typer.Option(40, "--trials", min=1, help="Trials per fold (and for the final search)."),
    folds: int = typer.Option(3, "--folds", min=1, help="Walk-forward folds: train on one window, test on the next."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of the window kept for the final out-of-sample report."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Local worker processes (default: every core; 0 = remote workers only)."),
    batch: int = typer.Option(4, "--batch", min=1, help="Candidates proposed at a time; the result depends on seed and batch, never on the worker count."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler: the same seed and batch give the same result."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Shared Optuna storage to scale out (postgresql://…, sqlite:///…, journal:FILE). Default: a local journal file."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name in the storage (default: generated)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Search only these keys of the search space (repeat)."),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="Fixed parameter KEY=VALUE (not searched)."),
    balance: float = typer.Option(10_000.0, "--balance", help="Starting balance in USDT."),
    leverage: int = typer.Option(10, "--leverage", min=1, max=125),
    size_pct: float = typer.Option(24.0, "--size-pct", help="Leg notional as % of equity."),
    funding: Optional[List[str]] = typer.Option(None, "--funding", help="SYMBOL=FILE funding rates (default: the data directory's, else bundled)."),
    json_out: bool = JsonOption,
    config: Optional[str] = ConfigOption,
) -> None:
    """Search a strategy's parameters walk-forward; report each fold out of sample and a final holdout."""
    import tempfile
    from pathlib import Path

    from albra.optimize.folds import plan
    from albra.optimize.job import OBJECTIVES, Job
    from albra.optimize.space import SpaceError, space_of
    from albra.optimize.study import SearchError, SearchSpec, default_storage, search
    from albra.strategy_params import ParamError, parse_params
    from albra.timefmt import parse_time
    from albra.strategies import registry
    from albra.strategies.registry import RegistryError

    if objective not in OBJECTIVES:
        fail(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    try:
        cls = registry.get(strategy)
        fixed = parse_params(list(param or []), [cls])[cls.name]
        space = space_of(cls, list(only or []) or None)
    except (RegistryError, ParamError, SpaceError) as e:
        fail(str(e))
    clash = sorted(set(fixed) & set(space))
    if clash:
        fail(f"--param {clash[0]}: also in the search space; leave it out or search it (--only)")
    files = _paths(list(data), "--data")
    symbols = [s.strip().upper() for s in symbol]
    missing = [s for s in symbols if s not in files]
    if missing:
        fail(f"no --data for {', '.join(missing)}")
    explicit = {k: v[0] for k, v in _paths(list(funding or []), "--funding").items()}
    from albra.candles import CandleFileError, load_candles, load_funding
    from albra.marketdata.layout import DataDir
    from albra.marketdata.sources import funding_file, funding_gap

    try:
        first = [load_candles(files[s][0], symbol=s) for s in symbols]
        lo = max(int(x.ts[0]) for x in first)
        hi = min(int(x.ts[-1]) + x.interval_ms for x in first)
        start_ms = parse_time(start) if start else lo
        end_ms = parse_time(end) if end else hi
        if start_ms < lo or end_ms > hi or start_ms >= end_ms:
            fail(f"--start/--end {_day(start_ms)} → {_day(end_ms)}: the candles given cover {_day(lo)} → "
                 f"{_day(hi)} (every symbol); choose a window inside it")
        fold_plan = plan(start_ms, end_ms, folds, holdout)
        fund: dict[str, str] = {}
        for s in symbols:  # funding is never invented: the whole window needs real rates, as for albra backtest
            where = funding_file(s, DataDir.resolve(None), Path(explicit[s]) if s in explicit else None)
            gap = funding_gap(load_funding(where[0]) if where else [], start_ms, end_ms)
            if gap is not None:
                fail(f"{s}: funding is not known for the whole window ({where[1] + ': ' if where else ''}{gap}); "
                     f"give --funding {s}=FILE or download it with `albra data download {s}`")
            fund[s] = str(where[0]) if where else ""
    except (CandleFileError, ValueError) as e:
        fail(str(e))
    risk = None
    if config:
        from albra.commands._common import load

        risk = load(config).risk.model_dump(mode="json")
    if not 0 < size_pct <= 100:
        fail(f"--size-pct must be in (0, 100], got {size_pct}")
    job = Job(cls.name, {s: files[s] for s in symbols}, fund, objective, min_trades, str(balance), size_pct, leverage,
              "hedge", risk, fixed, os.environ.get("ALBRA_STRATEGY_PATH", ""))
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    name = study or f"albra-{cls.name.lower()}-s{seed}-{os.getpid()}-{int(__import__('time').time())}"
    tmp = None
    if storage is not None:  # remote workers join with: albra optimize-worker --storage URL --study NAME
        typer.echo(f"study {name} in {storage}", err=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="albra-optimize-")
        storage = default_storage(Path(tmp.name), name)
    spec = SearchSpec(job, space, list(only or []), fold_plan, trials, n_workers, seed, batch, storage, name)
    try:
        if json_out:
            result = search(spec)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            total = trials * len(fold_plan)
            with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          transient=True) as prog:
                task = prog.add_task("trials", total=total)
                result = search(spec, lambda n: prog.advance(task, n))
    except SearchError as e:
        fail(str(e), 1)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if json_out:
        emit_json(result)
    else:
        _render(result)


def optimize_worker(
    storage: str = typer.Option(..., "--storage", help="The coordinator's shared storage URL."),
    study: str = typer.Option(..., "--study", help="The study name the coordinator printed."),
    idle_exit: Optional[float] = typer.Option(None, "--idle-exit", help="Exit after this many seconds with nothing queued."),
) -> None:
    """Evaluate trials of a running `albra optimize` study (scale-out on another machine: same data paths)."""
    from albra.optimize.study import SearchError, work

    try:
        n = work(storage, study, idle_exit_s=idle_exit)
    except SearchError as e:
        fail(str(e))
    typer.echo(f"evaluated {n} trial(s)")


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
    app.command("optimize-worker")(optimize_worker)
