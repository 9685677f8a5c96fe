"""session-log: KST sections, files grouped by folder, idempotent, hook appends without amending."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from albra.runbook.session_log import append_new, install_hook


def git(repo: Path, *args: str, env_extra: dict | None = None) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="op", GIT_AUTHOR_EMAIL="op@example.invalid",
               GIT_COMMITTER_NAME="op", GIT_COMMITTER_EMAIL="op@example.invalid", **(env_extra or {}))
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env).stdout


def commit(repo: Path, files: dict[str, str], msg: str, when: str) -> str:
    for name, body in files.items():
        p = repo / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", msg, env_extra={"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    return r


def test_appends_in_kst_sections_grouped_by_folder_and_is_idempotent(repo: Path) -> None:
    a = commit(repo, {"albra/store.py": "x", "tests/test_store.py": "y", "README.md": "r"}, "Store first cut",
               "2026-11-24T14:59:00+00:00")  # 23:59 KST on the 24th
    b = commit(repo, {"albra/risk.py": "z"}, "Risk checks", "2026-11-24T15:01:00+00:00")  # 00:01 KST on the 25th
    added = append_new(repo)
    assert [c.short for c in added] == [a[:7], b[:7]]
    text = (repo / "SESSION_LOG.md").read_text()
    assert "## 2026-11-24 (KST)" in text and "## 2026-11-25 (KST)" in text
    assert f"- 2026-11-24 23:59:00 KST: [{a[:7]}] Store first cut" in text
    assert f"- 2026-11-25 00:01:00 KST: [{b[:7]}] Risk checks" in text
    assert "  - ./ README.md" in text and "  - albra/ store.py" in text and "  - tests/ test_store.py" in text
    assert text.index("2026-11-24 (KST)") < text.index(a[:7]) < text.index("2026-11-25 (KST)") < text.index(b[:7])
    assert append_new(repo) == []
    assert (repo / "SESSION_LOG.md").read_text() == text
    c = commit(repo, {"commands/x.py": "c"}, "Third", "2026-11-25T01:00:00+00:00")
    assert [x.short for x in append_new(repo)] == [c[:7]]
    text2 = (repo / "SESSION_LOG.md").read_text()
    assert text2.count("## 2026-11-25 (KST)") == 1 and text2.startswith(text.rstrip("\n"))


def test_empty_repository_adds_nothing(repo: Path) -> None:
    assert append_new(repo) == []


def test_hook_runs_after_commit_without_amending(repo: Path) -> None:
    hook = install_hook(repo, albra_cmd=f"{sys.executable} -m albra")
    assert install_hook(repo, albra_cmd=f"{sys.executable} -m albra") == hook  # reinstall keeps one line
    assert hook.read_text().count("albra session-log hook") == 1
    sha = commit(repo, {"a.txt": "1"}, "With hook", "2026-11-24T00:00:00+00:00")
    assert git(repo, "rev-parse", "HEAD").strip() == sha  # not amended
    assert f"[{sha[:7]}] With hook" in (repo / "SESSION_LOG.md").read_text()
    assert git(repo, "status", "--porcelain").strip() == "?? SESSION_LOG.md"


def test_cli_json_and_not_a_repo(tmp_path: Path, repo: Path) -> None:
    commit(repo, {"a.txt": "1"}, "One", "2026-11-24T00:00:00+00:00")
    out = subprocess.run([sys.executable, "-m", "albra", "session-log", "--repo", str(repo), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"message": "One"' in out.stdout
    bad = subprocess.run([sys.executable, "-m", "albra", "session-log", "--repo", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "git" in bad.stderr
