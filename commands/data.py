"""``albra data download`` / ``albra data list``: Binance's public USDⓈ-M history into the data directory, which
``backtest``, paper replays and ``sim serve`` read by symbol and interval.

Only typer and stdlib here; ccxt and the downloader are imported inside the commands.
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from albra.commands import EXIT_FINDINGS, EXIT_UNREACHABLE
from albra.commands._common import JsonOption, emit_json, fail

data_app = typer.Typer(help="Market data: download Binance's public history, list what is on disk.",
                       no_args_is_help=True)

DataDirOption = typer.Option(None, "--data-dir", envvar="ALBRA_DATA_DIR", show_envvar=True,
                             help="Data directory (default: state/data).")


@data_app.command("download")
def download(
    symbols: List[str] = typer.Argument(..., help="Symbols, e.g. BTCUSDT SOLUSDT (any `albra sim markets` lists)."),
    interval: List[str] = typer.Option(["15m"], "--interval", "-i", help="Candle interval (repeatable)."),
    mark: List[str] = typer.Option([], "--mark", help="Also mark-price candles of this interval (repeatable)."),
    no_funding: bool = typer.Option(False, "--no-funding", help="Skip the funding-rate history."),
    start: Optional[str] = typer.Option(None, "--start", help="First candle (YYYY-MM-DD, ISO or epoch ms, UTC). "
                                        "Default: 30 days before the end."),
    end: Optional[str] = typer.Option(None, "--end", help="End of the window, exclusive (default: now)."),
    data_dir: Optional[str] = DataDirOption,
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Another server speaking Binance's public "
                                           "REST API (e.g. `albra sim serve`); default: Binance."),
    json_out: bool = JsonOption,
) -> None:
    """Download candles, mark-price candles, funding rates and exchangeInfo; only what is missing.

    Paged within Binance's limits and weight budget, resumable (pages are kept as they arrive), verified: gaps and
    anomalies are reported (exit 1), never filled."""
    import asyncio

    from albra.exchange.errors import ExchangeError
    from albra.exchange.factory import env_test_mode
    from albra.marketdata.download import DownloadError, Downloader, Job, make_public_client
    from albra.marketdata.layout import DataDir
    from albra.sim.markets import DEFAULT_MARKETS, check_listed
    from albra.timefmt import parse_time, timeframe_ms

    try:
        syms = [check_listed(s) for s in symbols]
        for tf in list(interval) + list(mark):
            timeframe_ms(tf)
        start_ms = parse_time(start) if start else None
        end_ms = parse_time(end) if end else None
        client = make_public_client(base_url, test_mode=env_test_mode(base_url))
    except ValueError as e:
        fail(str(e))
    data = DataDir.resolve(data_dir)
    job = Job(syms, list(dict.fromkeys(interval)), list(dict.fromkeys(mark)), not no_funding, start_ms, end_ms)
    weight_file = data.root.parent / "weight.json" if data.root.name == "data" else None

    async def go(progress: Any) -> Any:
        dl = Downloader(data, client, weight_file=weight_file, progress=progress)
        try:
            return await dl.run(job, DEFAULT_MARKETS)
        finally:
            await client.close()

    try:
        if json_out:
            outcome = asyncio.run(go(None))
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn()) as prog:
                tasks: dict[str, Any] = {}

                def tick(key: str, done: int, total: int | None) -> None:
                    if key not in tasks:
                        tasks[key] = prog.add_task(key, total=total or None)
                    prog.update(tasks[key], completed=done, total=total or None)

                outcome = asyncio.run(go(tick))
    except (DownloadError, ValueError) as e:
        fail(str(e))
    except ExchangeError as e:
        fail(f"cannot download from {base_url or 'Binance'}: {e}", EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        fail("interrupted; the pages received so far are kept — run the same command again to resume", 130)
    if json_out:
        emit_json({"data_dir": str(data.root), **outcome.as_dict()})
    else:
        _render(data.root, outcome)
    if not outcome.clean:
        raise typer.Exit(EXIT_FINDINGS)


def _render(root: Any, outcome: Any) -> None:
    from rich.console import Console

    from albra.timefmt import fmt_kst

    c = Console(highlight=False)
    reqs = ", ".join(f"{k} {v}" for k, v in sorted(outcome.requests.items())) or "none"
    c.print(f"{outcome.rows} new rows in {outcome.seconds:.1f} s into {root} (requests: {reqs})")
    for r in outcome.reports:
        span = f"{fmt_kst(r.first_ms)} → {fmt_kst(r.last_ms)}" if r.rows else "empty"
        flag = "[green]ok[/]" if r.clean else f"[yellow]{len(r.gaps)} gaps, {len(r.anomalies)} anomalies[/]"
        c.print(f"  {r.what}: {r.rows} rows, {span} {flag}")
        for line in r.lines():
            c.print(f"    [yellow]{line}[/]")


@data_app.command("list")
def list_data(data_dir: Optional[str] = DataDirOption, json_out: bool = JsonOption) -> None:
    """What the data directory holds: per symbol its candle intervals and funding."""
    from albra.marketdata.layout import DataDir

    data = DataDir.resolve(data_dir)
    out = {s: {"intervals": data.candle_intervals(s), "funding": data.path(s, "funding").is_file()}
           for s in data.symbols()}
    if json_out:
        emit_json({"data_dir": str(data.root), "symbols": out})
        return
    if not out:
        typer.echo(f"{data.root}: no data yet (albra data download SYMBOL --interval 15m --start YYYY-MM-DD)")
        return
    for s, d in out.items():
        typer.echo(f"{s}: candles {', '.join(d['intervals']) or 'none'}; funding {'yes' if d['funding'] else 'no'}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
