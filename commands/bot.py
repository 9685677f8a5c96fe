"""``albra bot``: the Telegram command bot, one process for all accounts; it also sends queued alerts.

It refuses to start (exit 2) when no allowed Telegram user is configured — it never answers everyone —
and when the token is missing. ``/emergency`` runs the runbook's emergency shutdown on every account;
``/audit`` runs ``albra.runbook.audit.bot_audit`` (the audit of ``albra audit --compare-exchange``). Both are
looked up in the runbook (:func:`bot_functions`) and offered only when present: the bot never offers a command it
cannot really run.
Heavy imports (telegram, the bot) happen inside the functions so ``albra --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from albra.commands import EXIT_USAGE
from albra.commands._common import ConfigOption, fail, load, open_store

if TYPE_CHECKING:
    from albra.config import Settings


def _runbook_hook(module: str, attr: str) -> Callable[..., Any] | None:
    """``albra.runbook.<module>.<attr>`` if that module exists and defines it, else None (not offered)."""
    name = f"albra.runbook.{module}"
    if importlib.util.find_spec(name) is None:
        return None
    fn = getattr(importlib.import_module(name), attr, None)
    return fn if callable(fn) else None


@dataclass(frozen=True)
class Verdict:
    """What the bot shows for /audit and /emergency."""

    ok: bool
    summary: str


def emergency_verdict(rep: Any) -> Verdict:
    """A phone-sized summary of an ``albra.runbook.emergency.EmergencyReport``."""
    lines = [f"kill switch: {rep.kill_switch}"]
    for a in rep.accounts:
        lines.append(f"{a.account}: {a.status}" + (f" ({a.reason})" if a.reason else "")
                     + (f", {len(a.errors)} error(s)" if a.errors else ""))
    bad_runners = [r for r in rep.runners if not r.get("ok")]
    lines.append(f"runners stopped: {len(rep.runners) - len(bad_runners)}/{len(rep.runners)}")
    if rep.incident_id:
        lines.append(f"incident {rep.incident_id}")
    if rep.store_error:
        lines.append(f"store error: {rep.store_error}")
    lines.append(f"took {rep.seconds:.1f} s; exit code {rep.exit_code}")
    return Verdict(rep.exit_code == 0, "\n".join(lines))


def bot_functions(settings: "Settings") -> tuple[Any, Any]:
    """(audit_fn, emergency_fn) wired to the runbook; each None while the runbook does not provide it.

    /emergency runs ``albra.runbook.emergency.emergency_shutdown`` on every configured account (positions
    closed). /audit uses ``albra.runbook.audit.bot_audit(settings)`` (async, returning an object with ``ok`` and
    ``summary``; tests/runbook/test_bot_audit.py drives it through the bot against the local exchange)."""
    audit = _runbook_hook("audit", "bot_audit")
    shutdown = _runbook_hook("emergency", "emergency_shutdown")
    audit_fn = (lambda: audit(settings)) if audit else None
    emergency_fn = None
    if shutdown is not None:
        async def emergency_fn(actor: str) -> Verdict:
            rep = await shutdown(settings, sorted(settings.accounts), actor=actor)
            return emergency_verdict(rep)
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
    from albra.notify.liveness_watch import LivenessWatch
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
                      poll_timeout=poll_timeout, heartbeat_s=settings.runner.heartbeat_s,
                      watch=LivenessWatch(settings, store).check)

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
