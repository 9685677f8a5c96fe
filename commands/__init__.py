"""Operator commands, one Typer module each. Commands are thin: parse, call the albra library, render.

Exit codes shared by every command: 0 ok, 1 findings (a mismatch, a blocked restart), 2 usage or
configuration error, 3 exchange unreachable.

Registration is explicit and ordered here so ``albra --help`` lists commands in runbook order.
Each module must import only typer/rich and stdlib at module level.
"""

from __future__ import annotations

import importlib

import typer

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

# Each module exposes ``register(app)``, which adds its command(s) or sub-app to the root app.
_MODULES: list[str] = [
    # the runbook, in the order an operator reaches for it
    "run",
    "control",
    "killswitch",
    "status",
    "audit",
    "reconcile",
    "emergency",
    "restart",
    "incident",
    "session_log",
    "drill",
    "report",
    "upgrade",
    # the rest of the toolkit
    "backtest",
    "optimize",
    "data",
    "bot",
    "dashboard",
    "config_cmd",
    "service",
    "sim",
]


def register_all(app: typer.Typer) -> None:
    """Attach every command module listed in ``_MODULES`` to the root app."""
    for name in _MODULES:
        mod = importlib.import_module(f"albra.commands.{name}")
        mod.register(app)
