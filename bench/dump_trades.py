"""Dump the backtest trade lists (and summaries) as canonical JSON, for before/after determinism comparisons.

Cases: TFPE on 15m and ZLMACD_ICHIMOKU on 1h and 15m, BTCUSDT, over the full 2023-2025 shared data and over a
6-month window (2024-01..2024-06). Run: ``.venv/bin/python bench/dump_trades.py OUT_DIR`` and ``diff -r`` two
output folders; every file must be byte-identical unless a change is explained.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from albra.engine.backtest import BacktestSetup, StrategySpec, run_backtest

sys.path.insert(0, str(Path(__file__).parent))
from bench_backtest import data  # noqa: E402

WINDOWS = {"full": (None, None), "6m": (1704067200000, 1719792000000)}  # 2024-01-01 .. 2024-07-01 UTC


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "trades-out")
    out.mkdir(parents=True, exist_ok=True)
    s15, s1h, fund, label = data()
    cases = [("TFPE", "15m", [s15]), ("ZLMACD_ICHIMOKU", "1h", [s1h]), ("ZLMACD_ICHIMOKU", "15m", [s15])]
    for wname, (start, end) in WINDOWS.items():
        for name, tf, series in cases:
            setup = BacktestSetup([StrategySpec(name)], {"BTCUSDT": series}, funding={"BTCUSDT": fund},
                                  start_ms=start, end_ms=end)
            r = run_backtest(setup)
            f = out / f"{name}-{tf}-{wname}.json"
            f.write_text(json.dumps({"summary": r.summary, "trades": r.trades}, indent=1, sort_keys=True))
            print(f"{label} {wname:>4} {name:<16} {tf:>3}: {len(r.trades)} trades -> {f}")


if __name__ == "__main__":
    main()
