"""Round trips per second through the gateway: the real ccxt client against ``albra sim serve`` (a separate
process on loopback, as in drills) and the paper gateway over the in-process core.

Run: ``.venv/bin/python bench/bench_gateway.py [N]``. Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal

from albra.exchange.ccxt_gateway import CcxtGateway
from albra.exchange.client import make_ccxt_client
from albra.exchange.client_ids import make_client_id
from albra.exchange.paper import PaperGateway
from albra.exchange.resilience import Resilience, WeightLimiter
from albra.exchange.types import OrderRequest
from albra.model import OrderType, Side
from albra.sim.exchange import SimExchange
from albra.sim.realism import Realism
from albra.sim.testing import DEFAULT_ACCOUNTS, SimAdmin, sim_process

BTC = "BTCUSDT"


def limit(i: int) -> OrderRequest:
    cid = make_client_id("bench", "B", BTC, 1_704_153_600_000 + i * 900_000, "entry")
    return OrderRequest(cid, BTC, Side.BUY, OrderType.LIMIT, Decimal("0.01"), price=Decimal("30000"))


async def rate(label: str, n: int, fn) -> None:
    t0 = time.perf_counter()
    for i in range(n):
        await fn(i)
    dt = time.perf_counter() - t0
    print(f"{label:<58} {n / dt:>9.0f} /s   ({dt / n * 1000:.2f} ms each, n={n})")


async def through_ccxt(url: str, n: int) -> None:
    """Raw speed: the server's weight limit is switched off and the gateway's limiter given a huge limit, so
    only ccxt + HTTP + the server are measured."""
    key, secret = DEFAULT_ACCOUNTS["main"]
    admin = SimAdmin(url)
    await admin.weights(limit=0, reset=True)
    await admin.close()
    res = Resilience("main", limiter=WeightLimiter(limit=10**9))
    gw = CcxtGateway("main", make_ccxt_client("local", key, secret, base_url=url, test_mode=True), resilience=res)
    await gw.load_markets()
    await gw.fetch_balance()

    async def create_cancel(i: int) -> None:
        r = limit(i)
        await gw.place_order(r)
        await gw.cancel_order(BTC, r.client_id, False)

    async def algo_create_cancel(i: int) -> None:
        cid = make_client_id("bench", "B", BTC, 1_804_153_600_000 + i * 900_000, "stop_loss")
        await gw.place_order(OrderRequest(cid, BTC, Side.SELL, OrderType.STOP_MARKET, Decimal("0.01"),
                                          trigger_price=Decimal("30000")))
        await gw.cancel_order(BTC, cid, True)  # cancel + read-back: two requests

    await rate("ccxt → sim serve: create+cancel limit (2 requests)", n, create_cancel)
    await rate("ccxt → sim serve: create+cancel algo stop (3 requests)", n, algo_create_cancel)
    await rate("ccxt → sim serve: fetch_positions", n, lambda i: gw.fetch_positions())
    await rate("ccxt → sim serve: fetch_balance", n, lambda i: gw.fetch_balance())
    await rate("ccxt → sim serve: fetch_candles 1h x 100 (+ time)", n, lambda i: gw.fetch_candles(BTC, "1h", limit=100))
    await gw.close()
    prod = CcxtGateway("main", make_ccxt_client("local", key, secret, base_url=url),  # ccxt throttler on
                       resilience=Resilience("main", limiter=WeightLimiter(limit=10**9)))
    await prod.load_markets()
    await rate("ccxt → sim serve: fetch_positions, production throttler on", max(5, n // 50),
               lambda i: prod.fetch_positions())
    prod.client.timeout_on_exit = 0
    await prod.close()


async def weight_pacing(url: str, seconds: float) -> None:
    """With Binance's limit (2400/min) on the server and the default limiter (slow down above 70 %): hammer
    fetch_positions (weight 5) and show that the limiter keeps the IP under the limit (no 429)."""
    key, secret = DEFAULT_ACCOUNTS["main"]
    admin = SimAdmin(url)
    await admin.weights(limit=2400, reset=True)
    gw = CcxtGateway("main", make_ccxt_client("local", key, secret, base_url=url, test_mode=True))
    await gw.load_markets()
    t0 = time.perf_counter()
    calls, peak = 0, 0
    while time.perf_counter() - t0 < seconds:
        await gw.fetch_positions()
        calls += 1
        peak = max(peak, gw.resilience.limiter.used)
    refused = [r for r in await admin.requests() if r["status"] in (429, 418)]
    await admin.close()
    await gw.close()
    print(f"weight pacing: {calls} fetch_positions in {seconds:.0f} s, peak used weight {peak}/2400, "
          f"429/418 answers: {len(refused)}")


async def through_paper(n: int) -> None:
    core = SimExchange(now_ms=1_704_153_600_000, realism=Realism.ideal())  # raw throughput (said in the output)
    core.add_account("paper", Decimal("100000"))
    core.open_at(BTC, 1_704_153_600_000, 44000.0)
    gw = PaperGateway("paper", core)
    await gw.load_markets()

    async def create_cancel(i: int) -> None:
        r = limit(i)
        await gw.place_order(r)
        await gw.cancel_order(BTC, r.client_id, False)

    await rate("paper (in-process core): create+cancel limit", n, create_cancel)
    await rate("paper (in-process core): fetch_positions", n, lambda i: gw.fetch_positions())


async def main(n: int) -> None:
    # raw call throughput: the server runs --ideal (no order-rate limit, no visibility windows); said in the output
    print("server: albra sim serve --ideal (instantly consistent, no order-rate limit)")
    with sim_process("--speed", "0", "--start", "2024-01-02", "--ideal") as (url, _proc):
        await through_ccxt(url, n)
        await weight_pacing(url, 8.0)
    await through_paper(n * 10)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
