"""The install root: one directory per release and a stable ``current`` symlink the systemd units point at.

    ROOT/releases/<12-hex commit>/src     the source of that commit (git archive)
    ROOT/releases/<12-hex commit>/venv    its own virtual environment (albra installed, not editable)
    ROOT/current -> releases/<commit>     switched with one rename, so a unit never sees half an upgrade

Why a symlink: ``ExecStart=ROOT/current/venv/bin/albra run …`` stays the same across upgrades; switching is
``rename(2)`` of a new link over the old, which is atomic, and rolling back is the same operation with the old
target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    def release(self, commit: str) -> Path:
        return self.releases / commit[:12]

    @staticmethod
    def albra_bin(release: Path) -> Path:
        return release / "venv" / "bin" / "albra"

    @staticmethod
    def python_bin(release: Path) -> Path:
        return release / "venv" / "bin" / "python"

    def current_release(self) -> Path | None:
        """The release ``current`` points at (None before the first install)."""
        if not self.current.is_symlink():
            return None
        return (self.current.parent / os.readlink(self.current)).resolve()

    def switch(self, release: Path) -> None:
        """Point ``current`` at ``release`` atomically (a temporary link renamed over the old one)."""
        rel = os.path.relpath(release, self.current.parent)
        tmp = self.current.with_name(f".current.{os.getpid()}.tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(rel, tmp)
        os.replace(tmp, self.current)


def stable_albra_bin(albra_bin: Path) -> Path:
    """The path a systemd unit should run: ``ROOT/current/venv/bin/albra`` when ``albra_bin`` is the albra of the
    release ``ROOT/current`` points at (so the unit follows upgrades), else ``albra_bin`` itself."""
    real = albra_bin.resolve()
    parts = real.parts
    if len(parts) >= 6 and parts[-2:] == ("bin", "albra") and parts[-3] == "venv" and parts[-5] == "releases":
        lay = Layout(Path(*parts[:-5]))
        if lay.current_release() == Path(*parts[:-3]):
            return lay.current / "venv" / "bin" / "albra"
    return real
