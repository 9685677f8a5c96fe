"""Trading fees paid in another asset than the quote (BNB), valued at the fill-time price.

Why: with BNB burn on (``POST /fapi/v1/feeBurn``), Binance charges USDⓈ-M trading fees in BNB (10 % off) and the
trade row says so (``commission`` in ``commissionAsset`` BNB). Booking that number as USDT made a leg's fees, the
daily loss and Kelly's statistics wrong by the BNB price. The fee stays recorded in its own asset; for PnL it is
converted at BNB's price in the minute of the fill — the 1m kline of ``BNBUSDT`` containing the fill's time, read
from the exchange like any other kline — and carried as ``extra["fee_quote"]``. A price that cannot be read is an
error (the read fails; nothing is applied), never a guess.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Awaitable, Callable, Sequence

from albra.model import Candle, Fill

QUOTE = "USDT"
_MINUTE = 60_000

FetchCandles = Callable[..., Awaitable[list[Candle]]]


def fee_asset(fill: Fill) -> str:
    """The asset the fill's fee was paid in (the quote when the exchange did not say)."""
    extra = fill.extra or {}
    return str(extra.get("commission_asset") or extra.get("fee_asset") or QUOTE)


def fee_in_quote(fill: Fill) -> Decimal:
    """The fill's fee in the quote asset: the fee itself when paid in the quote, else its valuation
    (:func:`value_fees`). An unvalued fee in another asset raises ValueError: booking BNB as USDT is the bug this
    module exists to prevent."""
    if fee_asset(fill) == QUOTE or fill.fee == 0:
        return fill.fee
    v = (fill.extra or {}).get("fee_quote")
    if v is None:
        raise ValueError(f"fill {fill.trade_id}: fee {fill.fee} {fee_asset(fill)} has no {QUOTE} valuation")
    return Decimal(str(v))


async def value_fees(fetch_candles: FetchCandles, fills: Sequence[Fill]) -> list[Fill]:
    """``fills`` with every fee paid in another asset valued in the quote at that asset's price in the fill's
    minute (one kline read per asset and minute). Fills with quote fees are returned unchanged."""
    out: list[Fill] = []
    prices: dict[tuple[str, int], Decimal] = {}
    for f in fills:
        asset = fee_asset(f)
        if asset == QUOTE or f.fee == 0 or "fee_quote" in (f.extra or {}):
            out.append(f)
            continue
        minute = f.ts - f.ts % _MINUTE
        key = (asset, minute)
        if key not in prices:
            rows = [c for c in await fetch_candles(f"{asset}{QUOTE}", "1m", since=minute, limit=1) if c.ts == minute]
            if not rows:
                from albra.exchange.errors import MalformedResponse

                raise MalformedResponse(f"no {asset}{QUOTE} 1m kline at {minute} to value the fee of fill "
                                        f"{f.trade_id}")
            prices[key] = Decimal(str(rows[0].open))
        out.append(replace(f, extra={**(f.extra or {}), "fee_quote": str(f.fee * prices[key])}))
    return out
