"""Build the alert sender a runner (or a command) runs, from the loaded settings.

Why here and not in each runner: every process that drains the outbox must agree on the chats, the level
routing and the Bot API base URL, and must behave the same when Telegram is not configured — alerts then
stay in the outbox (status ``queued``) and a warning says so, instead of being dropped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from albra.notify.kinds import Routing
from albra.store.db import Store
from albra.timefmt import Clock

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.notify.sender import AlertSender

log = logging.getLogger("albra.notify")


def routing_from_settings(settings: "Settings") -> Routing:
    """The level routing of ``[telegram.alerts]`` (pass it to :func:`albra.notify.emit`)."""
    return Routing.from_settings(settings.telegram.alerts)


def alert_chats(settings: "Settings") -> tuple[int, ...]:
    """Where alerts go: ``telegram.chat_ids``, else the admins' private chats."""
    tg = settings.telegram
    return tuple(sorted(set(tg.chat_ids))) or tuple(sorted(set(tg.admin_user_ids)))


def bot_api_base_url(settings: "Settings") -> str | None:
    """``telegram.api_base_url`` as python-telegram-bot wants it (``…/bot``), or None for api.telegram.org."""
    url = settings.telegram.api_base_url
    if not url:
        return None
    root = url.rstrip("/")
    return root if root.endswith("/bot") else root + "/bot"


def sender_from_settings(settings: "Settings", store: Store, *, clock: Clock | None = None) -> "AlertSender | None":
    """An :class:`AlertSender` with its own Telegram client, or None (warning logged) when Telegram is
    disabled, has no chat to send to, or has no token. Run it as a task: ``asyncio.create_task(s.run())``."""
    from albra.notify.sender import AlertSender
    from albra.notify.transport import TelegramTransport

    tg = settings.telegram
    if not tg.enabled:
        log.warning("telegram.enabled is false: alerts stay in the outbox (status queued) and the log")
        return None
    chats = alert_chats(settings)
    if not chats:
        log.warning("no telegram.chat_ids or admin_user_ids: alerts stay in the outbox and the log")
        return None
    token = settings.telegram_token(required=False)
    if token is None:
        log.warning("%s is not set: alerts stay in the outbox and the log", tg.token_env)
        return None
    transport = TelegramTransport.create(token.reveal(), bot_api_base_url(settings))
    return AlertSender(store, transport, chats, routing=routing_from_settings(settings), clock=clock)
