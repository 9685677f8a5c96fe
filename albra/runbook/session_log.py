"""The session log: every commit, in KST, under a dated section of ``SESSION_LOG.md``.

Each commit becomes ``- YYYY-MM-DD HH:MM:SS KST: [hash7] message`` followed by its changed files grouped by
top-level folder. Appending is idempotent (a commit already in the file is never added twice), and the
optional git post-commit hook only appends to the file: it never amends the commit or pushes (the original's
hook did both).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from albra.timefmt import fmt_kst, kst_date

HEADER = "# Session log\n\nCommits in KST, appended by `albra session-log`.\n"
HASH_RE = re.compile(r"^- \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} KST: \[([0-9a-f]{7,40})\]", re.M)
HOOK_MARK = "# albra session-log hook"


class SessionLogError(RuntimeError):
    """Not a git repository, git missing, or the log file unusable."""


@dataclass(frozen=True)
class Commit:
    sha: str
    ts_ms: int
    subject: str
    files: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.sha[:7]


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SessionLogError("git is not installed") from None
    if out.returncode != 0:
        raise SessionLogError(f"git {' '.join(args)} failed in {repo}: {out.stderr.strip()}")
    return out.stdout


def repo_root(path: Path) -> Path:
    return Path(_git(path, "rev-parse", "--show-toplevel").strip())


def commits(repo: Path) -> list[Commit]:
    """Every commit reachable from HEAD, oldest first (empty for a repository without commits)."""
    try:
        _git(repo, "rev-parse", "--verify", "-q", "HEAD")
    except SessionLogError:
        return []
    raw = _git(repo, "log", "--reverse", "--no-renames", "--format=%x1e%H%x1f%ct%x1f%s", "--name-only")
    out: list[Commit] = []
    for block in raw.split("\x1e"):
        if not block.strip():
            continue
        head, _, rest = block.partition("\n")
        sha, ct, subject = head.split("\x1f", 2)
        files = tuple(f for f in rest.splitlines() if f.strip())
        out.append(Commit(sha, int(ct) * 1000, subject, files))
    return out


def group_files(files: tuple[str, ...]) -> dict[str, list[str]]:
    """Changed files by top-level folder (files at the root under '.')."""
    groups: dict[str, list[str]] = {}
    for f in files:
        top, sep, rest = f.partition("/")
        key, name = (top + "/", rest) if sep else ("./", f)
        groups.setdefault(key, []).append(name)
    return dict(sorted(groups.items()))


def format_commit(c: Commit) -> str:
    lines = [f"- {fmt_kst(c.ts_ms)}: [{c.short}] {c.subject}"]
    for folder, names in group_files(c.files).items():
        lines.append(f"  - {folder} {', '.join(names)}")
    return "\n".join(lines)


def logged_hashes(text: str) -> set[str]:
    return {m.group(1)[:7] for m in HASH_RE.finditer(text)}


def append_new(repo: Path, log_file: Path | None = None) -> list[Commit]:
    """Append the commits not yet in the log (oldest first) and return them. Idempotent."""
    root = repo_root(repo)
    path = log_file or (root / "SESSION_LOG.md")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    seen = logged_hashes(text)
    new = [c for c in commits(root) if c.short not in seen]
    if not new:
        return []
    if not text:
        text = HEADER
    last_day = None
    days = re.findall(r"^## (\d{4}-\d{2}-\d{2}) \(KST\)$", text, re.M)
    if days:
        last_day = days[-1]
    parts = [text.rstrip("\n")]
    for c in new:
        day = kst_date(c.ts_ms)
        if day != last_day:
            parts.append(f"\n## {day} (KST)\n")
            last_day = day
        parts.append(format_commit(c))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return new


def install_hook(repo: Path, albra_cmd: str | None = None) -> Path:
    """Install (or extend) ``.git/hooks/post-commit`` to run ``albra session-log``. Never amends or pushes."""
    root = repo_root(repo)
    hooks_dir = Path(_git(root, "rev-parse", "--git-path", "hooks").strip())
    if not hooks_dir.is_absolute():
        hooks_dir = root / hooks_dir
    hooks_dir.mkdir(parents=True, exist_ok=True)
    hook = hooks_dir / "post-commit"
    cmd = albra_cmd or f"{shlex.quote(sys.executable)} -m albra"
    line = f'{cmd} session-log --repo "$(git rev-parse --show-toplevel)" >/dev/null 2>&1 || true  {HOOK_MARK}'
    existing = hook.read_text(encoding="utf-8") if hook.exists() else ""
    if HOOK_MARK in existing:
        lines = [line if HOOK_MARK in ln else ln for ln in existing.splitlines()]
        hook.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif existing:
        hook.write_text(existing.rstrip("\n") + "\n" + line + "\n", encoding="utf-8")
    else:
        hook.write_text("#!/bin/sh\n" + line + "\n", encoding="utf-8")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return hook
