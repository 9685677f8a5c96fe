"""Who the bot answers: configured user ids with a role, in configured chats — fail closed.

Why user ids and not chat ids alone: in a group chat every member shares the chat id, so a chat id cannot
say who may press the emergency button. A user is answered only in a listed chat, or in their own private
chat with the bot. The original system let everyone in when nothing was configured (original-system.md
§7.1); here building an :class:`Access` with no users raises, and ``albra bot`` exits 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable


class Role(StrEnum):
    ADMIN = "admin"          # every command
    READONLY = "readonly"    # queries only: no pause, resume or emergency


class AccessConfigError(ValueError):
    """The bot has nobody to answer; it must not start."""


@dataclass(frozen=True)
class Access:
    admin_user_ids: frozenset[int]
    readonly_user_ids: frozenset[int]
    chat_ids: frozenset[int]

    def __post_init__(self) -> None:
        if not self.admin_user_ids and not self.readonly_user_ids:
            raise AccessConfigError(
                "the Telegram bot has no allowed users, so it refuses to start (it never answers everyone). "
                "Put your Telegram user id in telegram.admin_user_ids (or readonly_user_ids) in the config, "
                "or set ALBRA_TELEGRAM__ADMIN_USER_IDS='[<id>]'. chat_ids / TELEGRAM_CHAT_ID only say where "
                "the bot talks, not who it obeys.")
        both = self.admin_user_ids & self.readonly_user_ids
        if both:
            raise AccessConfigError(f"user id(s) {sorted(both)} are both admin and readonly; pick one role")

    @classmethod
    def of(cls, admin_user_ids: Iterable[int] = (), readonly_user_ids: Iterable[int] = (),
           chat_ids: Iterable[int] = ()) -> "Access":
        return cls(frozenset(int(x) for x in admin_user_ids), frozenset(int(x) for x in readonly_user_ids),
                   frozenset(int(x) for x in chat_ids))

    @classmethod
    def from_settings(cls, telegram: object) -> "Access":
        """From ``settings.telegram`` (``admin_user_ids``, ``readonly_user_ids``, ``chat_ids``)."""
        return cls.of(getattr(telegram, "admin_user_ids"), getattr(telegram, "readonly_user_ids"),
                      getattr(telegram, "chat_ids"))

    def role(self, user_id: int | None, chat_id: int | None, chat_type: str | None) -> Role | None:
        """The user's role in this chat, or None (ignore the message)."""
        if user_id is None or chat_id is None:
            return None
        if user_id in self.admin_user_ids:
            role = Role.ADMIN
        elif user_id in self.readonly_user_ids:
            role = Role.READONLY
        else:
            return None
        if chat_id in self.chat_ids or (chat_type == "private" and chat_id == user_id):
            return role
        return None
