"""albra backtest vs freqtrade backtesting on equal work, whole process, interleaved rounds; plus the trade
agreement and (``--scaling``) albra's cost curve over 1/2/3 years and 1/2/4 symbols.

Equal work: an EMA 20/50 cross on 15m closes, reverse on cross, 0.6 % stop-loss, 5,000 USDT per trade, 0.05 %
taker fees, real funding, real Binance USDⓈ-M candles (default 2023-01-03 → 2025-12-01). albra runs
``bench/strategies/ema_cross.py`` (through ``ALBRA_STRATEGY_PATH``, not a shipped strategy) with the risk rules
freqtrade lacks switched off (``bench/freqtrade/risk.toml``) and 1,000,000 USDT × 0.5 % so the stake stays
≈ 5,000 like freqtrade's fixed stake; freqtrade runs ``bench/freqtrade/EmaCross.py`` (same EMAs) with
``bench/freqtrade/config.json``. Its data is written once, untimed, as feather through freqtrade's own data
handler; its market list is served from a file (``bench/freqtrade/run_offline.py``), so no network is needed.

Timing: each round runs albra, albra deciding nothing (the same strategy with ``trade=false``: same files, indicators
and candles, no order — the difference is the marginal cost of the trades), then freqtrade (A B A B ...: all see the
same machine load); a run's figures are
the operating system's accounting of the finished child (``os.wait4``: user + system CPU, peak RSS) and a wall
clock around it. Medians are printed. Nothing is asserted: the figures are the result.

Usage::

    .venv/bin/python bench/bench_vs_freqtrade.py [--freqtrade /path/to/venv] [--symbols BTCUSDT --symbols BTCUSDT,ETHUSDT]
        [--rounds 3] [--start 2023-01-03] [--end 2025-12-01] [--data /work/shared/data] [--scaling] [--keep DIR]

Without ``--freqtrade`` only albra runs (figures and the scaling curve). freqtrade is installed apart from albra,
e.g. ``python3 -m venv /opt/ft && /opt/ft/bin/pip install freqtrade``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAKE_BALANCE, STAKE_PCT = "1000000", "0.5"  # ≈ 5,000 USDT a trade, drifting < 1 % over the run


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    code: int


def timed(cmd: list[str], out: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run ``cmd`` to completion with stdout+stderr into ``out``; the child's own CPU and peak RSS."""
    with out.open("wb") as fh:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, p.returncode)


def files(data: Path, sym: str) -> tuple[Path, Path, Path]:
    return (data / "candles" / "binance-futures" / f"{sym}-15m.csv.gz",
            data / "candles" / "binance-futures-mark" / f"{sym}-1h-mark.csv.gz",
            data / "funding" / "binance-futures" / f"{sym}-funding.csv")


def albra_cmd(symbols: list[str], data: Path, start: str, end: str, out_json: bool = True,
              alias: dict[str, str] | None = None, trade: bool = True) -> list[str]:
    """``albra backtest`` on ``symbols``; ``alias`` feeds another symbol's files under a listed name (scaling);
    ``trade=False`` runs the same strategy deciding nothing (same files, indicators and candles: the baseline of the
    marginal cost of a trade)."""
    cmd = [str(ROOT / ".venv" / "bin" / "albra"), "backtest", "-s", "BENCH_EMA_CROSS", "--start", start, "--end", end,
           *([] if trade else ["--param", "trade=false"]),
           "--balance", STAKE_BALANCE, "--size-pct", STAKE_PCT, "--leverage", "1",
           "--config", str(HERE / "freqtrade" / "risk.toml")]
    for sym in symbols:
        src = (alias or {}).get(sym, sym)
        c, _, f = files(data, src)
        cmd += ["--symbol", sym, "--data", f"{sym}={c}", "--funding", f"{sym}={f}"]
    return cmd + (["--json"] if out_json else [])


def albra_env() -> dict[str, str]:
    return {**os.environ, "ALBRA_STRATEGY_PATH": str(HERE / "strategies")}


def prepare_freqtrade(ft_python: Path, work: Path, symbols: list[str], data: Path) -> Path:
    """Userdir with the strategy, feather data and the exchangeInfo file (untimed)."""
    from albra.sim import payloads
    from albra.sim.exchange import SimExchange

    (work / "strategies").mkdir(parents=True, exist_ok=True)
    (work / "strategies" / "EmaCross.py").write_text((HERE / "freqtrade" / "EmaCross.py").read_text())
    ex = SimExchange()
    for s in symbols:
        ex.spec(s)
    (work / "exchange_info.json").write_text(json.dumps(payloads.exchange_info(ex, 0)))
    for s in symbols:
        c, m, f = files(data, s)
        subprocess.run([str(ft_python), str(HERE / "freqtrade" / "prepare_data.py"), str(work / "data" / "binance"),
                        s, str(c), str(m), str(f)], check=True)
    return work


