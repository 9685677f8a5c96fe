"""Helpers every command shares: the --config option, loading settings, opening the store, exit on error.

Imports of pydantic-settings and the store happen inside the functions so module import stays cheap.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from albra.commands import EXIT_USAGE

if TYPE_CHECKING:
    from pathlib import Path

    from albra.config import Settings
    from albra.store import Store

ConfigOption = typer.Option(
    None, "--config", "-c", envvar="ALBRA_CONFIG",
    help="Config file (TOML). Default: $ALBRA_CONFIG, else config/albra.toml.",
    show_envvar=True,
)
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error for a person (stderr) and exit with ``code``."""
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {_redact(message)}", markup=True,
                                                soft_wrap=True)
    raise typer.Exit(code)


def _redact(text: str) -> str:
    try:
        from albra.redact import redact
    except ImportError:
        return text
    return redact(text)


def load(config: str | None) -> "Settings":
    """Settings from the config file and environment, or exit 2 with every problem listed."""
    from albra.config import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as e:
        fail(str(e))
    if settings._example:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(
            f"[yellow]note:[/] no config/albra.toml here (and no --config or ALBRA_CONFIG): using the example "
            f"configuration shipped with albra ({settings.config_path}); its paper accounts run, its live and demo "
            f"accounts are refused. Copy it to config/albra.toml to make your own.", soft_wrap=True)
    return settings


def open_store(settings: "Settings", create: bool = True) -> "Store":
    """The shared store under the configured state dir, or exit 2 saying why it cannot be used."""
    from albra.store import Store, StoreError

    state_dir = settings.paths.state_dir
    if state_dir.exists() and not state_dir.is_dir():
        fail(f"paths.state_dir {state_dir} is not a directory (it is an existing file); point paths.state_dir "
             f"at a directory")
    try:
        return Store.open(state_dir / "albra.db", create=create)
    except StoreError as e:
        fail(str(e) + disk_full_note(state_dir))
    except OSError as e:
        fail(f"cannot open the store under {state_dir}: {e}{disk_full_note(state_dir)}")


def disk_full_note(state_dir: "Path") -> str:
    """A hint when the file system holding the store has no free space.

    SQLite reports a full disk while opening as a generic "disk I/O error", which the store turns into
    "store unreadable … restore a backup": wrong advice for an intact file on a full disk.
    """
    import os

    probe = state_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return ""
    if st.f_bavail * st.f_frsize >= 64 * 1024:
        return ""
    return (f"\nnote: the file system holding {state_dir} is full ({st.f_bavail * st.f_frsize} bytes free): "
            f"the store file may well be intact — free space and retry before restoring or moving anything.")


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_output_path(path: "str | Path", what: str) -> "Path":
    """An output file a command may write, or exit 2 naming why not: a directory, or an SQLite database (the live
    store above all — ``--output state/albra.db`` must never replace the ledger) is refused before any work."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        fail(f"{what} {p} is a directory; give a file name (e.g. {p / 'out.csv'})")
    name = p.name
    if name.endswith(("-wal", "-shm", "-journal")) or name == "albra.db":
        fail(f"{what} {p} looks like the albra store (or its journal files); refusing to overwrite it")
    try:
        with p.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return p
    except OSError as e:
        fail(f"{what} {p} cannot be read to check it: {e}")
    if head == SQLITE_MAGIC:
        fail(f"{what} {p} is an SQLite database (the albra store?); refusing to overwrite it — pick another file")
    return p


def checked_reason(reason: str) -> str:
    """A ``--reason`` as it will be stored (control characters removed), or exit 2 when it is too long."""
    from albra.store.flags import clean_reason

    try:
        return clean_reason(reason)
    except ValueError as e:
        fail(str(e))


def cli_actor() -> str:
    """Who did it, for the journal: ``cli:<login user>`` (``$SUDO_USER`` when run through sudo)."""
    import getpass
    import os

    try:
        user = os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


def emit_json(obj: Any) -> None:
    """JSON for scripts: one document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str, sort_keys=False) + "\n")
