"""Client-side pacing that keeps the sender inside Telegram's limits, so 429s are the exception.

Telegram's published limits: about one message per second to one chat, 20 messages per minute to one
group (negative chat id), 30 messages per second overall. After a 429 the chat is blocked for the
server's ``retry_after``. Time comes from an injected clock and sleep so tests drive it without waiting.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Awaitable, Callable

from albra.timefmt import Clock

Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Per-chat, per-group and global pacing with 429 penalties."""

    def __init__(self, clock: Clock, sleep: Sleep, *, per_chat_interval_s: float = 1.0,
                 group_per_minute: int = 20, global_per_second: int = 30) -> None:
        self._clock = clock
        self._sleep = sleep
        self._per_chat_ms = int(per_chat_interval_s * 1000)
        self._group_per_minute = group_per_minute
        self._global_per_second = global_per_second
        self._last: dict[int, int] = {}
        self._group_sent: dict[int, deque[int]] = defaultdict(deque)
        self._global_sent: deque[int] = deque()
        self._blocked_until: dict[int, int] = {}

    def wait_ms(self, chat_id: int) -> int:
        """How long until a message to ``chat_id`` may go (0 = now)."""
        now = self._clock.now_ms()
        due = now
        if chat_id in self._last:
            due = max(due, self._last[chat_id] + self._per_chat_ms)
        due = max(due, self._blocked_until.get(chat_id, 0))
        if chat_id < 0:
            g = self._group_sent[chat_id]
            while g and g[0] <= now - 60_000:
                g.popleft()
            if len(g) >= self._group_per_minute:
                due = max(due, g[0] + 60_000)
        while self._global_sent and self._global_sent[0] <= now - 1000:
            self._global_sent.popleft()
        if len(self._global_sent) >= self._global_per_second:
            due = max(due, self._global_sent[0] + 1000)
        return max(0, due - now)

    async def acquire(self, chat_id: int) -> None:
        """Wait (with the injected sleep) until a message may go to ``chat_id``, then count it as sent."""
        while True:
            w = self.wait_ms(chat_id)
            if w <= 0:
                break
            await self._sleep(w / 1000)
        now = self._clock.now_ms()
        self._last[chat_id] = now
        if chat_id < 0:
            self._group_sent[chat_id].append(now)
        self._global_sent.append(now)

    def penalise(self, chat_id: int, retry_after_s: float) -> None:
        """Telegram said 429: nothing more to ``chat_id`` for ``retry_after_s`` seconds."""
        until = self._clock.now_ms() + int(retry_after_s * 1000)
        self._blocked_until[chat_id] = max(self._blocked_until.get(chat_id, 0), until)
