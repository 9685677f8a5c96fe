"""``albra sim serve``: a local Binance USDⓈ-M server over the simulated exchange (tests and drills).

Only typer and stdlib here; aiohttp and albra.sim are imported inside the command.
"""

from __future__ import annotations

from typing import List, Optional

import typer

sim_app = typer.Typer(help="The simulated futures exchange and the local Binance server.", no_args_is_help=True)


@sim_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (the admin API answers loopback only)."),
    port: int = typer.Option(0, help="TCP port (0: pick a free one; the URL is printed first)."),
    data: List[str] = typer.Option([], "--data", help="SYMBOL=FILE candle file (repeatable; default: bundled BTCUSDT and ETHUSDT 15m)."),
    funding: List[str] = typer.Option([], "--funding", help="SYMBOL=FILE funding-rate file (repeatable; default: bundled)."),
    start: Optional[str] = typer.Option(None, help="Exchange clock start (YYYY-MM-DD, ISO or epoch ms; default: first candle)."),
    speed: float = typer.Option(1.0, help="Clock speed x real time; 0 = stands still unless the admin API advances it."),
    balance: str = typer.Option("10000", help="Starting USDT wallet balance of every account."),
    account: List[str] = typer.Option([], "--account", help="NAME:KEY:SECRET (repeatable; one per master/sub-account)."),
    hedge: List[str] = typer.Option([], "--hedge", help="Account NAME that starts in hedge (dual-side) mode (repeatable)."),
    weight_limit: int = typer.Option(2400, help="Request weight per IP per minute before 429 (0: no limit)."),
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
        cfg = SimConfig(
            accounts=[parse_account(a) for a in account],
            data=dict(parse_symbol_file(d, "--data") for d in data),
            funding=dict(parse_symbol_file(f, "--funding") for f in funding),
            start_ms=parse_time(start) if start else None, speed=speed, balance=start_balance,
            hedge=set(hedge), weight_limit=weight_limit,
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


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
