"""Render alerts and digests as short Telegram HTML, readable on a phone, with no secret in them.

Every value is redacted, then HTML-escaped, and the finished text is redacted again: a registered secret
containing ``&`` or ``<`` is caught before escaping changes its spelling, a secret-shaped string that
appears only after joining is caught at the end.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any, Iterable, Mapping

from albra.notify.event import AlertEvent, Number
from albra.notify.kinds import LEVEL_EMOJI, KindSpec, Level
from albra.redact import redact
from albra.timefmt import fmt_kst

MAX_TEXT = 3800  # Telegram's limit is 4096 characters; leave room for the truncation note


def esc(value: Any) -> str:
    """Redacted, HTML-escaped text of ``value``."""
    return html.escape(redact(str(value)), quote=False)


def fmt_num(v: Number) -> str:
    """A Decimal-exact number without exponent or trailing zeros (``0.0120`` → ``0.012``)."""
    d = Decimal(str(v))
    s = format(d.normalize(), "f")
    return s if s != "-0" else "0"


def fmt_money(v: Number, asset: str = "USDT", signed: bool = True) -> str:
    """``+12.34 USDT``: two decimals, sign shown for PnL."""
    d = Decimal(str(v)).quantize(Decimal("0.01"))
    return (f"{d:+,.2f}" if signed else f"{d:,.2f}") + (f" {asset}" if asset else "")


def format_alert(event: AlertEvent, spec: KindSpec, ts_ms: int, note: str | None = None) -> str:
    """The Telegram HTML text of one alert."""
    lines = [f"{LEVEL_EMOJI[spec.level]} <b>{esc(spec.title)}</b>"]
    scope = " · ".join(esc(x) for x in (event.account, event.strategy, event.symbol) if x)
    if scope:
        lines.append(scope)
    trade = []
    if event.side:
        trade.append(f"<b>{esc(event.side.upper())}</b>")
    if event.size is not None:
        trade.append(esc(fmt_num(event.size)))
    if trade:
        lines.append(" ".join(trade))
    if event.prices:
        lines.append(" · ".join(f"{esc(k)} {esc(fmt_num(v))}" for k, v in event.prices.items()))
    if event.pnl is not None:
        lines.append(f"PnL <b>{esc(fmt_money(event.pnl, event.pnl_asset))}</b>")
    if event.message:
        lines.append(esc(event.message))
    for k, v in event.details.items():
        lines.append(f"{esc(k)}: {esc(v)}")
    if note:
        lines.append(f"<i>{esc(note)}</i>")
    lines.append(f"<i>{esc(fmt_kst(ts_ms))}</i>")
    return finish("\n".join(lines))


def summary_line(event: AlertEvent, spec: KindSpec) -> str:
    """One digest line (HTML): title, scope, PnL, message."""
    parts = [f"{LEVEL_EMOJI[spec.level]} {esc(spec.title)}"]
    scope = "/".join(esc(x) for x in (event.account, event.strategy, event.symbol) if x)
    if scope:
        parts.append(scope)
    if event.pnl is not None:
        parts.append(esc(fmt_money(event.pnl, event.pnl_asset)))
    if event.message:
        msg = event.message if len(event.message) <= 120 else event.message[:117] + "…"
        parts.append(esc(msg))
    return " — ".join(parts)


def format_digest(rows: Iterable[Mapping[str, Any]], first_ms: int, last_ms: int) -> str:
    """The digest message: one line per batched alert, with its KST time (``rows``: ts, summary)."""
    rows = list(rows)
    head = (f"{LEVEL_EMOJI[Level.MEDIUM]} <b>Digest: {len(rows)} alert{'s' if len(rows) != 1 else ''}</b>\n"
            f"<i>{esc(fmt_kst(first_ms))} → {esc(fmt_kst(last_ms))}</i>")
    body = [f"{esc(fmt_kst(r['ts'])[11:16])} {r['summary']}" for r in rows]
    return finish("\n".join([head, *body]))


def finish(text: str) -> str:
    """Final redaction pass and length cap (cut at a line boundary so no HTML tag is split)."""
    text = redact(text)
    if len(text) <= MAX_TEXT:
        return text
    cut = text.rfind("\n", 0, MAX_TEXT)
    return text[: cut if cut > 0 else MAX_TEXT] + "\n… (truncated; see the journal)"


def strip_html(text: str) -> str:
    """Plain-text fallback when Telegram refuses the HTML (tags dropped, entities unescaped)."""
    import re

    return html.unescape(re.sub(r"</?(b|i|code|pre)>", "", text))
