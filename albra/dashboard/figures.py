"""How the dashboard writes numbers. The API sends these strings and the page shows them verbatim, so what
the operator reads is exactly what the API (and a test) sees — no float rounding in the browser.

Money is rounded half-up to cents with thousands separators; prices and quantities are shown exactly as
stored (they are exchange-quantised already); percentages get two decimals. A missing value is ``-``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MISSING = "-"
_CENT = Decimal("0.01")


def dec(value: object) -> Decimal | None:
    """A stored money/price text (or number) as Decimal; None for NULL. Garbage is an error, not a blank."""
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number in the store: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number in the store: {value!r}")
    return d


def money(value: object, signed: bool = False) -> str:
    """``12,345.67`` (``+12.30`` / ``-4.05`` with ``signed``)."""
    d = dec(value)
    if d is None:
        return MISSING
    q = d.quantize(_CENT, rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)  # never "-0.00"
    return format(q, "+,.2f" if signed else ",.2f")


def plain(value: object) -> str:
    """A price or quantity exactly as stored, without exponent or trailing zeros (``43125.5``)."""
    d = dec(value)
    if d is None:
        return MISSING
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


def pct(value: object, signed: bool = False) -> str:
    """``3.21%`` from a percentage value (``+0.50%`` with ``signed``)."""
    d = dec(value)
    if d is None:
        return MISSING
    q = d.quantize(_CENT, rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)
    return format(q, "+.2f" if signed else ".2f") + "%"
