"""Secrets stay secret (DESIGN invariant 7), proven on what an operator's machine would hold afterwards.

Real-looking secrets (64-char Binance key and secret, a bot token) are in the environment of: a bounded
paper session, a live runner against ``albra sim serve`` that knows exactly those keys (so they really sign
requests), every operator command, and ``albra bot`` sending the queued alerts to a local Bot API server.
Then everything written or printed is scanned — every file under the state and log dirs (raw bytes, so the
db, -wal and -shm too), every text cell of every store table, incident reports, every command's stdout and
stderr, every Bot API call's parameters — for the secrets and their URL-encoded forms. Files are checked
for owner-only modes. A control plants a secret to prove the scan can fail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.faults.helpers import (
    DEMO_ACCOUNT, GOOD_CANDLES, REPO, Result, albra, clean_env, config_text, live_account, write_config,
)

API_KEY = "vK3pQ8sT1wY6zB9dF2hJ5mN7rX0aC4eG8iL1oR3uW6yZ9bD2fH5jM8pS1tV4xA7q"
API_SECRET = "Hq2Wn8Ex5Rt1Yu7Io3Pa9Sd6Fg0Jk4Lz2Xc8Vb5Nm1Qw7Er3Ty9Ui6Op0As4Df8G"
BOT_TOKEN = "1234567890:AAFz8Kq2Lm5Np9Rs3Tv7Wx1Yb4Cd6Ef0GhI"
SECRETS = (API_KEY, API_SECRET, BOT_TOKEN)
ADMIN = 424242


def needles(secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """Each secret as written and URL-encoded (the token's ':' becomes %3A), plus the key's halves'
    identity is not enough — the full values and their encodings are what must never appear."""
    out: list[str] = []
    for s in secrets:
        for form in (s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)):
            if form not in out:
                out.append(form)
    return out


def scan_text(where: str, text: str, found: list[str], secrets: tuple[str, ...] = SECRETS) -> None:
    for n in needles(secrets):
        if n in text:
            found.append(f"{where}: contains {n[:6]}…")


def scan_tree(root: Path, found: list[str], secrets: tuple[str, ...] = SECRETS) -> int:
    """Raw bytes of every file under ``root``; returns how many files were scanned."""
    count = 0
    for p in sorted(root.rglob("*")):
        if p.is_file():
            count += 1
            scan_text(str(p), p.read_bytes().decode("latin-1"), found, secrets)
    return count


def scan_store(db: Path, found: list[str], secrets: tuple[str, ...] = SECRETS) -> tuple[int, int]:
    """Every text/blob cell of every table; returns (tables, cells scanned)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    tables = cells = 0
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            tables += 1
            for row in conn.execute(f'SELECT * FROM "{name}"'):
                for v in row:
                    if isinstance(v, (str, bytes)):
                        cells += 1
                        scan_text(f"table {name}", v if isinstance(v, str) else v.decode("latin-1"), found, secrets)
    finally:
        conn.close()
    return tables, cells


def modes(root: Path) -> list[str]:
    """Files and dirs under ``root`` readable by anyone but the owner."""
    bad = []
    for p in [root, *root.rglob("*")]:
        m = stat.S_IMODE(p.stat().st_mode)
        if p.is_dir() and m & 0o077:
            bad.append(f"{p}: dir mode {oct(m)}")
        elif p.is_file() and m & 0o077:
            bad.append(f"{p}: file mode {oct(m)}")
    return bad


class BotApiThread:
    """The local Bot API server (albra.notify.testing.FakeBotApi) on its own loop in a thread."""

    def __init__(self, token: str) -> None:
        from albra.notify.testing import FakeBotApi

        self.api = FakeBotApi(token=token)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "BotApiThread":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def snapshot(self) -> tuple[list[Any], list[dict[str, Any]]]:
        async def grab() -> tuple[list[Any], list[dict[str, Any]]]:
            return list(self.api.calls), list(self.api.sent)
        return asyncio.run_coroutine_threadsafe(grab(), self.loop).result(10)


def _until(pred: Any, limit: float) -> bool:
    """Poll ``pred`` until true or ``limit`` seconds pass (a safety bound, not a timing assertion)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return bool(pred())


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run everything with the secrets set; yield what must be scanned."""
    from albra.sim.testing import sim_process

    root = tmp_path_factory.mktemp("secrets")
    outputs: list[Result] = []
    env = clean_env({"LIVE1_API_KEY": API_KEY, "LIVE1_API_SECRET": API_SECRET, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
                     "BINANCE_API_KEY": API_KEY, "BINANCE_SECRET_KEY": API_SECRET})
    with sim_process("--speed", "0", "--start", "2024-02-01", accounts={"live1": (API_KEY, API_SECRET)}) as (url, _p), \
            BotApiThread(BOT_TOKEN) as bot:
        telegram = (f'[telegram]\nenabled = true\napi_base_url = "{bot.api.base_url}"\nchat_ids = [{ADMIN}]\n'
                    f"admin_user_ids = [{ADMIN}]\n")
        cfg = write_config(root, config_text(root, telegram=telegram,
                                             accounts=DEMO_ACCOUNT + "\n" + live_account("live1", url)))
        c = str(cfg)

        def run(*args: str, ok: tuple[int, ...] = (0,)) -> Result:
            res = albra(list(args), env=env)
            outputs.append(res)
            assert res.code in ok, str(res)
            return res

        run("run", "-a", "demo", "--max-candles", "700", "-c", c)
        # the live runner signs with the secrets against the local server; stopped by SIGTERM once it runs
        live = subprocess.Popen([sys.executable, "-m", "albra", "run", "-a", "live1", "-c", c], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
        from albra.sim.testing import SimAdmin  # noqa: F401  (documented helper; requests checked over HTTP)
        import json
        import urllib.request

        def signed_requests() -> int:
            with urllib.request.urlopen(f"{url}/_sim/requests", timeout=5) as r:
                rows = json.loads(r.read())
            rows = rows.get("requests", rows) if isinstance(rows, dict) else rows
            return sum(1 for q in rows if q.get("account") == "live1" and q.get("status") == 200)

        _until(lambda: signed_requests() >= 5 or live.poll() is not None, 60)
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=60)
        outputs.append(Result(["run", "-a", "live1"], live.returncode, out, err))
        signed = signed_requests()

        run("config", "check", "-c", c)
        run("config", "check", "--json", "-c", c)
        run("status", "--offline", "-c", c)
        run("status", "--offline", "--json", "-c", c)
        run("status", "-c", c, ok=(0, 1, 3))
        run("pause", "-a", "live1", "-r", "drill", "-c", c)
        run("resume", "-a", "live1", "-c", c)
        run("audit", "--compare-exchange", "-a", "live1", "-c", c, ok=(0, 1))
        run("audit", "--compare-exchange", "-a", "live1", "--json", "-c", c, ok=(0, 1))
        run("reconcile", "-a", "live1", "-c", c, ok=(0, 1))
        run("emergency-shutdown", "--yes", "-a", "live1", "-c", c, ok=(0, 1))
        listing = run("incident-report", "--list", "--json", "-c", c)
        reports = root / "reports"
        reports.mkdir(mode=0o700)
        import re

        for inc in sorted(set(re.findall(r"INC-\d{8}-\d{3}", listing.out))):
            run("incident-report", "-i", inc, "-o", str(reports / f"{inc}.md"), "-c", c)
            run("incident-report", "-i", inc, "--json", "-c", c)
        run("backtest", "-s", "TFPE", "--symbol", "BTCUSDT", "--data", f"BTCUSDT={GOOD_CANDLES}", "-c", c)
        repo = root / "gitrepo"
        repo.mkdir()
        genv = dict(env, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
                    GIT_COMMITTER_EMAIL="t@e")
        subprocess.run(["git", "init", "-q", str(repo)], check=True, env=genv)
        (repo / "a.txt").write_text("x")
        subprocess.run(["git", "-C", str(repo), "add", "a.txt"], check=True, env=genv)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "first"], check=True, env=genv)
        run("session-log", "--repo", str(repo))
        # the bot sends the queued alerts (paper session, emergency shutdown) to the local Bot API server
        botp = subprocess.Popen([sys.executable, "-m", "albra", "bot", "--poll-timeout", "1", "-c", c], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
        _until(lambda: len(bot.snapshot()[1]) >= 1 or botp.poll() is not None, 60)
        botp.send_signal(signal.SIGTERM)
        bout, berr = botp.communicate(timeout=60)
        outputs.append(Result(["bot"], botp.returncode, bout, berr))
        calls, sent = bot.snapshot()
    yield {"root": root, "outputs": outputs, "calls": calls, "sent": sent, "signed": signed,
           "reports": reports, "repo": repo}


def test_secrets_were_really_used(session: dict[str, Any]) -> None:
    """Not a vacuous scan: the live runner's signed requests were accepted, the bot delivered messages."""
    assert session["signed"] >= 1
    assert session["sent"], "the bot sent no message to the local Bot API server"
    assert list(session["reports"].glob("*.md")), "no incident report was written"


def test_no_secret_anywhere(session: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    found: list[str] = []
    root: Path = session["root"]
    files = scan_tree(root / "state", found) + scan_tree(root / "logs", found) + scan_tree(session["reports"], found)
    files += scan_tree(session["repo"], found)
    tables, cells = scan_store(root / "state" / "albra.db", found)
    for res in session["outputs"]:
        scan_text(f"output of albra {' '.join(res.args[:3])}", res.text, found)
    messages = 0
    for call in session["calls"]:
        messages += 1
        scan_text(f"Bot API {call.method}", repr(call.params), found)
    with capsys.disabled():
        print(f"\nsecrets scanned: {files} files, {tables} tables / {cells} text cells, {len(session['outputs'])} "
              f"command outputs, {messages} Bot API calls ({len(session['sent'])} messages sent)")
    assert not found, found


def test_owner_only_modes(session: dict[str, Any]) -> None:
    root: Path = session["root"]
    assert list((root / "logs").glob("*.log")), "no log files were written"
    assert not modes(root / "state") + modes(root / "logs") + modes(session["reports"])


def test_scan_detects_a_planted_secret(tmp_path: Path) -> None:
    """Control: each route of the scan finds a secret when there is one (so the real scan can fail)."""
    found: list[str] = []
    (tmp_path / "x.log").write_text(f'{{"msg": "key={urllib.parse.quote(BOT_TOKEN, safe="")}"}}\n')
    assert scan_tree(tmp_path, found) == 1 and found
    found.clear()
    db = tmp_path / "s.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE journal (msg TEXT)")
    conn.execute("INSERT INTO journal VALUES (?)", (f"signed with {API_SECRET}",))
    conn.commit()
    conn.close()
    scan_store(db, found)
    assert found
    found.clear()
    scan_tree(tmp_path, found)  # the raw db bytes too
    assert any("s.db" in f for f in found)
    os.chmod(tmp_path / "x.log", 0o644)
    assert modes(tmp_path)
