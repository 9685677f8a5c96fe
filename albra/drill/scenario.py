"""Where on the bundled candles the drill starts its exchange clock, so that the operator's strategies trade soon.

Why a backtest picks the moment: a drill should rehearse an incident with real legs open — opened by the runners
themselves, with their stops on the exchange — and it should take minutes, not the days a strategy may wait for its
setup. Each account's strategies are backtested (same parameters, sizes, leverages and position mode) over a window of
the bundled candles; the clock starts ``lead`` candles before the first entries, so the runners are up and
evaluating when those candles close.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from albra.timefmt import parse_time, timeframe_ms

if TYPE_CHECKING:
    from albra.config import Settings

WINDOW = ("2024-03-01", "2024-04-01")


class ScenarioError(RuntimeError):
    """The operator's strategies do not trade anywhere in the window: the drill cannot stage a real incident."""


@dataclass(frozen=True)
class Start:
    start_ms: int
    entries: list[tuple[int, str, str]]   # (entry ms, account, strategy), first few
    step_ms: int                          # the shortest strategy timeframe


def find_start(settings: "Settings", lead_candles: int = 2, window: tuple[str, str] = WINDOW) -> Start:
    from albra.candles import bundled, load_candles, load_funding
    from albra.engine.backtest import BacktestSetup, StrategySpec, run_backtest
    from albra.sim.build import DEFAULT_DATA, DEFAULT_FUNDING

    lo, hi = parse_time(window[0]), parse_time(window[1])
    series = {s: load_candles(bundled(f)) for s, f in DEFAULT_DATA.items()}
    entries: list[tuple[int, str, str]] = []
    step = min((timeframe_ms(st.timeframe) for a in settings.accounts.values() for st in a.strategies if st.enabled),
               default=900_000)
    for name, acct in sorted(settings.accounts.items()):
        specs = [StrategySpec(st.name, st.params, st.size_pct, st.leverage) for st in acct.strategies if st.enabled]
        symbols = sorted({s for st in acct.strategies if st.enabled for s in st.symbols})
        if not specs:
            continue
        # one backtest per account: its strategies share equity and risk, as they do in its runner
        res = run_backtest(BacktestSetup(specs, {s: [series[s]] for s in symbols if s in series}, start_ms=lo,
                                         end_ms=hi, balance=Decimal("10000"),
                                         position_mode=acct.position_mode,
                                         funding={s: load_funding(bundled(DEFAULT_FUNDING[s]))
                                                  for s in symbols if s in DEFAULT_FUNDING}))
        entries += [(int(t["entry_time"]), name, t["strategy"]) for t in res.trades]
    if not entries:
        raise ScenarioError(f"none of the configured strategies enters between {window[0]} and {window[1]} on the "
                            "bundled candles: the drill needs open legs to rehearse on")
    entries.sort()
    first = entries[0][0]
    return Start(first - first % step - lead_candles * step, entries[:5], step)
