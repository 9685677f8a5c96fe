"""albra's exchange error classes and the one place ccxt's exceptions are mapped onto them (ADR 0005).

Every failure is exactly one of three kinds, because the caller's reaction differs:

* :class:`Retryable` — nothing happened on the exchange (or it was a read); back off and try again within a budget
  (network errors, 5xx on reads, 429/418 once the wait Binance asks for is over, -1021 after a time re-sync,
  Binance -1000/-1001 "internal error", junk bodies on reads).
* :class:`OutcomeUnknown` — an order placement whose result we did not see (timeout, 5xx, lost or junk response):
  the order may exist. Resolve it by looking the client id up; never send it again blindly.
* :class:`Fatal` — the exchange answered and said no (insufficient margin, invalid order, authentication, bad
  symbol). Retrying cannot help; journal and alert.

``classify`` must be told whether the call was a placement: the same ccxt ``RequestTimeout`` is harmless on a
read and means "maybe placed" on a ``POST /order``.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Mapping


class ExchangeError(Exception):
    """Base of every error a gateway raises. ``code`` is Binance's error code when one was seen, ``status`` the
    HTTP status when known, ``source`` the name of the original exception class."""

    kind = "error"

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None,
                 source: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.source = source


# --- retryable ---------------------------------------------------------------------------------------------------

class Retryable(ExchangeError):
    """Safe to try again after a back-off."""

    kind = "retryable"


class NetworkFailure(Retryable):
    """Connection refused/reset, timeout, 5xx, Binance -1000/-1001/-1008."""


class ClockSkew(Retryable):
    """-1021: our timestamp is outside recvWindow. Re-sync the time difference, then retry."""


class RateLimited(Retryable):
    """HTTP 429 (or -1003): too much weight. ``retry_after_s`` is what Binance asked for (Retry-After header), or
    None if it did not say. Alert-worthy: one more step and the IP is banned."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class IpBanned(RateLimited):
    """HTTP 418: the IP is banned until Retry-After. Every runner on the host must stop calling."""


class MalformedResponse(Retryable):
    """A response that parsed as junk (HTML with status 200, empty body, missing or None fields). Retryable on
    reads; a placement with a junk response is raised as :class:`OutcomeUnknown` instead."""


# --- outcome unknown ---------------------------------------------------------------------------------------------

