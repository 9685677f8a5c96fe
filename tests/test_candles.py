"""Candle files: the timeframe comes from the file name or, when the name lacks it, from the rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from albra.candles import CandleFileError, infer_timeframe, load_candles


def _write(path: Path, step_ms: int, n: int = 5) -> Path:
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [f"{1_704_067_200_000 + i * step_ms},10,11,9,10.5,1" for i in range(n)]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("step,name", [(60_000, "1m"), (900_000, "15m"), (3_600_000, "1h"), (86_400_000, "1d")])
def test_timeframe_inferred_when_the_name_lacks_it(tmp_path: Path, step: int, name: str) -> None:
    s = load_candles(_write(tmp_path / "solusdt.csv.gz", step), symbol="SOLUSDT")
    assert s.timeframe == name and len(s) == 5


def test_no_binance_interval_is_named(tmp_path: Path) -> None:
    import numpy as np

    assert infer_timeframe(np.array([0, 900_000, 1_800_000], dtype=np.int64)) == "15m"
    with pytest.raises(CandleFileError, match="7000 ms apart"):
        infer_timeframe(np.array([0, 7000, 14000], dtype=np.int64))
