"""Configuration problems as data: where (file or env var), which key, what is wrong.

Why a list and not the first exception: an operator fixing a config on a server wants every problem
in one run, each on its own line in the form ``<source>: <key path>: <what is wrong>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from albra.redact import redact


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when it is below it (shorter error lines)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


@dataclass(frozen=True)
class ConfigProblem:
    """One problem. ``source`` is a file path (optionally with line/column) or ``env NAME``;
    ``path`` is the dotted key path (``accounts.master.strategies[0].leverage``), empty for the file
    as a whole; ``severity`` is ``error`` (exit 2) or ``warning`` (reported, not fatal)."""

    source: str
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        head = f"{self.source}: {self.path}: " if self.path else f"{self.source}: "
        prefix = "warning: " if self.severity == "warning" else ""
        return redact(f"{head}{prefix}{self.message}")

    def as_dict(self) -> dict[str, str]:
        return {k: redact(v) for k, v in asdict(self).items()}


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = [p for p in problems if p.severity == "error"] or problems
        super().__init__("\n".join(str(p) for p in self.problems))