def ft_cmd(ft_python: Path, work: Path, symbols: list[str], start: str, end: str, results: Path) -> list[str]:
    tr = f"{start.replace('-', '')}-{end.replace('-', '')}"
    pairs = [f"{s[:-4]}/USDT:USDT" for s in symbols]
    return [str(ft_python), str(HERE / "freqtrade" / "run_offline.py"), str(work / "exchange_info.json"),
            "backtesting", "--config", str(HERE / "freqtrade" / "config.json"), "--userdir", str(work),
            "--datadir", str(work / "data" / "binance"), "--strategy", "EmaCross", "--strategy-path",
            str(work / "strategies"), "--timerange", tr, "--export", "trades", "--backtest-directory", str(results),
            "--cache", "none", "-p", *pairs]


def ft_trades(results: Path) -> list[dict]:
    """The trades of the newest freqtrade result file (zip holding a JSON document)."""
    zips = sorted(results.glob("backtest-result-*.zip"), key=lambda p: p.stat().st_mtime)
    if not zips:
        raise SystemExit(f"no freqtrade result in {results}")
    with zipfile.ZipFile(zips[-1]) as z:
        name = next(n for n in z.namelist() if n.endswith(".json") and "_config" not in n and "meta" not in n)
        doc = json.loads(z.read(name))
    strat = doc["strategy"]
    return next(iter(strat.values()))["trades"]


STEP_MS = 900_000


def agreement(albra_trades: list[dict], ft: list[dict]) -> dict[str, int]:
    """Entries matched on (symbol, entry time, side). Exits: same reason (signal or stop) in the same candle —
    freqtrade stamps a stop with the open of the candle that hit it, albra with the close at which the engine
    recorded the fill, so a stop exit agrees when albra's time is freqtrade's + one candle; signal exits are
    both at the next candle's open. freqtrade closes its last trade at the end of the data (``force_exit``);
    albra leaves the leg open (not a trade), so one freqtrade-only trade per symbol is expected."""
    def sym(t: dict) -> str:
        return t["pair"].split("/")[0] + "USDT"

    a_in = {(t["symbol"], int(t["entry_time"]), t["side"]) for t in albra_trades}
    f_in = {(sym(t), int(t["open_timestamp"]), "SHORT" if t["is_short"] else "LONG") for t in ft}
    f_by = {(sym(t), int(t["open_timestamp"])): t for t in ft}
    same_exit = 0
    for t in albra_trades:
        g = f_by.get((t["symbol"], int(t["entry_time"])))
        if g is None:
            continue
        stop = t["exit_reason"] == "stop_loss"
        lag = STEP_MS if stop else 0
        if (g["exit_reason"] == "stop_loss") == stop and int(t["exit_time"]) == int(g["close_timestamp"]) + lag:
            same_exit += 1
    return {"albra trades": len(albra_trades), "freqtrade trades": len(ft), "same entries": len(a_in & f_in),
            "albra-only entries": len(a_in - f_in), "freqtrade-only entries": len(f_in - a_in),
            "same exit (reason and candle)": same_exit}


