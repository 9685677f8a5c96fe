"""``registry.get(name)`` imports only what it needs, with the same errors as a full discovery."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from albra.strategies import registry
from tests.strategies.test_strategies import USER_STRAT


def _modules_after_get(name: str, env_path: str = "") -> list[str]:
    code = (f"import sys\nfrom albra.strategies import registry\nregistry.get({name!r})\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('albra.strategies.', 'albra_ext_')))))")
    env = {"PATH": "/usr/bin:/bin", registry.PATH_ENV: env_path}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return out.stdout.split()


def test_get_imports_only_the_named_strategy() -> None:
    assert _modules_after_get("tfpe") == ["albra.strategies.base", "albra.strategies.registry",
                                          "albra.strategies.tfpe"]


@pytest.fixture
def ext(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "ext"
    folder.mkdir()
    monkeypatch.setenv(registry.PATH_ENV, str(folder))
    registry.refresh()
    yield folder
    monkeypatch.delenv(registry.PATH_ENV)
    registry.refresh()


def test_get_still_reports_broken_and_clashing_strategy_path_files(ext: Path) -> None:
    (ext / "outside.py").write_text(textwrap.dedent(USER_STRAT.format(name="OUTSIDE_LOOKUP_ONLY")))
    assert registry.get("outside_lookup_only").name == "OUTSIDE_LOOKUP_ONLY"
    (ext / "broken.py").write_text("import nope_not_a_module\n")
    registry.refresh()
    with pytest.raises(registry.RegistryError, match=r"broken.py failed to import: ModuleNotFoundError"):
        registry.get("outside_lookup_only")
    (ext / "broken.py").write_text(textwrap.dedent(USER_STRAT.format(name="TFPE")))  # clashes with a shipped one
    registry.refresh()
    with pytest.raises(registry.RegistryError, match="duplicate strategy name 'TFPE'"):
        registry.get("outside_lookup_only")  # the clash is found even when another name is asked
    registry.refresh()
    with pytest.raises(registry.RegistryError, match="duplicate strategy name 'TFPE'"):
        registry.get("TFPE")


def test_a_name_that_is_not_a_literal_is_still_found(ext: Path) -> None:
    (ext / "computed.py").write_text(textwrap.dedent(USER_STRAT.format(name='COMPUTED_" + "LOOKUP')))
    assert registry.get("computed_lookup").name == "COMPUTED_LOOKUP"
    with pytest.raises(registry.RegistryError, match="unknown strategy 'nope'; known: .*COMPUTED_LOOKUP"):
        registry.get("nope")
