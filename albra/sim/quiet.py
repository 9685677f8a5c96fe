"""The quiet-candle check's float views (see :meth:`albra.sim.exchange.SimExchange._quiet`).

The simulated exchange proves a candle triggers nothing by comparing the candle's price range with every level
that could fire. The Decimal test is exact but several times dearer than the candle's other work; these float
views, kept while nothing they depend on changed, answer the common case and only ever say "clear" where the
Decimal test would: each float stands for a Decimal within a relative 1e-15, and every bound carries a relative
1e-9 margin (or is the correctly rounded float of the very Decimal compared, whose order floats keep).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from albra.sim.markets import Bracket
from albra.sim.state import Account

INF = float("inf")


class Marked(Protocol):
    """A symbol's price state as the exchange keeps it (``mark_override`` wins over the last price ``raw``)."""

    raw: float | Decimal | None
    mark_override: Decimal | None


class CrossLiq:
    """The liquidation price of a cross position beside other cross positions, in floats: it moves with their
    marks (their unrealized PnL and maintenance margin count in its wallet balance), so it cannot be kept; this
    recomputes it per candle from floats kept with the account's state and says whether it is clear of the
    range with a margin no rounding can cross.

    Margin: the Decimal liquidation price (28 digits) and this float one (53 bits) are the same formula over the
    same inputs; each differs from the exact rational value by a few roundings of its terms, far less than
    1e-12 × (the sum of the terms' magnitudes) / |denominator| for any realistic number of positions. The
    test asks for 1e-9 of that plus 1e-9 of the price, so where it says clear the Decimal test says clear."""

    __slots__ = ("long", "base", "mag", "denom", "others")

    def __init__(self, long: bool, base: float, mag: float, denom: float,
                 others: list[tuple[Marked, float, float, float, float, float, float, float]]) -> None:
        self.long = long
        self.base = base    # wallet - isolated wallets + bracket cum - s·n·entry
        self.mag = mag      # the sum of those terms' magnitudes
        self.denom = denom  # n·mmr - s·n
        #: per other cross position: its symbol's state, amt, |amt|, entry, mmr, cum of its bracket, and the
        #: notional range (shrunk by 1e-9) in which that bracket is the one :meth:`MarketSpec.bracket_for` gives
        self.others = others

    def clear(self, lo: float, hi: float) -> bool:
        """Whether the liquidation price lies beyond the candle's range [lo, hi] (below it for a long, above it
        for a short) at the other positions' marks now, by more than the margin; False also when another
        position's notional left the bracket it was kept with (the caller then rebuilds)."""
        num = self.base
        mag = self.mag
        for st, amt, n, e, mmr, cum, nlo, nhi in self.others:
            m = st.mark_override if st.mark_override is not None else st.raw
            if m is None:
                return False
            m = float(m)
            notional = n * m
            if not nlo < notional < nhi:
                return False  # another bracket: the cache is rebuilt
            num += amt * (m - e) - (notional * mmr - cum)
            mag += n * (m + e) + notional * mmr + cum
        lp = num / self.denom
        tol = 1e-9 * (mag / abs(self.denom) + hi)
        return lp + tol < lo if self.long else lp - tol > hi


#: per account holding a position on a symbol: (account, the wallet object the bounds were computed from, the
#: price the candle's range must stay above, the one it must stay below, and the moving part when other cross
#: positions move the liquidation price)
LiqBounds = tuple[Account, Decimal, float, float, "CrossLiq | None"]


class Tiers:
    """A symbol's maintenance brackets as floats, for the quiet check: per bracket, the open notional range in
    which :meth:`MarketSpec.bracket_for` gives it (above the highest cap before it, below its own cap; the last
    one also holds every notional above its cap) shrunk by a relative 1e-9, and its mmr and cum. A notional
    inside a shrunk range is in that bracket however the floats were rounded (< 1e-15 relative)."""

    __slots__ = ("brackets", "lo", "hi", "mmr", "cum")

    def __init__(self, brackets: tuple[Bracket, ...] | list[Bracket]) -> None:
        self.brackets = list(brackets)
        self.lo: list[float] = []
        self.hi: list[float] = []
        last = len(self.brackets) - 1
        for k, b in enumerate(self.brackets):
            below = float(max(x.cap for x in self.brackets[:k])) if k else 0.0
            self.lo.append(below + abs(below) * 1e-9 if k else -INF)
            own = float(b.cap)
            self.hi.append(own - abs(own) * 1e-9 if k < last else INF)
        self.mmr = [float(b.mmr) for b in self.brackets]
        self.cum = [float(b.cum) for b in self.brackets]

    def find(self, notional: float) -> int | None:
        """The bracket whose shrunk range holds ``notional``; None when it is too near a cap to tell."""
        for k, lo in enumerate(self.lo):
            if lo < notional < self.hi[k]:
                return k
        return None
