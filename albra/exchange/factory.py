"""Choosing and building an account's gateway from its settings: ccxt (live, demo, or a local ``base_url``)
or paper (the in-process simulator fed by replay files).

Kept thin on purpose: it reads the few fields of ``AccountSettings`` that decide the gateway (``mode``,
``base_url``, ``paper_*``, ``replay*``, ``position_mode``) and leaves everything else to the engine. The heavy
imports (ccxt, the simulator) happen inside, so importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from albra.exchange.resilience import CallSink, EventSink
from albra.exchange.types import Gateway
from albra.timefmt import Clock, parse_time

WEIGHT_FILE = "weight.json"


@dataclass
class PaperMarket:
    """The simulator pieces behind a paper gateway (the engine's backtest/paper loop drives ``replay``/``clock``)."""

    exchange: Any
    replay: Any
    clock: Any
    #: symbol → where its funding comes from (the run's summary states it)
    funding_sources: dict[str, str] = dataclasses.field(default_factory=dict)


#: set to 1/true/yes in tests and benches: ccxt's throttler off and an instant ``close()`` — honoured only for an
#: account whose ``base_url`` is a loopback address (:func:`albra.exchange.client.is_loopback`), so a stray export
#: on a production host cannot switch the throttler off against Binance.
TEST_MODE_ENV = "ALBRA_EXCHANGE_TEST_MODE"

#: the emergency profile's circuit-breaker cool-down: a route failing half the time must not lock the shutdown out
#: for the default 30 s; one second still sheds load between rounds.
EMERGENCY_BREAKER_COOLDOWN_S = 1.0
#: the emergency profile's read retries: the same four attempts as normal reads, backing off 0.1/0.2/0.4 s instead of
#: 0.25/0.5/1 s — the emergency re-reads every round anyway, and each second of back-off is a second longer exposed
EMERGENCY_READ_BACKOFF_S = (0.1, 0.5)


def env_test_mode(base_url: str | None) -> bool:
    """Whether ``ALBRA_EXCHANGE_TEST_MODE`` applies to an account with ``base_url``: set *and* a loopback URL.
    Without a base_url (real Binance or its demo exchange) it never applies, whatever the environment says."""
    from albra.exchange.client import is_loopback

    return os.environ.get(TEST_MODE_ENV, "").strip().lower() in ("1", "true", "yes") and is_loopback(base_url)


def gateway_for(account: str, settings: Any, secrets: Any = None, *, state_dir: str | Path | None = None,
                on_event: EventSink | None = None, timeout_ms: int = 10_000, test_mode: bool | None = None,
                paper_clock: Clock | None = None, emergency: bool = False,
                data_dir: str | Path | None = None, on_call: CallSink | None = None) -> Gateway:
    """The gateway for ``account`` (``settings`` is its ``AccountSettings``; ``secrets`` its ``AccountSecrets``,
    required for live/demo). ``state_dir`` holds the shared request-weight file (``weight.json``) every runner
    on the host reads and writes. ``paper_clock`` overrides the replay clock of a paper account.

    ``test_mode``: None (default) takes it from ``ALBRA_EXCHANGE_TEST_MODE`` (:func:`env_test_mode`, loopback
    only); True is refused for a non-loopback URL by the client factory.

    ``emergency`` (``albra emergency-shutdown``): a circuit breaker with a 1 s cool-down, shorter read back-off
    (:data:`EMERGENCY_READ_BACKOFF_S`), and ccxt's client-side throttler off even against Binance. Why that is safe: ccxt's throttler is a *local model* of the weight
    (charged before each request, serialising every request of the client: 40 weight × 50 ms = 2 s for one
    open-orders read without a symbol), so with it a sub-second shutdown takes ~12 s. It protects nothing albra
    lacks: every request still goes through :class:`~albra.exchange.resilience.WeightLimiter`, which reads the
    exchange's own count (``X-MBX-USED-WEIGHT-1M``, per IP, so it includes the runners and every other process),
    slows down above 70 % of 2400/min, honours 429/418 Retry-After and shares blocks with the runners through
    ``weight.json``. An emergency sends a few dozen requests (2 accounts × 10 positions: ~100 requests,
    ~400 weight) — far from the limit, and the limiter still stops it short of a ban if the IP is already busy.
    """
    mode = str(getattr(settings, "mode", ""))
    if mode == "paper" and getattr(settings, "paper_feed", "replay") == "live":
        from albra.exchange.live_paper import live_paper_gateway

        base_url = getattr(settings, "base_url", None)
        return live_paper_gateway(account, settings, test_mode=env_test_mode(base_url) if test_mode is None
                                  else test_mode)
    if mode == "paper":
        return paper_gateway(account, settings, clock=paper_clock, data_dir=data_dir)
    if mode not in ("live", "demo"):
        raise ValueError(f"account {account}: unknown mode {mode!r} (expected live, demo or paper)")
    if secrets is None:
        raise ValueError(f"account {account} ({mode}) needs its API key and secret")
    from albra.exchange.ccxt_gateway import CcxtGateway
    from albra.exchange.client import make_ccxt_client
    from albra.exchange.resilience import READ_POLICY, CircuitBreaker, Resilience, WeightLimiter

    base_url = getattr(settings, "base_url", None)
    if test_mode is None:
        test_mode = env_test_mode(base_url)
    # a base_url (the local server in drills, a proxy) overrides the live/demo URLs
    client = make_ccxt_client(mode, secrets.api_key.reveal(), secrets.api_secret.reveal(), base_url=base_url,
                              timeout_ms=timeout_ms, test_mode=test_mode)
    weight_file = str(Path(state_dir) / WEIGHT_FILE) if state_dir is not None else None
    if not emergency:
        return CcxtGateway(account, client, on_event=on_event, weight_file=weight_file, on_call=on_call)
    client.enableRateLimit = False  # see the docstring: the weight limiter below still applies
    resilience = Resilience(account, breaker=CircuitBreaker(account, cooldown_s=EMERGENCY_BREAKER_COOLDOWN_S,
                                                            on_event=on_event),
                            limiter=WeightLimiter(shared_path=weight_file),
                            read_policy=dataclasses.replace(READ_POLICY, base_delay_s=EMERGENCY_READ_BACKOFF_S[0],
                                                            max_delay_s=EMERGENCY_READ_BACKOFF_S[1]),
                            attempt_timeout_s=timeout_ms / 1000 + 2.0, on_event=on_event)
    return CcxtGateway(account, client, resilience=resilience, weight_file=weight_file)


def paper_market(account: str, settings: Any, clock: Clock | None = None,
                 data_dir: str | Path | None = None) -> PaperMarket:
    """A simulated exchange with ``account`` in it, its replay (the account's ``replay`` files, or the bundled
    BTCUSDT/ETHUSDT data for the symbols its strategies trade) and a clock at ``replay_start``.

    Funding: the data directory's history for each symbol, else the bundled one; a replay window with a funding time
    that has no rate is refused (ValueError saying how to download it) unless the account sets ``funding_rate``, a
    flat rate used on purpose for those times only."""
    from albra.candles import bundled, load_candles
    from albra.marketdata.layout import DataDir
    from albra.marketdata.sources import find_funding, funding_gap
    from albra.model import PositionMode
    from albra.sim.build import DEFAULT_DATA
    from albra.sim.exchange import SimExchange
    from albra.sim.feed import MarketReplay, SimClock
    from albra.sim.markets import DEFAULT_MARKETS, unknown_symbol_message
    from albra.sim.realism import Realism

    if getattr(settings, "paper_feed", "replay") != "replay":
        raise ValueError(f"account {account}: paper_feed {settings.paper_feed!r} — this factory builds replay-fed "
                         f"paper accounts; a live-fed paper account is driven by the engine's market-data loop")
    files: dict[str, Path] = {s.upper(): Path(p) for s, p in (getattr(settings, "replay", None) or {}).items()}
    if not files:
        wanted = settings.symbols() if hasattr(settings, "symbols") else []
        unlisted = [s for s in wanted if s not in DEFAULT_MARKETS]
        if unlisted:
            raise ValueError(f"account {account}: {unknown_symbol_message(unlisted[0])}")
        missing = [s for s in wanted if s not in DEFAULT_DATA]
        if missing:
            raise ValueError(f"account {account}: no replay file for {', '.join(missing)} and no bundled data; set "
                             f"accounts.{account}.replay.<SYMBOL> = FILE")
        files = {s: bundled(DEFAULT_DATA[s]) for s in (wanted or DEFAULT_DATA)}
    unknown = [s for s in files if s not in DEFAULT_MARKETS]
    if unknown:
        raise ValueError(f"account {account}: {unknown_symbol_message(unknown[0])}")
    series = {s: load_candles(p, symbol=s) for s, p in files.items()}
    start_s = getattr(settings, "replay_start", None)
    start = parse_time(start_s) if start_s else max(int(v.ts[0]) for v in series.values())
    end_s = getattr(settings, "replay_end", None)
    flat = getattr(settings, "funding_rate", None)
    data = DataDir.resolve(data_dir)
    funding: dict[str, list[tuple[int, float]]] = {}
    sources: dict[str, str] = {}
    for s, v in series.items():
        found = find_funding(s, data)
        end = min(parse_time(end_s) if end_s else 1 << 62, int(v.ts[-1]) + v.interval_ms)
        gap = funding_gap(found.rows if found else [], start, end)
        if gap is not None and flat is None:
            where = f"{found.source}: {gap}" if found else f"no funding history for {s} in {data.root} nor bundled"
            raise ValueError(f"funding is not known for the whole replay of {s} ({where}); download it with "
                             f"`albra data download {s} --start YYYY-MM-DD`, or set accounts.{account}.funding_rate "
                             f"to a flat rate per 8 h on purpose")
        if found is not None:
            funding[s] = found.rows
        sources[s] = (found.source if found else "none") + (f"; flat {flat} where it has no rate" if gap else "")
    speed = float(getattr(settings, "replay_speed", 0.0) or 0.0)
    # a clock that runs: the realism windows run on the wall clock, as against the local server. Pulled as fast as
    # the engine consumes, the clock stands still while the engine decides: every rule of the realistic exchange,
    # no timing gaps (they could never elapse there; ADR 0009)
    realism = Realism() if clock is None and speed > 0 else Realism.replay()
    ex = SimExchange({s: DEFAULT_MARKETS[s] for s in series}, funding=funding, now_ms=start, realism=realism,
                     default_funding_rate=Decimal(str(flat)) if flat is not None else None)
    hedge = PositionMode(getattr(settings, "position_mode", PositionMode.ONE_WAY)) is PositionMode.HEDGE
    ex.add_account(account, Decimal(str(getattr(settings, "paper_balance", "10000"))),
                   PositionMode.HEDGE if hedge else PositionMode.ONE_WAY)
    sim_clock = clock or SimClock(start, speed)
    replay = MarketReplay(ex, series)
    replay.sync(start)
    return PaperMarket(ex, replay, sim_clock, sources)


def paper_gateway(account: str, settings: Any, clock: Clock | None = None,
                  data_dir: str | Path | None = None) -> Gateway:
    from albra.exchange.paper import PaperGateway

    m = paper_market(account, settings, clock, data_dir)
    gw = PaperGateway(account, m.exchange, replay=m.replay, clock=m.clock)
    gw.funding_sources = m.funding_sources  # what the run's summary states
    return gw
