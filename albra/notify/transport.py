"""Sending one message to one chat through python-telegram-bot, with its errors sorted into three kinds.

The sender only needs to know what to do next: wait ``retry_after`` (429), give up on this chat (400, 403,
a migrated chat, a rejected token) or retry later with backoff (timeouts, connection errors, 5xx).
``telegram`` is imported inside functions: this module is imported by runners and commands.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

from albra.notify.format import strip_html
from albra.redact import redact

log = logging.getLogger("albra.notify")

PTB_TIMEDELTA_ENV = "PTB_TIMEDELTA"


def use_timedelta_periods() -> None:
    """Opt into python-telegram-bot's future time periods (``PTB_TIMEDELTA=1``): ``RetryAfter.retry_after`` is a
    ``timedelta`` instead of an int. Why: since PTB 22.2 the int form warns (PTBDeprecationWarning) — PTB itself
    reads the attribute while building every 429 — and a later major version switches for good. :func:`classify`
    accepts both forms, so an operator who sets ``PTB_TIMEDELTA=false`` explicitly still works (``setdefault``).
    albra reads no other time-period attribute (media durations and the like), so nothing else changes."""
    os.environ.setdefault(PTB_TIMEDELTA_ENV, "1")


use_timedelta_periods()  # before any telegram exception can be built in this process

RETRY_AFTER = "retry_after"
PERMANENT = "permanent"
TRANSIENT = "transient"


class DeliveryError(Exception):
    """A message was not delivered. ``kind`` is retry_after, permanent or transient."""

    def __init__(self, kind: str, description: str, retry_after_s: float | None = None) -> None:
        super().__init__(redact(description))
        self.kind = kind
        self.description = redact(description)
        self.retry_after_s = retry_after_s


class Transport(Protocol):
    async def send(self, chat_id: int, text: str) -> None: ...


def classify(exc: BaseException) -> DeliveryError:
    """Map a python-telegram-bot exception (or an OS/httpx error) to a :class:`DeliveryError`."""
    from telegram import error as tg

    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, tg.RetryAfter):
        with warnings.catch_warnings():  # the int form warns when PTB_TIMEDELTA was explicitly turned off
            warnings.simplefilter("ignore")
            ra = exc.retry_after
        # timedelta with PTB_TIMEDELTA=1 (our default, PTB's future), int/float seconds otherwise
        seconds = ra.total_seconds() if hasattr(ra, "total_seconds") else float(ra)
        return DeliveryError(RETRY_AFTER, f"429 flood control: retry after {seconds:g} s", seconds)
    if isinstance(exc, tg.Forbidden):
        return DeliveryError(PERMANENT, f"403 Forbidden: {exc.message}")
    if isinstance(exc, tg.BadRequest):
        return DeliveryError(PERMANENT, f"400 Bad Request: {exc.message}")
    if isinstance(exc, tg.ChatMigrated):
        return DeliveryError(PERMANENT, f"chat migrated to {exc.new_chat_id}: update telegram.chat_ids")
    if isinstance(exc, (tg.InvalidToken, tg.EndPointNotFound)):
        return DeliveryError(PERMANENT, f"token rejected: {exc.message}")
    if isinstance(exc, tg.TimedOut):
        return DeliveryError(TRANSIENT, f"timed out: {exc.message}")
    if isinstance(exc, tg.NetworkError):
        return DeliveryError(TRANSIENT, f"network error: {exc.message}")
    if isinstance(exc, (OSError, ConnectionError)):
        return DeliveryError(TRANSIENT, f"connection error: {exc}")
    return DeliveryError(TRANSIENT, f"{type(exc).__name__}: {exc}")


def _is_parse_error(e: DeliveryError) -> bool:
    return e.kind == PERMANENT and "can't parse entities" in e.description.lower()


@dataclass
class TelegramTransport:
    """Sends through a ``telegram.Bot`` (the bot process passes its Application's bot; runners build one)."""

    bot: Any
    owns_bot: bool = False

    @classmethod
    def create(cls, token: str, base_url: str | None = None, *, read_timeout: float = 10.0,
               connect_timeout: float = 5.0) -> "TelegramTransport":
        """A transport with its own ``telegram.Bot`` (``base_url`` like ``http://127.0.0.1:PORT/bot``)."""
        from telegram import Bot
        from telegram.request import HTTPXRequest

        req = HTTPXRequest(connection_pool_size=4, read_timeout=read_timeout, write_timeout=read_timeout,
                           connect_timeout=connect_timeout, pool_timeout=read_timeout)
        kw: dict[str, Any] = {"request": req}
        if base_url:
            kw["base_url"] = base_url
        return cls(Bot(token, **kw), owns_bot=True)

    async def send(self, chat_id: int, text: str) -> None:
        """Send HTML ``text``; if Telegram cannot parse the HTML, resend once as plain text."""
        try:
            await self._send(chat_id, text, "HTML")
        except DeliveryError as e:
            if not _is_parse_error(e):
                raise
            log.warning("chat %s refused the HTML of an alert (%s); sending it as plain text", chat_id, e)
            await self._send(chat_id, strip_html(text), None)

    async def _send(self, chat_id: int, text: str, parse_mode: str | None) -> None:
        from telegram import LinkPreviewOptions

        try:
            await self.bot.send_message(chat_id=chat_id, text=redact(text), parse_mode=parse_mode,
                                        link_preview_options=LinkPreviewOptions(is_disabled=True))
        except Exception as exc:  # every failure is classified; none escapes unexplained
            raise classify(exc) from exc

    async def close(self) -> None:
        if self.owns_bot:
            try:
                await self.bot.shutdown()
            except Exception as exc:
                log.warning("closing the Telegram client failed: %s", redact(str(exc)))
