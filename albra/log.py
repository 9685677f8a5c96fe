"""Logging for every albra process: JSON lines to a rotating file for machines, short lines on
stderr for people, secrets redacted from both.

Why JSON lines: incident reports and ``grep``/``jq`` need the account, strategy, symbol and client
id of a line without parsing prose; each line is one object with ``ts_ms`` (UTC epoch ms, sortable)
and ``time`` (``YYYY-MM-DD HH:MM:SS KST``, what the operator reads). Why redaction in the formatters:
it is the last step before bytes leave the process, so a secret is caught whether it came in the
message, its ``%`` args, an ``extra=`` field or the text of an exception raised by a library.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from albra.redact import REDACTOR, Redactor
from albra.timefmt import fmt_kst

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 10
_COMPONENT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HANDLER_TAG = "_albra_handler"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName", "component"}
)


def _record_ms(record: logging.LogRecord) -> int:
    return int(record.created * 1000)


def _exception_text(record: logging.LogRecord) -> str | None:
    parts: list[str] = []
    if record.exc_info and record.exc_info[0] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)).rstrip())
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts) if parts else None


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception as exc:  # a bad %-format must not lose the line (or leak the raw args unredacted)
        return f"{record.msg!r} (log formatting failed: {exc})"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts_ms, time (KST), level, logger, component, msg, extras, exc."""

    def __init__(self, component: str, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.component = component
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        ms = _record_ms(record)
        obj: dict[str, Any] = {
            "ts_ms": ms,
            "time": fmt_kst(ms),
            "level": record.levelname,
            "logger": record.name,
            "component": self.component,
            "msg": _message(record),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in obj:
                obj[key] = value
        exc = _exception_text(record)
        if exc:
            obj["exc"] = exc
        obj = self.redactor.redact_obj(obj)
        line = json.dumps(obj, ensure_ascii=False, default=str)
        return self.redactor.redact(line)


class ConsoleFormatter(logging.Formatter):
    """``2024-05-01 09:00:00 KST WARNING message key=value`` for a person watching a terminal."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD_ATTRS and not k.startswith("_") and k != "event_ts"
        )
        # an event that carries its own time (an alert: the candle's exchange time in a replay) is shown at it
        stamp = getattr(record, "event_ts", None)
        line = f"{fmt_kst(stamp if isinstance(stamp, int) else _record_ms(record))} {record.levelname:<7} " \
               f"{_message(record)}"
        if extras:
            line += f"  {extras}"
        exc = _exception_text(record)
        if exc:
            line += "\n" + exc
        return self.redactor.redact(line)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotating file handler whose files are created (and kept) owner-only (0600).

    Logs hold account names, positions and PnL; on a shared server they are nobody else's business.
    """

    def _open(self) -> IO[str]:  # type: ignore[override]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.baseFilename, 0o600)  # tighten a file that pre-existed with wider modes
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8")


def _log_dir_of(settings_or_log_dir: Any) -> Path:
    if isinstance(settings_or_log_dir, (str, os.PathLike)):
        return Path(settings_or_log_dir)
    paths = getattr(settings_or_log_dir, "paths", None)
    log_dir = getattr(paths, "log_dir", None)
    if log_dir is None:
        raise TypeError(
            f"setup_logging needs a log directory or Settings, got {type(settings_or_log_dir).__name__}"
        )
    return Path(log_dir)


def _private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700; tighten it if it exists and we own it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if path.stat().st_uid == os.getuid() and (path.stat().st_mode & 0o077):
            os.chmod(path, 0o700)
    except OSError:
        pass


def setup_logging(
    settings_or_log_dir: Any,
    component: str,
    level: str | int = "INFO",
    console: bool = True,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backup_count: int = DEFAULT_BACKUP_COUNT,
    stream: IO[str] | None = None,
) -> Path:
    """Configure the root logger for one albra process and return the log file path.

    ``settings_or_log_dir`` is a loaded ``Settings`` (its ``paths.log_dir``) or a directory.
    ``component`` names the process (``runner-master``, ``bot``, ``cli``) and the file
    ``<log_dir>/<component>.log``. Calling it again replaces the handlers it installed before
    (so tests and long-lived processes can reconfigure) and leaves foreign handlers alone.
    """
    if not _COMPONENT_RE.match(component):
        raise ValueError(
            f"log component {component!r} is not a safe file name: use a-z, 0-9, '_', '-', '.'"
        )
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = resolved
    if max_bytes <= 0 or backup_count < 1:
        raise ValueError("max_bytes must be > 0 and backup_count ≥ 1 (size-based rotation keeps N files)")

    log_dir = _log_dir_of(settings_or_log_dir)
    _private_dir(log_dir)
    log_file = log_dir / f"{component}.log"

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()

    file_handler = PrivateRotatingFileHandler(
        log_file, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    file_handler.setFormatter(JsonFormatter(component))
    setattr(file_handler, _HANDLER_TAG, True)
    root.addHandler(file_handler)

    if console:
        console_handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
        console_handler.setFormatter(ConsoleFormatter())
        setattr(console_handler, _HANDLER_TAG, True)
        root.addHandler(console_handler)

    root.setLevel(level)
    return log_file


def teardown_logging() -> None:
    """Remove and close the handlers :func:`setup_logging` installed (end of a test or process)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
