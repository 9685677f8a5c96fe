"""``albra --help`` must stay fast: it never imports ccxt, pandas, ta or telegram (nor pydantic-settings)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("ccxt", "pandas", "ta", "telegram", "pydantic_settings", "numpy", "aiohttp")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys\nsys.argv=['albra','--help']\nfrom albra.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    loaded = _modules_after(code)
    assert not (loaded & set(HEAVY)), sorted(loaded & set(HEAVY))


def test_every_subcommand_help_is_light() -> None:
    """Each registered command's --help is equally light (commands import heavy code inside functions)."""
    from albra.cli import app
    import typer.main

    group = typer.main.get_group(app)
    names = sorted(group.commands)
    assert {"pause", "resume", "status"} <= set(names)
    for name in names:
        cmd = group.commands[name]
        sub = [name] + ([sorted(cmd.commands)[0]] if hasattr(cmd, "commands") and cmd.commands else [])
        code = ("import sys\nsys.argv=['albra'," + ",".join(repr(a) for a in sub) + ",'--help']\n"
                "from albra.cli import app\ntry:\n    app()\nexcept SystemExit:\n    pass")
        loaded = _modules_after(code)
        assert not (loaded & set(HEAVY)), (name, sorted(loaded & set(HEAVY)))


def test_version() -> None:
    from albra import __version__

    out = subprocess.run([sys.executable, "-m", "albra", "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"albra {__version__}"
