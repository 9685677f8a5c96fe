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


def test_fast_reader_equals_the_checked_reader_bit_for_bit(tmp_path):
    """The numpy fast path gives exactly the row-by-row reader's numbers, and any unusual file falls back to it
    (so the error still names the row)."""
    from albra import candles as C
    from albra.candles import bundled

    for name in ("BTCUSDT-15m.csv.gz", "ETHUSDT-15m.csv.gz"):
        fast, slow = C._fast_rows(bundled(name)), C._checked_rows(bundled(name))
        assert fast is not None
        assert fast[0].tobytes() == slow[0].tobytes()
        assert all(a.tobytes() == b.tobytes() for a, b in zip(fast[1], slow[1]))
    bad = tmp_path / "BTCUSDT-15m.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n0,1,2,0.5,1.5,3\n900000,1,2,0.5,x,3\n")
    assert C._fast_rows(bad) is None
    import pytest

    with pytest.raises(C.CandleFileError, match=r"BTCUSDT-15m.csv:3: not a number"):
        C.load_candles(bad)
    odd = tmp_path / "ETHUSDT-15m.csv"
    odd.write_text("timestamp,open,high,low,close,volume\n0,1,2,0.5,1.5,3\n900000,1,1.2,0.5,1.5,3\n")
    with pytest.raises(C.CandleFileError, match=r"ETHUSDT-15m.csv:3: impossible candle"):
        C.load_candles(odd)


@pytest.mark.parametrize("body", [
    "0,1,2,0.5,1.5,3\r\n900000,1,2,0.5,1.5,3\r\n",            # CRLF
    "0,1,2,0.5,1.5,3\n\n900000,1,2,0.5,1.5,3",                  # blank line, no final newline
    "0, 1,2 ,+0.5,1.5,3e0\n900000,.5,2.,0.5,1.5,3\n",            # spaces, signs, exponents, bare dots
    "0,1.0000000000000001110223024625156540423631668090820312500001,2,0.5,1.5,3\n",  # past float precision
    "0,1_0,20,0.5,1.5,3\n",                                     # float() accepts underscores, numpy does not
    '"0",1,2,0.5,1.5,3\n',                                       # quoted field
    "0,1,2,0.5,1.5,3,7\n",                                      # an extra field
    "0,1,2,0.5,1.5,3\n#,1,2,0.5,1.5,3\n",                        # not a comment: a bad row
])
def test_fast_reader_never_disagrees_with_the_checked_reader(tmp_path: Path, body: str) -> None:
    """Whatever the fast reader accepts, it reads as the checked reader does; the rest it hands back (None)."""
    from albra import candles as C

    p = tmp_path / "BTCUSDT-15m.csv"
    p.write_text("timestamp,open,high,low,close,volume\n" + body, newline="")
    fast = C._fast_rows(p)
    try:
        slow = C._checked_rows(p)
    except C.CandleFileError:
        assert fast is None
        return
    if fast is not None:
        assert fast[0].tobytes() == slow[0].tobytes()
        assert all(a.tobytes() == b.tobytes() for a, b in zip(fast[1], slow[1]))


def test_loading_candles_imports_no_pandas() -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom albra.candles import bundled, load_candles\n"
            "assert len(load_candles(bundled('BTCUSDT-15m.csv.gz'))) > 1000\nprint('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
