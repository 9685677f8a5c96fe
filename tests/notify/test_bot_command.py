"""``albra bot`` refuses to start (exit 2, clear message) without allowed users or without a token."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

import albra.commands.bot

# only the bot command (the full CLI is tested in tests/test_cli_imports.py)
app = typer.Typer()


@app.callback()
def _root() -> None:
    """albra (bot only)."""


albra.commands.bot.register(app)

BASE = """
[paths]
state_dir = "state"
[telegram]
{telegram}
[accounts.demo]
mode = "paper"
"""


def _config(tmp_path: Path, telegram: str) -> str:
    (tmp_path / "config").mkdir(exist_ok=True)
    p = tmp_path / "config" / "albra.toml"
    p.write_text(BASE.format(telegram=telegram))
    return str(p)


def test_no_allowed_users_exits_2_before_anything_starts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST-token-for-the-local-fake-bot-api-xx")
    monkeypatch.delenv("TELEGRAM_CHAT_ID", raising=False)
    res = CliRunner().invoke(app, ["bot", "--config", _config(tmp_path, "chat_ids = [-100500]")])
    assert res.exit_code == 2, res.output
    assert "no allowed users" in res.output and "admin_user_ids" in res.output
    assert not (tmp_path / "state" / "albra.db").exists()


def test_missing_token_exits_2_naming_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_CHAT_ID", raising=False)
    res = CliRunner().invoke(app, ["bot", "--config", _config(tmp_path, "admin_user_ids = [111]")])
    assert res.exit_code == 2, res.output
    assert "TELEGRAM_BOT_TOKEN" in res.output


def test_telegram_disabled_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bot", "--config", _config(tmp_path, "enabled = false\nadmin_user_ids = [1]")])
    assert res.exit_code == 2 and "enabled is false" in res.output
