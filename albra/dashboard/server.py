"""The dashboard's aiohttp application: a static page and a small read-only JSON API over the store.

Rules every request goes through (one middleware, so no route can forget them):

* only GET and HEAD exist: any other method on any path is 405 — nothing here changes state;
* with a token configured, a request needs ``Authorization: Bearer <token>`` or the session cookie that a
  one-time ``GET /login?token=…`` sets (then redirects, so the token leaves the address bar); else 401;
* without a token (loopback only, see :mod:`albra.dashboard.policy`) the ``Host`` header must name this machine,
  so a web page cannot reach the dashboard through DNS rebinding;
* every response carries a strict CSP (``default-src 'self'``), ``X-Frame-Options: DENY``, ``nosniff``,
  ``no-referrer`` and ``Cache-Control: no-store``; no CORS header is ever sent.

The access log is off: a ``/login?token=`` line must never be written anywhere.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from albra.dashboard import snapshot
from albra.dashboard.exchange_view import ExchangeView, ExchangeViewError
from albra.dashboard.policy import (
    COOKIE_NAME,
    check_bind,
    cookie_matches,
    cookie_value,
    host_header_is_loopback,
    token_matches,
)
from albra.secrets import Secret
from albra.store.db import Store, StoreError
from albra.timefmt import Clock, SystemClock

if TYPE_CHECKING:
    from albra.config import Settings

ALLOWED_METHODS = ("GET", "HEAD")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_CURVE_HOURS = 24 * 7
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Server": "albra-dashboard",
}
STATIC_FILES = {"app.js": "application/javascript", "app.css": "text/css"}

_SETTINGS = web.AppKey("settings", object)
_STORE = web.AppKey("store", Store)
_TOKEN = web.AppKey("token", object)
_CLOCK = web.AppKey("clock", object)
_FILES = web.AppKey("files", dict)
_EXCHANGE = web.AppKey("exchange", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _read_static() -> dict[str, bytes]:
    root = resources.files("albra.dashboard").joinpath("static")
    files = {name: root.joinpath(name).read_bytes() for name in (*STATIC_FILES, "index.html")}
    return files


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _authorized(request: web.Request, token: Secret) -> bool:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return token_matches(token, auth[7:].strip())
    return cookie_matches(token, request.cookies.get(COOKIE_NAME))


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Method, Host and token checks for every path (known or not), before any handler runs."""
    if request.method not in ALLOWED_METHODS:
        return _error(405, f"{request.method} is not allowed: the dashboard is read-only",
                      {"Allow": ", ".join(ALLOWED_METHODS)})
    token: Secret | None = request.app[_TOKEN]  # type: ignore[assignment]
    if token is None:
        if not host_header_is_loopback(request.headers.get("Host")):
            return _error(403, "this dashboard answers only requests addressed to localhost")
    elif request.path != "/login" and not _authorized(request, token):
        return _error(401, "token required: send 'Authorization: Bearer <token>' or open /login?token=<token>",
                      {"WWW-Authenticate": 'Bearer realm="albra-dashboard"'})
    try:
        return await handler(request)
    except web.HTTPException as e:  # router 404s and the like: same headers, JSON body
        return _error(e.status, e.reason, {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for k, v in SECURITY_HEADERS.items():
        response.headers[k] = v
    for k in [h for h in response.headers if h.lower().startswith("access-control-")]:
        del response.headers[k]


def _page(name: str, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=request.app[_FILES][name], content_type=content_type, charset="utf-8")
    return handler


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location}, text="")


async def _login(request: web.Request) -> web.Response:
    token: Secret | None = request.app[_TOKEN]  # type: ignore[assignment]
    if token is None:
        return _see_other("/")
    if not token_matches(token, request.query.get("token")):
        return _error(401, "wrong or missing token", {"WWW-Authenticate": 'Bearer realm="albra-dashboard"'})
    resp = _see_other("/")
    resp.set_cookie(COOKIE_NAME, cookie_value(token), httponly=True, samesite="Strict", path="/",
                    secure=_over_tls(request))
    return resp


def _over_tls(request: web.Request) -> bool:
    """Whether the browser reached us over TLS: directly, or through a TLS-terminating proxy that says so
    (``X-Forwarded-Proto: https`` or ``Forwarded: proto=https``). The cookie is then ``Secure``: never sent back
    over plain HTTP. Marking it Secure on a forged header only stops the cookie from working, never leaks it."""
    if request.secure:
        return True
    if request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https":
        return True
    fwd = request.headers.get("Forwarded", "").split(",")[0].lower()
    return any(part.strip() == "proto=https" for part in fwd.split(";"))


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), content_type="application/json")


