"""Listed markets: exchange filters, leverage brackets and contract metadata of the simulation.

Every market comes from a real Binance USDⓈ-M ``GET /fapi/v1/exchangeInfo`` response shipped with the package
(``data/exchange_info_usdm.json.gz``; source, commit and date in ``data/PROVENANCE.md``): every PERPETUAL contract
that was TRADING with quote asset USDT or USDC, its PRICE_FILTER / LOT_SIZE / MARKET_LOT_SIZE / MIN_NOTIONAL
filters and precisions as Binance sent them, and its maintenance-margin brackets as ``GET
/fapi/v1/leverageBracket`` sent them (freqtrade's recorded copy, four days younger than the exchangeInfo). A
symbol the snapshot does not list is an error (-1121 in the exchange, exit 2 in commands, with a pointer to
``albra sim markets``), never a guess. The snapshot is read on first use and cached: importing this module
costs nothing.
"""

from __future__ import annotations

import difflib
import gzip
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from albra.model import MarketFilters
from albra.sim.errors import SimError, bad_symbol

SNAPSHOT = Path(__file__).with_name("data") / "exchange_info_usdm.json.gz"
LIST_HINT = "List them with `albra sim markets` (e.g. `albra sim markets --search SOL`)."


@dataclass(frozen=True)
class Bracket:
    """One maintenance-margin tier: notional in [floor, cap) uses ``mmr`` and ``cum`` (maintenance amount)."""

    n: int
    floor: Decimal
    cap: Decimal
    mmr: Decimal
    max_leverage: int
    cum: Decimal


@dataclass(frozen=True)
class MarketSpec:
    """Everything the exchange needs to know about one perpetual contract."""

    filters: MarketFilters
    base: str
    quote: str
    price_precision: int
    qty_precision: int
    brackets: tuple[Bracket, ...]
    margin_asset: str = ""
    onboard_ms: int = 0
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    @property
    def symbol(self) -> str:
        return self.filters.symbol

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].max_leverage

    def bracket_for(self, notional: Decimal) -> Bracket:
        """The tier whose notional range holds ``notional`` (the last tier above every cap)."""
        for b in self.brackets:
            if notional < b.cap:
                return b
        return self.brackets[-1]


@dataclass(frozen=True)
class SnapshotInfo:
    """Where the listed markets come from (``data/PROVENANCE.md`` has the full story)."""

    server_time_ms: int
    symbols: int
    source: dict[str, str]
    path: Path

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.server_time_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _filter(filters: list[dict], kind: str) -> dict:
    for f in filters:
        if f.get("filterType") == kind:
            return f
    raise ValueError(f"no {kind} filter")


def _spec(row: dict, fields: list[str]) -> MarketSpec:
    fl = row["filters"]
    price, lot, market = _filter(fl, "PRICE_FILTER"), _filter(fl, "LOT_SIZE"), _filter(fl, "MARKET_LOT_SIZE")
    notional = _filter(fl, "MIN_NOTIONAL")
    f = MarketFilters(row["symbol"], Decimal(price["tickSize"]), Decimal(lot["stepSize"]), Decimal(lot["minQty"]),
                      Decimal(lot["maxQty"]), Decimal(notional["notional"]), Decimal(market["maxQty"]))
    brackets = []
    for raw in row["brackets"]:
        b = dict(zip(fields, raw))
        brackets.append(Bracket(int(b["bracket"]), Decimal(b["notionalFloor"]), Decimal(b["notionalCap"]),
                                Decimal(b["maintMarginRatio"]), int(b["initialLeverage"]), Decimal(b["cum"])))
    return MarketSpec(f, row["baseAsset"], row["quoteAsset"], int(row["pricePrecision"]),
                      int(row["quantityPrecision"]), tuple(brackets), row.get("marginAsset", row["quoteAsset"]),
                      int(row.get("onboardDate", 0)), Decimal(price["minPrice"]), Decimal(price["maxPrice"]))


