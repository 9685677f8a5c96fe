"""Benchmark of `albra data download` against the local Binance server with Binance's weight limits on (2400/min per
IP, klines weighed by limit, fundingRate 500/5 min) and its realistic defaults: candles/s for six months of BTCUSDT
15m candles (17,472 rows, 18 pages of 1000), first with ccxt's client-side throttler off (the server's limits and
albra's weight limiter only), then on (as against Binance). Then the time a year of 15m candles + funding takes at
Binance's documented limits, computed from the weights and the measured round trip. Prints figures; not a test.

    .venv/bin/python bench/bench_download.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from albra.marketdata.download import PAGE, Downloader, Job, make_public_client
from albra.marketdata.layout import DataDir
from albra.sim.markets import DEFAULT_MARKETS
from albra.sim.testing import run_sim_server
from albra.timefmt import parse_time

START, END = parse_time("2024-01-01"), parse_time("2024-07-01")
WEIGHT_LIMIT = 2400  # per IP per minute (General Info: REQUEST_WEIGHT 2400/MINUTE)


async def one(url: str, throttled: bool) -> tuple[float, int, dict]:
    with tempfile.TemporaryDirectory() as d:
        client = make_public_client(url, test_mode=not throttled)
        try:
            dl = Downloader(DataDir(Path(d)), client)
            out = await dl.run(Job(["BTCUSDT"], ["15m"], [], True, START, END), DEFAULT_MARKETS)
        finally:
            await client.close()
        return out.seconds, out.fetched["BTCUSDT-15m.csv.gz"], out.requests


async def main() -> None:
    async with run_sim_server(start="2024-07-02", weight_limit=WEIGHT_LIMIT) as h:
        for throttled in (False, True):
            secs, rows, reqs = await one(h.url, throttled)
            per_req = secs / sum(reqs.values())
            print(f"ccxt throttler {'on ' if throttled else 'off'}: {rows:,} candles + funding in {secs:.2f} s = "
                  f"{rows / secs:,.0f} candles/s ({reqs}; {per_req * 1000:.0f} ms per request)")
    year = 365 * 96
    pages = -(-year // PAGE)
    weight = pages * 5 + 2 * 0 + 1 + 1  # klines at limit 1000 weigh 5; fundingRate: no weight (own limit); time; info
    print(f"a year of 15m candles: {year:,} candles = {pages} pages × weight 5 + 2 funding pages + time + "
          f"exchangeInfo = {weight} weight of {WEIGHT_LIMIT}/min → the weight limit alone allows it in "
          f"{weight / WEIGHT_LIMIT * 60:.1f} s; with mark-price candles too {2 * pages * 5 + 2} weight")
    # against Binance ccxt's throttler spaces requests by its own cost model: rateLimit 50 ms × cost (klines at
    # limit 1000 cost 5) — 250 ms per page, the bound long before the weight limit; plus the network round trip
    spacing = 5 * 0.050
    for rtt in (0.05, 0.2):
        t = pages * (spacing + rtt) + 4 * rtt
        print(f"  at ccxt's spacing ({spacing * 1000:.0f} ms/page) and a {rtt * 1000:.0f} ms round trip: {t:.0f} s "
              f"for a year of 15m candles + funding")


if __name__ == "__main__":
    asyncio.run(main())
