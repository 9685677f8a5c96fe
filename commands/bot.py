"""``albra bot``: the Telegram command bot, one process for all accounts; it also sends queued alerts.

It refuses to start (exit 2) when no allowed Telegram user is configured — it never answers everyone —
and when the token is missing. ``/audit`` and ``/emergency`` are offered only when the runbook provides
them (``albra.runbook.audit.bot_audit(settings)`` and ``albra.runbook.emergency.bot_emergency(settings,
actor)``, each an async function returning an object with ``ok`` and ``summary``).
Heavy imports (telegram, the bot) happen inside the functions so ``albra --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from commands import EXIT_USAGE
from commands._common import ConfigOption, fail, load, open_store

if TYPE_CHECKING:
    from albra.config import Settings


def _runbook_hook(module: str, attr: str) -> Callable[..., Any] | None:
    """``albra.runbook.<module>.<attr>`` if that module exists and defines it, else None (not offered)."""
    name = f"albra.runbook.{module}"
    if importlib.util.find_spec(name) is None:
        return None
    fn = getattr(importlib.import_module(name), attr, None)
    return fn if callable(fn) else None


def bot_functions(settings: "Settings") -> tuple[Any, Any]:
    """(audit_fn, emergency_fn) wired to the runbook, each None while the runbook does not provide it."""
    audit = _runbook_hook("audit", "bot_audit")
    emergency = _runbook_hook("emergency", "bot_emergency")
    audit_fn = (lambda: audit(settings)) if audit else None
    emergency_fn = (lambda actor: emergency(settings, actor)) if emergency else None
    return audit_fn, emergency_fn


def _run(config: str | None, send_alerts: bool, poll_timeout: int = 10) -> None:
    import asyncio
    import signal

    from albra.config import ConfigError
    from albra.notify.access import Access, AccessConfigError

    settings = load(config)
    tg = settings.telegram
    if not tg.enabled:
        fail("telegram.enabled is false in the config: the bot has nothing to do")
    try:
        access = Access.from_settings(tg)
    except AccessConfigError as e:
        fail(str(e), EXIT_USAGE)
    try:
        token = settings.telegram_token()
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    assert token is not None

    from albra.log import setup_logging
    from albra.notify.bot import AlbraBot, run_bot
    from albra.notify.sender import AlertSender
    from albra.notify.transport import TelegramTransport
    from albra.notify.wiring import alert_chats, bot_api_base_url, routing_from_settings

    setup_logging(settings, "bot")
    store = open_store(settings)
    audit_fn, emergency_fn = bot_functions(settings)
    bot = AlbraBot(settings, store, access, audit_fn=audit_fn, emergency_fn=emergency_fn)
    routing = routing_from_settings(settings)
    base_url = bot_api_base_url(settings)

    def sender_factory(app_bot: Any) -> AlertSender:
        return AlertSender(store, TelegramTransport(app_bot), alert_chats(settings), routing=routing)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_bot(bot, token.reveal(), base_url=base_url,
                      sender_factory=sender_factory if send_alerts else None, stop=stop,
                      poll_timeout=poll_timeout)

    try:
        asyncio.run(main())
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    @app.command("bot")
    def bot_cmd(
        config: Optional[str] = ConfigOption,
        no_alerts: bool = typer.Option(False, "--no-alerts", help="Do not send queued alerts from this process."),
        poll_timeout: int = typer.Option(10, "--poll-timeout", min=0, max=50,
                                         help="Long-poll seconds per getUpdates (stop waits for one poll)."),
    ) -> None:
        """Run the Telegram command bot (all accounts) and send queued alerts. Answers only configured users."""
        _run(config, not no_alerts, poll_timeout)