class OutcomeUnknown(ExchangeError):
    """A placement that may or may not have reached the book. Resolve by client id (``resolve_unknown``)."""

    kind = "unknown"

    def __init__(self, message: str, *, client_id: str | None = None, is_algo: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.client_id = client_id
        self.is_algo = is_algo


# --- fatal -------------------------------------------------------------------------------------------------------

class Fatal(ExchangeError):
    """The exchange understood and refused. Never retried."""

    kind = "fatal"


class InsufficientMargin(Fatal):
    """-2019 margin is insufficient (or -2018 balance)."""


class InvalidOrder(Fatal):
    """The order breaks a rule: reduce-only rejected (-2022), min notional (-4164), would trigger immediately
    (-2021), bad precision, wrong endpoint, duplicate client id, reduceOnly in hedge mode (-1106) ..."""


class UnknownOrder(InvalidOrder):
    """-2011/-2013: the exchange does not know this order (lookups turn this into None)."""


class AuthFailed(Fatal):
    """Bad key, bad signature, missing permission (-2015, -1022, 401/403)."""


class BadSymbol(Fatal):
    """-1121 invalid symbol, or a symbol the loaded markets do not have."""


class Rejected(Fatal):
    """Any other explicit refusal from the exchange (an error code ccxt maps to no more specific class)."""


# --- local -------------------------------------------------------------------------------------------------------

class CircuitOpen(ExchangeError):
    """The circuit breaker is open: the exchange failed repeatedly, calls are refused until the cool-down ends.
    Nothing was sent."""

    kind = "circuit_open"

    def __init__(self, message: str, *, retry_in_s: float = 0.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_in_s = retry_in_s


_CODE_RE = re.compile(r'"code"\s*:\s*"?(-?\d+)')
_STATUS_RE = re.compile(r"^\S+ (\d{3}) ")


def error_code(exc: BaseException) -> int | None:
    """Binance's numeric error code from a ccxt exception message (``binanceusdm {"code":-2019,...}``)."""
    m = _CODE_RE.search(str(exc))
    return int(m.group(1)) if m else None


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except (TypeError, ValueError):
                return None
    return None


def _http_status(exc: BaseException) -> int | None:
    m = _STATUS_RE.match(str(exc))
    return int(m.group(1)) if m else None


def classify(exc: BaseException, during_placement: bool, headers: Mapping[str, Any] | None = None,
             client_id: str | None = None, is_algo: bool = False) -> ExchangeError:
    """Map any exception raised by a ccxt call (or by our own timeout/validation) onto albra's classes.

    ``headers`` are the response headers of the failed call (``ex.last_response_headers``), used for
    Retry-After. An albra :class:`ExchangeError` passes through, except that on a placement anything that is not
    a definite refusal becomes :class:`OutcomeUnknown`.
    """
    import ccxt  # the exception classes; already imported by whoever made the call

    msg = f"{type(exc).__name__}: {exc}"
    code = error_code(exc)
    src = type(exc).__name__
    kw: dict[str, Any] = {"code": code, "source": src}

    def unknown(why: str) -> OutcomeUnknown:
        return OutcomeUnknown(f"order {client_id or '?'} outcome unknown ({why}): {msg}", client_id=client_id,
                              is_algo=is_algo, status=_http_status(exc), code=code, source=src)

    if isinstance(exc, ExchangeError):
        if during_placement and isinstance(exc, (NetworkFailure, MalformedResponse)):
            return unknown(type(exc).__name__)
        return exc

    # rate limits and clock skew: Binance rejected the request before processing it — nothing was placed.
    if isinstance(exc, ccxt.DDoSProtection):
        status = _http_status(exc)
        if status == 418:
            return IpBanned(msg, retry_after_s=_retry_after(headers), status=418, **kw)
        return RateLimited(msg, retry_after_s=_retry_after(headers), status=status or 429, **kw)
    if isinstance(exc, ccxt.RateLimitExceeded):
        return RateLimited(msg, retry_after_s=_retry_after(headers), **kw)
    if isinstance(exc, ccxt.InvalidNonce):
        return ClockSkew(msg, **kw)

    # ccxt could not parse / got nothing: junk.
    if isinstance(exc, ccxt.BadResponse):
        return unknown("malformed response") if during_placement else MalformedResponse(msg, **kw)
    # network errors, timeouts, 5xx, Binance internal errors (-1000/-1001/-1008 come as bare OperationFailed)
    if isinstance(exc, ccxt.OperationFailed):
        return unknown("no answer") if during_placement else NetworkFailure(msg, status=_http_status(exc), **kw)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError, OSError)):
        return unknown("timeout") if during_placement else NetworkFailure(msg, **kw)

    # explicit refusals
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientMargin(msg, **kw)
    if isinstance(exc, ccxt.OrderNotFound) or code in (-2011, -2013):
        return UnknownOrder(msg, **kw)
    if isinstance(exc, ccxt.InvalidOrder):
        return InvalidOrder(msg, **kw)
    if isinstance(exc, ccxt.BadSymbol) or code == -1121:
        return BadSymbol(msg, **kw)
    if isinstance(exc, ccxt.AuthenticationError):
        return AuthFailed(msg, **kw)
    if isinstance(exc, ccxt.BadRequest):
        return InvalidOrder(msg, **kw) if during_placement else Rejected(msg, **kw)
    if isinstance(exc, ccxt.ExchangeError):
        # a plain ExchangeError from aiohttp's ClientError (no Binance code) is a transport problem
        if code is None and exc.__cause__ is not None:
            return unknown("transport error") if during_placement else NetworkFailure(msg, **kw)
        return Rejected(msg, **kw)

    # anything else (ccxt choking on junk: TypeError, KeyError, json errors) is a malformed response
    if isinstance(exc, (TypeError, KeyError, ValueError, IndexError, AttributeError, json.JSONDecodeError)):
        return unknown("unparseable response") if during_placement else MalformedResponse(msg, **kw)
    return unknown("unexpected error") if during_placement else NetworkFailure(msg, **kw)


_FATAL_BY_CODE: dict[int, type[Fatal]] = {
    -2019: InsufficientMargin, -2018: InsufficientMargin,
    -2011: UnknownOrder, -2013: UnknownOrder,
    -1121: BadSymbol,
    -2015: AuthFailed, -1022: AuthFailed, -2014: AuthFailed,
    -2022: InvalidOrder, -4164: InvalidOrder, -2021: InvalidOrder, -4120: InvalidOrder, -1106: InvalidOrder,
    -1111: InvalidOrder, -4003: InvalidOrder, -4005: InvalidOrder, -4014: InvalidOrder, -4015: InvalidOrder,
    -4061: InvalidOrder, -1102: InvalidOrder, -4028: InvalidOrder,
}


def from_binance_code(code: int, msg: str, during_placement: bool = False) -> ExchangeError:
    """An albra error for a Binance error code seen without ccxt (the in-process simulator behind the paper
    gateway raises Binance's codes directly). Mirrors what ``classify`` gives for the same code through ccxt."""
    text = f"{code}: {msg}"
    if code == -1021:
        return ClockSkew(text, code=code)
    if code == -1003:
        return RateLimited(text, code=code)
    if code in (-1000, -1001, -1007, -1008):
        return OutcomeUnknown(text, code=code) if during_placement else NetworkFailure(text, code=code)
    cls = _FATAL_BY_CODE.get(code, Rejected)
    if cls is Rejected and during_placement and -1199 <= code <= -1100:
        cls = InvalidOrder  # malformed request parameters
    return cls(text, code=code)
