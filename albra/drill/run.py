"""``albra drill``: a complete fire drill, offline, against the local Binance server (docs/adr/0021-drill.md).

1. The local server starts (in this process) on an accelerated clock at a moment the operator's strategies trade
   (:mod:`albra.drill.scenario`); the operator's config is rewritten to point at it (:mod:`albra.drill.config`).
2. One ``albra run`` per account starts, as under systemd, and trades until legs are open with their stops live.
3. An incident is staged: one runner SIGKILLed, a manual market order on its account (an unattributed position),
   one leg's stop cancelled on the exchange, and an exchange outage (HTTP 503s, dropped connections, slow answers).
4. The runbook is walked in order, each command a real ``albra`` process, timed and checked:
   emergency-shutdown → audit --compare-exchange → status → reconcile → reconcile --apply → audit (repaired?) →
   kill-switch off → safe-restart --validate-state (then the runners start again and must report ready) →
   incident-report.
5. Each runbook phase is held to the runbook's target: stop everything < 1 min, assess < 5 min, repair and restart
   < 10 min, write-up < 5 min (the command; the runbook allows a day to write it up).

Every step must also have done what it claims (flat and order-free on the exchange, differences found then none left,
kill switch off, runners ready, the report complete). The drill stops at the first step that did not, names it, and
exits 1. The operator's store is never opened: everything lives in the drill directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable

from albra.drill import config as C
from albra.drill.scenario import ScenarioError, Start, find_start
from albra.timefmt import fmt_kst

#: phase → (target seconds, what the runbook says)
TARGETS: dict[str, tuple[float, str]] = {
    "stop": (60.0, "stop everything < 1 min"),
    "assess": (300.0, "assess < 5 min"),
    "restart": (600.0, "repair and restart < 10 min"),
    "write-up": (300.0, "incident report < 5 min"),
}
#: what ``--break`` can make fail on purpose, and how (a rehearsal of a repair that does not work)
BREAKS = {"reconcile": "the exchange answers HTTP 503 to every read from reconcile --apply on (an outage during the "
                        "repair): it cannot repair"}


@dataclass(frozen=True)
class Profile:
    name: str
    speed: float               # exchange seconds per wall second
    trade_timeout_s: float     # wall seconds the runners get to open legs
    outage_s: float            # wall seconds the staged outage lasts before the runbook starts
    ready_timeout_s: float


PROFILES = {
    "full": Profile("full", speed=60.0, trade_timeout_s=300.0, outage_s=20.0, ready_timeout_s=90.0),
    "short": Profile("short", speed=300.0, trade_timeout_s=60.0, outage_s=2.0, ready_timeout_s=45.0),
}


@dataclass
class StepResult:
    name: str
    phase: str
    command: str
    seconds: float = 0.0
    ok: bool = False
    exit_code: int | None = None
    detail: str = ""
    ran: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "phase": self.phase, "command": self.command, "seconds": round(self.seconds, 3),
                "ok": self.ok, "exit_code": self.exit_code, "detail": self.detail, "ran": self.ran}


@dataclass
class DrillResult:
    drill_dir: str
    profile: str
    started: str = ""
    exchange_start: str = ""
    accounts: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    setup: list[StepResult] = field(default_factory=list)
    staged: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    incident_id: str | None = None
    incident_report: str = ""
    report_path: str = ""
    error: str = ""

    def phases(self) -> list[dict[str, Any]]:
        out = []
        for ph, (target, text) in TARGETS.items():
            steps = [s for s in self.steps if s.phase == ph]
            ran = [s for s in steps if s.ran]
            secs = sum(s.seconds for s in ran)
            complete = bool(steps) and len(ran) == len(steps)
            out.append({"phase": ph, "target_s": target, "runbook": text, "seconds": round(secs, 3),
                        "met": complete and secs <= target and all(s.ok for s in ran)})
        return out

    @property
    def failed(self) -> list[str]:
        bad = [s.name for s in self.setup + self.steps if s.ran and not s.ok]
        bad += [f"phase {p['phase']} over its target ({p['seconds']:.1f}s > {p['target_s']:.0f}s)"
                for p in self.phases() if p["seconds"] > p["target_s"]]
        if self.error and not bad:
            bad.append(self.error)
        return bad

    @property
    def ok(self) -> bool:
        return not self.failed and all(p["met"] for p in self.phases())

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "drill_dir": self.drill_dir, "profile": self.profile,
                "started": self.started, "exchange_start": self.exchange_start, "accounts": self.accounts,
                "left_out": self.left_out, "setup": [s.as_dict() for s in self.setup], "staged": self.staged,
                "steps": [s.as_dict() for s in self.steps], "phases": self.phases(), "incident_id": self.incident_id,
                "incident_report": self.incident_report, "report": self.report_path, "error": self.error}


class DrillFailed(Exception):
    """A step did not do what it claims; the drill stops there."""


class Drill:
    def __init__(self, operator_config: Path, drill_dir: Path, profile: Profile, break_step: str | None = None,
                 keep_positions: bool = False, say: Callable[[str], None] = lambda _m: None) -> None:
        self.operator_config = operator_config
        self.dir = drill_dir
        self.profile = profile
        self.break_step = break_step
        self.keep_positions = keep_positions
        self.say = say
        self.result = DrillResult(str(drill_dir), profile.name)
        self.dc: C.DrillConfig | None = None
        self.env: dict[str, str] = {}
        self.sim: Any = None
        self.runners: dict[str, asyncio.subprocess.Process] = {}
        self.settings: Any = None
        self.leg: Any = None          # the open leg the incident is staged on
        self.differences = 0          # what the first audit found

    # ------------------------------------------------------------------ plumbing
    @property
    def db(self) -> Path:
        return self.dir / "state" / "albra.db"

    async def albra(self, *args: str, timeout: float = 900.0) -> tuple[int, str, str]:
        """One ``albra`` command as a real process on the drill config: (exit code, stdout, stderr)."""
        assert self.dc is not None
        (self.dir / "state" / "weight.json").unlink(missing_ok=True)  # many commands in a minute: fresh weight window
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "albra", *args, "--config", str(self.dc.path), cwd=str(self.dir), env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, "", f"timed out after {timeout:g}s"
        return proc.returncode or 0, out.decode(), err.decode()

    async def step(self, name: str, phase: str, command: list[str] | None,
                   check: Callable[[int, Any, str], Awaitable[str]], log: list[StepResult] | None = None) -> Any:
        """Run ``albra COMMAND --json`` (or only ``check`` when command is None), time it, check what it did."""
        self.say(f"… {name}")
        cmdline = "albra " + " ".join(command) if command else "(drill)"
        res = StepResult(name, phase, cmdline)
        (log if log is not None else self.result.steps).append(res)
        t0 = time.monotonic()
        data: Any = None
        code, err = 0, ""
        if command is not None:
            code, out, err = await self.albra(*command)
            res.exit_code = code
            if "--json" in command:
                try:
                    data = json.loads(out)
                except json.JSONDecodeError:
                    res.seconds = time.monotonic() - t0
                    res.detail = f"exit {code}, no JSON: {(err or out).strip()[-300:]}"
                    raise DrillFailed(name)
            else:
                data = out
        self._keep(name, code, data, err)
        try:
            res.detail = await check(code, data, err)
        except DrillFailed as e:
            res.detail = str(e)
            raise DrillFailed(name) from None
        except Exception as e:  # noqa: BLE001 - a broken check is a failed step, named, not a traceback
            res.detail = f"{type(e).__name__}: {e}"
            raise DrillFailed(name) from None
        finally:
            # the step's time includes what it takes to be done: the command, and for safe-restart the runners
            # reporting ready (the drill's own verification reads are a few ms)
            res.seconds = time.monotonic() - t0
        res.ok = True
        self.say(f"✓ {name} ({res.seconds:.1f}s)")
        return data

    def _keep(self, name: str, code: int, data: Any, err: str) -> None:
        """Each command's output under logs/ (what the operator would have read on the terminal)."""
        stem = self.dir / "logs" / f"{len(self.result.setup) + len(self.result.steps):02d}-{name.split()[0]}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            stem.with_suffix(".out").write_text(data if isinstance(data, str) else json.dumps(data, indent=1))
        if err:
            stem.with_suffix(".err").write_text(err)

    async def exchange(self) -> dict[str, Any]:
        """Per drill account: open positions, open orders and algo orders, straight from the local server."""
        assert self.dc is not None
        acc = await self.sim.admin.accounts()
        return {a: acc[a] for a in self.dc.keys}

    def gateway(self, account: str) -> Any:
        from albra.exchange.ccxt_gateway import CcxtGateway
        from albra.exchange.client import make_ccxt_client

        assert self.dc is not None
        k, s = self.dc.keys[account]
        return CcxtGateway(account, make_ccxt_client("local", k, s, self.sim.url, test_mode=True))

    # ------------------------------------------------------------------ runners
    async def start_runner(self, account: str) -> None:
        assert self.dc is not None
        log = self.dir / "logs" / f"run-{account}.out"
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log, "ab")
        try:
            self.runners[account] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "albra", "run", "--account", account, "--config", str(self.dc.path),
                cwd=str(self.dir), env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=fh, stderr=fh,
                start_new_session=True)
        finally:
            fh.close()

    async def wait_ready(self, accounts: list[str], after_ms: int, timeout_s: float) -> str:
        from albra.store import Store, runners

        deadline = time.monotonic() + timeout_s
        while True:
            with Store.open(self.db, create=False) as s:
                rows = {r.name: r for r in runners.get_all(s)}
            missing = [a for a in accounts if not (
                (r := rows.get(f"run:{a}")) is not None and r.state == "running" and (r.started_ms or 0) >= after_ms
                and r.is_alive())]
            if not missing:
                return f"{len(accounts)} runner(s) running: " + ", ".join(
                    f"{a} pid {rows[f'run:{a}'].pid}" for a in accounts)
            for a in missing:
                p = self.runners.get(a)
                if p is not None and p.returncode is not None:
                    raise DrillFailed(f"runner {a} exited {p.returncode} (see logs/run-{a}.out)")
            if time.monotonic() > deadline:
                raise DrillFailed(f"not ready after {timeout_s:g}s: {', '.join(missing)}")
            await asyncio.sleep(0.2)

    async def stop_runners(self) -> None:
        for p in self.runners.values():
            if p.returncode is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.runners.values():
            try:
                await asyncio.wait_for(p.wait(), 45)
            except asyncio.TimeoutError:
                p.kill()
                await p.wait()

    # ------------------------------------------------------------------ the drill
    async def run(self) -> DrillResult:
        from albra.config import load_settings
        from albra.sim.build import DEFAULT_DATA
        from albra.sim.testing import run_sim_server

        r = self.result
        r.started = fmt_kst(int(time.time() * 1000))
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        # the config first with a placeholder URL: the scenario needs the strategies, the server needs the start
        probe = C.build(self.operator_config, self.dir, "http://127.0.0.1:1", set(DEFAULT_DATA))
        try:
            start = find_start(load_settings(str(probe.path)))
        except ScenarioError as e:
            r.error = str(e)
            r.setup.append(StepResult("find a trading moment", "setup", "(backtest)", ok=False, detail=str(e)))
            self._mark_skipped()
            return r
        r.exchange_start = fmt_kst(start.start_ms)
        async with run_sim_server(start=start.start_ms, speed=self.profile.speed, accounts=probe.keys,
                                  hedge=probe.hedge) as sim:
            self.sim = sim
            # an accelerated clock packs `speed` minutes of trading into each wall minute: Binance's one-minute
            # request-weight window runs on the exchange's clock too, or the runners would spend the drill waiting
            await sim.admin.weights(clock="sim")
            self.dc = C.build(self.operator_config, self.dir, sim.url, set(DEFAULT_DATA))
            self.dc.keys = probe.keys
            self.env = C.child_env(self.dc)
            self.settings = load_settings(str(self.dc.path))
            r.accounts = sorted(self.dc.keys)
            r.left_out = list(self.dc.dropped)
            from albra.store import Store

            Store.open(self.db).close()  # the drill's own store, created before any process reads it
            try:
                await self._setup(start)
                await self._stage()
                await self._runbook()
            except DrillFailed as e:
                r.error = str(e)
            finally:
                await self.stop_runners()
                self._mark_skipped()
        from albra.drill.report import markdown

        out = self.dir / "drill-report.md"
        r.report_path = str(out)
        out.write_text(markdown(r.as_dict()))
        return r

    def _mark_skipped(self) -> None:
        done = {s.name for s in self.result.steps}
        for name, phase, cmd in RUNBOOK:
            if name not in done:
                self.result.steps.append(StepResult(name, phase, cmd, ran=False, detail="not run (an earlier step "
                                                                                        "failed)"))

    async def _setup(self, start: Start) -> None:
        r = self.result

        async def up(_c: int, _d: Any, _e: str) -> str:
            t0 = int(time.time() * 1000) - 1000
            for a in r.accounts:
                await self.start_runner(a)
            return await self.wait_ready(r.accounts, t0, self.profile.ready_timeout_s)

        await self.step("runners start", "setup", None, up, log=r.setup)

        async def trade(_c: int, _d: Any, _e: str) -> str:
            from albra.ledger import legs as L
            from albra.store import Store

            deadline = time.monotonic() + self.profile.trade_timeout_s
            while True:
                with Store.open(self.db, create=False) as s:
                    live = [g for a in r.accounts for g in L.live_legs(s, a)
                            if g.state is L.LegState.OPEN and g.sl_client_id]
                ex = await self.exchange()
                protected = [g for g in live if ex[g.account]["open_algos"] > 0]
                if protected:
                    self.leg = protected[0]
                    return (f"{len(live)} leg(s) open with stops on the exchange: " + ", ".join(
                        f"{g.account}/{g.strategy} {g.symbol} {g.direction.value} {g.qty}" for g in live))
                for a, p in self.runners.items():
                    if p.returncode is not None:
                        raise DrillFailed(f"runner {a} exited {p.returncode} while trading")
                if time.monotonic() > deadline:
                    raise DrillFailed(f"no leg opened within {self.profile.trade_timeout_s:g}s (exchange clock "
                                      f"{fmt_kst(await self.sim.admin.clock())}; first backtest entry "
                                      f"{fmt_kst(start.entries[0][0])})")
                await asyncio.sleep(0.25)

        await self.step("runners trade", "setup", None, trade, log=r.setup)

    async def _stage(self) -> None:
        """The incident: runner killed, manual trade, stop cancelled, exchange outage."""
        from albra.exchange.types import OrderRequest
        from albra.model import OrderType

        r, leg = self.result, self.leg
        acct = leg.account
        proc = self.runners[acct]
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        r.staged.append(f"runner {acct} killed (SIGKILL, pid {proc.pid}) while {leg.strategy} held {leg.qty} "
                        f"{leg.symbol} {leg.direction.value}")
        gw = self.gateway(acct)
        try:
            await gw.cancel_order(leg.symbol, leg.sl_client_id, True)
            r.staged.append(f"{acct}: the stop of {leg.strategy}'s {leg.symbol} leg cancelled by hand on the exchange "
                            f"({leg.sl_client_id})")
            f = await gw.filters(leg.symbol)
            # a small manual order: twice the minimum notional at the leg's entry price
            qty = max(f.min_qty, f.floor_qty(f.min_notional * 2 / Decimal(leg.entry_price)) + f.step_size)
            req = OrderRequest(f"web_drill{int(time.time())}", leg.symbol, leg.direction.entry_side,
                               OrderType.MARKET, qty, leg.position_side)
            await gw.place_order(req)
            r.staged.append(f"{acct}: a manual market {leg.direction.entry_side.value} of {qty} {leg.symbol} (client "
                            f"id {req.client_id}, not albra's)")
        finally:
            await gw.close()
        outage = [("GET", "/fapi/v2/positionRisk", "status", {"status": 503, "count": 6}),
                  ("GET", "/fapi/v1/openOrders", "drop", {"count": 3}),
                  ("*", "*", "latency", {"delay_ms": 1500, "count": 8})]
        for method, path, action, kw in outage:
            await self.sim.admin.fault(method, path, action, **kw)
        r.staged.append("exchange outage: 503 on GET positionRisk ×6, connection dropped without an answer on GET "
                        "openOrders ×3, answers 1.5 s late ×8")
        await asyncio.sleep(self.profile.outage_s)

    async def _runbook(self) -> None:
        r = self.result

        async def shutdown(code: int, d: Any, err: str) -> str:
            if code != 0:
                raise DrillFailed(f"exit {code}: " + "; ".join(f"{a['account']} {a['status']} {a.get('reason', '')}"
                                                                for a in d.get("accounts", [])))
            r.incident_id = d.get("incident_id")
            if not r.incident_id:
                raise DrillFailed("no incident opened")
            ex = await self.exchange()
            if self.keep_positions:
                left = {a: (v["open_orders"], v["open_algos"]) for a, v in ex.items()
                        if v["open_orders"] or v["open_algos"]}
                kept = sum(len(v["positions"]) for v in ex.values())
                if left or not kept:
                    raise DrillFailed(f"frozen? orders left {left}, positions kept {kept}")
                what = f"every account order-free on the exchange, {kept} position(s) kept (frozen)"
            else:
                left = {a: (len(v["positions"]), v["open_orders"], v["open_algos"]) for a, v in ex.items()
                        if v["positions"] or v["open_orders"] or v["open_algos"]}
                if left:
                    raise DrillFailed(f"not flat and order-free on the exchange: {left}")
                what = "every account flat and order-free on the exchange"
            return (f"{r.incident_id} opened; {what}; runners stopped: "
                    + ", ".join(x.get("account", "?") for x in d.get("runners", [])))

        await self.step("emergency-shutdown", "stop", ["emergency-shutdown", "--yes", "--json"]
                        + (["--keep-positions"] if self.keep_positions else []), shutdown)
        await self.sim.admin.clear_faults()  # the outage is over when the operator assesses

        async def audit(code: int, d: Any, err: str) -> str:
            if code not in (0, 1):
                raise DrillFailed(f"exit {code}: {err.strip()[-200:]}")
            n = sum(len(a["findings"]) for a in d["accounts"])
            self.differences = n
            if self.keep_positions and not n:
                raise DrillFailed("positions were frozen without their stops and a manual position is open, "
                                  "yet the audit found no difference")
            return (f"{n} difference(s) between ledger and exchange" + (": " + "; ".join(
                f"{a['account']} {f['kind']} {f['symbol']}" for a in d["accounts"] for f in a["findings"])[:400]
                                                                        if n else ""))

        await self.step("audit --compare-exchange", "assess",
                        ["audit", "--compare-exchange", "--incident", r.incident_id or "", "--json"], audit)

        async def status(code: int, d: Any, err: str) -> str:
            if code != 0 or not d.get("kill_switch"):
                raise DrillFailed(f"exit {code}; kill switch {'on' if d.get('kill_switch') else 'OFF'}")
            return f"kill switch on; open incidents: {', '.join(i['id'] for i in d.get('open_incidents', []))}"

        await self.step("status", "assess", ["status", "--offline", "--json"], status)

        async def proposals(code: int, d: Any, err: str) -> str:
            if code not in (0, 1):
                raise DrillFailed(f"exit {code}: {err.strip()[-200:]}")
            props = [p for a in d["accounts"] for p in a["proposals"]]
            if len(props) < self.differences:
                raise DrillFailed(f"{len(props)} proposal(s) for {self.differences} difference(s)")
            return f"{len(props)} repair(s) proposed" + (": " + "; ".join(
                str(p.get("action") or p.get("kind")) for p in props)[:300] if props else "")

        await self.step("reconcile", "restart", ["reconcile", "--json"], proposals)
        if self.break_step == "reconcile":
            await self.sim.admin.fault("GET", "*", "status", status=503, count=None)
            r.staged.append("--break reconcile: " + BREAKS["reconcile"])

        async def apply(code: int, d: Any, err: str) -> str:
            if code != 0:
                raise DrillFailed(f"exit {code}: could not repair: " + "; ".join(
                    f"{a['account']}: {a.get('reason') or a.get('blocked') or a.get('remaining')}"
                    for a in d["accounts"] if not a.get("reachable", True) or a.get("remaining")
                    or a.get("blocked"))[:400])
            acts = [x for a in d["accounts"] for x in a["actions"]]
            return f"{len(acts)} repair(s) applied" + (": " + "; ".join(acts)[:300] if acts else "")

        await self.step("reconcile --apply", "restart", ["reconcile", "--apply", "--json"], apply)

        async def clean(code: int, d: Any, err: str) -> str:
            if code != 0:
                raise DrillFailed(f"exit {code}: still " + "; ".join(
                    f"{a['account']} {f['kind']} {f['symbol']}" for a in d["accounts"] for f in a["findings"])[:300])
            return "ledger and exchange agree on every account"

        await self.step("audit after repair", "restart", ["audit", "--compare-exchange", "--json"], clean)

        async def ks_off(code: int, d: Any, err: str) -> str:
            from albra.store import Store, flags

            with Store.open(self.db, create=False) as s:
                on = flags.kill_switch(s)
            if code != 0 or on is not None:
                raise DrillFailed(f"exit {code}; kill switch {'still on' if on else 'off'}: {err.strip()[-200:]}")
            return "kill switch off"

        await self.step("kill-switch off", "restart", ["kill-switch", "off", "--yes", "--reason",
                                                       "drill: repaired", "--json"], ks_off)

        async def restart(code: int, d: Any, err: str) -> str:
            if code != 0 or d.get("blockers"):
                raise DrillFailed(f"exit {code}: blocked: " + "; ".join(d.get("blockers") or [])[:400])
            t0 = int(time.time() * 1000) - 1000
            for a in r.accounts:  # what systemd does on `systemctl restart albra@ACCOUNT`
                await self.start_runner(a)
            return "validated (" + "; ".join(d.get("checks", []))[:200] + "); " + await self.wait_ready(
                r.accounts, t0, self.profile.ready_timeout_s)

        # the operator has reviewed every incident the drill opened (the emergency's, and e.g. an unattributed leg
        # that reconcile --apply adopted) and accepts them by name, as safe-restart asks
        from albra.store import Store, incidents

        with Store.open(self.db, create=False) as s:
            open_ids = [i.incident_id for i in incidents.list_incidents(s, status="open")]
        accept = [x for i in open_ids for x in ("--accept-incident", i)]
        await self.step("safe-restart --validate-state", "restart",
                        ["safe-restart", "--validate-state", "--dry-run", *accept, "--json"], restart)

        out = self.dir / f"incident-{r.incident_id}.md"

        async def report(code: int, d: Any, err: str) -> str:
            if code != 0 or not out.exists():
                raise DrillFailed(f"exit {code}: {err.strip()[-200:]}")
            text = out.read_text()
            need = ["## Timeline (KST)", "## Positions and equity before and after", "## Orders sent",
                    "## Loss assessment", "## Actions taken", "## Open questions", r.incident_id or "?"]
            missing = [n for n in need if n not in text]
            missing += [f"account {a}" for a in r.accounts if a not in text]
            if missing:
                raise DrillFailed(f"report incomplete, missing: {', '.join(missing)}")
            r.incident_report = str(out)
            return f"{out.name}: {len(text.splitlines())} lines, every section and account present"

        await self.step("incident-report", "write-up", ["incident-report", "--incident-id", r.incident_id or "",
                                                        "--output", str(out)], report)


#: the runbook steps in order: (name, phase, command shown when a step did not run)
RUNBOOK = [
    ("emergency-shutdown", "stop", "albra emergency-shutdown --yes"),
    ("audit --compare-exchange", "assess", "albra audit --compare-exchange --incident INC"),
    ("status", "assess", "albra status --offline"),
    ("reconcile", "restart", "albra reconcile"),
    ("reconcile --apply", "restart", "albra reconcile --apply"),
    ("audit after repair", "restart", "albra audit --compare-exchange"),
    ("kill-switch off", "restart", "albra kill-switch off --yes"),
    ("safe-restart --validate-state", "restart", "albra safe-restart --validate-state"),
    ("incident-report", "write-up", "albra incident-report --incident-id INC --output FILE"),
]
