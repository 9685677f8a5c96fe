"""Packaging: every albra subpackage is in the wheel, commands/ and strategies/ install as albra.commands and
albra.strategies (never as the generic top-level names), the example configuration ships, dependencies are bounded,
and the lock file pins what pyproject asks for. The wheel itself is built and run outside the checkout by the opt-in
test at the end (ALBRA_TEST_WHEEL=1; ~10 s: `pip wheel .` and a short paper run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_subpackage_is_listed_and_mapped():
    st = PYPROJECT["tool"]["setuptools"]
    listed = set(st["packages"])
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "albra").rglob("__init__.py")}
    assert tree <= listed, f"add to [tool.setuptools] packages: {sorted(tree - listed)}"
    assert st["package-dir"] == {"albra.commands": "commands", "albra.strategies": "strategies",
                                 "albra.example_config": "config"}
    assert not any(p.split(".")[0] in ("commands", "strategies") for p in listed)  # no generic top-level names
    assert st["package-data"]["albra.example_config"] == ["albra.example.toml"]


def test_dependencies_have_upper_bounds_and_the_lock_pins_them():
    deps = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["dev"]
    for d in deps:
        assert "==" in d or "<" in d, f"{d}: needs an upper bound on its major version"
    lock = {m.group(1).lower().replace("_", "-"): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)}
    for d in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower()
        assert name in lock, f"{name} is not in requirements.lock: re-run pip-compile (see the README)"
    assert lock["ccxt"] == "4.5.90"


def test_ci_installs_what_the_readme_says():
    first = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("python3 -m venv"))
    assert "-c requirements.lock" in first
    assert first in (ROOT / ".ci" / "run").read_text().replace("pip install -q ", "pip install ")


@pytest.mark.skipif(os.environ.get("ALBRA_TEST_WHEEL", "") != "1", reason="builds the wheel: set ALBRA_TEST_WHEEL=1")
def test_wheel_runs_the_demo_outside_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path / "w")],
                   check=True, timeout=300)
    (wheel,) = (tmp_path / "w").glob("albra-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, timeout=300)
    assert not (tmp_path / "site" / "commands").exists() and not (tmp_path / "site" / "strategies").exists()
    run = tmp_path / "elsewhere"
    run.mkdir()
    code = ("import sys, albra; assert albra.__file__.startswith(sys.argv[1]), albra.__file__\n"
            "sys.argv = ['albra', 'run', '--account', 'demo', '--max-candles', '300', '--json']\n"
            "from albra.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], cwd=run, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert out.returncode == 0, out.stderr
    assert '"candles": 300' in out.stdout and "example configuration shipped with albra" in out.stderr
    assert (run / "state" / "albra.db").is_file()  # state where it runs, not in site-packages
