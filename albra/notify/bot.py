"""The Telegram command bot (``albra bot``): one process for all accounts, reading the store and writing
control flags to it — it never reaches into a runner.

Every update passes one gate first (:meth:`AlbraBot._gate`, handler group -1): commands are journaled with
who sent them (``bot_command``, actor ``telegram:<user id>``), and anything from a user or chat that is not
configured is logged and dropped without a reply. Read-only users may query but not pause, resume or trigger
the emergency. ``/emergency`` is two-step with a one-time code (:mod:`albra.notify.confirm`). Every reply is
redacted. ``/audit`` and ``/emergency`` call injected functions, so the bot only offers what really exists.

``run_bot`` runs python-telegram-bot's Application without ``run_polling`` (which would own the event
loop and signals): ``async with app: await app.start(); await app.updater.start_polling(...)``, next to the
alert sender in the same loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from albra.notify import confirm, views
from albra.notify.access import Access, Role
from albra.notify.format import esc
from albra.redact import redact
from albra.store import flags, journal, runners
from albra.store.db import Store
from albra.store.clock import StoreClock
from albra.timefmt import Clock

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.notify.sender import AlertSender

log = logging.getLogger("albra.bot")

EMERGENCY_ACTION = "emergency_shutdown"
KILL_OFF_ACTION = "kill_switch_off"
MAX_MESSAGE = 4000
EMERGENCY_PLAN = (
    "This will, on EVERY account: turn the kill switch on (no new entries), stop the runners, cancel all "
    "open and protective orders, close all positions reduce-only, verify flat, open an incident and "
    "alert this chat.")


class Verdict(Protocol):
    """What ``audit_fn`` and ``emergency_fn`` return: ``ok`` and a human summary."""

    ok: bool
    summary: str


AuditFn = Callable[[], Awaitable[Verdict]]
EmergencyFn = Callable[[str], Awaitable[Verdict]]   # argument: the actor, "telegram:<user id>"


@dataclass(frozen=True)
class CommandSpec:
    name: str
    help: str
    admin: bool


class AlbraBot:
    """Command handlers over the store. Build the Application with :meth:`build_application`."""

    def __init__(self, settings: "Settings", store: Store, access: Access, *, audit_fn: AuditFn | None = None,
                 emergency_fn: EmergencyFn | None = None, clock: Clock | None = None,
                 confirm_ttl_s: int = 120) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.audit_fn = audit_fn
        self.emergency_fn = emergency_fn
        self.clock: Clock = clock or StoreClock(store)
        self.confirm_ttl_s = confirm_ttl_s
        self._handlers: dict[str, Callable[[Any, Any, Role], Awaitable[None]]] = {
            "status": self.cmd_status, "positions": self.cmd_positions, "balance": self.cmd_balance,
            "pnl": self.cmd_pnl, "incidents": self.cmd_incidents, "report": self.cmd_report, "pause": self.cmd_pause,
            "resume": self.cmd_resume, "help": self.cmd_help, "start": self.cmd_help,
            "killswitch": self.cmd_killswitch,
        }
        if audit_fn is not None:
            self._handlers["audit"] = self.cmd_audit
        if emergency_fn is not None:
            self._handlers["emergency"] = self.cmd_emergency

    # ------------------------------------------------------------------ command list
    def commands(self) -> list[CommandSpec]:
        """The commands this bot offers (``/audit`` and ``/emergency`` only when their function is wired)."""
        specs = [
            CommandSpec("status", "runners, equity, drawdown, flags, incidents", False),
            CommandSpec("positions", "open legs per account and strategy", False),
            CommandSpec("balance", "latest balances per account", False),
            CommandSpec("pnl", "today's PnL (KST)", False),
            CommandSpec("incidents", "latest incidents", False),
            CommandSpec("report", "[YYYY-MM] [account] monthly review summary (default: last month)", False),
        ]
        if self.audit_fn is not None:
            specs.append(CommandSpec("audit", "ledger vs exchange audit", False))
        specs += [
            CommandSpec("pause", "[account [strategy]] block new entries", True),
            CommandSpec("resume", "[account [strategy]] allow new entries", True),
            CommandSpec("killswitch", "[on|off [account]] show, set or clear (off asks for a confirm code)", True),
        ]
        if self.emergency_fn is not None:
            specs.append(CommandSpec("emergency", "emergency shutdown (asks for a confirm code)", True))
        specs.append(CommandSpec("help", "this list", False))
        return specs

    # ------------------------------------------------------------------ application
    def build_application(self, token: str, base_url: str | None = None) -> Any:
        """A python-telegram-bot Application with the gate and every command handler attached."""
        from telegram import Update
        from telegram.ext import Application, MessageHandler, TypeHandler, filters

        from albra.notify.transport import use_timedelta_periods

        use_timedelta_periods()  # a 429 on getUpdates builds a RetryAfter too
        builder = Application.builder().token(token)
        if base_url:
            builder = builder.base_url(base_url)
        app = builder.build()
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        app.add_handler(MessageHandler(filters.COMMAND, self._dispatch), group=0)
        app.add_error_handler(self._on_error)
        return app

    # ------------------------------------------------------------------ gate
    async def _gate(self, update: Any, context: Any) -> None:
        """Journal every command with its sender; drop (no reply) anything from an unlisted user or chat."""
        from telegram.ext import ApplicationHandlerStop

        msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
        if msg is None or user is None or chat is None:
            raise ApplicationHandlerStop
        text = msg.text or ""
        if _parse_command(text, _username(context)) == (None, []) and _parse_command(text)[0] is not None:
            log.info("ignored /%s addressed to another bot", _parse_command(text)[0])
            raise ApplicationHandlerStop  # /pause@OtherBot in a shared group is not ours to obey
        role = self.access.role(user.id, chat.id, chat.type)
        command, args = _parse_command(text)
        if command is not None:
            journal.append(
                self.store, "bot_command",
                f"/{command} from telegram user {user.id} in chat {chat.id}"
                + ("" if role else " — ignored: not an allowed user/chat"),
                level="INFO" if role else "WARNING", actor=f"telegram:{user.id}",
                data={"command": command, "args": " ".join(args), "chat_id": chat.id, "chat_type": chat.type,
                      "username": user.username or "", "role": role.value if role else None,
                      "authorized": role is not None})
        if role is None:
            log.warning("ignored a message from telegram user %s (%s) in chat %s (%s): not allowed",
                        user.id, user.username or "-", chat.id, chat.type)
            raise ApplicationHandlerStop

    async def _dispatch(self, update: Any, context: Any) -> None:
        msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
        role = self.access.role(user.id, chat.id, chat.type)
        if role is None:  # the gate already stopped these; checked again so no path bypasses it
            return
        command, _ = _parse_command(msg.text or "")
        handler = self._handlers.get(command or "")
        if handler is None:
            await self.reply(update, f"unknown command /{esc(command)} — see /help")
            return
        try:
            await handler(update, context, role)
        except Exception as exc:
            log.exception("bot command /%s failed", command)
            await self.reply(update, f"❌ /{esc(command)} failed: {esc(type(exc).__name__)}: {esc(exc)}")

    async def _on_error(self, update: object, context: Any) -> None:
        log.error("telegram bot error: %s", redact(repr(context.error)))

    async def reply(self, update: Any, html_text: str) -> None:
        """Send ``html_text`` (redacted, split at line boundaries under Telegram's length limit)."""
        for chunk in _chunks(redact(html_text)):
            await update.effective_message.reply_text(chunk, parse_mode="HTML", do_quote=False)

    def _refuse_readonly(self, role: Role) -> str | None:
        return None if role is Role.ADMIN else "⛔ read-only users may query but not pause, resume or run an emergency"

    # ------------------------------------------------------------------ queries
    async def cmd_status(self, update: Any, context: Any, role: Role) -> None:
        await self.reply(update, views.status_text(self.settings, self.store))

    async def cmd_positions(self, update: Any, context: Any, role: Role) -> None:
        await self.reply(update, views.positions_text(self.settings, self.store))

    async def cmd_balance(self, update: Any, context: Any, role: Role) -> None:
        await self.reply(update, views.balance_text(self.settings, self.store))

    async def cmd_pnl(self, update: Any, context: Any, role: Role) -> None:
        await self.reply(update, views.pnl_text(self.settings, self.store, self.clock.now_ms()))

    async def cmd_incidents(self, update: Any, context: Any, role: Role) -> None:
        await self.reply(update, views.incidents_text(self.store))

    async def cmd_report(self, update: Any, context: Any, role: Role) -> None:
        _, args = _parse_command(update.effective_message.text or "")
        await self.reply(update, views.report_text(self.settings, self.store, args, self.clock.now_ms()))

    async def cmd_help(self, update: Any, context: Any, role: Role) -> None:
        lines = [f"<b>albra bot</b> — you are <b>{role.value}</b>"]
        for c in self.commands():
            if c.admin and role is not Role.ADMIN:
                continue
            lines.append(f"/{c.name} — {esc(c.help)}")
        if role is not Role.ADMIN:
            lines.append("<i>pause, resume and emergency need an admin</i>")
        await self.reply(update, "\n".join(lines))

    async def cmd_audit(self, update: Any, context: Any, role: Role) -> None:
        assert self.audit_fn is not None
        await self.reply(update, "🔎 running the audit (ledger vs exchange)…")
        verdict = await self.audit_fn()
        head = "✅ audit OK" if verdict.ok else "❌ audit found differences"
        await self.reply(update, f"<b>{head}</b>\n{esc(verdict.summary)}")

    # ------------------------------------------------------------------ control
    def _scope(self, args: list[str]) -> tuple[str, str] | str:
        """(account, strategy) from the arguments, validated against the config; a str is an error to show."""
        if len(args) > 2:
            return "usage: /pause [account [strategy]] (the same for /resume)"
        if not args:
            return "", ""
        accounts = self.settings.accounts
        account = args[0]
        if account not in accounts:
            return f"unknown account {esc(account)}; configured: {esc(', '.join(sorted(accounts)) or 'none')}"
        if len(args) == 1:
            return account, ""
        names = {s.name.upper(): s.name for s in accounts[account].strategies}
        if args[1].upper() not in names:
            return (f"account {esc(account)} runs no strategy {esc(args[1])}; it runs: "
                    f"{esc(', '.join(sorted(names.values())) or 'none')}")
        return account, names[args[1].upper()]

    async def _flag(self, update: Any, role: Role, pause: bool) -> None:
        refused = self._refuse_readonly(role)
        if refused:
            await self.reply(update, refused)
            return
        _, args = _parse_command(update.effective_message.text or "")
        scope = self._scope(args)
        if isinstance(scope, str):
            await self.reply(update, scope)
            return
        account, strategy = scope
        actor = f"telegram:{update.effective_user.id}"
        fn = flags.pause if pause else flags.resume
        flag = fn(self.store, account, strategy, reason=f"/{'pause' if pause else 'resume'} via Telegram",
                  actor=actor, ts=self.clock.now_ms())
        if pause:
            await self.reply(update, f"⏸ <b>paused</b> new entries: {esc(flag.scope)}\n"
                                     "exits and protective orders keep working.")
            return
        text = f"▶️ <b>resumed</b> new entries: {esc(flag.scope)}"
        still = flags.entry_block(self.store, account, strategy) if account else flags.kill_switch(self.store)
        if still is not None and still.kind == flags.KILL_SWITCH:
            text = (f"pause cleared for {esc(flag.scope)}, but ⛔ <b>new entries are still BLOCKED</b>: "
                    f"{esc(flags.block_text(still))}")
        elif still is not None:
            text += f"\nnote: still blocked by {esc(still.kind)} on {esc(still.scope)}"
        await self.reply(update, text)

    async def cmd_pause(self, update: Any, context: Any, role: Role) -> None:
        await self._flag(update, role, True)

    async def cmd_resume(self, update: Any, context: Any, role: Role) -> None:
        await self._flag(update, role, False)

    async def cmd_emergency(self, update: Any, context: Any, role: Role) -> None:
        assert self.emergency_fn is not None
        refused = self._refuse_readonly(role)
        if refused:
            await self.reply(update, refused)
            return
        user, chat = update.effective_user, update.effective_chat
        _, args = _parse_command(update.effective_message.text or "")
        now = self.clock.now_ms()
        if not args:
            code = confirm.issue(self.store, EMERGENCY_ACTION, chat.id, user.id, now, self.confirm_ttl_s)
            journal.append(self.store, "emergency_requested", f"emergency shutdown requested by telegram user "
                           f"{user.id}; confirm code issued (valid {self.confirm_ttl_s} s)", level="WARNING",
                           actor=f"telegram:{user.id}", ts=now)
            await self.reply(update, f"🚨 <b>Emergency shutdown</b>\n{esc(EMERGENCY_PLAN)}\n\nTo go ahead within "
                                     f"{self.confirm_ttl_s} s send:\n<code>/emergency CONFIRM {code}</code>")
            return
        if len(args) != 2 or args[0].upper() != "CONFIRM":
            await self.reply(update, "usage: /emergency, then /emergency CONFIRM &lt;code&gt;")
            return
        outcome = confirm.redeem(self.store, args[1], EMERGENCY_ACTION, chat.id, user.id, now)
        if outcome is confirm.Redeem.WRONG:  # a wrong code voids the one issued before: ask again
            confirm.burn_outstanding(self.store, EMERGENCY_ACTION, chat.id, user.id, now)
        if outcome is not confirm.Redeem.OK:
            why = {confirm.Redeem.WRONG: "wrong code", confirm.Redeem.EXPIRED: "code expired",
                   confirm.Redeem.USED: "code already used or voided by a wrong code"}[outcome]
            journal.append(self.store, "emergency_refused", f"emergency confirm refused: {why}", level="WARNING",
                           actor=f"telegram:{user.id}", ts=now)
            await self.reply(update, f"⛔ refused: {why}. Nothing was done. Send /emergency for a new code.")
            return
        actor = f"telegram:{user.id}"
        journal.append(self.store, "emergency_confirmed", f"emergency shutdown confirmed by telegram user {user.id}",
                       level="CRITICAL", actor=actor, ts=now)
        await self.reply(update, "🚨 confirmed — running the emergency shutdown now…")
        verdict = await self.emergency_fn(actor)
        head = "✅ emergency shutdown done" if verdict.ok else "❌ emergency shutdown did NOT complete"
        await self.reply(update, f"<b>{head}</b>\n{esc(verdict.summary)}")


    # ------------------------------------------------------------------ kill switch
    async def cmd_killswitch(self, update: Any, context: Any, role: Role) -> None:
        """``/killswitch`` shows it; ``/killswitch on [account]`` sets it at once (it only ever stops entries);
        ``/killswitch off [account]`` issues a one-time code and ``/killswitch CONFIRM <code>`` clears it."""
        _, args = _parse_command(update.effective_message.text or "")
        if not args or args[0].lower() == "status":
            await self.reply(update, views.kill_switch_text(self.store))
            return
        refused = self._refuse_readonly(role)
        if refused:
            await self.reply(update, refused)
            return
        user, chat = update.effective_user, update.effective_chat
        actor, now = f"telegram:{user.id}", self.clock.now_ms()
        verb = args[0].lower()
        if verb in ("on", "off"):
            if len(args) > 2 or (len(args) == 2 and args[1] not in self.settings.accounts):
                await self.reply(update, f"usage: /killswitch {verb} [account]; accounts: "
                                         f"{esc(', '.join(sorted(self.settings.accounts)) or 'none')}")
                return
            account = args[1] if len(args) == 2 else ""
        if verb == "on":
            flags.set_kill_switch(self.store, True, reason="/killswitch on via Telegram", actor=actor, ts=now,
                                  account=account)
            await self.reply(update, f"🛑 <b>kill switch ON</b> for {esc(account or 'every account')}: no new "
                                     "entries; exits and protective orders keep working.")
            return
        if verb == "off":
            on = [f for f in flags.kill_switches(self.store) if not account or f.account == account]
            if not on:
                await self.reply(update, f"the kill switch is not on for {esc(account or 'any account')}; "
                                         "nothing to clear")
                return
            code = confirm.issue(self.store, f"{KILL_OFF_ACTION}:{account}", chat.id, user.id, now,
                                 self.confirm_ttl_s)
            journal.append(self.store, "kill_switch_off_requested", f"kill switch off for {account or 'all'} "
                           f"requested by telegram user {user.id}; confirm code issued", level="WARNING",
                           actor=actor, ts=now)
            what = "\n".join(esc(flags.block_text(f)) for f in on)
            await self.reply(update, f"⚠️ <b>Clear the kill switch</b> — new entries will be allowed again.\n{what}"
                                     f"\n\nTo go ahead within {self.confirm_ttl_s} s send:\n"
                                     f"<code>/killswitch CONFIRM {code}</code>")
            return
        if verb != "confirm" or len(args) != 2:
            await self.reply(update, "usage: /killswitch [status | on [account] | off [account]], then "
                                     "/killswitch CONFIRM &lt;code&gt;")
            return
        outcome, account = confirm.Redeem.WRONG, ""
        for scope in ["", *sorted(self.settings.accounts)]:
            outcome = confirm.redeem(self.store, args[1], f"{KILL_OFF_ACTION}:{scope}", chat.id, user.id, now)
            if outcome is not confirm.Redeem.WRONG:
                account = scope
                break
        if outcome is not confirm.Redeem.OK:
            if outcome is confirm.Redeem.WRONG:
                confirm.burn_outstanding(self.store, KILL_OFF_ACTION, chat.id, user.id, now)
            why = {confirm.Redeem.WRONG: "wrong code", confirm.Redeem.EXPIRED: "code expired",
                   confirm.Redeem.USED: "code already used or voided by a wrong code"}[outcome]
            journal.append(self.store, "kill_switch_off_refused", f"kill switch confirm refused: {why}",
                           level="WARNING", actor=actor, ts=now)
            await self.reply(update, f"⛔ refused: {why}. The kill switch stays on. Send /killswitch off for a "
                                     "new code.")
            return
        cleared = flags.clear_kill_switches(self.store, [account] if account else None,
                                            "/killswitch off confirmed via Telegram", actor, ts=now)
        text = "✅ <b>kill switch cleared</b>: " + esc(", ".join(f.account or "all" for f in cleared) or "nothing")
        still = flags.kill_switch(self.store, account or None)
        if still is not None:
            text += f"\nstill blocked: {esc(flags.block_text(still))}"
        await self.reply(update, text)


def _username(context: Any) -> str | None:
    """This bot's own @username (known after PTB's getMe at start), or None."""
    try:
        return context.bot.username
    except Exception:  # not initialised yet: nothing to compare against
        return None


def _parse_command(text: str, bot_username: str | None = None) -> tuple[str | None, list[str]]:
    """(command without slash or @botname, arguments) or (None, []) for a non-command — also for a command
    addressed to another bot (``/pause@OtherBot`` in a group is not ours to obey)."""
    if not text.startswith("/"):
        return None, []
    parts = text.split()
    name, _, addressed = parts[0][1:].partition("@")
    if addressed and bot_username and addressed.lower() != bot_username.lower():
        return None, []
    return name.lower(), parts[1:]


def _watch_once(watch: Callable[[], Any] | None, sender: Any) -> None:
    if watch is None:
        return
    try:
        if watch() and sender is not None:
            sender.wake()
    except Exception:  # noqa: BLE001 - a failed check must not stop the bot; the next tick checks again
        log.exception("runner liveness check failed")


def _chunks(text: str) -> list[str]:
    if len(text) <= MAX_MESSAGE:
        return [text]
    out, buf = [], ""
    for line in text.split("\n"):
        while len(line) > MAX_MESSAGE:
            if buf:
                out.append(buf)
                buf = ""
            out.append(line[:MAX_MESSAGE])
            line = line[MAX_MESSAGE:]
        if len(buf) + len(line) + 1 > MAX_MESSAGE:
            out.append(buf)
            buf = line
        else:
            buf = f"{buf}\n{line}" if buf else line
    if buf:
        out.append(buf)
    return out


async def run_bot(bot: AlbraBot, token: str, *, base_url: str | None = None,
                  sender_factory: Callable[[Any], "AlertSender"] | None = None,
                  stop: asyncio.Event | None = None, poll_interval: float = 0.0, poll_timeout: int = 10,
                  heartbeat_s: float = 10.0, ready: asyncio.Event | None = None,
                  watch: Callable[[], Any] | None = None) -> None:
    """Run the bot until ``stop`` is set (or the task is cancelled).

    ``sender_factory(app_bot)`` builds the :class:`AlertSender` that drains the outbox through the same
    ``telegram.Bot`` (pass None to leave alerts to the runners). ``ready`` is set once polling runs. ``watch`` is
    called every ``heartbeat_s`` (the runners' liveness watch, :class:`albra.notify.liveness_watch.LivenessWatch`);
    when it queued an alert the sender is woken so the alert leaves at once.
    """
    from telegram import BotCommand

    stop = stop or asyncio.Event()
    app = bot.build_application(token, base_url)
    sender_task: asyncio.Task[None] | None = None
    sender = None
    started = runners.wall_now()
    async with app:
        await app.bot.set_my_commands([BotCommand(c.name, c.help[:256]) for c in bot.commands()])
        await app.start()
        await app.updater.start_polling(poll_interval=poll_interval, timeout=poll_timeout,
                                        drop_pending_updates=True, allowed_updates=["message"])
        try:
            if sender_factory is not None:
                sender = sender_factory(app.bot)
                sender_task = asyncio.create_task(sender.run(), name="bot-alert-sender")
            runners.beat(bot.store, "bot", "running", {"commands": [c.name for c in bot.commands()]},
                         started_ms=started)
            journal.append(bot.store, "bot_started", "telegram bot started", actor="bot")
            if ready is not None:
                ready.set()
            _watch_once(watch, sender)
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), heartbeat_s)
                except asyncio.TimeoutError:
                    runners.beat(bot.store, "bot", "running")  # heartbeats are wall-clock (liveness)
                    _watch_once(watch, sender)
        finally:
            if sender is not None:
                sender.stop()
            if sender_task is not None:
                try:
                    await asyncio.wait_for(sender_task, 5)
                except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    sender_task.cancel()
            await app.updater.stop()
            await app.stop()
            runners.beat(bot.store, "bot", "stopped")
            journal.append(bot.store, "bot_stopped", "telegram bot stopped", actor="bot")
