"""Building a release from a git ref: the commit's source exported (``git archive``), a fresh virtual environment,
albra installed into it (not editable: the release must not change when the repository does).

Two ways to get the dependencies:

* default: ``pip install SRC`` resolves them from the configured index, exactly as a first install does;
* ``offline``: the new environment sees the running environment's packages (a ``.pth`` file naming its
  site-packages; its own site-packages comes first, so the new albra wins) and albra is installed with
  ``--no-index --no-deps --no-build-isolation``. Nothing is downloaded; the price is that a release needing a
  dependency the running environment lacks fails its smoke check instead of installing it — which is the honest
  outcome on a server without network.

pip is the running interpreter's (``pip --python NEW``), so the new environment is made without pip.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

PIP_TIMEOUT_S = 900


class InstallError(RuntimeError):
    """A release could not be built (bad ref, git or pip failure, smoke check failed)."""


def _run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 120, what: str) -> subprocess.CompletedProcess:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InstallError(f"{what}: {e}") from None
    if out.returncode != 0:
        err = (out.stderr or b"").decode(errors="replace").strip().splitlines()
        err = [l for l in err if not l.startswith("WARNING: Location")]
        raise InstallError(f"{what} failed (exit {out.returncode}): {' | '.join(err[-6:])}")
    return out


def resolve(repo: Path, ref: str) -> str:
    """The full commit id ``ref`` names in ``repo``."""
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        raise InstallError(f"{repo} is not a git repository (give --repo)")
    out = _run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
               what=f"git: {ref!r} is not a commit in {repo}")
    return out.stdout.decode().strip()


def export(repo: Path, commit: str, dest: Path) -> None:
    """The commit's tree (tracked files only) into ``dest``."""
    out = _run(["git", "-C", str(repo), "archive", "--format=tar", commit], what="git archive", timeout=300)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, filter="data")


def make_venv(release: Path, src: Path, *, offline: bool) -> None:
    """``release/venv`` with albra from ``src`` installed (see the module docstring for ``offline``)."""
    venv = release / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], what="python -m venv", timeout=300)
    py = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--disable-pip-version-check"]
    if offline:
        purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       what="new venv").stdout.decode().strip()
        mine = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        Path(purelib, "albra-shared-deps.pth").write_text("".join(f"{p}\n" for p in sorted(mine)))
        pip += ["--no-index", "--no-deps", "--no-build-isolation"]
    _run(pip + [str(src)], what="pip install", timeout=PIP_TIMEOUT_S)


def smoke(release: Path, config: Path) -> None:
    """The new albra starts and accepts the operator's configuration."""
    albra = release / "venv" / "bin" / "albra"
    _run([str(albra), "--help"], what=f"{albra} --help")
    _run([str(albra), "config", "check", "--config", str(config)], what="new version: albra config check")


def build(repo: Path, commit: str, release: Path, config: Path, *, offline: bool) -> bool:
    """Build ``release`` for ``commit`` unless a complete one is already there; returns True when it was built.

    The release is built in place (a venv's scripts name their interpreter by absolute path, so it cannot be
    built elsewhere and renamed); ``COMMIT`` is written last and marks it complete, so a half-built one from an
    interrupted upgrade is removed and built again."""
    if (release / "COMMIT").exists() and (release / "venv" / "bin" / "albra").exists():
        smoke(release, config)
        return False
    if release.exists():
        shutil.rmtree(release)
    try:
        export(repo, commit, release / "src")
        make_venv(release, release / "src", offline=offline)
        smoke(release, config)
    except BaseException:
        shutil.rmtree(release, ignore_errors=True)
        raise
    (release / "COMMIT").write_text(commit + "\n")
    return True
