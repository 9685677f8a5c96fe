"""The upgrade, step by step, with the rollback (docs/adr/0020-upgrade.md).

Order, and why:

1. ``resolve``      the ref names a commit in the repository;
2. ``install``      the new release is built beside the old one and smoke-checked with the operator's config —
                    nothing running is touched yet, so a failure here costs nothing;
3. ``migrate-copy`` the new version opens a backup copy of the store and migrates it: a migration that fails does
                    so on the copy;
4. ``pause``        new entries stop (a global pause by actor ``upgrade``; exits and protective orders keep working);
5. ``stop-runners`` each running runner gets SIGTERM (``systemctl stop`` under systemd): it cancels working entry
                    orders, finishes in-flight work and exits (protective orders stay on the exchange);
6. ``backup``       SQLite online backup of the now quiet store, verified (integrity, schema, ledger row counts);
7. ``switch``       ``current`` → the new release (one atomic rename);
8. ``migrate``      the new version migrates the live store;
9. ``validate``     the new version's ``safe-restart --validate-state`` (store integrity, no unresolved order
                    intents, ledger = exchange);
10. ``start-runners`` the runners that were running start again on the new release and must report ready;
11. ``resume``      the upgrade's own pause is lifted (an operator's earlier pause stays).

A failure at 4 or later rolls back: runners started by the new release stop, ``current`` points at the old
release again, the store is restored from the verified backup when anything after it may have changed it (a newer
schema would make the old release refuse the store), the old runners start again, the pause is lifted. The command
exits 1 naming the failed step; the journal keeps ``upgrade_failed`` and ``upgrade_rolled_back``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from albra.timefmt import fmt_kst, now_ms
from albra.upgrade import backup as B
from albra.upgrade import install as I
from albra.upgrade.layout import Layout
from albra.upgrade.storeops import apply_anywhere

if TYPE_CHECKING:
    from albra.config import Settings

class StepFailed(RuntimeError):
    """One step did not do what it must; carries the step's name."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass
class UpgradeResult:
    ref: str
    commit: str = ""
    from_release: str | None = None
    to_release: str | None = None
    steps: list[Step] = field(default_factory=list)
    failed_step: str | None = None
    rolled_back: bool = False
    rollback: list[Step] = field(default_factory=list)
    backup: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_step is None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "ref": self.ref, "commit": self.commit, "from_release": self.from_release,
                "to_release": self.to_release, "failed_step": self.failed_step, "rolled_back": self.rolled_back,
                "backup": self.backup, "steps": [s.as_dict() for s in self.steps],
                "rollback": [s.as_dict() for s in self.rollback]}


