"""A local Telegram Bot API server (aiohttp, 127.0.0.1, port 0) for tests and drills.

It speaks what python-telegram-bot 22 actually sends (facts §5): POST to ``/bot<TOKEN>/<method>``, empty
bodies for parameterless calls, ``application/x-www-form-urlencoded`` otherwise with complex values
JSON-encoded. It implements getMe, deleteWebhook, getUpdates (queue-backed, honours ``offset`` and
``timeout``), sendMessage (recorded), setMyCommands, and per-method fault injection (an error status with
``retry_after``, a delay, a hang until released, a dropped connection). Tests inject user messages with
:meth:`FakeBotApi.command` / :meth:`FakeBotApi.text`.

Also here: :class:`FakeTime`, a clock whose ``sleep`` advances it instantly, for deterministic pacing tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "albra", "username": "albra_test_bot"}


@dataclass
class Fault:
    """What to do to the next ``times`` calls of a method (``times=None``: until cleared)."""

    status: int | None = None          # reply with {"ok": false, "error_code": status}
    description: str = ""
    retry_after: int | None = None     # parameters.retry_after for a 429
    delay_s: float = 0.0               # sleep before answering normally
    hang: bool = False                 # hold the request until release() / stop()
    drop: bool = False                 # close the connection without a reply
    times: int | None = 1


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    ts: float = field(default_factory=time.monotonic)


class FakeBotApi:
    """A local Bot API server. ``base_url`` is what to pass to ``Application.builder().base_url(...)``."""

    def __init__(self, token: str = "123456:TEST-token-for-the-local-fake-bot-api-xx") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.sent: list[dict[str, Any]] = []
        self.answered: dict[str, int] = {}        # method -> replies completed
        self._faults: dict[str, list[Fault]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Condition()
        self._sent_cond = asyncio.Condition()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> "FakeBotApi":
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeBotApi":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ faults
    def fault(self, method: str, fault: Fault) -> None:
        """Queue a fault for ``method`` (e.g. ``sendMessage``); faults apply in the order added."""
        if fault.hang:
            self._release.clear()
        self._faults.setdefault(method, []).append(fault)

    def clear_faults(self, method: str | None = None) -> None:
        if method is None:
            self._faults.clear()
        else:
            self._faults.pop(method, None)

    def release(self) -> None:
        """Let hung requests answer (normally) and stop hanging new ones."""
        for faults in self._faults.values():
            faults[:] = [f for f in faults if not f.hang]
        self._release.set()

    def _take_fault(self, method: str) -> Fault | None:
        faults = self._faults.get(method)
        if not faults:
            return None
        f = faults[0]
        if f.times is not None:
            f.times -= 1
            if f.times <= 0:
                faults.pop(0)
        return f

    # ------------------------------------------------------------------ user input
    def command(self, text: str, *, user_id: int, chat_id: int | None = None, chat_type: str | None = None,
                username: str = "") -> int:
        """Inject a message whose text starts with a ``/command`` (with a bot_command entity); returns update id."""
        word = text.split()[0]
        return self._message(text, user_id, chat_id, chat_type, username,
                             [{"type": "bot_command", "offset": 0, "length": len(word)}])

    def text(self, text: str, *, user_id: int, chat_id: int | None = None, chat_type: str | None = None) -> int:
        """Inject a plain text message."""
        return self._message(text, user_id, chat_id, chat_type, "", None)

    def _message(self, text: str, user_id: int, chat_id: int | None, chat_type: str | None, username: str,
                 entities: list[dict[str, Any]] | None) -> int:
        cid = user_id if chat_id is None else chat_id
        ctype = chat_type or ("private" if cid > 0 else "group")
        chat: dict[str, Any] = {"id": cid, "type": ctype}
        if ctype != "private":
            chat["title"] = "albra ops"
        uid = next(self._update_ids)
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()), "chat": chat, "text": text,
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}",
                     **({"username": username} if username else {})},
        }
        if entities:
            msg["entities"] = entities
        self._updates.append({"update_id": uid, "message": msg})
        asyncio.get_running_loop().create_task(self._notify_update())
        return uid

    async def _notify_update(self) -> None:
        async with self._new_update:
            self._new_update.notify_all()

    # ------------------------------------------------------------------ waiting helpers for tests
    async def wait_sent(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` messages were sent in total (a safety timeout, not a timing assertion)."""
        async def _wait() -> None:
            async with self._sent_cond:
                await self._sent_cond.wait_for(lambda: len(self.sent) >= n)
        await asyncio.wait_for(_wait(), timeout)
        return self.sent

    async def wait_calls(self, method: str, n: int, timeout: float = 10.0) -> None:
        """Wait until ``method`` was called at least ``n`` times."""
        async def _wait() -> None:
            while sum(1 for c in self.calls if c.method == method) < n:
                await asyncio.sleep(0.005)
        await asyncio.wait_for(_wait(), timeout)

    def sent_to(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if m["chat_id"] == chat_id]

    def consumed_offset(self) -> int:
        """The highest offset a getUpdates call has acknowledged (updates below it are consumed)."""
        offs = [int(c.params.get("offset", 0)) for c in self.calls if c.method == "getUpdates"]
        return max(offs, default=0)

    # ------------------------------------------------------------------ HTTP
    async def _params(self, request: web.Request) -> dict[str, Any]:
        body = await request.read()
        if not body:
            return {}
        ctype = request.content_type
        if ctype == "application/json":
            return dict(json.loads(body))
        if ctype == "application/x-www-form-urlencoded":
            form = await request.post()
            out: dict[str, Any] = {}
            for k, v in form.items():
                out[k] = v if isinstance(v, str) else str(v)
            return out
        if ctype.startswith("multipart/"):
            form = await request.post()
            return {k: v for k, v in form.items() if isinstance(v, str)}
        raise web.HTTPBadRequest(text=f"unsupported content type {ctype}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params))
        fault = self._take_fault(method)
        if fault is not None:
            if fault.hang:
                await self._release.wait()
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.drop:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if fault.status is not None:
                body: dict[str, Any] = {"ok": False, "error_code": fault.status,
                                        "description": fault.description or _default_description(fault.status)}
                if fault.retry_after is not None:
                    body["parameters"] = {"retry_after": fault.retry_after}
                return web.json_response(body, status=fault.status)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        result = await handler(params)
        self.answered[method] = self.answered.get(method, 0) + 1
        return web.json_response({"ok": True, "result": result})

    async def _m_getMe(self, p: dict[str, Any]) -> Any:
        return BOT_USER

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> Any:
        if str(p.get("drop_pending_updates", "")).lower() == "true":
            self._updates.clear()
        return True

    async def _m_setMyCommands(self, p: dict[str, Any]) -> Any:
        json.loads(p["commands"])  # malformed input must fail loudly
        return True

    async def _m_getUpdates(self, p: dict[str, Any]) -> Any:
        offset = int(p.get("offset", 0) or 0)
        timeout = float(p.get("timeout", 0) or 0)
        limit = int(p.get("limit", 100) or 100)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            try:
                async with self._new_update:
                    await asyncio.wait_for(self._new_update.wait_for(lambda: bool(self._updates)), timeout)
            except asyncio.TimeoutError:
                pass
        return self._updates[:limit]

    async def _m_sendMessage(self, p: dict[str, Any]) -> Any:
        if "chat_id" not in p or "text" not in p:
            raise web.HTTPBadRequest(text="sendMessage needs chat_id and text")
        chat_id = int(p["chat_id"])
        mid = next(self._message_ids)
        rec = {"chat_id": chat_id, "text": p["text"], "parse_mode": p.get("parse_mode"), "message_id": mid}
        async with self._sent_cond:
            self.sent.append(rec)
            self._sent_cond.notify_all()
        return {"message_id": mid, "date": int(time.time()), "text": p["text"],
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"}}


def _default_description(status: int) -> str:
    return {400: "Bad Request: chat not found", 403: "Forbidden: bot was blocked by the user",
            429: "Too Many Requests: retry later", 502: "Bad Gateway"}.get(status, f"error {status}")


class FakeTime:
    """Injected clock + sleep: ``sleep(s)`` records ``s``, advances the clock and yields once."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01 09:00 KST
        self._now = start_ms
        self.sleeps: list[float] = []

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * 1000)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
