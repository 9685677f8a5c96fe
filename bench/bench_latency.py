"""Decision latency: a closed candle's decision handed to the executor → the entry order on the wire (the moment
the gateway hands the request to ccxt), p50/p99, real ccxt against ``albra sim serve`` on loopback, no added
latency. Includes the entry gate (balance read, flags, risk state) and the write-ahead intent commit.

Run: ``.venv/bin/python bench/bench_latency.py [N]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from albra.config import RiskLimits
from albra.engine.risk_limits import risk_limits
from albra.engine.executor import Executor, StrategySlot
from albra.exchange.ccxt_gateway import CcxtGateway
from albra.exchange.client import make_ccxt_client
from albra.model import Direction, PositionMode
from albra.sim.testing import DEFAULT_ACCOUNTS, sim_process
from albra.store import Store
from strategies.base import Enter, Exit

C0 = 1_704_067_200_000


class Stamped(CcxtGateway):
    sent_at: float = 0.0

    async def place_order(self, req):
        if req.client_id.startswith("al-en-"):
            self.sent_at = time.perf_counter()
        return await super().place_order(req)


async def main(url: str, n: int) -> None:
    key, secret = DEFAULT_ACCOUNTS["main"]
    gw = Stamped("main", make_ccxt_client("local", key, secret, base_url=url, test_mode=True))
    filters = await gw.load_markets()
    await gw.set_position_mode(PositionMode.ONE_WAY)
    price = float((await gw.fetch_candles("BTCUSDT", "15m", limit=2))[-1].close)
    with tempfile.TemporaryDirectory() as d:
        store = Store.open(Path(d) / "albra.db")
        ex = Executor(store, gw, "main", PositionMode.ONE_WAY, filters, [StrategySlot("TFPE", 5.0, 10)],
                      lambda _s, _lim=risk_limits(RiskLimits()): _lim, gw.exchange_now, alerts=False)
        lat = []
        for i in range(n + 1):  # the first round also syncs ccxt's clock: reported separately
            ts = C0 + i * 900_000
            t0 = time.perf_counter()
            legs = await ex.handle("TFPE", "BTCUSDT", ts, [Enter(Direction.LONG, price * 0.9, None, "bench")], price)
            lat.append((gw.sent_at - t0) * 1000)
            if i == 0:
                print(f"first decision (ccxt time sync, cold caches): {lat.pop():.2f} ms")
            await ex.handle("TFPE", "BTCUSDT", ts + 1, [Exit(legs[0], 1.0, "bench", "bench")], price)
        store.close()
    await gw.close()
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(f"decision → entry order on the wire, n={n}: p50 {statistics.median(lat):.2f} ms, p90 {p(0.9):.2f} ms, "
          f"p99 {p(0.99):.2f} ms, max {lat[-1]:.2f} ms")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with sim_process("--start", "2024-03-01", "--speed", "0") as (url, _proc):
        asyncio.run(main(url, n))
