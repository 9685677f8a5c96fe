"""Benchmark of the simulated exchange: core fills/s, candles/s, and ccxt round trips/s against the
local server. Prints figures; not a test.

    .venv/bin/python bench/bench_sim.py
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from albra.candles import bundled, load_candles
from albra.sim.exchange import SimExchange

T0 = 1_704_067_200_000


def bench_core() -> None:
    s = load_candles(bundled("BTCUSDT-15m.csv.gz"))
    rows = list(zip(s.ts.tolist(), s.open.tolist(), s.high.tolist(), s.low.tolist(), s.close.tolist()))
    ex = SimExchange(now_ms=T0)
    ex.add_account("a", Decimal("1000000000"))
    ex.open_at("BTCUSDT", rows[0][0], rows[0][1])
    n = 20_000
    q = Decimal("0.01")
    t = time.perf_counter()
    for i in range(n):
        ex.place_order("a", "BTCUSDT", "BUY" if i % 2 == 0 else "SELL", "MARKET", q)
    dt = time.perf_counter() - t
    print(f"core market fills:            {n / dt:>10,.0f} fills/s   ({dt / n * 1e6:.1f} µs each)")

    idle = SimExchange(now_ms=T0)
    idle.add_account("a", Decimal(10000))
    t = time.perf_counter()
    for ts, o, h, l, c in rows:
        idle.on_candle("BTCUSDT", ts, o, h, l, c)
    dt = time.perf_counter() - t
    print(f"candles, flat (no orders):    {len(rows) / dt:>10,.0f} candles/s ({dt / len(rows) * 1e6:.2f} µs each)")

    busy = SimExchange(now_ms=T0)
    busy.add_account("a", Decimal(1_000_000))
    busy.open_at("BTCUSDT", rows[0][0], rows[0][1])
    busy.place_order("a", "BTCUSDT", "BUY", "MARKET", Decimal("0.01"))
    busy.place_algo("a", "BTCUSDT", "SELL", "STOP_MARKET", Decimal("1000"), close_position=True)
    t = time.perf_counter()
    for ts, o, h, l, c in rows[1:]:
        busy.on_candle("BTCUSDT", ts, o, h, l, c)
    dt = time.perf_counter() - t
    print(f"candles, position + stop:     {len(rows) / dt:>10,.0f} candles/s ({dt / len(rows) * 1e6:.1f} µs each)")


async def bench_server() -> None:
    from albra.sim.testing import ccxt_client, run_sim_server

    sym = "BTC/USDT:USDT"
    from albra.sim.realism import Realism

    print("server: --ideal (raw throughput, no order-rate limit)")
    async with run_sim_server(start="2024-02-01", speed=0, weight_limit=0, realism=Realism.ideal()) as sim:
        ex = ccxt_client(sim.url, *sim.accounts["main"])
        try:
            await ex.load_markets()
            for name, n, call in [
                ("fetch_positions", 500, lambda i: ex.fetch_positions([sym])),
                ("fetch_ohlcv 1h x100", 300, lambda i: ex.fetch_ohlcv(sym, "1h", limit=100)),
                ("create limit + cancel", 300, None),
            ]:
                t = time.perf_counter()
                for i in range(n):
                    if call is None:
                        o = await ex.create_order(sym, "limit", "buy", 0.01, 30000, {"clientOrderId": f"b{i}"})
                        await ex.cancel_order(o["id"], sym)
                    else:
                        await call(i)
                dt = time.perf_counter() - t
                trips = n * (2 if call is None else 1)
                print(f"ccxt {name:<24} {trips / dt:>10,.0f} round trips/s ({dt / trips * 1e3:.2f} ms each)")
        finally:
            await ex.close()


if __name__ == "__main__":
    bench_core()
    asyncio.run(bench_server())
