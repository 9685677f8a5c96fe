"""Strategy benchmark: signals per year and the cost of evaluating candles.

Prints, per strategy, symbol and calendar year, the entry signals of a walk-forward run (one
synthetic leg at a time, exits applied; see tests/strategies/walkforward.py), their long/short
split, and the wall time of ``prepare`` + ``decide`` on every bar of that year. Then the per-candle
cost of the live path ``evaluate`` (bounded window) at 15m bar 1,000 and bar 100,000 of BTCUSDT.

Data: /work/shared/data/candles/binance-futures (15m, resampled to 1h/4h) when it exists, else the
bundled 2024-01..06 candles. Run: ``.venv/bin/python bench/bench_strategies.py``.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "strategies"))

from albra.candles import CandleSeries, bundled, load_candles  # noqa: E402
from albra.timefmt import timeframe_ms  # noqa: E402
from albra.strategies import registry  # noqa: E402
from albra.strategies.base import Strategy  # noqa: E402
from walkforward import walk  # noqa: E402

SHARED = Path("/work/shared/data/candles/binance-futures")
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def load(symbol: str) -> CandleSeries:
    p = SHARED / f"{symbol}-15m.csv.gz"
    return load_candles(p if p.is_file() else bundled(f"{symbol}-15m.csv.gz"))


def year_ms(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)


def cut(cls: type[Strategy], frames: dict[str, CandleSeries], t: int) -> dict[str, CandleSeries]:
    """Frames as a live caller holds them when primary bar ``t`` just closed."""
    p = frames[cls.timeframes[0]]
    now = int(p.ts[t]) + p.interval_ms
    out = {cls.timeframes[0]: p.take(0, t + 1)}
    for tf in cls.timeframes[1:]:
        h = frames[tf]
        out[tf] = h.take(0, int(np.searchsorted(h.ts + h.interval_ms, now, side="right")))
    return out


def per_year(data: dict[str, CandleSeries]) -> None:
    print("Per strategy, symbol and year (walk-forward, one synthetic leg; time = prepare + decide every bar)")
    print(f"{'strategy':<17}{'symbol':<9}{'year':<6}{'bars':>8}{'signals':>9}{'long':>6}{'short':>6}"
          f"{'time s':>8}{'candles/s':>11}")
    for cls in registry.all():
        for sym in SYMBOLS:
            base = data[sym]
            first = datetime.fromtimestamp(int(base.ts[0]) / 1000, timezone.utc).year
            last = datetime.fromtimestamp(int(base.ts[-1]) / 1000, timezone.utc).year
            for year in range(first, last + 1):
                # the year plus the strategy's history before it (warm-up), nothing after it
                hist_ms = cls.history * timeframe_ms(cls.timeframes[0])
                lo_ms = year_ms(year) - hist_ms * 2
                sub = base.slice(lo_ms, year_ms(year + 1))
                frames = {tf: sub.resample(tf) for tf in cls.timeframes}
                prim = frames[cls.timeframes[0]]
                start = int(np.searchsorted(prim.ts, year_ms(year)))
                strat = cls()
                t0 = time.perf_counter()
                res = walk(strat, frames, start=start)
                dt = time.perf_counter() - t0
                bars = len(prim) - start
                print(f"{cls.name:<17}{sym:<9}{year:<6}{bars:>8}{res.entries:>9}{res.longs:>6}{res.shorts:>6}"
                      f"{dt:>8.3f}{bars / dt:>11,.0f}")


def live_cost(base: CandleSeries, reps: int = 200) -> None:
    print("\nLive path: evaluate() per closed candle (bounded window), BTCUSDT")
    print(f"{'strategy':<17}{'history':>9}{'at 15m bar 1,000':>30}{'at 15m bar 100,000':>30}")
    for cls in registry.all():
        frames = {tf: base.resample(tf) for tf in cls.timeframes}
        prim = frames[cls.timeframes[0]]
        strat = cls()
        cells = []
        for bar15 in (1_000, 100_000):
            if bar15 + reps >= len(base):
                cells.append("n/a")
                continue
            t_first = int(np.searchsorted(prim.ts + prim.interval_ms, int(base.ts[bar15]) + base.interval_ms,
                                          side="right")) - 1
            cuts = [cut(cls, frames, t) for t in range(t_first, t_first + reps)]
            t0 = time.perf_counter()
            for fr in cuts:
                strat.evaluate(fr, [])
            cells.append(f"{(time.perf_counter() - t0) / reps * 1e3:.2f} ms (primary bar {t_first})")
        print(f"{cls.name:<17}{cls.history:>9}{cells[0]:>30}{cells[1]:>30}")
    print("(1h strategies: 15m bar 1,000 is 1h bar ~249, below a 500/1500-bar history, so the window is\n"
          " still shorter there; from `history` bars on the window, and the cost, stay constant.)")


def main() -> None:
    data = {s: load(s) for s in SYMBOLS}
    src = SHARED if (SHARED / "BTCUSDT-15m.csv.gz").is_file() else "bundled albra/data/replay"
    print(f"data: {src}; BTCUSDT 15m bars: {len(data['BTCUSDT'])}\n")
    per_year(data)
    live_cost(data["BTCUSDT"])


if __name__ == "__main__":
    main()
