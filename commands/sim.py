"""``albra sim serve``: a local Binance USDⓈ-M server over the simulated exchange (tests and drills).

Only typer and stdlib here; aiohttp and albra.sim are imported inside the command.
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

sim_app = typer.Typer(help="The simulated futures exchange and the local Binance server.", no_args_is_help=True)


@sim_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (the admin API answers loopback only)."),
    port: int = typer.Option(0, help="TCP port (0: pick a free one; the URL is printed first)."),
    data: List[str] = typer.Option([], "--data", help="SYMBOL=FILE candle file, or SYMBOL alone for the data directory's (repeatable; default: bundled BTCUSDT and ETHUSDT 15m). SYMBOL: any market `albra sim markets` lists."),
    funding: List[str] = typer.Option([], "--funding", help="SYMBOL=FILE funding-rate file (repeatable; default: the data directory's, else bundled)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="ALBRA_DATA_DIR", help="Data directory of `albra data download` (default: state/data)."),
    start: Optional[str] = typer.Option(None, help="Exchange clock start (YYYY-MM-DD, ISO or epoch ms; default: first candle)."),
    speed: float = typer.Option(1.0, help="Clock speed x real time; 0 = stands still unless the admin API advances it."),
    balance: str = typer.Option("10000", help="Starting USDT wallet balance of every account."),
    account: List[str] = typer.Option([], "--account", help="NAME:KEY:SECRET (repeatable; one per master/sub-account)."),
    hedge: List[str] = typer.Option([], "--hedge", help="Account NAME that starts in hedge (dual-side) mode (repeatable)."),
    weight_limit: int = typer.Option(2400, help="Request weight per IP per minute before 429 (0: no limit)."),
    ideal: bool = typer.Option(False, "--ideal", help="Instantly consistent and windowless (benchmarks only; the default behaves like Binance)."),
    realism: Optional[str] = typer.Option(None, "--realism", help='JSON overriding realism windows, e.g. \'{"lookup_ms": 500}\' (see albra/sim/README.md).'),
) -> None:
    """Serve the Binance USDⓈ-M REST API on HOST:PORT until SIGTERM/SIGINT; prints the URL first."""
    import asyncio
    import signal
    import sys
    from decimal import Decimal, InvalidOperation

    from albra.candles import CandleFileError
    from albra.sim.build import SimConfig, build_server, parse_account, parse_symbol_file
    from albra.timefmt import parse_time

    try:
        if not 0 <= port <= 65535:
            raise ValueError(f"--port must be 0..65535 (0: pick a free one), got {port}")
        try:
            start_balance = Decimal(balance)
        except InvalidOperation:
            raise ValueError(f"--balance must be a number of USDT, got {balance!r}") from None
        if not start_balance.is_finite() or start_balance < 0:
            raise ValueError(f"--balance must be a finite number >= 0, got {balance!r}")
        if ideal and realism:
            raise ValueError("--ideal and --realism exclude each other")
        real = _realism(ideal, realism)
        cfg = SimConfig(
            accounts=[parse_account(a) for a in account],
            data=dict(parse_symbol_file(d, "--data", data_dir) for d in data),
            funding=dict(parse_symbol_file(f, "--funding", data_dir, "funding") for f in funding),
            start_ms=parse_time(start) if start else None, speed=speed, balance=start_balance,
            hedge=set(hedge), weight_limit=weight_limit, realism=real, data_dir=_data_root(data_dir),
        )
        if not 0 <= speed < float("inf"):  # nan and inf too
            raise ValueError(f"--speed must be a finite number >= 0, got {speed}")
        srv = build_server(cfg)
    except (ValueError, InvalidOperation, CandleFileError) as e:
        typer.echo(f"albra sim serve: {e}", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        from aiohttp import web

        runner = web.AppRunner(srv.app(), shutdown_timeout=0.5, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:  # port in use, address not available: say so, exit 2 (not a traceback)
            await runner.cleanup()
            typer.echo(f"albra sim serve: cannot listen on {host}:{port}: {e.strerror or e}", err=True)
            raise typer.Exit(2)
        h, p = runner.addresses[0][:2]
        shown = f"[{h}]" if ":" in h else h
        sys.stdout.write(f"http://{shown}:{p}\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def _realism(ideal: bool, spec: Optional[str]):
    """The server's Realism from --ideal / --realism JSON (ValueError naming the problem)."""
    import json

    from albra.sim.realism import Realism

    if ideal:
        return Realism.ideal()
    if not spec:
        return Realism()
    try:
        obj = json.loads(spec)
    except json.JSONDecodeError as e:
        raise ValueError(f"--realism must be a JSON object: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError("--realism must be a JSON object of field → value")
    return Realism.from_spec(obj)


@sim_app.command("markets")
def markets(
    search: Optional[str] = typer.Option(None, "--search", "-s", help="Only symbols or base assets containing this text."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per market instead of a table."),
) -> None:
    """List the Binance USDⓈ-M perpetuals the simulator can trade, with their real filters and brackets.

    They come from the exchangeInfo snapshot shipped with albra (date and source in albra/sim/data/PROVENANCE.md).
    Any of them can be served, paper-traded and backtested given its candles (--data SYMBOL=FILE)."""
    import json
    import sys

    from albra.sim.markets import DEFAULT_MARKETS

    found = DEFAULT_MARKETS.search(search or "")
    info = DEFAULT_MARKETS.info
    if json_out:
        for m in found:
            f = m.filters
            sys.stdout.write(json.dumps({
                "symbol": m.symbol, "base": m.base, "quote": m.quote, "tickSize": str(f.tick_size),
                "stepSize": str(f.step_size), "minQty": str(f.min_qty), "maxQty": str(f.max_qty),
                "marketMaxQty": str(f.market_max_qty), "minNotional": str(f.min_notional),
                "pricePrecision": m.price_precision, "quantityPrecision": m.qty_precision,
                "maxLeverage": m.max_leverage, "brackets": len(m.brackets), "onboardDate": m.onboard_ms}) + "\n")
        if not found:
            raise typer.Exit(1)
        return
    if not found:
        typer.echo(f"no listed market matches {search!r} ({info.symbols} markets in the snapshot of {info.date}; "
                   f"`albra sim markets` lists them all)", err=True)
        raise typer.Exit(1)
    cols = ("symbol", "tick", "step", "min qty", "max qty", "market max", "min notional", "max lev", "tiers")
    rows = [(m.symbol, str(m.filters.tick_size), str(m.filters.step_size), str(m.filters.min_qty),
             str(m.filters.max_qty), str(m.filters.market_max_qty), str(m.filters.min_notional), str(m.max_leverage),
             str(len(m.brackets))) for m in found]
    width = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(cols, width)).rstrip() + "\n")
    for r in rows:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(r, width)).rstrip() + "\n")
    sys.stdout.write(f"{len(found)} of {info.symbols} markets · Binance USDⓈ-M exchangeInfo of {info.date} "
                     f"(albra/sim/data/PROVENANCE.md)\n")


def _data_root(data_dir: Optional[str]) -> Any:
    from albra.marketdata.layout import DataDir

    return DataDir.resolve(data_dir).root


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
