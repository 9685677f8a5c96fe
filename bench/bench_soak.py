"""Soak: a year of 15m candles for BTCUSDT and ETHUSDT through two accounts and four strategies at full
speed, sampling resident memory; prints peak RSS, growth from the first to the last quarter, candles/s, trades.

The backtest path (albra/engine/backtest.py: strategy → risk → executor → ledger in SQLite → simulated
exchange) runs ONE account per call, so the two accounts run as two processes at the same time, each
sampled on its own (this script re-runs itself with ``--account A|B``):

* account A: TFPE and ZLMACD_ICHIMOKU
* account B: MOMENTUM and ZLHMA_EMA_CROSS

Each strategy trades both symbols (the backtest applies every strategy to every symbol given).
RSS is read from /proc/self/status (VmRSS) every 4096 pipeline steps (the backtest's progress callback,
i.e. at regular candle counts) and every 0.2 s by a thread for the peak.

Data: the last 365 days of /work/shared/data/candles/binance-futures when present, else the bundled 6 months
(2024-01..06) as is — half a year, and the output says so.
Run: ``.venv/bin/python bench/bench_soak.py``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path("/work/shared/data/candles/binance-futures")
ACCOUNTS = {"A": ["TFPE", "ZLMACD_ICHIMOKU"], "B": ["MOMENTUM", "ZLHMA_EMA_CROSS"]}
YEAR_MS = 365 * 24 * 3600 * 1000


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def one_account(name: str) -> dict:
    from albra.candles import bundled, load_candles, load_funding
    from albra.engine.backtest import BacktestSetup, StrategySpec, run_backtest

    data, funding = {}, {}
    if (SHARED / "BTCUSDT-15m.csv.gz").is_file():
        source = "shared binance-futures, last 365 days"
        for sym in ("BTCUSDT", "ETHUSDT"):
            data[sym] = [load_candles(SHARED / f"{sym}-15m.csv.gz")]
    else:
        source = "bundled 2024-01..06 (no year of data on this machine: half a year only)"
        for sym in ("BTCUSDT", "ETHUSDT"):
            data[sym] = [load_candles(bundled(f"{sym}-15m.csv.gz"))]
    for sym in data:
        f = SHARED.parent.parent / "funding" / f"{sym}-funding.csv"
        funding[sym] = load_funding(f) if f.is_file() else load_funding(bundled(f"{sym}-funding.csv"))
    end = min(int(s[0].ts[-1]) for s in data.values()) + 15 * 60 * 1000
    start = max(end - YEAR_MS, max(int(s[0].ts[0]) for s in data.values()))
    candles = sum(int(((s[0].ts >= start) & (s[0].ts < end)).sum()) for s in data.values())

    samples: list[tuple[int, int]] = []   # (progress step, RSS KiB)
    peak = [rss_kib()]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib())
            time.sleep(0.2)

    def progress(i: int, total: int) -> None:
        samples.append((i, rss_kib()))

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    rss_before = rss_kib()
    setup = BacktestSetup([StrategySpec(n) for n in ACCOUNTS[name]], data, start, end, funding=funding)
    t0 = time.perf_counter()
    res = run_backtest(setup, progress=progress)
    secs = time.perf_counter() - t0
    stop.set()
    t.join()
    peak[0] = max(peak[0], rss_kib())
    q = max(1, len(samples) // 4)
    first = sum(r for _, r in samples[:q]) / q
    last = sum(r for _, r in samples[-q:]) / q
    return {"account": name, "strategies": ACCOUNTS[name], "source": source, "candles": candles,
            "seconds": round(secs, 1), "candles_per_s": round(candles / secs), "trades": len(res.trades),
            "rss_before_kib": rss_before, "peak_kib": peak[0], "first_quarter_kib": round(first),
            "last_quarter_kib": round(last), "growth_pct": round((last - first) / first * 100, 2),
            "samples": len(samples), "rss_series_kib": [r for _, r in samples]}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--account":
        print(json.dumps(one_account(sys.argv[2])))
        return
    t0 = time.perf_counter()
    procs = {n: subprocess.Popen([sys.executable, __file__, "--account", n], stdout=subprocess.PIPE, text=True)
             for n in ACCOUNTS}
    results = {}
    for n, p in procs.items():
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"account {n}: exit {p.returncode}")
        results[n] = json.loads(out.strip().splitlines()[-1])
    wall = time.perf_counter() - t0
    print(f"soak: two accounts as two concurrent processes; data: {results['A']['source']}; wall {wall:.1f} s")
    for r in results.values():
        print(f"  account {r['account']} ({' + '.join(r['strategies'])} on BTCUSDT and ETHUSDT): "
              f"{r['candles']} candles in {r['seconds']} s = {r['candles_per_s']} candles/s, {r['trades']} trades; "
              f"RSS start {r['rss_before_kib'] / 1024:.1f} MiB, peak {r['peak_kib'] / 1024:.1f} MiB, "
              f"first quarter {r['first_quarter_kib'] / 1024:.1f} MiB → last quarter {r['last_quarter_kib'] / 1024:.1f} "
              f"MiB ({r['growth_pct']:+.2f} %), {r['samples']} samples")
        print(f"    RSS series (MiB): {' '.join(f'{k / 1024:.0f}' for k in r['rss_series_kib'])}")


if __name__ == "__main__":
    main()
