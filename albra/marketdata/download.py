"""``albra data download``: Binance's public USDⓈ-M market data into the data directory, within its limits.

What is fetched, from which public route (all unsigned, through the ccxt client albra uses everywhere, so the URL is
the one ``tests/exchange/test_demo_urls.py`` pins):

* trade-price candles: ``GET /fapi/v1/klines``; mark-price candles: ``GET /fapi/v1/markPriceKlines`` — pages of
  :data:`PAGE` candles (weight 5 each: Binance weighs by ``limit``, [500, 1000] → 5, > 1000 → 10, so 1000 per page
  gives 200 candles per weight unit against 150 at the maximum 1500, at a third fewer round trips than 499);
* funding rates: ``GET /fapi/v1/fundingRate`` — pages of 1000 (its own limit: 500 requests / 5 min / IP);
* ``GET /fapi/v1/exchangeInfo`` (weight 1) — refreshed when older than a day.

Budget: every request goes through :class:`~albra.exchange.resilience.Resilience` with a
:class:`~albra.exchange.resilience.WeightLimiter` that reads Binance's ``X-MBX-USED-WEIGHT-1M`` and shares the
host's view in ``state/weight.json`` with the runners; a download starts slowing down at half of the 2400/min (the
runners slow at 70 %), so it never eats the budget a live runner needs. 429/418 are honoured (Retry-After).

Incremental and resumable: only what lies outside the file's first..last rows (before its first row when an earlier
``--start`` is asked, after its last row up to the end) is requested; pages land in a ``.part`` file as they arrive
(:mod:`albra.marketdata.layout`), so an interrupted run loses at most the page in flight. Only closed candles are
stored (close time before the server time read at the start of the run). Verified afterwards
(:mod:`albra.marketdata.verify`): gaps and anomalies are reported, never filled.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from albra.marketdata import layout as Lay
from albra.marketdata.verify import Report, verify_candles, verify_funding
from albra.timefmt import timeframe_ms

PAGE = 1000
FUNDING_PAGE = 1000
FUNDING_INTERVAL_MS = 8 * 3_600_000
INFO_MAX_AGE_MS = 24 * 3_600_000
#: a download slows down above this share of the per-IP weight (runners: 0.7), leaving them the rest
DOWNLOAD_WEIGHT_SHARE = 0.5

#: progress callback: (task key, done, total or None)
Progress = Callable[[str, int, int | None], None]


class DownloadError(ValueError):
    """Bad request for a download (unknown symbol or interval, empty window)."""


@dataclass
class Job:
    """What to fetch: symbols × (candle intervals, mark intervals, funding) in [start_ms, end_ms)."""

    symbols: list[str]
    intervals: list[str] = field(default_factory=lambda: ["15m"])
    mark_intervals: list[str] = field(default_factory=list)
    funding: bool = True
    start_ms: int | None = None
    end_ms: int | None = None


@dataclass
class Outcome:
    """What one run did: requests and rows per file, and each file's verification report."""

    requests: dict[str, int] = field(default_factory=dict)  # route → requests sent
    fetched: dict[str, int] = field(default_factory=dict)  # file → new rows stored
    reports: list[Report] = field(default_factory=list)
    info_refreshed: bool = False
    seconds: float = 0.0
    server_time_ms: int = 0

    @property
    def clean(self) -> bool:
        return all(r.clean for r in self.reports)

    @property
    def rows(self) -> int:
        return sum(self.fetched.values())

    def as_dict(self) -> dict:
        return {"requests": self.requests, "fetched": self.fetched, "seconds": round(self.seconds, 3),
                "server_time": self.server_time_ms, "exchange_info_refreshed": self.info_refreshed,
                "files": [r.as_dict() for r in self.reports], "clean": self.clean}


def make_public_client(base_url: str | None, test_mode: bool = False) -> Any:
    """An unsigned ccxt ``binanceusdm`` for Binance's public market data (or ``base_url``'s)."""
    from albra.exchange.client import LIVE, make_ccxt_client

    return make_ccxt_client(LIVE, None, None, base_url=base_url, test_mode=test_mode)


