"""API keys and tokens: read from the process environment, then a ``.env`` file — never from the
TOML config, never written anywhere.

Why not ``load_dotenv``: it copies the file into ``os.environ`` for the whole process, where any child
process or crash dump inherits it. Here the file is read with ``dotenv_values`` into a private dict
and only the values asked for are taken out. Each resolved value is registered with the redactor
(``albra.redact``) before it is returned, so it cannot appear in a log line or report afterwards.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pydantic import SecretStr

from albra.redact import register_secret


class EnvFileError(ValueError):
    """A ``.env`` file exists but cannot be read or parsed."""


@dataclass(frozen=True)
class Secret:
    """A secret value that never prints itself.

    ``str()``/``repr()`` show only where it came from (the env var name and ``environment`` or the
    ``.env`` path); :meth:`reveal` is the one way to get the value, for the exchange/Telegram client.
    """

    env_var: str
    source: str
    _value: SecretStr

    def reveal(self) -> str:
        """The plain value — pass it straight to the client that needs it, never to a message."""
        return self._value.get_secret_value()

    def __str__(self) -> str:
        return f"{self.env_var} (set, from {self.source})"

    def __repr__(self) -> str:
        return f"Secret({self.env_var!r}, source={self.source!r})"


@dataclass(frozen=True)
class AccountSecrets:
    """The key pair a live/demo account signs requests with."""

    api_key: Secret
    api_secret: Secret


def read_env_file(path: Path) -> dict[str, str]:
    """The key/value pairs of a ``.env`` file ({} if the file does not exist).

    A line python-dotenv cannot parse is an error naming the line: a half-read ``.env`` would make a
    key look "missing" for the wrong reason.
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"{path}: cannot read: {exc}") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            raise EnvFileError(f"{path}: line {line}: cannot parse this line (expected NAME=value)")
    values = dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in values.items() if v is not None}


def resolve_secret(
    names: Sequence[str],
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    env_file_values: Mapping[str, str] | None = None,
) -> Secret | None:
    """The first of ``names`` that is set (non-empty) in the environment, else in ``env_file``.

    ``names`` lists the preferred variable first and accepted aliases after it (e.g.
    ``BINANCE_SECRET_KEY`` then ``BINANCE_API_SECRET``). Returns None when none is set; the caller
    decides whether that is an error (a live account) or fine (paper).
    """
    env = os.environ if environ is None else environ
    for name in names:
        value = env.get(name)
        if value:
            register_secret(value)
            return Secret(name, "environment", SecretStr(value))
    if env_file is not None:
        file_values = read_env_file(env_file) if env_file_values is None else env_file_values
        for name in names:
            value = file_values.get(name)
            if value:
                register_secret(value)
                return Secret(name, str(env_file), SecretStr(value))
    return None
