"""``albra backtest``: replay candles through the live pipeline (strategy → risk → execution → ledger) against the
simulated exchange, and print a summary per strategy and in total.

Candles come from ``--data SYMBOL=FILE`` or, without it, from the data directory by symbol (``albra data download``;
the bundled BTCUSDT/ETHUSDT files otherwise). Funding is never invented: the run refuses a window its funding
history does not cover unless ``--funding-rate`` is given, and the summary states the funding and filters used.
Usable without a config file. ``--config`` only supplies risk limits (``[risk]``).
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from albra.commands import EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, check_output_path, emit_json, fail


def _parse_data(specs: list[str]) -> dict[str, list[Any]]:
    from albra.candles import CandleFileError, load_candles

    out: dict[str, list[Any]] = {}
    for spec in specs:
        if "=" not in spec:
            fail(f"--data {spec!r}: expected SYMBOL=FILE, e.g. BTCUSDT=data/BTCUSDT-15m.csv.gz")
        sym, path = spec.split("=", 1)
        sym = sym.strip().upper()
        try:
            out.setdefault(sym, []).append(load_candles(path.strip(), symbol=sym))
        except CandleFileError as e:
            fail(str(e))
    return out


def _day(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def _timeframes(name: str) -> list[str]:
    from albra.strategies import registry

    return list(registry.get(name).timeframes)


def _render(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    t = Table(title="Backtest", title_justify="left")
    for col in ("strategy", "trades", "win rate", "PnL (USDT)", "fees", "funding"):
        t.add_column(col, justify="right" if col != "strategy" else "left")
    for name, b in summary["strategies"].items():
        t.add_row(name, str(b["trades"]), f"{b['win_rate'] * 100:.1f}%", b["pnl"], b["fees"], b["funding"])
    tot = summary["total"]
    t.add_row("[bold]total[/]", str(tot["trades"]), f"{tot['win_rate'] * 100:.1f}%", tot["pnl"], tot["fees"],
              tot["funding"])
    c.print(t)

    def num(v: Any, fmt: str = ".2f") -> str:
        return "—" if v is None else format(v, fmt)

    c.print(f"equity {tot['start_balance']} → {tot['end_equity']} USDT · CAGR {num(tot['cagr_pct'])}% · "
            f"max drawdown {tot['max_drawdown_pct']}% (longest under water {tot['max_drawdown_duration_days']} days) · "
            f"exposure {tot['exposure_pct']}% of the time")
    c.print(f"profit factor {num(tot['profit_factor'])} · expectancy {num(tot['expectancy'])} USDT/trade · "
            f"Sharpe {num(tot['sharpe'])} · Sortino {num(tot['sortino'])} · Calmar {num(tot['calmar'])} · "
            f"{tot['candles']} candles · open legs at the end {tot['open_legs_at_end']}")
    c.print("exits: " + ", ".join(f"{k} {v}" for k, v in tot["exit_reasons"].items()))
    months = tot["monthly_returns_pct"]
    if months:
        # no box and one space between columns: a year of months fits an 80-column terminal
        m = Table(title="Monthly returns (%)", title_justify="left", box=None, padding=(0, 1, 0, 0))
        years = sorted({k[:4] for k in months})
        m.add_column("year", no_wrap=True)
        for mm in range(1, 13):
            m.add_column(f"{mm:02d}", justify="right", no_wrap=True)
        for y in years:
            cells = []
            for mm in range(1, 13):
                v = months.get(f"{y}-{mm:02d}")
                cells.append("" if v is None else f"[{'green' if v >= 0 else 'red'}]{v:.1f}[/]")
            m.add_row(y, *cells)
        c.print(m)
    for sym, f in summary.get("funding", {}).items():
        m = summary["markets"][sym]
        c.print(f"{sym}: funding {f['source']} ({f['rows']} rates) · filters {m['filters']} ({m['source']})")


def backtest(
    strategy: List[str] = typer.Option(..., "--strategy", "-s", help="Strategy name (repeat for several)."),
    symbol: List[str] = typer.Option(..., "--symbol", help="Symbol to trade (repeat for several; any market `albra sim markets` lists)."),
    data: List[str] = typer.Option([], "--data", help="SYMBOL=FILE candle file (repeat; several timeframes ok). "
                                   "Default: the data directory's files for the symbol (albra data download)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="ALBRA_DATA_DIR",
                                           help="Data directory (default: state/data)."),
    start: Optional[str] = typer.Option(None, "--start", help="First candle (YYYY-MM-DD, ISO, epoch ms; UTC)."),
    end: Optional[str] = typer.Option(None, "--end", help="End of the window (exclusive)."),
    balance: float = typer.Option(10_000.0, "--balance", help="Starting balance in USDT."),
    leverage: int = typer.Option(10, "--leverage", min=1, max=125, help="Leverage (margin only)."),
    size_pct: float = typer.Option(24.0, "--size-pct", help="Leg notional as % of equity."),
    position_mode: str = typer.Option("hedge", "--position-mode", help="hedge or one_way."),
    funding: Optional[List[str]] = typer.Option(None, "--funding", help="SYMBOL=FILE funding rates (default: the "
                                                "data directory's, else bundled)."),
    funding_rate: Optional[str] = typer.Option(None, "--funding-rate", help="Flat funding rate per 8 h (e.g. 0.0001) "
                                               "for funding times the history does not cover; without it such a "
                                               "window is refused."),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="Strategy parameter KEY=VALUE or STRATEGY.KEY=VALUE (repeat); checked by the strategy's Params."),
    trades_csv: Optional[str] = typer.Option(None, "--trades-csv", help="Write the trades to this CSV file."),
    html_out: Optional[str] = typer.Option(None, "--html", help="Write a self-contained HTML report (equity, drawdown, monthly returns, trades on the price chart)."),
    json_out: bool = JsonOption,
    config: Optional[str] = ConfigOption,
) -> None:
    """Replay candles through the same strategy → risk → execution → ledger path as `albra run`."""
    from decimal import Decimal
    from pathlib import Path

    from albra.candles import CandleFileError
    from albra.engine.backtest import BacktestError, BacktestSetup, StrategySpec, run_backtest
    from albra.model import PositionMode
    from albra.timefmt import parse_time
    from albra.strategies.registry import RegistryError

    from albra.strategy_params import ParamError, parse_params
    from albra.strategies import registry

    try:
        classes = [registry.get(n) for n in strategy]
        overrides = parse_params(list(param or []), classes)
    except (RegistryError, ParamError) as e:
        fail(str(e))
    if html_out:  # checked before the replay, like --trades-csv: never the store, never a directory
        check_output_path(html_out, "--html")
        if not Path(html_out).resolve().parent.is_dir():
            fail(f"--html {html_out}: folder {Path(html_out).resolve().parent} does not exist")
    if not 0 < size_pct <= 100:
        fail(f"--size-pct must be in (0, 100], got {size_pct}")
    if not balance > 0 or balance == float("inf"):  # also refuses nan and inf, which Decimal cannot size from
        fail(f"--balance must be a positive finite number, got {balance}")
    if balance > 1e12:
        fail(f"--balance {balance:g} is more than 1e12 USDT: not a balance this simulator can size from")
    if trades_csv:  # checked before the replay: a directory or the store is an error now, not after the run
        check_output_path(trades_csv, "--trades-csv")
    try:
        mode = PositionMode(position_mode)
    except ValueError:
        fail(f"--position-mode must be hedge or one_way, got {position_mode!r}")
    try:
        start_ms = parse_time(start) if start else None
        end_ms = parse_time(end) if end else None
    except ValueError as e:
        fail(str(e))
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        fail(f"--start ({start}) must be before --end ({end})")
    from albra.marketdata.layout import DataDir
    from albra.marketdata.sources import DataMissing, candle_series, find_funding, funding_gap, markets_for
    from albra.sim.markets import DEFAULT_MARKETS, unknown_symbol_message

    symbols = list(dict.fromkeys(s.strip().upper() for s in symbol))
    for s in symbols:  # the simulated exchange trades the listed Binance markets only, with their real filters
        if s not in DEFAULT_MARKETS:
            fail(unknown_symbol_message(s))
    flat: Decimal | None = None
    if funding_rate is not None:
        try:
            flat = Decimal(funding_rate)
        except ArithmeticError:
            fail(f"--funding-rate must be a number (a rate per 8 h, e.g. 0.0001), got {funding_rate!r}")
        if not flat.is_finite() or abs(flat) > Decimal("0.03"):
            fail(f"--funding-rate must be a finite rate per 8 h within ±0.03, got {funding_rate!r}")
    store = DataDir.resolve(data_dir)
    series = _parse_data(list(data))
    try:
        wanted = sorted({tf for n in strategy for tf in _timeframes(n)})
        for s in symbols:
            if s not in series:
                series[s] = candle_series(s, store, wanted)
    except (DataMissing, CandleFileError) as e:
        fail(str(e))
    except RegistryError as e:
        fail(str(e))
    risk = None
    if config:
        from albra.commands._common import load

        risk = load(config).risk
    explicit = {}
    for spec in funding or []:
        if "=" not in spec:
            fail(f"--funding {spec!r}: expected SYMBOL=FILE")
        k, v = spec.split("=", 1)
        explicit[k.strip().upper()] = Path(v.strip())
    try:
        markets, markets_source = markets_for(store)
    except DataMissing as e:
        fail(str(e))
    fund: dict[str, list] = {}
    sources: dict[str, str] = {}
    try:
        for s in symbols:
            found = find_funding(s, store, explicit.get(s))
            finest = min(series[s], key=lambda x: x.interval_ms)
            lo = max(start_ms if start_ms is not None else 0, int(finest.ts[0])) if len(finest) else 0
            hi = min(end_ms if end_ms is not None else 1 << 62, int(finest.ts[-1]) + finest.interval_ms) \
                if len(finest) else 0
            gap = funding_gap(found.rows if found else [], lo, hi)
            if gap is not None and flat is None:
                where = f"{found.source}: {gap}" if found else f"no funding history for {s}"
                fail(f"{s}: funding is not known for the whole window ({where}). Download it with "
                     f"`albra data download {s} --start {_day(lo)} --end {_day(hi + 86_399_999)}`, or pass "
                     f"--funding-rate RATE to use a flat rate per 8 h on purpose.")
            if found is not None:
                fund[s] = found.rows
                sources[s] = found.source
            else:
                sources[s] = "none"
        setup = BacktestSetup([StrategySpec(c.name, overrides[c.name], size_pct, leverage) for c in classes],
                              {s: series[s] for s in symbols}, start_ms, end_ms, Decimal(str(balance)), mode, fund,
                              risk, funding_rate=flat, funding_sources=sources, markets=markets,
                              markets_source=markets_source)
        if json_out:
            res = run_backtest(setup)
        else:
            from rich.progress import Progress

            with Progress(transient=True) as prog:
                task = prog.add_task("replaying candles", total=None)
                res = run_backtest(setup, lambda n, tot: prog.update(task, completed=n, total=tot))
    except (BacktestError, RegistryError, CandleFileError, ValueError) as e:
        fail(str(e), EXIT_USAGE)
    if trades_csv:
        import csv

        cols = ["strategy", "symbol", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price",
                "pnl", "fees", "funding", "exit_reason", "funding_source", "filters"]
        try:
            with open(trades_csv, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                w.writerows(res.trades)
        except OSError as e:
            fail(f"cannot write --trades-csv {trades_csv}: {e}")
    if html_out:
        from albra.backtest_report import write_html

        prices = {}
        for s in symbols:
            base = min(series[s], key=lambda x: x.interval_ms).slice(start_ms, end_ms)
            prices[s] = ([int(t) + base.interval_ms for t in base.ts.tolist()], base.close.tolist())
        try:
            write_html(html_out, res.summary, res.trades, res.curve, prices,
                       title=f"albra backtest: {', '.join(c.name for c in classes)} on {', '.join(symbols)}")
        except OSError as e:
            fail(f"cannot write --html {html_out}: {e}")
    if json_out:
        emit_json({"summary": res.summary, "trades": res.trades})
    else:
        _render(res.summary)


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