class Downloader:
    """One download run over one data directory and one public client."""

    def __init__(self, data: Lay.DataDir, client: Any, *, weight_file: str | Path | None = None,
                 progress: Progress | None = None, page: int = PAGE,
                 wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        from albra.exchange.resilience import Resilience, RetryPolicy, WeightLimiter

        self.data = data
        self.client = client
        self.progress = progress
        self.page = page
        self.wall_ms = wall_ms
        timeout_s = float(getattr(client, "timeout", 10_000)) / 1000 + 2.0
        # a download may wait for the weight window to roll over (up to a minute) rather than give up
        self.resilience = Resilience("data-download", attempt_timeout_s=timeout_s,
                                     limiter=WeightLimiter(threshold=DOWNLOAD_WEIGHT_SHARE, shared_path=weight_file),
                                     read_policy=RetryPolicy(max_limiter_wait_s=125.0, budget_s=180.0))
        self.outcome = Outcome()

    # -- plumbing ------------------------------------------------------------------------------------------------

    async def _get(self, route: str, method: str, params: dict[str, Any], validate: Callable[[Any], Any]) -> Any:
        fn = getattr(self.client, method)
        self.outcome.requests[route] = self.outcome.requests.get(route, 0) + 1
        return await self.resilience.call(route, lambda: fn(dict(params)), validate=validate,
                                          headers=lambda: getattr(self.client, "last_response_headers", None))

    def _tick(self, key: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(key, done, total)

    # -- the run -------------------------------------------------------------------------------------------------

    async def run(self, job: Job, markets: Any) -> Outcome:
        """Fetch everything ``job`` asks for that is missing; ``markets`` lists the symbols that exist (the
        snapshot, for a clear error before any request)."""
        t0 = time.perf_counter()
        for s in job.symbols:
            if s not in markets:
                from albra.sim.markets import unknown_symbol_message

                raise DownloadError(unknown_symbol_message(s))
        for tf in list(job.intervals) + list(job.mark_intervals):
            timeframe_ms(tf)  # ValueError naming the known intervals
        now = await self._get("time", "fapiPublicGetTime", {}, _server_time)
        self.outcome.server_time_ms = now
        end = now if job.end_ms is None else min(job.end_ms, now)
        start = job.start_ms if job.start_ms is not None else end - 30 * 86_400_000
        if start >= end:
            raise DownloadError(f"nothing to download: the window starts at or after its end ({start} ≥ {end})")
        await self._exchange_info(now)
        for sym in job.symbols:
            for tf in job.intervals:
                await self._candles(sym, "klines", tf, start, end, now)
            for tf in job.mark_intervals:
                await self._candles(sym, "mark", tf, start, end, now)
            if job.funding:
                await self._funding(sym, start, end)
        self.outcome.seconds = time.perf_counter() - t0
        return self.outcome

    async def _exchange_info(self, now: int) -> None:
        path = self.data.exchange_info
        if path.is_file():
            try:
                with gzip.open(path, "rt", encoding="utf-8") as fh:
                    fetched = int(json.load(fh).get("albraFetchedMs", 0))
            except (OSError, ValueError, AttributeError):
                fetched = 0
            if self.wall_ms() - fetched < INFO_MAX_AGE_MS:
                return
        raw = await self._get("exchangeInfo", "fapiPublicGetExchangeInfo", {}, _exchange_info)
        raw["albraFetchedMs"] = self.wall_ms()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
            gz.write(json.dumps(raw).encode("utf-8"))
        tmp.replace(path)
        self.outcome.info_refreshed = True

    async def _candles(self, sym: str, kind: str, tf: str, start: int, end: int, now: int) -> None:
        step = timeframe_ms(tf)
        path = self.data.path(sym, kind, tf)
        rows = Lay.merge_part(path, Lay.CANDLE_HEADER)  # a previous interrupted run's pages first
        lo = start - start % step if start % step == 0 else start - start % step + step
        hi = min(end, now - now % step)  # open times < hi: candles closed by `now` (and by `end`)
        ranges: list[tuple[int, int]] = []
        if rows:
            first, last = int(rows[0][0]), int(rows[-1][0])
            if lo < first:
                ranges.append((lo, first))
            if last + step < hi:
                ranges.append((last + step, hi))
        elif lo < hi:
            ranges.append((lo, hi))
        key = f"{sym} {tf}{' mark' if kind == 'mark' else ''}"
        total = sum((b - a) // step for a, b in ranges)
        got = 0
        route = "markPriceKlines" if kind == "mark" else "klines"
        method = "fapiPublicGetMarkPriceKlines" if kind == "mark" else "fapiPublicGetKlines"
        self._tick(key, 0, total)
        for a, b in ranges:
            cur = a
            while cur < b:
                params = {"symbol": sym, "interval": tf, "startTime": cur, "endTime": b - 1, "limit": self.page}
                page = await self._get(route, method, params, _kline_rows)
                keep = [_candle_row(r, kind) for r in page if cur <= int(r[0]) < b and int(r[6]) < now]
                Lay.append_part(path, keep)
                got += len(keep)
                self._tick(key, got, total)
                if not page:
                    break  # nothing at or after `cur` (before listing, or the data ends): not a gap to chase
                nxt = int(page[-1][0]) + step
                if nxt <= cur:
                    break
                cur = nxt  # a short page is not the end: Binance's own holes shorten pages too
        rows = Lay.merge_part(path, Lay.CANDLE_HEADER)
        self.outcome.fetched[path.name] = self.outcome.fetched.get(path.name, 0) + got
        self.outcome.reports.append(verify_candles(path.name, rows, step, prices_only=kind == "mark"))

    async def _funding(self, sym: str, start: int, end: int) -> None:
        path = self.data.path(sym, "funding")
        rows = Lay.merge_part(path, Lay.FUNDING_HEADER)
        ranges: list[tuple[int, int]] = []
        if rows:
            first, last = int(rows[0][0]), int(rows[-1][0])
            if start < first - FUNDING_INTERVAL_MS:
                ranges.append((start, first - 1))
            if last + FUNDING_INTERVAL_MS <= end:
                ranges.append((last + 1, end))
        else:
            ranges.append((start, end))
        key = f"{sym} funding"
        total = sum(max(0, (b - a) // FUNDING_INTERVAL_MS) for a, b in ranges)
        got = 0
        self._tick(key, 0, total)
        for a, b in ranges:
            cur = a
            while cur <= b:
                params = {"symbol": sym, "startTime": cur, "endTime": b, "limit": FUNDING_PAGE}
                page = await self._get("fundingRate", "fapiPublicGetFundingRate", params, _funding_rows)
                keep = [[str(int(r["fundingTime"])), str(r["fundingRate"])] for r in page
                        if a <= int(r["fundingTime"]) <= b]
                Lay.append_part(path, keep)
                got += len(keep)
                self._tick(key, got, total)
                if len(page) < FUNDING_PAGE:
                    break
                cur = int(page[-1]["fundingTime"]) + 1
        rows = Lay.merge_part(path, Lay.FUNDING_HEADER)
        self.outcome.fetched[path.name] = self.outcome.fetched.get(path.name, 0) + got
        self.outcome.reports.append(verify_funding(path.name, rows))


# -- answers: shape checks (a 200 with junk is an error, never "no data") ------------------------------------------

def _server_time(raw: Any) -> int:
    from albra.exchange.errors import MalformedResponse

    try:
        return int(raw["serverTime"])
    except (TypeError, KeyError, ValueError):
        raise MalformedResponse(f"server time: unexpected answer {repr(raw)[:120]}") from None


def _exchange_info(raw: Any) -> dict:
    from albra.exchange.errors import MalformedResponse

    if not isinstance(raw, dict) or not isinstance(raw.get("symbols"), list):
        raise MalformedResponse(f"exchangeInfo: unexpected answer {repr(raw)[:120]}")
    return raw


def _kline_rows(raw: Any) -> list[list]:
    from albra.exchange.errors import MalformedResponse

    if not isinstance(raw, list):
        raise MalformedResponse(f"klines: expected a list, got {repr(raw)[:120]}")
    prev = None
    for i, r in enumerate(raw):
        if not isinstance(r, list) or len(r) < 7:
            raise MalformedResponse(f"klines: row {i} is not a kline array: {repr(r)[:120]}")
        try:
            ts = int(r[0])
            int(r[6])
            [float(x) for x in r[1:6]]
        except (TypeError, ValueError):
            raise MalformedResponse(f"klines: row {i} has a non-numeric field: {repr(r)[:120]}") from None
        if prev is not None and ts <= prev:
            raise MalformedResponse(f"klines: open times not increasing at row {i}")
        prev = ts
    return raw


def _funding_rows(raw: Any) -> list[dict]:
    from albra.exchange.errors import MalformedResponse

    if not isinstance(raw, list):
        raise MalformedResponse(f"fundingRate: expected a list, got {repr(raw)[:120]}")
    for i, r in enumerate(raw):
        try:
            int(r["fundingTime"])
            float(r["fundingRate"])
        except (TypeError, KeyError, ValueError):
            raise MalformedResponse(f"fundingRate: row {i} is malformed: {repr(r)[:120]}") from None
    return raw


def _candle_row(r: list, kind: str) -> list[str]:
    """The stored row: open time and the strings Binance sent (mark candles carry no volume: 0)."""
    return [str(int(r[0])), str(r[1]), str(r[2]), str(r[3]), str(r[4]), "0" if kind == "mark" else str(r[5])]
