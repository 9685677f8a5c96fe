"""The drill's report: a Rich table for the terminal and a Markdown file kept in the drill directory.

Both read only :meth:`albra.drill.run.DrillResult.as_dict`, so they say the same thing as ``--json``.
"""

from __future__ import annotations

from typing import Any


def _verdict(d: dict[str, Any]) -> str:
    if d["ok"]:
        return "PASSED: every step did what it claims and every phase met its target"
    return "FAILED: " + "; ".join(d["failed"])


def markdown(d: dict[str, Any]) -> str:
    out = [f"# albra fire drill — {d['started']}", "",
           f"**{_verdict(d)}**", "",
           f"- profile: {d['profile']}; exchange clock started at {d['exchange_start']} (bundled candles)",
           f"- accounts: {', '.join(d['accounts'])}"
           + (f"; left out: {'; '.join(d['left_out'])}" if d["left_out"] else ""),
           f"- drill directory: {d['drill_dir']} (its own store; the operator's store was not opened)",
           f"- incident: {d['incident_id'] or '-'}"
           + (f"; its report: {d['incident_report']}" if d["incident_report"] else ""), "",
           "## Staged incident", ""]
    out += [f"- {s}" for s in d["staged"]] or ["- (not staged: the drill stopped before)"]
    out += ["", "## Setup", "", "| step | ok | seconds | detail |", "|---|---|---|---|"]
    out += [f"| {s['step']} | {'✓' if s['ok'] else '✗'} | {s['seconds']:.1f} | {_cell(s['detail'])} |"
            for s in d["setup"]]
    out += ["", "## Runbook", "", "| step | phase | command | ok | seconds | detail |", "|---|---|---|---|---|---|"]
    for s in d["steps"]:
        mark = "✓" if s["ok"] else ("✗" if s["ran"] else "–")
        out.append(f"| {s['step']} | {s['phase']} | `{s['command']}` | {mark} | "
                   f"{s['seconds']:.1f} | {_cell(s['detail'])} |")
    out += ["", "## Targets", "", "| phase | runbook | seconds | target | met |", "|---|---|---|---|---|"]
    out += [f"| {p['phase']} | {p['runbook']} | {p['seconds']:.1f} | {p['target_s']:.0f} | "
            f"{'✓' if p['met'] else '✗'} |" for p in d["phases"]]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    t = Table(title=f"albra drill ({d['profile']}) — exchange clock from {d['exchange_start']}", title_justify="left")
    for col in ("step", "phase", "", "s", "detail"):
        t.add_column(col, overflow="fold")
    for s in d["setup"] + d["steps"]:
        mark = "[green]✓[/]" if s["ok"] else ("[red]✗[/]" if s["ran"] else "–")
        t.add_row(s["step"], s["phase"], mark, f"{s['seconds']:.1f}", s["detail"])
    c.print(t)
    p = Table(title="runbook targets", title_justify="left")
    for col in ("phase", "runbook", "s", "target", "met"):
        p.add_column(col)
    for ph in d["phases"]:
        p.add_row(ph["phase"], ph["runbook"], f"{ph['seconds']:.1f}", f"{ph['target_s']:.0f}",
                  "[green]✓[/]" if ph["met"] else "[red]✗[/]")
    c.print(p)
    colour = "green" if d["ok"] else "bold red"
    c.print(f"[{colour}]{_verdict(d)}[/]")
    if d["report"]:
        c.print(f"drill report: {d['report']}")
