"""Fixtures for configuration tests: a clean environment and a project directory to write configs in."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

# With ``.venv/bin/pytest`` the repository root is not on sys.path but ``tests/`` is (rootdir
# conftest), so ``import strategies`` would become a namespace package spanning ``tests/strategies``
# and ``strategies/`` and the registry would try to import test modules as strategies. The root
# first makes ``strategies`` the real package (``python -m pytest`` already does this).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# Variables a developer's shell might carry that would change what a config test sees.
_PREFIXES = ("ALBRA_", "BINANCE_", "SUB1_", "TELEGRAM_", "SUB2_", "ALT_", "HEDGE_")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith(_PREFIXES):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def project(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """A project root with a ``config/`` dir; the test runs with it as the current directory."""
    (tmp_path / "config").mkdir()
    clean_env.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_config(project: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "albra.toml") -> Path:
        path = project / "config" / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