class ListedMarkets(Mapping[str, MarketSpec]):
    """symbol → MarketSpec for every market of the bundled snapshot, loaded on first access and cached."""

    def __init__(self, path: Path = SNAPSHOT) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._specs: dict[str, MarketSpec] | None = None
        self._info: SnapshotInfo | None = None

    def _load(self) -> dict[str, MarketSpec]:
        specs = self._specs
        if specs is not None:
            return specs
        with self._lock:
            if self._specs is None:
                with gzip.open(self._path, "rt", encoding="utf-8") as fh:
                    snap = json.load(fh)
                fields = snap["bracketFields"]
                loaded = {row["symbol"]: _spec(row, fields) for row in snap["symbols"]}
                self._info = SnapshotInfo(int(snap["serverTime"]), len(loaded), dict(snap.get("source", {})),
                                          self._path)
                self._specs = loaded
            return self._specs

    def __getitem__(self, symbol: str) -> MarketSpec:
        return self._load()[symbol]

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<ListedMarkets {len(self)} symbols from {self._path.name}>"

    @property
    def info(self) -> SnapshotInfo:
        self._load()
        assert self._info is not None
        return self._info

    def search(self, text: str = "") -> list[MarketSpec]:
        """Listed markets whose symbol or base asset contains ``text`` (case-insensitive), sorted by symbol."""
        t = text.strip().upper()
        return [s for k, s in sorted(self._load().items()) if not t or t in k or t in s.base.upper()]


def with_filters_from(info: Mapping, base: Mapping[str, MarketSpec] | None = None) -> dict[str, MarketSpec]:
    """The markets of ``base`` (the bundled snapshot) with the filters and precisions of a newer raw
    ``GET /fapi/v1/exchangeInfo`` answer (``albra data download`` keeps one) for every symbol both list; maintenance
    brackets stay the snapshot's (their endpoint is signed, a download cannot read them). A symbol only the newer
    answer lists is left out: without its brackets margin and liquidation cannot be simulated."""
    from dataclasses import replace

    pool = DEFAULT_MARKETS if base is None else base
    out = dict(pool)
    for row in info.get("symbols", []):
        sym = row.get("symbol")
        if sym not in pool or row.get("contractType", "PERPETUAL") != "PERPETUAL":
            continue
        try:
            fl = row["filters"]
            price, lot, market = _filter(fl, "PRICE_FILTER"), _filter(fl, "LOT_SIZE"), _filter(fl, "MARKET_LOT_SIZE")
            f = MarketFilters(sym, Decimal(price["tickSize"]), Decimal(lot["stepSize"]), Decimal(lot["minQty"]),
                              Decimal(lot["maxQty"]), Decimal(_filter(fl, "MIN_NOTIONAL")["notional"]),
                              Decimal(market["maxQty"]))
            out[sym] = replace(pool[sym], filters=f, price_precision=int(row["pricePrecision"]),
                               qty_precision=int(row["quantityPrecision"]), min_price=Decimal(price["minPrice"]),
                               max_price=Decimal(price["maxPrice"]))
        except (KeyError, ValueError, ArithmeticError) as e:
            raise ValueError(f"exchangeInfo row of {sym} is malformed: {e}") from None
    return out


#: Every listed market (the bundled exchangeInfo snapshot). A read-only mapping; build a plain dict of the
#: symbols a simulation needs (``{s: DEFAULT_MARKETS[s] for s in ...}``) to restrict an exchange to them.
DEFAULT_MARKETS: ListedMarkets = ListedMarkets()


def unknown_symbol_message(symbol: str, markets: Mapping[str, MarketSpec] | None = None) -> str:
    """A person's explanation of why ``symbol`` cannot be simulated and how to find the listed ones."""
    pool = DEFAULT_MARKETS if markets is None else markets
    close = difflib.get_close_matches(symbol.upper(), list(pool), n=3, cutoff=0.75)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    if markets is None or markets is DEFAULT_MARKETS:
        info = DEFAULT_MARKETS.info
        where = (f"the bundled Binance USDⓈ-M exchangeInfo snapshot ({info.symbols} perpetuals, "
                 f"{info.date})")
    else:
        where = f"this simulation (it lists {', '.join(sorted(markets)) or 'nothing'})"
    return f"symbol {symbol!r} is not listed in {where}.{hint} {LIST_HINT}"


def check_listed(symbol: str, what: str = "") -> str:
    """``symbol`` upper-cased if the snapshot lists it, else ValueError with :func:`unknown_symbol_message`."""
    sym = symbol.strip().upper()
    if sym not in DEFAULT_MARKETS:
        raise ValueError(f"{what}: {unknown_symbol_message(sym)}" if what else unknown_symbol_message(sym))
    return sym


def market_spec(symbol: str, markets: Mapping[str, MarketSpec] | None = None) -> MarketSpec:
    """The spec of ``symbol`` or a -1121 rejection."""
    pool = DEFAULT_MARKETS if markets is None or not markets else markets
    try:
        return pool[symbol]
    except KeyError:
        if isinstance(symbol, str) and symbol in DEFAULT_MARKETS:
            raise SimError(-1121, f"Invalid symbol. ({symbol!r} is listed on Binance but not loaded into this "
                                  f"simulation; give it candles, e.g. `albra sim serve --data {symbol}=FILE`)") \
                from None
        raise bad_symbol(symbol) from None
