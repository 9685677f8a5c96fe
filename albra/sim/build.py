"""Assemble a local Binance server from candle/funding files, accounts and a clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from decimal import Decimal
from pathlib import Path

from albra.candles import CandleSeries, bundled, load_candles, load_funding
from albra.model import PositionMode
from albra.sim.exchange import Fees, SimExchange
from albra.sim.feed import MarketReplay, SimClock
from albra.sim.realism import Realism, wall_ms
from albra.sim.markets import DEFAULT_MARKETS, check_listed
from albra.sim.server import ApiKey, SimServer

DEFAULT_DATA = {"BTCUSDT": "BTCUSDT-15m.csv.gz", "ETHUSDT": "ETHUSDT-15m.csv.gz"}
DEFAULT_FUNDING = {"BTCUSDT": "BTCUSDT-funding.csv", "ETHUSDT": "ETHUSDT-funding.csv"}


@dataclass
class SimConfig:
    """What ``albra sim serve`` is told. ``data``/``funding`` map symbol → file (bundled by default)."""

    accounts: list[ApiKey]
    data: dict[str, Path] = field(default_factory=dict)
    funding: dict[str, Path] = field(default_factory=dict)
    start_ms: int | None = None
    speed: float = 1.0
    balance: Decimal = Decimal("10000")
    hedge: set[str] = field(default_factory=set)
    fees: Fees = field(default_factory=Fees)
    weight_limit: int = 2400
    #: how far the server departs from instant consistency (realistic by default; Realism.ideal() for benches)
    realism: Realism = field(default_factory=Realism)
    #: where ``albra data download`` put its files: funding for symbols without an explicit --funding
    data_dir: Path | None = None


def parse_account(spec: str) -> ApiKey:
    """``NAME:KEY:SECRET`` → ApiKey (ValueError naming the problem)."""
    parts = spec.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"--account must be NAME:KEY:SECRET, got {spec!r}")
    return ApiKey(parts[0], parts[1], parts[2])


def parse_symbol_file(spec: str, what: str, data_dir: str | Path | None = None,
                      kind: str = "klines") -> tuple[str, Path]:
    """``SYMBOL=FILE`` → (symbol, path); a bare ``SYMBOL`` is looked up in the data directory (``albra data
    download``: the finest candle interval, or the funding file)."""
    sym, sep, path = spec.partition("=")
    if sep and sym and path:
        return check_listed(sym, what), Path(path)
    if sep or not sym:
        raise ValueError(f"{what} must be SYMBOL=FILE or SYMBOL (from the data directory), got {spec!r}")
    from albra.marketdata.layout import DataDir

    sym = check_listed(sym, what)
    data = DataDir.resolve(data_dir)
    if kind == "funding":
        p = data.path(sym, "funding")
        if p.is_file():
            return sym, p
    else:
        have = data.candle_intervals(sym)
        if have:
            return sym, data.path(sym, "klines", have[0])
    raise ValueError(f"{what} {sym}: nothing for it in {data.root}; download it with "
                     f"`albra data download {sym} --start YYYY-MM-DD` or give {sym}=FILE")


@lru_cache(maxsize=16)
def _load(path: str, symbol: str, mtime: float) -> CandleSeries:
    """Candle files are immutable inputs; tests start many servers, so parse each file once."""
    return load_candles(path, symbol=symbol)


def _series(path: Path, symbol: str) -> CandleSeries:
    p = Path(path)
    return _load(str(p.resolve()), symbol, p.stat().st_mtime if p.exists() else 0.0)


def _downloaded_funding(cfg: SimConfig, symbol: str) -> Path | None:
    if cfg.data_dir is None:
        return None
    from albra.marketdata.layout import DataDir

    p = DataDir.resolve(cfg.data_dir).path(symbol, "funding")
    return p if p.is_file() else None


def build_server(cfg: SimConfig) -> SimServer:
    """Load the data, create the exchange, accounts, replay and clock; nothing is listening yet."""
    if not cfg.accounts:
        raise ValueError("at least one account (NAME:KEY:SECRET) is needed")
    names = [k.account for k in cfg.accounts]
    keys = [k.key for k in cfg.accounts]
    if len(set(keys)) != len(keys):
        raise ValueError("two accounts share an API key")
    unknown = cfg.hedge - set(names)
    if unknown:
        raise ValueError(f"--hedge names unknown accounts: {sorted(unknown)}")
    data = cfg.data or {s: bundled(f) for s, f in DEFAULT_DATA.items()}
    series = {s: _series(p, s) for s, p in data.items()}
    funding = {}
    for s in series:
        path = cfg.funding.get(s) or _downloaded_funding(cfg, s) or (
            bundled(DEFAULT_FUNDING[s]) if s in DEFAULT_FUNDING else None)
        if path is not None and Path(path).is_file():
            funding[s] = load_funding(path)
        elif s in cfg.funding:
            raise ValueError(f"funding file for {s} not found: {path}")
    markets = {s: DEFAULT_MARKETS[s] for s in series}
    start = cfg.start_ms if cfg.start_ms is not None else max(int(v.ts[0]) for v in series.values())
    ex = SimExchange(markets, cfg.fees, funding, now_ms=start, realism=cfg.realism, latency_clock=wall_ms)
    for name in dict.fromkeys(names):
        ex.add_account(name, cfg.balance, PositionMode.HEDGE if name in cfg.hedge else PositionMode.ONE_WAY)
    clock = SimClock(start, cfg.speed)
    replay = MarketReplay(ex, series)
    replay.sync(start)
    return SimServer(ex, replay, clock, cfg.accounts, cfg.weight_limit)
