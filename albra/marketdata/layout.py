"""The market data directory: where downloaded candles, mark-price candles, funding and exchangeInfo live, and how
they are read back by symbol and interval (no file paths for the user to remember).

Layout (``state/data/`` by default; ``ALBRA_DATA_DIR`` or ``--data-dir`` move it)::

    <dir>/exchangeInfo.json.gz            the raw GET /fapi/v1/exchangeInfo answer, plus "albraFetchedMs"
    <dir>/<SYMBOL>/<SYMBOL>-<interval>.csv.gz        trade-price klines   timestamp,open,high,low,close,volume
    <dir>/<SYMBOL>/<SYMBOL>-<interval>-mark.csv.gz   mark-price klines    (volume 0: Binance sends none)
    <dir>/<SYMBOL>/<SYMBOL>-funding.csv.gz           funding rates        timestamp,funding_rate

The candle files use the format of the bundled replay files (``albra.candles``), so every reader of candle files
reads them. Numbers are the strings Binance sent (no float round trip). A download in progress appends each page to
``<file>.part`` (plain CSV rows, flushed per page): an interrupted run keeps every page it received and the next run
merges them first (``merge_part``); the final file is only ever replaced whole (write to a temporary file, then an
atomic rename), so a crash never leaves a half-written ``.csv.gz``.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "ALBRA_DATA_DIR"
DEFAULT_DATA_DIR = Path("state") / "data"
CANDLE_HEADER = ["timestamp", "open", "high", "low", "close", "volume"]
FUNDING_HEADER = ["timestamp", "funding_rate"]
KINDS = ("klines", "mark", "funding")


def default_data_dir() -> Path:
    """``$ALBRA_DATA_DIR`` or ``state/data`` (relative to the working directory)."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env) if env else DEFAULT_DATA_DIR


@dataclass(frozen=True)
class DataDir:
    """Paths inside one data directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def resolve(cls, path: str | Path | None = None) -> "DataDir":
        return cls(Path(path) if path else default_data_dir())

    @property
    def exchange_info(self) -> Path:
        return self.root / "exchangeInfo.json.gz"

    def symbol_dir(self, symbol: str) -> Path:
        return self.root / symbol.upper()

    def path(self, symbol: str, kind: str, interval: str | None = None) -> Path:
        """The file of ``kind`` (klines, mark, funding) for ``symbol`` (and ``interval`` for candles)."""
        sym = symbol.upper()
        if kind == "funding":
            return self.symbol_dir(sym) / f"{sym}-funding.csv.gz"
        if interval is None:
            raise ValueError(f"{kind} needs an interval")
        suffix = "-mark" if kind == "mark" else ""
        if kind not in ("klines", "mark"):
            raise ValueError(f"unknown data kind {kind!r}; known: {', '.join(KINDS)}")
        return self.symbol_dir(sym) / f"{sym}-{interval}{suffix}.csv.gz"

    def candle_intervals(self, symbol: str) -> list[str]:
        """Intervals with a trade-price candle file for ``symbol``, finest first."""
        from albra.timefmt import TIMEFRAME_MS

        d = self.symbol_dir(symbol)
        if not d.is_dir():
            return []
        sym = symbol.upper()
        found = [tf for tf in TIMEFRAME_MS if (d / f"{sym}-{tf}.csv.gz").is_file()]
        return sorted(found, key=lambda tf: TIMEFRAME_MS[tf])

    def symbols(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.isupper())


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def read_rows(path: Path) -> list[list[str]]:
    """Data rows (header dropped) of a final ``.csv.gz`` file; [] when it does not exist."""
    if not path.is_file():
        return []
    with io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    return [r for r in rows[1:] if r]


def read_part(path: Path) -> list[list[str]]:
    """Rows of the ``.part`` file of ``path``; a last line cut short by a crash (no newline) is dropped."""
    part = part_path(path)
    if not part.is_file():
        return []
    text = part.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return [r for r in csv.reader(io.StringIO(text)) if r]


def append_part(path: Path, rows: list[list[str]]) -> None:
    """Append one page to the ``.part`` file and flush it to disk (what an interrupted run keeps)."""
    if not rows:
        return
    part = part_path(path)
    part.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    with open(part, "a", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Replace ``path`` whole: a temporary file in the same directory, then an atomic rename (mtime 0 in the gzip
    header, so equal content gives equal bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue().encode("utf-8"))
    os.replace(tmp, path)


def merge_part(path: Path, header: list[str]) -> list[list[str]]:
    """Fold the ``.part`` rows into the final file (sorted by timestamp; a timestamp present in both keeps the
    newer row) and remove the ``.part``. Returns the merged rows."""
    part_rows = read_part(path)
    rows = read_rows(path)
    if part_rows:
        by_ts = {int(r[0]): r for r in rows}
        for r in part_rows:
            by_ts[int(r[0])] = r
        rows = [by_ts[k] for k in sorted(by_ts)]
        write_rows(path, header, rows)
    part = part_path(path)
    if part.exists():
        part.unlink()
    return rows
