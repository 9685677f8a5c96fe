"""Time ``albra emergency-shutdown`` from start to verified flat: 2 accounts × 10 legs (each with its stop on the
exchange), 100 ms latency added to every request of the local Binance server, the real ccxt client, the command
run as a real process. Prints wall time (process start → exit), the command's own per-account figures, and the
number of exchange requests it made (from the server's request log).

Two runs: the production client settings and ALBRA_EXCHANGE_TEST_MODE=1. The emergency gateway turns ccxt's
client-side throttler off in both (the emergency profile of albra/exchange/factory.gateway_for), so they should
agree; the pair guards that.

    .venv/bin/python bench/bench_emergency.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from albra.model import Direction  # noqa: E402
from albra.sim.realism import Realism  # noqa: E402
from albra.sim.testing import run_sim_server  # noqa: E402
from tests.runbook.drill import KEYS, SIM_START, make_drill, seed_book  # noqa: E402

LATENCY_MS = 100


def book() -> list:
    out = []
    for acct in ("main", "sub1"):
        for i in range(10):
            sym = "BTCUSDT" if i % 2 == 0 else "ETHUSDT"
            qty = "0.002" if sym == "BTCUSDT" else "0.05"
            short = acct == "sub1" and i % 4 >= 2  # hedge account: both sides on both symbols
            direction = Direction.SHORT if short else Direction.LONG
            stop = ({"BTCUSDT": "50000", "ETHUSDT": "2500"} if not short else
                    {"BTCUSDT": "75000", "ETHUSDT": "4500"})[sym]
            out.append((acct, f"S{i}", sym, direction, qty, stop))
    return out


async def run(throttle: bool) -> dict:
    # --ideal: seeding the book goes through today's executor, which relies on an instant exchange (issue 13)
    async with run_sim_server(start=SIM_START, speed=0, accounts=dict(KEYS), hedge={"sub1"}, weight_limit=0,
                              realism=Realism.ideal()) as sim:
        d = make_drill(Path(tempfile.mkdtemp()), sim.url)
        if throttle:
            d.env.pop("ALBRA_EXCHANGE_TEST_MODE", None)
        await seed_book(d, await sim.admin.clock(), book())
        accts = await sim.admin.accounts()
        before = {a: (len(v["positions"]), v["open_orders"] + v["open_algos"]) for a, v in accts.items()}
        await sim.admin.fault("*", "*", "latency", delay_ms=LATENCY_MS, count=None)
        n0 = len(await sim.admin.requests())
        t0 = time.monotonic()
        code, out, err = await d.albra("emergency-shutdown", "--yes", "--json", timeout=300)
        wall = time.monotonic() - t0
        await sim.admin.clear_faults()
        reqs = (await sim.admin.requests())[n0:]
        rep = json.loads(out)
        accts = await sim.admin.accounts()
        after = {a: (len(v["positions"]), v["open_orders"] + v["open_algos"]) for a, v in accts.items()}
        return {"throttle": throttle, "exit": code, "wall_s": wall, "reported_s": rep["seconds"],
                "per_account_s": {a["account"]: a["seconds"] for a in rep["accounts"]},
                "rounds": {a["account"]: a["rounds"] for a in rep["accounts"]},
                "close_orders": {a["account"]: len(a["close_orders"]) for a in rep["accounts"]},
                "requests": len(reqs), "by_route": Counter(f"{r['method']} {r['path']}" for r in reqs),
                "before": before, "after": after}


def main() -> None:
    for throttle in (True, False):
        r = asyncio.run(run(throttle))
        print(f"\n== {'production client settings' if throttle else 'ALBRA_EXCHANGE_TEST_MODE=1'}; +{LATENCY_MS} ms per request"
              "; server --ideal")
        print(f"exit {r['exit']}; wall (process start → verified flat, incl. ~1 s interpreter/import) {r['wall_s']:.2f} s; "
              f"command's own total {r['reported_s']:.2f} s")
        print(f"per account (read → cancel/close → verified): {r['per_account_s']}; rounds {r['rounds']}; "
              f"close orders {r['close_orders']}")
        print(f"before (positions, open orders) {r['before']} → after {r['after']}")
        print(f"exchange requests: {r['requests']}")
        for route, n in sorted(r["by_route"].items(), key=lambda x: -x[1]):
            print(f"  {n:4d}  {route}")


if __name__ == "__main__":
    main()
