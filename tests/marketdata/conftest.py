"""Fixtures for market-data tests: a SOLUSDT candle file for the local server to serve.

No SOLUSDT history ships with albra, so the fixture takes the bundled real ETHUSDT 15m path (2024-01..03) scaled to
SOL's price range (× 0.04, rounded to SOL's 0.01 tick; volume × 25) and ETHUSDT's real funding rates. What these tests
check is the pipeline (download → files → backtest with SOLUSDT's real filters), not SOL's prices."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from albra.candles import bundled, load_funding

SOL_START = 1_704_067_200_000  # 2024-01-01
SOL_END = 1_711_929_600_000  # 2024-04-01


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sol_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sol")
    candles, funding = d / "SOLUSDT-15m.csv.gz", d / "SOLUSDT-funding.csv"
    with gzip.open(bundled("ETHUSDT-15m.csv.gz"), "rt") as fh, gzip.open(candles, "wt", newline="") as out:
        r, w = csv.reader(fh), csv.writer(out, lineterminator="\n")
        w.writerow(next(r))
        for row in r:
            ts = int(row[0])
            if SOL_START <= ts < SOL_END:
                o, h, lo, c = (round(float(x) * 0.04, 2) for x in row[1:5])
                w.writerow([ts, f"{o:.2f}", f"{max(o, h, c):.2f}", f"{min(o, lo, c):.2f}", f"{c:.2f}",
                            f"{float(row[5]) * 25:.3f}"])
    with open(funding, "w", newline="") as out:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["timestamp", "funding_rate"])
        w.writerows([ts, rate] for ts, rate in load_funding(bundled("ETHUSDT-funding.csv")) if ts < SOL_END)
    return candles, funding
