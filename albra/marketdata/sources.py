"""Finding candles and funding by symbol (and interval) for backtests, paper replays and ``albra sim serve``.

Order: what the user named explicitly (a file), then the data directory (``albra data download``), then the files
bundled with albra (BTCUSDT/ETHUSDT, 2024-01..06). Funding is never invented: :func:`funding_gap` says where the rates
found do not cover a window, and the callers refuse to run there unless the user gave a flat rate on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from albra.candles import CandleSeries, bundled, load_candles, load_funding
from albra.marketdata.layout import DataDir
from albra.timefmt import fmt_kst

BUNDLED_CANDLES = {"BTCUSDT": "BTCUSDT-15m.csv.gz", "ETHUSDT": "ETHUSDT-15m.csv.gz"}
BUNDLED_FUNDING = {"BTCUSDT": "BTCUSDT-funding.csv", "ETHUSDT": "ETHUSDT-funding.csv"}
FUNDING_SLOT_MS = 8 * 3_600_000


class DataMissing(ValueError):
    """No data for a symbol (or not for the window asked); the message says how to get it."""


def download_hint(symbol: str, interval: str = "15m", start: str = "2024-01-01") -> str:
    return f"albra data download {symbol} --interval {interval} --start {start}"


def candle_series(symbol: str, data: DataDir, intervals: list[str] | None = None) -> list[CandleSeries]:
    """Every candle series of ``symbol`` in the data directory (only ``intervals`` when given), else the bundled
    one. Raises :class:`DataMissing` with the download command when there is none."""
    have = data.candle_intervals(symbol)
    if intervals:
        have = [tf for tf in have if tf in intervals] or have[:1]
    if have:
        return [load_candles(data.path(symbol, "klines", tf), symbol=symbol, timeframe=tf) for tf in have]
    if symbol in BUNDLED_CANDLES:
        return [load_candles(bundled(BUNDLED_CANDLES[symbol]), symbol=symbol)]
    raise DataMissing(f"no candles for {symbol} in {data.root} (nor bundled with albra); download them with "
                      f"`{download_hint(symbol)}` or give a file with --data {symbol}=FILE")


def markets_for(data: DataDir) -> tuple[dict | None, str]:
    """The markets to simulate and where they come from: the bundled snapshot with the filters of the data
    directory's downloaded exchangeInfo when there is one (brackets stay the snapshot's), else (None, "")."""
    import gzip
    import json

    from albra.sim.markets import DEFAULT_MARKETS, with_filters_from
    from albra.timefmt import fmt_kst

    p = data.exchange_info
    if not p.is_file():
        return None, ""
    try:
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError) as e:
        raise DataMissing(f"{p} cannot be read ({e}); download it again with `albra data download SYMBOL`") from None
    when = fmt_kst(int(info.get("serverTime") or info.get("albraFetchedMs") or 0))
    return with_filters_from(info), (f"filters of the downloaded exchangeInfo {p} ({when}), maintenance brackets of "
                                     f"the bundled snapshot ({DEFAULT_MARKETS.info.date})")


@dataclass(frozen=True)
class Funding:
    """Funding rates of one symbol and where they came from (what the summary states)."""

    symbol: str
    rows: list[tuple[int, float]]
    source: str

    def as_dict(self) -> dict:
        first = self.rows[0][0] if self.rows else None
        last = self.rows[-1][0] if self.rows else None
        return {"source": self.source, "rows": len(self.rows), "first": first, "last": last}


def funding_file(symbol: str, data: DataDir, explicit: Path | None = None) -> tuple[Path, str] | None:
    """Where ``symbol``'s funding history is read from and how to describe it: an explicit file, the data
    directory's, the bundled one, or None."""
    if explicit is not None:
        return explicit, f"file {explicit}"
    p = data.path(symbol, "funding")
    if p.is_file():
        return p, f"downloaded {p}"
    if symbol in BUNDLED_FUNDING and bundled(BUNDLED_FUNDING[symbol]).is_file():
        return bundled(BUNDLED_FUNDING[symbol]), f"bundled {BUNDLED_FUNDING[symbol]}"
    return None


def find_funding(symbol: str, data: DataDir, explicit: Path | None = None) -> Funding | None:
    """The funding history of ``symbol``: an explicit file, the data directory's, the bundled one, or None."""
    where = funding_file(symbol, data, explicit)
    return None if where is None else Funding(symbol, load_funding(where[0]), where[1])


def funding_gap(rows: list[tuple[int, float]], start_ms: int, end_ms: int) -> str | None:
    """Why ``rows`` do not cover the funding times in [start_ms, end_ms) (every 8 h slot needs a rate), or None.
    Funding times are not to the millisecond on Binance; a slot counts as covered by a row within a minute of it."""
    first_slot = -(-start_ms // FUNDING_SLOT_MS) * FUNDING_SLOT_MS
    if first_slot >= end_ms:
        return None
    have = {round(ts / FUNDING_SLOT_MS) for ts, _ in rows}
    missing = [t for t in range(first_slot, end_ms, FUNDING_SLOT_MS) if round(t / FUNDING_SLOT_MS) not in have]
    if not missing:
        return None
    span = f"{fmt_kst(missing[0])}" + (f" … {fmt_kst(missing[-1])}" if len(missing) > 1 else "")
    return f"{len(missing)} of {(end_ms - first_slot - 1) // FUNDING_SLOT_MS + 1} funding times have no rate ({span})"
