"""Building the ccxt ``binanceusdm`` client for live, demo trading or a local base URL (the sim server, a proxy).

Demo trading (Binance's rehearsal exchange for USDⓈ-M futures since the futures testnet was retired for API use) is
reached through ccxt's own switch, ``enable_demo_trading(True)``: it swaps every REST base to ``demo-fapi.binance.com``
(algo orders and the listenKey included) and keeps ccxt's error mapping and signing as for Binance. ccxt's sandbox
mode is never used: the pinned ccxt refuses every signed futures call in it. ADR 0016.

Why a factory: three settings must be right everywhere or albra misbehaves silently —
``fetchCurrencies`` off (otherwise load_markets signs a spot ``sapi`` call), time-difference adjustment on
(otherwise a drifting host clock turns every signed call into -1021), and, for a local URL, every API URL
rewritten *and* the linear error table merged into the generic one (ccxt only picks the USDⓈ-M error table for
URLs starting with ``https://fapi.binance.com/``; without the merge -2019/-2022/-4164 arrive as a bare
``ExchangeError`` and albra could not tell "insufficient margin" from anything else). See facts §2.1, §2.5, §3.2.

ccxt is imported inside the function: anything reachable from ``albra/cli.py`` must stay import-light.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

LIVE = "live"
DEMO = "demo"
LOCAL = "local"
MODES = (LIVE, DEMO, LOCAL)

#: the USDⓈ-M REST origin of each Binance mode (what ``albra config check`` prints; a test pins that ccxt builds
#: exactly these for every call albra makes)
REST_ORIGIN = {LIVE: "https://fapi.binance.com", DEMO: "https://demo-fapi.binance.com"}
#: the USDⓈ-M WebSocket origin (user data stream, public kline streams) of each mode. Demo: Binance's "Demo
#: Trading" futures stream host, the one ccxt.pro's ``urls['demo']['ws']['linear']`` names
WS_ORIGIN = {LIVE: "wss://fstream.binance.com", DEMO: "wss://fstream.binancefuture.com"}

DEFAULT_TIMEOUT_MS = 10_000
RECV_WINDOW_MS = 5_000

_ORIGIN = re.compile(r"^https?://[^/]+")


def is_loopback(base_url: str | None) -> bool:
    """True only for an http(s) URL whose host is a loopback address: 127.0.0.0/8, ``::1`` or ``localhost``.

    Why so strict: the test-only client settings (ccxt's throttler off) must never reach a real Binance, so
    anything that is not unmistakably this machine — no base_url, a hostname, ``localhost.example.com`` — is not
    loopback."""
    if not base_url:
        return False
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def point_at(ex: Any, base_url: str) -> None:
    """Rewrite every string entry of ``ex.urls['api']`` to ``base_url``'s origin, keeping each path, so a stray
    spot/sapi call reaches the local server and fails loudly there (404) instead of going to the internet."""
    origin = _ORIGIN.match(base_url)
    if origin is None:
        raise ValueError(f"base_url must start with http:// or https:// and a host, got {base_url!r}")
    base = origin.group(0)
    for key, value in list(ex.urls["api"].items()):
        if isinstance(value, str):
            ex.urls["api"][key] = _ORIGIN.sub(base, value)


def endpoint(mode: str, base_url: str | None = None) -> str:
    """Where an account's requests go, for people (``albra config check``): the base_url when one is set, else the
    Binance origin of ``mode``."""
    if base_url:
        m = _ORIGIN.match(base_url)
        return m.group(0) if m else base_url
    try:
        return REST_ORIGIN[mode]
    except KeyError:
        raise ValueError(f"no Binance endpoint for mode {mode!r}") from None


def apply_linear_error_table(ex: Any) -> None:
    """Make USDⓈ-M error codes map to their specific ccxt classes on a non-Binance URL (facts §3.2)."""
    ex.exceptions["exact"].update(ex.exceptions["linear"]["exact"])


def make_ccxt_client(mode: str, api_key: str | None, secret: str | None, base_url: str | None = None,
                     timeout_ms: int = DEFAULT_TIMEOUT_MS, test_mode: bool = False) -> Any:
    """A configured ``ccxt.async_support.binanceusdm``.

    ``mode``: ``live`` (Binance), ``demo`` (Binance demo trading, through ccxt's ``enable_demo_trading``) or
    ``local`` (``base_url`` required). A ``base_url`` given with ``live``/``demo`` also points the client there
    (e.g. a recording proxy).
    ``test_mode`` turns ccxt's throttler off and makes ``close()`` return at once (tests, benches only —
    production keeps the throttler: albra's weight limiter works on top of it, not instead of it). It is refused
    (ValueError) unless ``base_url`` is a loopback address (:func:`is_loopback`): it can never take effect against
    Binance itself.
    """
    if mode not in MODES:
        raise ValueError(f"unknown exchange mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == LOCAL and not base_url:
        raise ValueError("exchange mode 'local' needs a base_url (e.g. http://127.0.0.1:PORT)")
    if timeout_ms <= 0:
        raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
    if test_mode and not is_loopback(base_url):
        raise ValueError(f"test_mode (ccxt's throttler off) is only for a loopback base_url (127.0.0.0/8, ::1, "
                         f"localhost), not {base_url or 'the real exchange'!r}")
    if (api_key is None) != (secret is None):
        raise ValueError("api_key and secret must be given together (or both left out for public calls)")

    from ccxt.async_support import binanceusdm

    ex = binanceusdm({
        "apiKey": api_key or "",
        "secret": secret or "",
        "timeout": int(timeout_ms),
        "enableRateLimit": not test_mode,
        "options": {
            "fetchCurrencies": False,
            "adjustForTimeDifference": True,
            "recvWindow": RECV_WINDOW_MS,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
    })
    if test_mode:
        ex.timeout_on_exit = 0
    if mode == DEMO:
        ex.enable_demo_trading(True)
    if base_url:
        point_at(ex, base_url)
        apply_linear_error_table(ex)
    return ex