@dataclass
class Upgrade:
    """One upgrade run. ``start_runner(release, account)`` starts an account's runner on a release (default: the
    systemd unit, or a detached ``albra run`` where there is no systemd)."""

    settings: "Settings"
    config: Path
    layout: Layout
    repo: Path
    offline: bool = False
    ready_timeout_s: float = 90.0
    stop_timeout_s: float = 45.0
    result: UpgradeResult = field(default_factory=lambda: UpgradeResult(""))
    _paused: bool = False
    _running: list[str] = field(default_factory=list)
    _stopped: list[str] = field(default_factory=list)
    _started: list[str] = field(default_factory=list)
    _switched_from: Path | None = None
    _backup: Path | None = None
    _store_touched: bool = False

    @property
    def db(self) -> Path:
        return self.settings.db_path

    # ------------------------------------------------------------------ plumbing
    def _step(self, name: str, fn: Callable[[], str], log: list[Step] | None = None) -> None:
        t0 = time.monotonic()
        try:
            detail = fn()
        except StepFailed:
            raise
        except (I.InstallError, B.BackupError, OSError, RuntimeError, subprocess.SubprocessError) as e:
            (log if log is not None else self.result.steps).append(Step(name, False, time.monotonic() - t0, str(e)))
            raise StepFailed(name, str(e)) from None
        (log if log is not None else self.result.steps).append(Step(name, True, time.monotonic() - t0, detail))

    def _fail(self, name: str, t0: float, detail: str) -> StepFailed:
        self.result.steps.append(Step(name, False, time.monotonic() - t0, detail))
        return StepFailed(name, detail)

    def _albra(self, release: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(Layout.albra_bin(release)), *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=timeout, cwd=release)

    def _store(self, op: str, **args: Any) -> str:
        """A store write by this code, or by the current release's when the store is already newer."""
        cur = self.layout.current_release()
        return apply_anywhere(self.db, op, args, Layout.python_bin(cur) if cur is not None else None)

    def _journal(self, kind: str, msg: str, level: str = "INFO", **data: Any) -> None:
        if not self.db.exists():
            return
        try:
            self._store("journal", kind=kind, message=msg, level=level, data=data)
        except Exception as e:  # noqa: BLE001 - the result printed and returned still says what happened
            self.result.steps.append(Step("journal", False, 0.0, f"{kind} not journaled: {e}"))

    # ------------------------------------------------------------------ the steps
    def run(self, ref: str) -> UpgradeResult:
        res = self.result = UpgradeResult(ref)
        old = self.layout.current_release()
        res.from_release = old.name if old else None
        try:
            self._step("resolve", lambda: self._resolve(ref))
            new = self.layout.release(res.commit)
            res.to_release = new.name
            if old is not None and old == new:
                res.steps.append(Step("done", True, 0.0, f"already at {new.name}: nothing to do"))
                return res
            self._step("install", lambda: self._install(new))
            self._step("migrate-copy", lambda: self._migrate_copy(new))
            self._journal("upgrade_started", f"upgrade {res.from_release or '(first install)'} → {new.name} "
                          f"({ref})", level="WARNING", ref=ref, commit=res.commit)
            self._step("pause", self._pause)
            self._step("stop-runners", self._stop_runners)
            self._step("backup", lambda: self._take_backup(new))
            self._step("switch", lambda: self._switch(new))
            self._step("migrate", lambda: self._migrate(new))
            self._step("validate", lambda: self._validate(new))
            self._step("start-runners", lambda: self._start_runners(new))
            self._step("resume", self._resume)
        except StepFailed as e:
            res.failed_step = e.step
            self._journal("upgrade_failed", f"upgrade to {res.to_release} failed at {e.step}: {e.detail}",
                          level="CRITICAL", step=e.step)
            if self._paused or self._switched_from is not None or self._stopped:
                self._rollback(old)
            return res
        self._journal("upgrade_done", f"upgraded {res.from_release or '(first install)'} → {res.to_release}",
                      ref=ref, commit=res.commit, backup=res.backup)
        return res

    def _resolve(self, ref: str) -> str:
        self.result.commit = I.resolve(self.repo, ref)
        return f"{ref} = {self.result.commit}"

    def _install(self, new: Path) -> str:
        self.layout.releases.mkdir(parents=True, exist_ok=True)
        built = I.build(self.repo, self.result.commit, new, self.config, offline=self.offline)
        how = "offline, sharing the running environment's packages" if self.offline else "from the package index"
        return f"{'built' if built else 'reused'} {new} ({how}); --help and config check pass"

    def _migrate_copy(self, new: Path) -> str:
        if not self.db.exists():
            return "no store yet: nothing to migrate"
        copy = new / "migration-check.db"
        copy.unlink(missing_ok=True)
        info = B.take(self.db, copy)
        out = self._open_with(new, copy)
        copy.unlink(missing_ok=True)
        return f"copy of the store (schema v{info.schema_version}) migrated by the new version: {out}"

    def _open_with(self, release: Path, db: Path) -> str:
        """The release's own albra opens (and so migrates) ``db`` and checks it; raises StepFailed-worthy errors."""
        code = ("import json, sys; from albra.store import Store; s = Store.open(sys.argv[1], create=False); "
                "r = s.check_integrity(); print(json.dumps(r.as_dict())); sys.exit(0 if r.ok else 1)")
        # cwd = the release: `python -c` puts the working directory first on sys.path, which must not be a checkout
        out = subprocess.run([str(Layout.python_bin(release)), "-c", code, str(db)], capture_output=True, text=True,
                             timeout=600, cwd=release)
        if out.returncode != 0:
            tail = (out.stderr.strip().splitlines() or out.stdout.strip().splitlines() or ["no output"])[-1]
            raise B.BackupError(f"the new version could not open/migrate {db.name}: {tail}")
        rep = json.loads(out.stdout.strip().splitlines()[-1])
        return f"schema v{rep['schema_version']}, integrity ok"

    def _pause(self) -> str:
        if not self.db.exists():
            return "no store yet"
        if self._store("pause", reason=f"upgrade to {self.result.to_release}") == "already":
            return "entries were already paused by the operator (left as it is)"
        self._paused = True
        return "new entries paused (all accounts)"

    def _stop_runners(self) -> str:
        from albra.runbook.runner_control import stop_runner
        from albra.store import Store, runners

        if not self.db.exists():
            return "no store yet: no runner"
        with Store.open(self.db, create=False, any_version=True) as s:  # the runners table is the same in every version
            alive = [r for r in runners.get_all(s) if r.name.startswith("run:") and r.is_alive()]
        self._running = sorted(r.name[4:] for r in alive)
        notes = []
        t0 = time.monotonic()
        for r in alive:
            acct = r.name[4:]
            st = stop_runner(acct, self.settings.paths.state_dir, r.pid, r.host, timeout_s=self.stop_timeout_s)
            self._stopped.append(acct)
            if not st.ok:
                raise self._fail("stop-runners", t0, f"{acct}: {st.detail}")
            notes.append(f"{acct}: {st.detail} ({st.seconds:.1f}s)")
        return "; ".join(notes) or "no runner was running"

    def _take_backup(self, new: Path) -> str:
        if not self.db.exists():
            return "no store yet: nothing to back up"
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        dest = self.settings.paths.state_dir / "backups" / f"albra-{stamp}-pre-{new.name}.db"
        info = B.take(self.db, dest)
        self._backup = dest
        self.result.backup = str(dest)
        return (f"{dest} ({info.bytes} bytes, schema v{info.schema_version}, verified: integrity ok, "
                + ", ".join(f"{t} {n}" for t, n in info.rows.items()) + ")")

    def _switch(self, new: Path) -> str:
        self._switched_from = self.layout.current_release()
        self.layout.switch(new)
        return f"{self.layout.current} → {new.name}"

    def _migrate(self, new: Path) -> str:
        if not self.db.exists():
            return "no store yet"
        self._store_touched = True
        return self._open_with(new, self.db)

    def _validate(self, new: Path) -> str:
        if not self.db.exists():
            return "no store yet"
        t0 = time.monotonic()
        out = self._albra(new, "safe-restart", "--validate-state", "--dry-run", "--json")
        try:
            plan = json.loads(out.stdout)
        except json.JSONDecodeError:
            raise self._fail("validate", t0, f"safe-restart exit {out.returncode}: {out.stderr.strip()[-300:]}")
        if out.returncode != 0 or plan.get("blockers"):
            raise self._fail("validate", t0, "; ".join(plan.get("blockers") or [f"exit {out.returncode}"]))
        return "; ".join(plan.get("checks", []))

    def _start_runners(self, release: Path) -> str:
        notes = []
        t0 = time.monotonic()
        for acct in self._running:
            ok, detail = start_runner(self.settings, self.config, release, acct, self.ready_timeout_s)
            self._started.append(acct)
            if not ok:
                raise self._fail("start-runners", t0, f"{acct}: {detail}")
            notes.append(f"{acct}: {detail}")
        return "; ".join(notes) or "no runner was running before the upgrade"

    def _resume(self) -> str:
        if not self._paused:
            return "nothing to resume (the upgrade did not pause)"
        self._store("resume", reason="upgrade finished")
        self._paused = False
        return "new entries allowed again"

    # ------------------------------------------------------------------ rollback
    def _rollback(self, old: Path | None) -> None:
        from albra.runbook.runner_control import stop_runner

        res = self.result
        res.rolled_back = True
        log = res.rollback

        def stop_new() -> str:
            notes = []
            for acct in self._started:
                st = stop_runner(acct, self.settings.paths.state_dir, timeout_s=self.stop_timeout_s)
                notes.append(f"{acct}: {st.detail}")
            return "; ".join(notes) or "no runner was started on the new release"

        def switch_back() -> str:
            if self._switched_from is None:
                return "current was not switched"
            self.layout.switch(self._switched_from)
            return f"{self.layout.current} → {self._switched_from.name}"

        def restore() -> str:
            if self._backup is None or not self._store_touched:
                return "the store was not changed after the backup: kept"
            B.restore(self._backup, self.db)
            return f"store restored from {self._backup} (verified)"

        def restart_old() -> str:
            if old is None:
                return "no previous release"
            notes = []
            for acct in self._stopped:
                ok, detail = start_runner(self.settings, self.config, old, acct, self.ready_timeout_s)
                notes.append(f"{acct}: {'ready' if ok else 'NOT READY'} — {detail}")
            return "; ".join(notes) or "no runner was running before the upgrade"

        for name, fn in (("stop-new-runners", stop_new), ("switch-back", switch_back), ("restore-store", restore),
                         ("restart-old-runners", restart_old), ("resume", self._resume)):
            try:
                self._step(name, fn, log)
            except StepFailed:
                continue  # every rollback step is tried; the log says which did not work
        self._journal("upgrade_rolled_back", f"upgrade to {res.to_release} rolled back to {res.from_release}: "
                      + "; ".join(f"{s.name} {'ok' if s.ok else 'FAILED'}" for s in log),
                      level="CRITICAL", failed_step=res.failed_step, backup=res.backup)