async def _api_summary(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS]
    store = request.app[_STORE]
    try:
        data = await asyncio.to_thread(snapshot.summary, settings, store)  # type: ignore[arg-type]
    except (StoreError, ValueError, OSError) as e:
        return _error(500, f"cannot read the store: {e}")
    data["exchange_view"] = request.app[_EXCHANGE] is not None
    return _json(data)


async def _api_equity(request: web.Request) -> web.Response:
    settings: Settings = request.app[_SETTINGS]  # type: ignore[assignment]
    account = request.query.get("account", "")
    if account not in settings.accounts:
        known = ", ".join(sorted(settings.accounts)) or "none"
        return _error(404, f"unknown account {account!r} (configured: {known})")
    raw = request.query.get("hours", str(DEFAULT_CURVE_HOURS))
    try:
        hours = int(raw)
    except ValueError:
        return _error(400, f"hours must be a whole number, got {raw!r}")
    if not 1 <= hours <= snapshot.MAX_CURVE_HOURS:
        return _error(400, f"hours must be between 1 and {snapshot.MAX_CURVE_HOURS}, got {hours}")
    clock: Clock | None = request.app[_CLOCK]  # type: ignore[assignment]
    try:
        data = await asyncio.to_thread(snapshot.equity_curve, request.app[_STORE], account, hours, _curve_now(
            request.app[_STORE], account, clock))
    except (StoreError, ValueError, OSError) as e:
        return _error(500, f"cannot read the store: {e}")
    return _json(data)


async def _api_exchange(request: web.Request) -> web.Response:
    view: ExchangeView | None = request.app[_EXCHANGE]  # type: ignore[assignment]
    if view is None:
        return _error(404, "the exchange view is off: start `albra dashboard --exchange` to allow live reads")
    settings: Settings = request.app[_SETTINGS]  # type: ignore[assignment]
    account = request.query.get("account", "")
    if account not in settings.accounts:
        known = ", ".join(sorted(settings.accounts)) or "none"
        return _error(404, f"unknown account {account!r} (configured: {known})")
    try:
        return _json(await view.read(account))
    except ExchangeViewError as e:
        return _error(e.status, str(e))


def _curve_now(store: Store, account: str, clock: Clock | None) -> int:
    """The end of an equity curve: an injected clock's time, else the exchange's time as the store knows it (the
    snapshots are stamped with it, so a drill against a server started in the past still shows its curve)."""
    if clock is not None:
        return clock.now_ms()
    from albra.store.clock import exchange_now

    return exchange_now(store, account)


def make_app(settings: "Settings", store: Store, token: Secret | None, clock: Clock | None = None,
             exchange: bool = False) -> web.Application:
    """The dashboard application over an open store. ``token`` None means loopback-only (see :func:`start`);
    ``exchange`` enables the live balance/positions view (:mod:`albra.dashboard.exchange_view`)."""
    app = web.Application(middlewares=[_guard])
    app[_SETTINGS] = settings
    app[_STORE] = store
    app[_TOKEN] = token
    app[_CLOCK] = clock  # None: the store's exchange time (one clock, albra.store.clock)
    view = ExchangeView(settings, store, clock or SystemClock()) if exchange else None
    app[_EXCHANGE] = view
    if view is not None:
        async def _close_gateways(_app: web.Application) -> None:
            await view.close()
        app.on_cleanup.append(_close_gateways)
    app[_FILES] = _read_static()
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", _page("index.html", "text/html"))
    for name, ctype in STATIC_FILES.items():
        app.router.add_get(f"/static/{name}", _page(name, ctype))
    app.router.add_get("/login", _login)
    app.router.add_get("/api/summary", _api_summary)
    app.router.add_get("/api/equity", _api_equity)
    app.router.add_get("/api/exchange", _api_exchange)
    return app


@dataclass
class Running:
    """A started dashboard: where it listens, and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(settings: "Settings", store: Store, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                token: Secret | None = None, clock: Clock | None = None, exchange: bool = False) -> Running:
    """Check the bind policy, then listen. Raises :class:`~albra.dashboard.policy.DashboardRefused` before
    opening any socket when ``host`` is not loopback and no token is given. ``port=0`` picks a free port."""
    check_bind(host, token)
    runner = web.AppRunner(make_app(settings, store, token, clock, exchange), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = [a for a in runner.addresses if isinstance(a, tuple)]
    return Running(runner, host, int(bound[0][1]) if bound else port)
