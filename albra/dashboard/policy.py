"""Who may reach the dashboard: the bind rule and the token check.

The rule the operator relies on: on loopback the dashboard is reachable only through the machine itself (an
SSH tunnel); anywhere else it refuses to start unless a token is configured, and then every request must carry
it. The token comes from the environment (or ``.env``) through :mod:`albra.secrets`, so it is registered with
the redactor and never printed. Comparisons are constant-time on fixed-length digests, so neither the token nor
its length leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from pathlib import Path

from albra.secrets import Secret, resolve_secret

TOKEN_ENV = "ALBRA_DASHBOARD_TOKEN"
MIN_TOKEN_LEN = 24
COOKIE_NAME = "albra_dashboard"
_COOKIE_CONTEXT = b"albra dashboard session cookie v1"
LOOPBACK_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class DashboardRefused(RuntimeError):
    """The dashboard must not start with this bind address / token combination (the message says why)."""


def is_loopback(host: str) -> bool:
    """True only for addresses that cannot be reached from another machine.

    ``localhost`` and any IPv4/IPv6 loopback address count; ``0.0.0.0``, ``::``, an empty host, a LAN address
    and any other host name do not (a name could resolve anywhere, so it is treated as reachable).
    """
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def load_token(env_file: Path | None = None) -> Secret | None:
    """The dashboard token from ``ALBRA_DASHBOARD_TOKEN`` (environment, then ``env_file``), or None.

    A token shorter than :data:`MIN_TOKEN_LEN` is refused: it would be guessable over the network.
    """
    tok = resolve_secret([TOKEN_ENV], env_file)
    if tok is not None and len(tok.reveal()) < MIN_TOKEN_LEN:
        raise DashboardRefused(
            f"{TOKEN_ENV} is too short ({MIN_TOKEN_LEN} characters at least); generate one with "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return tok


def check_bind(host: str, token: Secret | None) -> None:
    """Raise :class:`DashboardRefused` unless binding ``host`` is allowed with this token (or none)."""
    if not host.strip():
        raise DashboardRefused("--host is empty; use 127.0.0.1 (default) and an SSH tunnel")
    if token is None and not is_loopback(host):
        raise DashboardRefused(
            f"refusing to listen on {host}: it is not a loopback address and {TOKEN_ENV} is not set. "
            f"Use the default 127.0.0.1 with an SSH tunnel (ssh -L 8787:127.0.0.1:8787 server), or set "
            f"{TOKEN_ENV} in the environment or .env so every request must carry it")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def token_matches(token: Secret, presented: str | None) -> bool:
    """Constant-time check of a presented token (equal-length digests, so the length does not leak)."""
    if presented is None:
        return False
    return hmac.compare_digest(_digest(token.reveal()), _digest(presented))


def cookie_value(token: Secret) -> str:
    """The session cookie's value: derived from the token (never the token itself), stable across restarts."""
    return hmac.new(token.reveal().encode("utf-8"), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def cookie_matches(token: Secret, presented: str | None) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(_digest(cookie_value(token)), _digest(presented))


def host_header_is_loopback(host_header: str | None) -> bool:
    """True when the request's Host header names this machine (defeats DNS rebinding on a token-less bind)."""
    if not host_header:
        return False
    h = host_header.strip().lower()
    if h.startswith("["):
        name = h[: h.find("]") + 1] if "]" in h else h
    else:
        name = h.rsplit(":", 1)[0] if h.count(":") == 1 else h
    return name in LOOPBACK_HOST_NAMES or is_loopback(name)