def start_runner(settings: "Settings", config: Path, release: Path, account: str,
                 ready_timeout_s: float) -> tuple[bool, str]:
    """Start ``account``'s runner on ``release`` and wait until it reports ready: ``systemctl start albra@ACCOUNT``
    where the unit is loaded (it runs ``current``), otherwise a detached ``albra run`` of that release (its output
    in ``<state_dir>/run-ACCOUNT.upgrade.log``)."""
    from albra.runbook.restart import wait_ready
    from albra.runbook.runner_control import systemctl, unit_loaded, unit_name
    from albra.store import Store

    t0 = now_ms()
    if unit_loaded(account):
        sc = systemctl()
        out = subprocess.run([str(sc), "start", unit_name(account)], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            return False, f"systemctl start {unit_name(account)} failed: {out.stderr.strip()[:200]}"
        how = f"systemctl start {unit_name(account)}"
    else:
        log = settings.paths.state_dir / f"run-{account}.upgrade.log"
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen([str(Layout.albra_bin(release)), "run", "--account", account, "--config",
                                     str(config)], stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                    start_new_session=True, close_fds=True)
        finally:
            os.close(fd)
        how = f"started {Layout.albra_bin(release)} run --account {account} (pid {proc.pid}, no systemd unit)"
    with Store.open(settings.db_path, create=False, any_version=True) as s:
        ready, why = wait_ready(s, account, t0, ready_timeout_s)
    return ready, f"{how}; {why} since {fmt_kst(t0)}"

