"""``albra config check``: validate the configuration and show the effective settings, secrets masked.

Exit 0 when everything is valid, 2 on any error (one line per problem: source, key path, what is
wrong). Secrets show only as their env var name and ``set``/``missing`` — never a character of the
value. pydantic-settings and albra.config are imported inside the command so ``albra --help`` stays
fast.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from albra.commands import EXIT_OK, EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, emit_json

config_app = typer.Typer(
    name="config",
    help="Configuration: validate it and show what albra will use.",
    no_args_is_help=True,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    """Attach ``albra config …`` to the root app."""
    app.add_typer(config_app, name="config")


def _secret_cell(s: dict[str, Any]) -> str:
    if s["status"] == "set":
        return f"{s['env']} [green]set[/] ({s.get('from', 'environment')})"
    alias = f" (or {', '.join(s['aliases'])})" if s.get("aliases") else ""
    return f"{s['env']}{alias} [red]missing[/]"


def _render(view: dict[str, Any], warnings: list[str], notes: list[str]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    from albra.redact import redact

    c = Console(highlight=False)
    src = view["source"]
    root = Tree(f"[bold]albra config[/] — {escape(str(src['config_file']))}")
    s = root.add("source")
    s.add(f"project root: {escape(src['project_root'])}")
    s.add(f".env: {escape(str(src['env_file']))} ({'present' if src['env_file_exists'] else 'absent'})")
    if src["env_overrides"]:
        s.add("env overrides: " + escape(", ".join(src["env_overrides"])))
    p = root.add("paths")
    for k, v in view["paths"].items():
        p.add(f"{k}: {escape(v)}")
    tg = view["telegram"]
    t = root.add(f"telegram ({'enabled' if tg['enabled'] else 'disabled'})")
    t.add("token: " + _secret_cell(tg["token"]))
    t.add(f"chat_ids: {tg['chat_ids'] or 'none'}")
    t.add(f"admin_user_ids: {tg['admin_user_ids'] or 'none'}; readonly_user_ids: {tg['readonly_user_ids'] or 'none'}")
    al = tg["alerts"]
    t.add(f"alerts: immediate {', '.join(al['immediate'])}; digest {', '.join(al['digest']) or 'none'} "
          f"every {al['digest_interval_s']} s")
    r = view["risk"]
    rk = root.add("risk (defaults)")
    rk.add(f"daily_loss_pct {r['daily_loss_pct']}, max_open_legs {r['max_open_legs']}, "
           f"max_leg_notional_pct {r['max_leg_notional_pct']}")
    levels = ", ".join(f"{lv['drawdown_pct']}%→×{lv['size_multiplier']}" for lv in r["mdd_levels"])
    rk.add(f"mdd levels {levels}; halt at {r['mdd_halt_pct']}% (flatten: {r['mdd_flatten_on_halt']})")
    co = r["correlation"]
    rk.add(f"correlation: ≤{co['max_same_direction_legs']} same-direction legs per group "
           + escape(str(co["groups"])))
    k = r["kelly"]
    rk.add(f"kelly: {'on' if k['enabled'] else 'off'}, fraction {k['fraction']}, after {k['min_trades']} trades, "
           f"clamp {k['min_pct']}–{k['max_pct']}%")
    accs = root.add("accounts")
    for name, a in view["accounts"].items():
        head = f"[bold]{escape(name)}[/] {a['mode']} {a['position_mode']}/{a['margin_mode']}"
        head += f" → {escape(a['base_url'] or a['endpoint'])}"  # the base_url in full (redacted below)
        node = accs.add(head)
        if "api_key" in a:
            node.add("api key: " + _secret_cell(a["api_key"]))
            node.add("api secret: " + _secret_cell(a["api_secret"]))
        if a["mode"] == "paper":
            node.add(f"paper balance {a['paper_balance']} USDT, feed {a['paper_feed']}, speed {a['replay_speed']}")
            for sym, path in a["replay"].items():
                node.add(f"replay {sym}: {escape(path)}")
        if a["risk_overrides"]:
            node.add("risk overrides: " + escape(str(a["risk_overrides"])))
        for st in a["strategies"]:
            eff = st["effective_risk"]
            line = (f"strategy [bold]{escape(st['name'])}[/] {', '.join(st['symbols'])} {st['timeframe']} "
                    f"{st['leverage']}x size {st['size_pct']:g}% (daily loss {eff['daily_loss_pct']:g}%, "
                    f"max legs {eff['max_open_legs']})")
            if st["params"]:
                line += " params " + escape(str(st["params"]))
            if not st["enabled"]:
                line += " [yellow]disabled[/]"
            node.add(line)
        if not a["strategies"]:
            node.add("[yellow]no strategies[/]")
    with c.capture() as cap:
        c.print(root)
    # Belt and braces: the view holds no secret values, and the rendered text is redacted once more.
    typer.echo(redact(cap.get()), nl=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for w in warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    for n in notes:
        err.print(f"note: {escape(n)}")
    c.print("[green]config OK[/]")


@config_app.command("check")
def check(
    config: Optional[str] = ConfigOption,
    account: Optional[str] = typer.Option(
        None, "--account", "-a",
        help="Require only this account's secrets (others' missing keys become warnings).",
    ),
    json_out: bool = JsonOption,
) -> None:
    """Validate the config file, environment overrides and secrets; print the effective config.

    Exit 0 if valid, 2 with one line per problem (file or env var, key, what is wrong) otherwise.
    Without --account every live/demo account's key and secret (and the Telegram token, if
    Telegram is enabled) must be set.
    """
    from albra.config import check_config
    from albra.config.view import effective_config
    from albra.redact import redact

    result = check_config(config, account=account)
    errors = [str(p) for p in result.errors]
    warnings = [str(p).replace(": warning: ", ": ", 1) for p in result.warnings]
    view = effective_config(result.settings) if result.settings is not None and not errors else None
    if json_out:
        emit_json(
            {
                "ok": not errors,
                "errors": [p.as_dict() for p in result.errors],
                "warnings": [p.as_dict() for p in result.warnings],
                "notes": result.notes,
                "config": view,
            }
        )
        raise typer.Exit(EXIT_USAGE if errors else EXIT_OK)
    if errors:
        for line in errors:
            typer.echo(redact(line), err=True)
        for w in warnings:
            typer.echo(redact(f"warning: {w}"), err=True)
        typer.echo(f"config check failed: {len(errors)} error(s)", err=True)
        raise typer.Exit(EXIT_USAGE)
    assert view is not None
    _render(view, warnings, result.notes)