def med(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def compare(args: argparse.Namespace, symbols: list[str], data: Path, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    ft_python = None
    if args.freqtrade:
        p = Path(args.freqtrade)
        ft_python = p if p.is_file() else p / "bin" / "python"
        prepare_freqtrade(ft_python, work / "ft", symbols, data)
    a_runs: list[Run] = []
    f_runs: list[Run] = []
    n_runs: list[Run] = []
    a_out = work / f"albra-{'-'.join(symbols)}.json"
    for _ in range(args.rounds):
        r = timed(albra_cmd(symbols, data, args.start, args.end), a_out, env=albra_env(), cwd=ROOT)
        if r.code:
            raise SystemExit(f"albra failed ({r.code}): {a_out.read_text()[-2000:]}")
        a_runs.append(r)
        n_out = work / "albra-no-trades.json"
        r = timed(albra_cmd(symbols, data, args.start, args.end, trade=False), n_out, env=albra_env(), cwd=ROOT)
        if r.code or json.loads(n_out.read_text())["trades"]:
            raise SystemExit(f"albra's no-trade baseline failed or traded ({r.code}): {n_out.read_text()[-2000:]}")
        n_runs.append(r)
        if ft_python is not None:
            res = work / "ft" / "results"
            res.mkdir(parents=True, exist_ok=True)
            out = work / "ft.log"
            r = timed(ft_cmd(ft_python, work / "ft", symbols, args.start, args.end, res), out, cwd=work / "ft")
            if r.code:
                raise SystemExit(f"freqtrade failed ({r.code}): {out.read_text()[-3000:]}")
            f_runs.append(r)
    doc = json.loads(a_out.read_text())
    trades = doc["trades"]
    candles = doc["summary"]["total"]["candles"]
    print(f"\n== {'+'.join(symbols)}: {candles} candles, {args.start} → {args.end}, {args.rounds} interleaved rounds "
          f"(medians) ==")
    a_wall = med(a_runs, "wall")
    print(f"albra     : {a_wall:6.2f} s wall, {med(a_runs, 'cpu'):6.2f} s CPU, peak RSS {med(a_runs, 'rss_mib'):5.0f} MiB,"
          f" {len(trades)} trades, {a_wall / max(1, len(trades)) * 1000:.2f} ms of wall time per trade (all included)")
    marginal = [(a.cpu - n.cpu) / max(1, len(trades)) * 1000 for a, n in zip(a_runs, n_runs)]
    print(f"albra, same run deciding nothing: {med(n_runs, 'wall'):6.2f} s wall, {med(n_runs, 'cpu'):6.2f} s CPU → "
          f"marginal CPU per trade {statistics.median(marginal):.2f} ms (per round "
          f"{', '.join(f'{x:.2f}' for x in marginal)})")
    if f_runs:
        f_wall = med(f_runs, "wall")
        ratios = sorted(f.wall / a.wall for a, f in zip(a_runs, f_runs))
        ft = ft_trades(work / "ft" / "results")
        print(f"freqtrade : {f_wall:6.2f} s wall, {med(f_runs, 'cpu'):6.2f} s CPU, peak RSS {med(f_runs, 'rss_mib'):5.0f} MiB,"
              f" {len(ft)} trades")
        print(f"ratio freqtrade/albra wall: median {statistics.median(ratios):.2f}× (per round {', '.join(f'{x:.2f}' for x in ratios)})")
        print("agreement : " + ", ".join(f"{k} {v}" for k, v in agreement(trades, ft).items()))


def scaling(args: argparse.Namespace, data: Path, work: Path) -> None:
    """albra alone: cost against candles × symbols. Four symbols are BTC and ETH each under a second listed name
    (only two real series are shipped): the same work twice, which is what a linearity check needs."""
    print("\n== scaling (albra; medians of --rounds) ==")
    years = [("1 year", "2023-01-03", "2024-01-03"), ("2 years", "2023-01-03", "2025-01-02"),
             ("3 years", "2023-01-03", args.end)]
    cases = [(f"BTC {label}", ["BTCUSDT"], s, e, {}) for label, s, e in years]
    cases += [("1 symbol", ["BTCUSDT"], "2023-01-03", "2024-01-03", {}),
              ("2 symbols", ["BTCUSDT", "ETHUSDT"], "2023-01-03", "2024-01-03", {}),
              ("4 symbols", ["BTCUSDT", "ETHUSDT", "BCHUSDT", "LTCUSDT"], "2023-01-03", "2024-01-03",
               {"BCHUSDT": "BTCUSDT", "LTCUSDT": "ETHUSDT"})]
    print(f"{'case':<14} {'candles':>8} {'trades':>7} {'wall s':>7} {'CPU s':>6} {'RSS MiB':>8} {'µs/candle':>10} {'ms/trade':>9}")
    for label, syms, s, e, alias in cases:
        out = work / "scale.json"
        runs = [timed(albra_cmd(syms, data, s, e, alias=alias), out, env=albra_env(), cwd=ROOT)
                for _ in range(args.rounds)]
        doc = json.loads(out.read_text())
        n, t = doc["summary"]["total"]["candles"], len(doc["trades"])
        w = med(runs, "wall")
        print(f"{label:<14} {n:>8} {t:>7} {w:>7.2f} {med(runs, 'cpu'):>6.2f} {med(runs, 'rss_mib'):>8.0f} "
              f"{w / n * 1e6:>10.1f} {w / max(1, t) * 1000:>9.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--freqtrade", help="freqtrade's virtual environment (or its python)")
    ap.add_argument("--symbols", action="append", help="comma-separated symbols of one case (repeat for several)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--start", default="2023-01-03")
    ap.add_argument("--end", default="2025-12-01")
    ap.add_argument("--data", default="/work/shared/data", help="folder with candles/ and funding/ (PROVENANCE.md)")
    ap.add_argument("--scaling", action="store_true", help="also print albra's 1/2/3-year and 1/2/4-symbol curve")
    ap.add_argument("--keep", help="keep outputs in this folder (default: a temporary one)")
    args = ap.parse_args()
    data = Path(args.data)
    if not files(data, "BTCUSDT")[0].is_file():
        raise SystemExit(f"no candles under {data}/candles/binance-futures (give --data)")
    cases = [s.split(",") for s in (args.symbols or ["BTCUSDT", "BTCUSDT,ETHUSDT"])]
    # untimed: albra's bytecode, as an installed albra has it (pip compiles on install, and freqtrade's venv has
    # its own); without it a shell with PYTHONDONTWRITEBYTECODE=1 recompiles albra in every timed process (~0.3 s)
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "compileall", "-q",
                    *(str(ROOT / d) for d in ("albra", "commands", "strategies")), str(HERE / "strategies")],
                   check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    with tempfile.TemporaryDirectory(prefix="bench-vs-ft-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for syms in cases:
            compare(args, [s.strip().upper() for s in syms], data, work / "-".join(syms))
        if args.scaling:
            scaling(args, data, work)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
