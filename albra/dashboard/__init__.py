"""The operator's read-only web dashboard (``albra dashboard``).

Why it exists in this shape: the replaced system's dashboard listened on every interface with no
authentication, sent ``Access-Control-Allow-Origin: *`` and had an unauthenticated POST that touched live
state. This one binds to loopback by default (an SSH tunnel is the way in), refuses to start off-loopback
without a token, answers only GET/HEAD, sends no CORS headers and only reads the store.

Modules: :mod:`policy` (bind and token rules), :mod:`figures` (how figures are written, shared by the API
and therefore the page), :mod:`snapshot` (what the page shows, read from the store), :mod:`server` (the
aiohttp application and runner). The page itself is ``static/`` (vanilla JS, no build step, no CDN).
"""

from __future__ import annotations

from albra.dashboard.policy import DashboardRefused, TOKEN_ENV, check_bind, is_loopback

__all__ = ["DashboardRefused", "TOKEN_ENV", "check_bind", "is_loopback"]
