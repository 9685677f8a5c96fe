"""The order lifecycle's windows on a real runner against the realistic local server, +100 ms on every request
(issue 13's goals: naked window p99 < 300 ms; fill → ledger p99 < 250 ms with the stream).

    .venv/bin/python bench/bench_order_events.py [ROUNDS]   # default 30 (stream); 3 with the stream down

Prints p50/p99 of: entry's request → its stop's request at the exchange (naked window), a protective order firing
→ its leg closed in the store (with the stream, and with the stream down: REST polling every 60 s), and a
take-profit firing → its sibling stop cancelled on the exchange."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albra.sim.oco_probe import pct, run_probe  # noqa: E402

LATENCY_MS = 100


def line(name: str, xs: list[float]) -> str:
    return f"{name:<44} n={len(xs):>3}  p50 {pct(xs, 50):>8.1f} ms  p99 {pct(xs, 99):>8.1f} ms  max {max(xs):>8.1f} ms"


async def main(rounds: int) -> None:
    logging.disable(logging.WARNING)
    print(f"albra sim serve (realistic defaults) in-process, +{LATENCY_MS} ms per request, real ccxt, live runner")
    tp = await run_probe(rounds, latency_ms=LATENCY_MS, stream=True, fire="take_profit")
    sl = await run_probe(rounds, latency_ms=LATENCY_MS, stream=True, fire="stop_loss")
    print(line("naked window (entry → stop at the exchange)", tp.naked_ms + sl.naked_ms))
    print(line("stop fill → ledger, stream", sl.fill_to_ledger_ms))
    print(line("take-profit fill → ledger, stream", tp.fill_to_ledger_ms))
    print(line("take-profit fill → sibling stop cancelled", tp.sibling_cancel_ms))
    down = await run_probe(3, latency_ms=LATENCY_MS, stream=False, fire="stop_loss", timeout_s=120)
    print(line("stop fill → ledger, stream down (REST poll 5 s)", down.fill_to_ledger_ms))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
