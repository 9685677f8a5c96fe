"""The search: a coordinator proposes parameter sets, worker processes evaluate them through a shared Optuna
study, and the coordinator keeps the walk-forward books.

How work flows (docs/adr/0019-optimize-scale-out.md):

- The coordinator owns one *generator* study per fold, in memory, with a seeded TPE sampler. It asks a batch of
  ``batch`` candidates, enqueues each into the **shared** study (a WAITING trial carrying its fold and sequence
  number), waits until workers have evaluated the whole batch, then tells the generator the results in sequence
  order. Because the generator sees the same values in the same order whatever the timing, a search is
  reproducible for a given seed and batch size — with one worker or twenty, local or remote.
- A worker (``work``) loads the shared study, reads the job from its user attributes, pops WAITING trials
  (Optuna's ``ask`` hands out each queued trial once, also across machines on an RDB storage), runs the backtest
  and tells the value, or PRUNED when the run had too few trades. Local workers are spawned processes; remote ones
  are ``albra optimize-worker --storage URL --study NAME`` on other machines with the same data paths.
- Storage: a local journal file by default (safe for several processes on one machine); any Optuna RDB URL
  (``postgresql://…``, ``sqlite:///…``) to scale out.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from albra.optimize.folds import Fold
from albra.optimize.job import Job, evaluate
from albra.optimize.space import Range

JOB_ATTR = "albra_job"
WINDOWS_ATTR = "albra_windows"
SPACE_ATTR = "albra_space"
DONE_ATTR = "albra_done"
POLL_S = 0.05


class SearchError(RuntimeError):
    """The search cannot go on (workers died, the study exists already, a worker's job is unreadable)."""


def open_storage(url: str) -> Any:
    """An Optuna storage from a URL: ``journal:PATH`` (local file, several processes) or an RDB URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url.startswith("journal:"):
        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    return optuna.storages.RDBStorage(url)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space_for(study: Any) -> dict[str, Range]:
    from albra.optimize.space import space_of
    from albra.strategies import registry

    job = Job.from_dict(study.user_attrs[JOB_ATTR])
    return space_of(registry.get(job.strategy), study.user_attrs.get(SPACE_ATTR) or None)


def work(storage_url: str, study_name: str, *, idle_exit_s: float | None = None) -> int:
    """Evaluate queued trials of the shared study until the coordinator marks it done (or, with ``idle_exit_s``,
    nothing was queued for that long). Returns the number of trials this worker evaluated."""
    import optuna
    from optuna.trial import TrialState

    _quiet_optuna()
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url),
                              sampler=optuna.samplers.RandomSampler())
    attrs = study.user_attrs
    if JOB_ATTR not in attrs:
        raise SearchError(f"study {study_name!r} holds no albra job (was it made by albra optimize?)")
    job = Job.from_dict(attrs[JOB_ATTR])
    if job.strategy_path:
        from albra.strategies import registry

        os.environ.setdefault("ALBRA_STRATEGY_PATH", job.strategy_path)
        registry.refresh()
    windows: dict[str, list[int]] = attrs[WINDOWS_ATTR]
    space = _space_for(study)
    done = 0
    idle_since = time.monotonic()
    while True:
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if study.user_attrs.get(DONE_ATTR):
                return done
            if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                return done
            time.sleep(POLL_S)
            continue
        trial = study.ask()
        if "seq" not in trial.user_attrs:  # another worker took the last queued one: Optuna sampled a fresh trial
            study.tell(trial, state=TrialState.FAIL)
            continue
        params = {k: rng.suggest(trial, k) for k, rng in space.items()}
        start, end = windows[trial.user_attrs["fold"]]
        try:
            score = evaluate(job, params, start, end)
        except Exception as e:  # a run that cannot be evaluated stops the search, with its reason (never a score)
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
            study.tell(trial, state=TrialState.FAIL)
            done += 1
            continue
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("trades", score.trades)
        trial.set_user_attr("pnl", score.pnl)
        if score.value is None:
            trial.set_user_attr("why", score.why)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, score.value)
        done += 1
        idle_since = time.monotonic()


def _worker_main(storage_url: str, study_name: str, strategy_path: str) -> None:
    if strategy_path:
        os.environ["ALBRA_STRATEGY_PATH"] = strategy_path
    work(storage_url, study_name)


@dataclass
class FoldResult:
    fold: Fold
    trials: list[dict[str, Any]] = field(default_factory=list)  # seq, params, value, trades, state
    best: dict[str, Any] | None = None
    out_of_sample: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        pruned = sum(1 for t in self.trials if t["state"] != "COMPLETE")
        return {"name": self.fold.name, "train": [self.fold.train.start_ms, self.fold.train.end_ms],
                "test": [self.fold.test.start_ms, self.fold.test.end_ms], "trials": len(self.trials),
                "pruned": pruned, "best": self.best, "out_of_sample": self.out_of_sample}


@dataclass
class SearchSpec:
    job: Job
    space: dict[str, Range]
    only: list[str]
    folds: list[Fold]
    trials: int
    workers: int
    seed: int
    batch: int
    storage_url: str
    study_name: str


def _wait_batch(study: Any, seqs: list[int], procs: list[Any], progress: Callable[[int], None]) -> dict[int, Any]:
    from optuna.trial import TrialState

    want = set(seqs)
    finished: dict[int, Any] = {}
    seen = 0
    while True:
        for t in study.get_trials(deepcopy=False):
            s = t.user_attrs.get("seq")
            if s in want and s not in finished and t.state in (TrialState.COMPLETE, TrialState.PRUNED,
                                                                 TrialState.FAIL):
                finished[s] = t
        if len(finished) > seen:
            progress(len(finished) - seen)
            seen = len(finished)
        if len(finished) == len(want):
            return finished
        if procs and not any(p.is_alive() for p in procs):
            codes = ", ".join(str(p.exitcode) for p in procs)
            raise SearchError(f"every worker process exited (exit codes {codes}) with "
                              f"{len(want) - len(finished)} trial(s) unevaluated")
        time.sleep(POLL_S)


def search(spec: SearchSpec, progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """Run every fold's search and out-of-sample report; returns a JSON-ready result."""
    import optuna
    from optuna.trial import TrialState

    _quiet_optuna()
    storage = open_storage(spec.storage_url)
    try:
        shared = optuna.create_study(study_name=spec.study_name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        raise SearchError(f"study {spec.study_name!r} exists already in {spec.storage_url}: choose another "
                          "--study name") from None
    shared.set_user_attr(JOB_ATTR, spec.job.to_dict())
    shared.set_user_attr(SPACE_ATTR, spec.only)
    shared.set_user_attr(WINDOWS_ATTR, {f.name: [f.train.start_ms, f.train.end_ms] for f in spec.folds})
    # forkserver: a clean process (no threads of the caller, e.g. Rich's progress) with the heavy imports done
    # once, forked per worker — spawn would re-import pandas, optuna and albra in every worker
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["albra.optimize.study", "albra.engine.backtest", "albra.sim.exchange", "optuna",
                                "pandas", "albra.strategies.registry"])
    procs = [ctx.Process(target=_worker_main, args=(spec.storage_url, spec.study_name, spec.job.strategy_path),
                         daemon=True) for _ in range(spec.workers)]
    for p in procs:
        p.start()
    results: list[FoldResult] = []
    seq = 0
    try:
        for k, fold in enumerate(spec.folds):
            gen = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
                seed=spec.seed + k, n_startup_trials=max(2, min(10, spec.trials // 2))))
            res = FoldResult(fold)
            left = spec.trials
            while left > 0:
                n = min(spec.batch, left)
                asked = [gen.ask() for _ in range(n)]
                batch = []
                for t in asked:
                    params = {key: rng.suggest(t, key) for key, rng in spec.space.items()}
                    shared.enqueue_trial(params, user_attrs={"fold": fold.name, "seq": seq})
                    batch.append((seq, t, params))
                    seq += 1
                done = _wait_batch(shared, [s for s, _, _ in batch], procs, progress)
                errors = [done[s].user_attrs["error"] for s, _, _ in batch if "error" in done[s].user_attrs]
                if errors:
                    raise SearchError(f"a trial of {fold.name} could not be evaluated: {errors[0]}")
                for s, t, params in batch:  # the generator learns in sequence order: timing never matters
                    ft = done[s]
                    if ft.state is TrialState.COMPLETE:
                        gen.tell(t, ft.value)
                    else:
                        gen.tell(t, state=TrialState.PRUNED)
                    res.trials.append({"seq": s, "params": params, "state": ft.state.name, "value": ft.value,
                                       "trades": ft.user_attrs.get("trades"), "pnl": ft.user_attrs.get("pnl"),
                                       "why": ft.user_attrs.get("why", ""), "worker": ft.user_attrs.get("worker")})
                left -= n
            scored = [t for t in res.trials if t["state"] == "COMPLETE"]
            if scored:
                top = max(scored, key=lambda t: (t["value"], -t["seq"]))
                res.best = {"params": top["params"], "value": top["value"], "trades": top["trades"],
                            "pnl": top["pnl"]}
                oos = evaluate(spec.job, top["params"], fold.test.start_ms, fold.test.end_ms)
                res.out_of_sample = {"value": oos.value, "trades": oos.trades, "pnl": oos.pnl, "why": oos.why,
                                     "summary": oos.summary}
            results.append(res)
    finally:
        shared.set_user_attr(DONE_ATTR, True)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    return {"strategy": spec.job.strategy, "objective": spec.job.objective, "min_trades": spec.job.min_trades,
            "seed": spec.seed, "batch": spec.batch, "trials_per_fold": spec.trials, "workers": spec.workers,
            "study": spec.study_name, "folds": [r.to_dict() for r in results if r.fold.name != "final"],
            "final": results[-1].to_dict() if results and results[-1].fold.name == "final" else None}


def default_storage(folder: Path, name: str) -> str:
    """A local journal file for one search (several local processes share it safely)."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"journal:{folder / (name + '.journal')}"
