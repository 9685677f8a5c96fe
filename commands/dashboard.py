"""``albra dashboard``: the read-only web dashboard over the store (see :mod:`albra.dashboard`).

Loopback by default: reach it through an SSH tunnel (``ssh -L 8787:127.0.0.1:8787 server``). Any other
``--host`` needs ``ALBRA_DASHBOARD_TOKEN`` in the environment or ``.env``, else the command refuses to start.
aiohttp and the dashboard package are imported inside the command so ``albra --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from albra.commands._common import ConfigOption, fail, load

if TYPE_CHECKING:
    from albra.dashboard.server import Running


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard_cmd(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but loopback needs "
                                 "ALBRA_DASHBOARD_TOKEN set."),
        port: int = typer.Option(8787, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
        exchange: bool = typer.Option(False, "--exchange", help="Also allow live balance/position reads from the "
                                      "exchange (open the page with ?exchange=1); loads the live/demo API keys."),
        config: Optional[str] = ConfigOption,
    ) -> None:
        """Serve the read-only dashboard: equity, drawdown, legs with their stops, runners, flags, incidents."""
        import asyncio

        from albra.dashboard.policy import DashboardRefused, check_bind, load_token
        from albra.store import Store, StoreError

        settings = load(config)
        try:
            token = load_token(settings.env_file)
            check_bind(host, token)
        except DashboardRefused as e:
            fail(str(e))
        try:
            # create=False / migrate=False: the dashboard never creates or upgrades the store, it only reads it.
            store = Store.open(settings.db_path, create=False, migrate=False)
        except StoreError as e:
            fail(str(e))
        try:
            asyncio.run(_serve(settings, store, host, port, token, exchange))
        except OSError as e:
            fail(f"cannot listen on {host}:{port}: {e.strerror or e}")
        finally:
            store.close()


async def _serve(settings, store, host: str, port: int, token, exchange: bool) -> None:  # type: ignore[no-untyped-def]
    """Run until SIGINT or SIGTERM (systemd stop), then close the listener cleanly."""
    import asyncio
    import signal

    from rich.console import Console

    from albra.dashboard.server import start

    running: Running = await start(settings, store, host, port, token, exchange=exchange)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    c = Console(highlight=False)
    c.print(f"albra dashboard (read-only) on [bold]{running.url}[/] — store {store.path}")
    if token is not None:
        c.print(f"every request needs the token: open {running.url}login?token=<value of {token.env_var}> once "
                f"(sets a cookie), or send 'Authorization: Bearer …'")
    else:
        c.print("loopback only: from your machine use ssh -L "
                f"{running.port}:127.0.0.1:{running.port} <server>, then open http://127.0.0.1:{running.port}/")
    if exchange:
        c.print(f"exchange view on: open {running.url}?exchange=1 for live balances and positions (read-only calls)")
    c.print("Ctrl-C stops it.")
    try:
        await stop.wait()
    finally:
        await running.stop()
