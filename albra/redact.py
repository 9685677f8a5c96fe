"""Secret redaction for everything albra writes for people or files: logs, reports, Telegram, CLI.

Why a process-wide registry: a secret is resolved once (``albra.secrets``) but can surface anywhere
later — an exception message from ccxt that embeds a signed URL, a ``repr`` of a request dict, a
config dump. Every resolved secret value is registered here, and every output path calls
:func:`redact`, so the value is replaced by ``***`` no matter how it travelled.

Defensively, strings that merely *look* like a Binance API key/secret (64 letters and digits) or a
Telegram bot token (``<digits>:<35 characters>``) are redacted too, even if never registered — a key
pasted into a message by mistake, or one read by code that bypassed ``albra.secrets``.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
#: shorter values are not secrets worth masking everywhere (a Binance key is 64 characters, a bot token ~46)
MIN_SECRET_LEN = 8

# 64 letters/digits not touching other letters/digits: the shape of Binance API keys and secrets.
# (It also catches hex SHA-256 digests such as request signatures — redacting those is harmless.)
BINANCE_KEY_PATTERN = r"(?<![A-Za-z0-9])[A-Za-z0-9]{64}(?![A-Za-z0-9])"
# Telegram bot token: bot id, a colon, then the 35-character secret part (allow 30+ to be safe).
TELEGRAM_TOKEN_PATTERN = r"(?<![0-9])[0-9]{6,12}:[A-Za-z0-9_-]{30,}"


class Redactor:
    """Replaces registered secret values and secret-shaped strings with ``***``.

    Thread-safe: runners log from several threads while config code may register late secrets.
    """

    def __init__(self, patterns: tuple[str, ...] = (BINANCE_KEY_PATTERN, TELEGRAM_TOKEN_PATTERN)) -> None:
        self._patterns = patterns
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._regex = self._compile()

    def register(self, value: str | None) -> None:
        """Remember ``value`` (and its URL-encoded forms) so it is redacted from now on. A value shorter than
        ``MIN_SECRET_LEN`` is not registered: masking every "a" would mangle all output (and crashed ``config check``);
        no real key is that short, and ``config check`` warns about it."""
        if not value or len(value) < MIN_SECRET_LEN:
            return
        forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            self._regex = self._compile()

    def _compile(self) -> re.Pattern[str]:
        # Longest first so a secret that contains another secret is masked whole.
        literals = [re.escape(v) for v in sorted(self._values, key=len, reverse=True)]
        return re.compile("|".join(literals + list(self._patterns)))

    def redact(self, text: str) -> str:
        """``text`` with every secret (registered or secret-shaped) replaced by ``***``."""
        if not text:
            return text
        return self._regex.sub(MASK, text)

    def redact_obj(self, obj: Any) -> Any:
        """A copy of a JSON-like structure with every string (keys included) redacted."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        if obj is None or isinstance(obj, (bool, int, float)):
            return obj
        return self.redact(str(obj))

    def clear(self) -> None:
        """Forget registered values (tests only; patterns stay active)."""
        with self._lock:
            self._values.clear()
            self._regex = self._compile()


REDACTOR = Redactor()


def register_secret(value: str | None) -> None:
    """Register a secret value with the process-wide redactor."""
    REDACTOR.register(value)


def redact(text: str) -> str:
    """Redact ``text`` with the process-wide redactor (use for reports, Telegram, CLI output)."""
    return REDACTOR.redact(text)


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure with the process-wide redactor."""
    return REDACTOR.redact_obj(obj)
