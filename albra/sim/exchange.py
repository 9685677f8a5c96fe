"""The simulated USDⓈ-M perpetual exchange: order rules, fills, margin, funding and liquidation.

Pure Python and in-process (no I/O) so paper trading, backtests and the local Binance server share
one implementation. Prices arrive as moves along a path (:meth:`SimExchange.on_candle`,
:meth:`open_at`, :meth:`move`, :meth:`set_mark`); the exchange fills and triggers whatever the path
crosses, in the order the path reaches it. Documented approximations (see ``albra/sim/README.md``):

* Market orders fill entirely at the current last price (no book, no slippage).
* A resting LIMIT fills at its limit price (maker fee) when the last price touches it.
* Conditional orders trigger when their working price (mark or last) reaches the trigger on a
  continuous move: the child market order fills at the trigger price. On a gap (the next candle
  opens beyond the trigger, or an admin jumps the mark) it fills at the new price, i.e. worse
  for a stop.
* Mark price = last price unless an explicit mark is forced (:meth:`set_mark`).
* Liquidation price: isolated uses Binance's formula with the position's maintenance bracket;
  cross uses the same formula with the account's cross wallet plus the other cross positions'
  unrealized PnL minus their maintenance margin. A position is liquidated at the mark price that
  crosses it (wallet floored at zero).
* Funding is settled at 00/08/16 UTC, at the open of the candle that starts then, from the
  funding series (exact 8h slot) or ``default_funding_rate``: payment = -positionAmt x mark x rate. With
  ``default_funding_rate=None`` (backtests and replays: funding is never invented) a slot without a rate pays
  nothing and is listed in ``funding_missing``; slots paid at the default rate are counted in ``funding_defaulted``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterator

from albra.model import D, MarginMode, OrderType, PositionMode, PositionSide, Side, WorkingType
from albra.sim import errors as E
from albra.sim.errors import SimError
from albra.sim.markets import DEFAULT_MARKETS, Bracket, MarketSpec, market_spec
from albra.sim.realism import DAY_MS, Realism, wall_ms
from albra.sim.quiet import INF, CrossLiq, LiqBounds, Tiers
from albra.sim.state import ZERO, Account, AlgoOrder, Order, Position

#: an observer of what the exchange makes observable: (kind, object, latency-clock ms when observable)
Observer = Callable[[str, object, int], None]

FUNDING_INTERVAL_MS = 8 * 3_600_000
CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_FEE_Q = Decimal("0.00000001")


@dataclass(frozen=True)
class Fees:
    """Commission rates (Binance VIP0 USDⓈ-M defaults)."""

    taker: Decimal = Decimal("0.0005")
    maker: Decimal = Decimal("0.0002")


class _Sym:
    """Per-symbol market state. ``raw`` holds the last price as a float until someone needs it as
    a Decimal, which keeps the no-activity candle path to a couple of attribute writes."""

    __slots__ = ("symbol", "raw", "mark_override", "prev_ts", "active", "orders", "algos", "funding", "levels",
                 "liq")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.raw: float | Decimal | None = None
        self.mark_override: Decimal | None = None
        self.prev_ts: int | None = None
        self.active = False
        self.orders: dict[int, Order] = {}
        self.algos: dict[int, AlgoOrder] = {}
        self.funding: dict[int, Decimal] = {}
        #: the quiet check's caches, valid while ``SimExchange._epoch`` is the first item (see ``_quiet``):
        #: (epoch, highest level that fires on a fall, lowest that fires on a rise) of the resting orders, as floats
        self.levels: tuple[int, float, float] | None = None
        #: (epoch, bounds per account holding a position here, or None when they cannot be cached)
        self.liq: tuple[int, list[LiqBounds] | None] | None = None


def _dec(x: float | Decimal) -> Decimal:
    """Decimal of a price; numpy floats go through float() so repr() gives plain digits."""
    return x if isinstance(x, Decimal) else Decimal(repr(float(x)))


def _sgn(x: Decimal) -> int:
    return (x > 0) - (x < 0)


#: Binance USDⓈ-M: paying trading fees in BNB gives 10 % off (fee schedule, "BNB deduction")
BNB_FEE_DISCOUNT = Decimal("0.9")
_BNB_Q = Decimal("0.00000001")


def _firing_levels(st: "_Sym") -> Iterator[tuple[Decimal, bool]]:
    """Each resting order's level on the symbol and whether it fires when the price falls to it (a limit buy, a
    sell stop, a buy take-profit) rather than rises to it: the one reading of that rule for both quiet checks."""
    for od in st.orders.values():
        if od.type is OrderType.LIMIT:
            yield od.price, od.side is Side.BUY
    for a in st.algos.values():
        yield a.trigger_price, (a.order_type is OrderType.STOP_MARKET) == (a.side is Side.SELL)


class SimExchange:
    """A multi-account USDⓈ-M perpetual exchange. Every public method raises :class:`SimError`
    with Binance's code for a rejection. Time is whatever :meth:`set_time` last said."""

    def __init__(self, markets: dict[str, MarketSpec] | None = None, fees: Fees | None = None,
                 funding: dict[str, list[tuple[int, float]]] | None = None,
                 default_funding_rate: Decimal | None = Decimal("0.0001"), now_ms: int = 0,
                 realism: Realism | None = None, latency_clock: Callable[[], int] | str = wall_ms) -> None:
        self.markets = dict(markets or DEFAULT_MARKETS)
        #: how far the exchange departs from instant consistency (realistic unless told otherwise)
        self.realism = realism if realism is not None else Realism()
        #: the clock the realism windows run on: wall ms by default; "exchange": the exchange's own time (for
        #: tests that step time by hand)
        self.latency_clock = None if latency_clock == "exchange" else latency_clock
        self.fees = fees or Fees()
        #: prices of assets that are not traded here but that fees are paid in (BNB): set by the admin API, served
        #: as flat ``<ASSET>USDT`` klines; the local server has no BNB history of its own
        self.asset_prices: dict[str, Decimal] = {}
        #: (account, symbol) → reason: the next algo order of that account and symbol that fires is REJECTED with
        #: no child (Binance rejects a fired order's child on a margin or price-protection check; the admin stages
        #: one because the local server's checks rarely refuse a reduce-only child)
        self.reject_triggers: dict[tuple[str, str], str] = {}
        self.default_funding_rate = default_funding_rate
        #: (symbol, funding time) of settlements skipped for want of a rate (default_funding_rate None)
        self.funding_missing: list[tuple[str, int]] = []
        #: symbol → settlements (with a position open) paid at default_funding_rate
        self.funding_defaulted: dict[str, int] = {}
        self.now = int(now_ms)
        self.accounts: dict[str, Account] = {}
        self._syms = {s: _Sym(s) for s in self.markets}
        self._next_order = 8_000_000_000
        self._next_algo = 1_000_000
        self._next_trade = 500_000_000
        self._next_tran = 9_000_000_000
        self.all_orders: list[Order] = []
        self.all_algos: list[AlgoOrder] = []
        #: the latest order per (account, symbol, client id) and algo order per (account, client algo id), caught
        #: up from the two append-only lists above when a lookup needs them (_latest_order/_latest_algo)
        self._order_by_cid: dict[tuple[str, str, str], Order] = {}
        self._algo_by_cid: dict[tuple[str, str], AlgoOrder] = {}
        self._cid_seen = [0, 0]  # how many of all_orders / all_algos are in those two indexes
        self.rejections: list[dict] = []
        self.listeners: list[Callable[[str, object], None]] = []
        #: the user data stream's source: every observable change with the time it becomes observable
        self.observers: list[Observer] = []
        self._slow_candles = 0  # candles that needed the full path walk (benches and tests read it)
        #: bumped by every change the quiet check's cached levels and liquidation prices depend on (fills, funding
        #: payments, transfers, margin modes, resting orders placed or gone): a cache of another epoch is stale
        self._epoch = 0
        self._tiers: dict[str, Tiers] = {}  # the quiet check's float view of each symbol's brackets
        for sym, rows in (funding or {}).items():
            self.set_funding(sym, rows)

    # ------------------------------------------------------------------ set-up
    def set_funding(self, symbol: str, rows: list[tuple[int, float]]) -> None:
        """Funding rates by 8h slot (timestamps are rounded to the nearest slot)."""
        st = self._sym(symbol)
        st.funding = {round(ts / FUNDING_INTERVAL_MS): D(rate) for ts, rate in rows}

    def add_funding(self, symbol: str, ts: int, rate: Decimal) -> None:
        """One funding time's rate (a live feed learns them one at a time, before each funding time)."""
        self._sym(symbol).funding[round(ts / FUNDING_INTERVAL_MS)] = D(rate)

    def add_account(self, name: str, balance: Decimal | str | int = 0,
                    mode: PositionMode = PositionMode.ONE_WAY) -> Account:
        if name in self.accounts:
            raise ValueError(f"account {name!r} already exists")
        acct = Account(name, ZERO, mode, update_time=self.now)
        self.accounts[name] = acct
        if D(balance) > 0:
            self.transfer(name, D(balance), "initial balance")
        return acct

    def account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise ValueError(f"unknown account {name!r}; known: {', '.join(self.accounts)}") from None

    def set_time(self, ms: int) -> None:
        self.now = int(ms)

    def lnow(self) -> int:
        """Now on the latency clock (what the realism windows are measured on)."""
        return self.latency_clock() if self.latency_clock is not None else self.now

    def _observe(self, kind: str, obj: object, at: int | None = None) -> None:
        if self.observers:
            t = self.lnow() if at is None else at
            for cb in self.observers:
                cb(kind, obj, t)

    def _sym(self, symbol: str) -> _Sym:
        st = self._syms.get(symbol)
        if st is None:
            raise E.bad_symbol(symbol)
        return st

    def spec(self, symbol: str) -> MarketSpec:
        return market_spec(symbol, self.markets)

    # ------------------------------------------------------------------ prices
    def has_price(self, symbol: str) -> bool:
        return self._sym(symbol).raw is not None

    def last_price(self, symbol: str) -> Decimal:
        st = self._sym(symbol)
        r = st.raw
        if r is None:
            raise SimError(-1000, f"No market data for {symbol} yet at this exchange time.", 400)
        if not isinstance(r, Decimal):
            r = st.raw = _dec(r)
        return r

    def mark_price(self, symbol: str) -> Decimal:
        st = self._sym(symbol)
        return st.mark_override if st.mark_override is not None else self.last_price(symbol)

    def on_candle(self, symbol: str, ts: int, o: float, h: float, l: float, c: float) -> None:
        """Feed one whole candle: gap to the open, then O→H→L→C or O→L→H→C (whichever extreme is
        nearer the open first). With no open orders or positions on the symbol this only records
        the close (the backtest hot path); with some, a candle that provably triggers nothing
        (:meth:`_quiet`) only records it too. A candle with a funding time is taken in the walk's own
        steps: the gap to the open, the settlement at the open, then the rest of the path from the open."""
        st = self._syms.get(symbol)
        if st is None:
            raise E.bad_symbol(symbol)
        if not st.active:
            st.raw = c
            st.prev_ts = ts
            return
        prev = st.prev_ts
        opened = False
        if prev is not None and (prev // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS <= ts:
            if not self._quiet(st, ts, o, o, o, o):  # the gap to the open is not quiet: walk it all
                self._walk(symbol, ts, o, h, l, c, open_first=True)
                return
            st.raw = o  # what the gap walk leaves (as a float: last_price makes the same Decimal of it)
            st.prev_ts = ts
            for f in range((prev // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS, ts + 1, FUNDING_INTERVAL_MS):
                self._settle_funding(st, f)
            opened = True
        if self._quiet(st, ts, o, h, l, c):
            st.raw = c
            st.prev_ts = ts
            return
        self._walk(symbol, ts, o, h, l, c, open_first=not opened)

    def _walk(self, symbol: str, ts: int, o: float, h: float, l: float, c: float, open_first: bool) -> None:
        """The exact path walk of a candle (from its open when ``open_first`` is False: already there)."""
        self._slow_candles += 1
        if open_first:
            self.open_at(symbol, ts, o)
        if abs(h - o) <= abs(o - l):
            self.move(symbol, h)
            self.move(symbol, l)
        else:
            self.move(symbol, l)
            self.move(symbol, h)
        self.move(symbol, c)

    def _quiet(self, st: _Sym, ts: int, o: float, h: float, l: float, c: float) -> bool:
        """True when walking the path from the last price through O, H, L and C provably triggers nothing, so it
        would change nothing but the last price: no forced mark, and every limit price, trigger price and
        liquidation price lies strictly outside the price range the path covers (previous price, O, H, L, C) on
        the side from which it cannot fire. (Funding is :meth:`on_candle`'s: it asks about the gap to the open
        and the rest of the path separately, around the settlement.) Anything less certain returns False and
        takes the exact path walk.

        Why it is exact: along the path every move's endpoints lie in [lo, hi]; an order that fires at or below
        its level never fires when level < lo, one that fires at or above never fires when level > hi. The
        liquidation price only depends on the mark through the maintenance bracket, so it is constant over the
        candle when the bracket is the same at both ends of the range and no other position of the account on
        this symbol (hedge mode's other side) moves with the same mark; then it is the same number the walk would
        compute at every step. The decision is the Decimal test of :meth:`_quiet_exact`, on the same Decimals
        the walk would use.

        Fast answer: the same test on floats kept per symbol while nothing they depend on changed (``_epoch``,
        bumped by every fill, funding payment, transfer, margin-mode change and resting order placed or gone;
        and the very wallet object each cached liquidation price was computed from). It answers True only where
        the Decimal test does: float() of a Decimal is correctly rounded, hence monotone, and float(_dec(x)) is
        x, so ``float(level) < min(floats)`` implies ``level < min(Decimals)`` (likewise above); a cached
        liquidation price is the very Decimal :meth:`_liq` gives for the same inputs and bracket; the bracket's
        range is tested with a 1e-9 relative margin, far beyond float rounding (< 1e-15). Where it cannot tell
        (a level within the range, a cross position beside others whose marks move it), the Decimal test
        decides."""
        if st.prev_ts is None or st.mark_override is not None or st.raw is None:
            return False
        lo = min(o, h, l, c)
        hi = max(o, h, l, c)
        r = float(st.raw)
        lo_f = min(float(lo), r)
        hi_f = max(float(hi), r)
        ep = self._epoch
        lv = st.levels
        if lv is None or lv[0] != ep:
            lv = st.levels = self._level_bounds(st)
        if lv[1] < lo_f and hi_f < lv[2]:
            lq = st.liq
            if lq is None or lq[0] != ep:
                lq = st.liq = (ep, self._liq_bounds(st, lo_f))
            accounts = lq[1]
            if accounts is not None:
                for acct, wallet, down, up, cross in accounts:
                    if (acct.wallet is not wallet or not (down < lo_f and hi_f < up)
                            or (cross is not None and not cross.clear(lo_f, hi_f))):
                        st.liq = None  # another bracket, a wallet set from outside, or near: recompute next time
                        break
                else:
                    return True
        return self._quiet_exact(st, lo, hi)

    def _level_bounds(self, st: _Sym) -> tuple[int, float, float]:
        """(epoch, highest price of a resting order that fires on a fall, lowest of one that fires on a rise)."""
        down, up = -INF, INF
        for level, on_fall in _firing_levels(st):
            if on_fall:
                down = max(down, float(level))
            else:
                up = min(up, float(level))
        return (self._epoch, down, up)

    def _liq_bounds(self, st: _Sym, lo_f: float) -> list[LiqBounds] | None:
        """Per account holding a position on the symbol, what keeps its liquidation price clear of a candle
        (:data:`LiqBounds`), for the maintenance bracket at ``lo_f``'s notional: the range must stay inside that
        bracket's band and beyond the liquidation price (a constant, or :class:`CrossLiq` when other cross
        positions move it). None when there are two positions on the symbol (hedge mode's sides both move with
        this mark): the Decimal test decides."""
        sym = st.symbol
        holders = self._holders(sym)
        if holders is None:
            return None
        out: list[LiqBounds] = []
        for acct, pos in holders:
            n_f = float(abs(pos.amt))
            tiers = self._tiers_of(sym)
            k = tiers.find(n_f * lo_f)
            if k is None:  # at a cap: nothing is kept, the next candle asks again
                out.append((acct, acct.wallet, INF, -INF, None))
                continue
            down, up = tiers.lo[k] / n_f, tiers.hi[k] / n_f  # the price band of that bracket
            cross = None
            if acct.mm(sym) is not MarginMode.ISOLATED and any(
                    q is not pos and q.amt != 0 and acct.mm(q.symbol) is not MarginMode.ISOLATED
                    for q in acct.positions.values()):
                cross = self._cross_liq(acct, pos, tiers, k)
            else:
                lp = self._liq(acct, pos, tiers.brackets[k])
                if lp is not None:
                    if pos.amt > 0:
                        down = max(down, float(lp))
                    else:
                        up = min(up, float(lp))
            out.append((acct, acct.wallet, down, up, cross))
        return out

    def _holders(self, symbol: str) -> list[tuple[Account, Position]] | None:
        """Each account holding a position on the symbol, with it; None when an account holds two (hedge mode's
        sides, which both move with this mark)."""
        out = []
        for acct in self.accounts.values():
            live = acct.live_positions(symbol)
            if len(live) > 1:
                return None
            if live:
                out.append((acct, live[0]))
        return out

    def _tiers_of(self, symbol: str) -> Tiers:
        t = self._tiers.get(symbol)
        if t is None:
            t = self._tiers[symbol] = Tiers(self.spec(symbol).brackets)
        return t

    def _cross_liq(self, acct: Account, pos: Position, tiers: Tiers, k: int) -> CrossLiq:
        """:meth:`_liq`'s formula for a cross position beside other cross positions, as a :class:`CrossLiq`
        (bracket ``k`` of ``tiers`` for the position itself)."""
        n, entry = float(abs(pos.amt)), float(pos.entry)
        s = 1 if pos.amt > 0 else -1
        wallet, cum = float(acct.wallet), tiers.cum[k]
        base, mag = wallet + cum - s * n * entry, abs(wallet) + cum + n * entry
        others = []
        for q in acct.positions.values():
            if q.amt == 0 or q is pos:
                continue
            if acct.mm(q.symbol) is MarginMode.ISOLATED:
                iso = float(q.isolated_margin)
                base -= iso
                mag += abs(iso)
                continue
            qst = self._syms[q.symbol]
            qn = float(abs(q.amt))
            qt = self._tiers_of(q.symbol)
            m = qst.mark_override if qst.mark_override is not None else qst.raw
            j = None if m is None else qt.find(qn * float(m))
            if j is None:  # no price yet, or at a cap: never clear, the next candle asks again
                others.append((qst, 0.0, qn, 0.0, 0.0, 0.0, INF, -INF))
            else:
                others.append((qst, float(q.amt), qn, float(q.entry), qt.mmr[j], qt.cum[j], qt.lo[j], qt.hi[j]))
        return CrossLiq(s > 0, base, mag, n * tiers.mmr[k] - s * n, others)

    def _quiet_exact(self, st: _Sym, lo_raw: float, hi_raw: float) -> bool:
        """:meth:`_quiet`'s test in the walk's own Decimals (``lo_raw``/``hi_raw``: the candle's extremes)."""
        r = st.raw
        last = r if isinstance(r, Decimal) else _dec(r)
        lo = min(last, _dec(lo_raw))  # _dec keeps float order, so this is the walk's lowest Decimal
        hi = max(last, _dec(hi_raw))
        for level, on_fall in _firing_levels(st):
            if (level >= lo) if on_fall else (level <= hi):
                return False
        sym = st.symbol
        holders = self._holders(sym)
        if holders is None:
            return False
        for acct, pos in holders:
            n = abs(pos.amt)
            spec = self.spec(sym)
            b = spec.bracket_for(n * lo)
            if spec.bracket_for(n * hi) is not b:
                return False
            lp = self._liq(acct, pos, b)
            if lp is not None and ((lp >= lo) if pos.amt > 0 else (lp <= hi)):
                return False
        return True

    def open_at(self, symbol: str, ts: int, price: float | Decimal) -> None:
        """A new candle opens at ``ts``: jump (gap) to its open, then settle funding if a funding
        time lies in (previous candle open, ts]."""
        st = self._sym(symbol)
        prev = st.prev_ts
        st.prev_ts = ts
        if not st.active:
            st.raw = price
            return
        self._path(st, _dec(price), gap=True)
        if prev is not None:
            first = (prev // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
            for f in range(first, ts + 1, FUNDING_INTERVAL_MS):
                self._settle_funding(st, f)

    def move(self, symbol: str, price: float | Decimal) -> None:
        """Continuous move of the last price (and the mark unless forced) to ``price``."""
        st = self._sym(symbol)
        if not st.active:
            st.raw = price
            return
        self._path(st, _dec(price), gap=False)

    def set_mark(self, symbol: str, price: Decimal | None) -> None:
        """Force the mark price (a jump: triggers fill at the current last price) or, with None,
        let it follow the last price again."""
        st = self._sym(symbol)
        if price is None:
            st.mark_override = None
            return
        frm = self.mark_price(symbol) if st.raw is not None or st.mark_override is not None else D(price)
        st.mark_override = D(price)
        if st.active:
            self._events(st, None, None, frm, st.mark_override, gap=True)

    # ------------------------------------------------------------------ path engine
    def _path(self, st: _Sym, to: Decimal, gap: bool) -> None:
        frm = self.last_price(st.symbol) if st.raw is not None else to
        if gap:
            st.raw = to  # a jump: whatever it triggers trades at the new price
        if st.mark_override is None:
            self._events(st, frm, to, frm, to, gap)
        else:
            self._events(st, frm, to, None, None, gap)
        st.raw = to

    def _events(self, st: _Sym, lf: Decimal | None, lt: Decimal | None, mf: Decimal | None,
                mt: Decimal | None, gap: bool) -> None:
        """Execute, in path order, every order/liquidation the move crosses. ``l*`` is the last-price
        move, ``m*`` the mark move (None when that track does not move)."""
        together = st.mark_override is None
        for _ in range(10_000):
            ev = self._first_event(st, lf, lt, mf, mt, together)
            if ev is None:
                return
            _, hit, kind, obj, track = ev
            if not gap:
                if track == "last" or together:
                    st.raw = hit
                    lf = hit
                if track == "mark" or together:
                    mf = hit
            if kind == "limit":
                self._fill_resting(obj)
            elif kind == "algo":
                self._trigger(obj)
            else:
                acct, pos = obj
                self._liquidate(acct, pos, hit if not gap else (mt if mt is not None else hit))
            self._refresh(st)
            if not st.active:
                return
        raise RuntimeError(f"{st.symbol}: event loop did not settle")

    def _first_event(self, st: _Sym, lf, lt, mf, mt, together: bool):
        best = None

        def consider(frm: Decimal, to: Decimal, level: Decimal, want_down: bool, kind: str, obj, track: str):
            nonlocal best
            # want_down: fires when price is at or below level; else at or above
            if want_down:
                if min(frm, to) > level:
                    return
                dist = max(frm - level, ZERO)
                hit = level if frm > level else frm
            else:
                if max(frm, to) < level:
                    return
                dist = max(level - frm, ZERO)
                hit = level if frm < level else frm
            key = (dist, kind == "liq")  # at one price, orders act before a liquidation
            if best is None or key < best[0]:
                best = (key, hit, kind, obj, track)

        if lf is not None:
            for o in st.orders.values():
                if o.type is OrderType.LIMIT:
                    consider(lf, lt, o.price, o.side is Side.BUY, "limit", o, "last")
        for a in st.algos.values():
            if a.working_type is WorkingType.MARK_PRICE and not together:
                frm, to, track = mf, mt, "mark"
            else:
                frm, to, track = lf, lt, "last"
            if frm is None:
                continue
            down = (a.order_type is OrderType.STOP_MARKET) == (a.side is Side.SELL)
            consider(frm, to, a.trigger_price, down, "algo", a, track)
        if mf is not None:
            for acct in self.accounts.values():
                for pos in acct.live_positions(st.symbol):
                    lp = self.liquidation_price(acct, pos)
                    if lp is not None:
                        consider(mf, mt, lp, pos.amt > 0, "liq", (acct, pos), "mark")
        if best is None:
            return None
        return best

    def _refresh(self, st: _Sym) -> None:
        st.active = bool(st.orders or st.algos) or any(
            p.amt != 0 and p.symbol == st.symbol for a in self.accounts.values() for p in a.positions.values())

    # ------------------------------------------------------------------ validation helpers
    def _client_id(self, acct: Account, cid: str | None, algo: bool) -> str:
        if cid is None or cid == "":
            n = self._next_algo if algo else self._next_order
            return f"sim{'a' if algo else 'o'}-{n}"
        if not CLIENT_ID_RE.match(cid):
            raise SimError(-4015, "Client order id is not valid.")
        pool = acct.open_algos.values() if algo else acct.open_orders.values()
        for o in pool:
            if (o.client_algo_id if algo else o.client_id) == cid:
                raise SimError(-4116, "ClientOrderId is duplicated.")
        return cid

    def _pside(self, acct: Account, position_side: str | None, reduce_only: bool | None) -> PositionSide:
        if acct.mode is PositionMode.ONE_WAY:
            if position_side not in (None, "", "BOTH"):
                raise SimError(-4061, "Order's position side does not match user's setting.")
            return PositionSide.BOTH
        if position_side not in ("LONG", "SHORT"):
            raise SimError(-4061, "Order's position side does not match user's setting.")
        if reduce_only is not None:
            raise SimError(-1106, "Parameter 'reduceOnly' sent when not required.")
        return PositionSide(position_side)

    def _check_qty(self, spec: MarketSpec, qty: Decimal | None, market: bool) -> Decimal:
        f = spec.filters
        if qty is None:
            raise SimError(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        if qty <= 0:
            raise SimError(-4003, "Quantity less than or equal to zero.")
        if qty % f.step_size != 0:
            raise SimError(-1111, "Precision is over the maximum defined for this asset.")
        if qty < f.min_qty:
            raise SimError(-4003, "Quantity less than or equal to zero.")
        cap = f.market_max_qty if market and f.market_max_qty is not None else f.max_qty
        if qty > cap:
            raise SimError(-4005, "Quantity greater than max quantity.")
        return qty

    def _check_price(self, spec: MarketSpec, price: Decimal | None, name: str) -> Decimal:
        if price is None:
            raise SimError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        if price <= 0:
            raise SimError(-4001, "Price less than 0.")
        if price % spec.filters.tick_size != 0:
            raise SimError(-4014, "Price not increased by tick size.")
        return price

    def reducible(self, acct: Account, symbol: str, side: Side, pside: PositionSide) -> Decimal:
        """How much of an order on ``side`` would reduce the position it targets."""
        if pside is PositionSide.BOTH:
            amt = acct.position(symbol, PositionSide.BOTH).amt
            if amt > 0 and side is Side.SELL:
                return amt
            if amt < 0 and side is Side.BUY:
                return -amt
            return ZERO
        if pside is PositionSide.LONG and side is Side.SELL:
            return acct.position(symbol, PositionSide.LONG).amt
        if pside is PositionSide.SHORT and side is Side.BUY:
            return -acct.position(symbol, PositionSide.SHORT).amt
        return ZERO

    def _closing(self, pside: PositionSide, side: Side) -> bool:
        return (pside is PositionSide.LONG and side is Side.SELL) or (pside is PositionSide.SHORT and side is Side.BUY)

    def _check_margin(self, acct: Account, symbol: str, increase: Decimal, price: Decimal) -> None:
        if increase <= 0:
            return
        need = increase * price / acct.lev(symbol) + increase * price * self.fees.taker
        if need > self.account_numbers(acct)["available"]:
            raise E.insufficient_margin()

    def _reject(self, kind: str, account: str, symbol: str, cid: str | None, err: SimError, req: dict) -> None:
        self.rejections.append({"kind": kind, "account": account, "symbol": symbol, "client_id": cid,
                                "code": err.code, "msg": err.msg, "time": self.now, "request": req})

    # ------------------------------------------------------------------ regular orders
    def place_order(self, account: str, symbol: str, side: Side | str, type: OrderType | str,
                    quantity: Decimal | None = None, price: Decimal | None = None, *,
                    client_id: str | None = None, position_side: str | None = None,
                    reduce_only: bool | None = None, time_in_force: str | None = None) -> Order:
        """Place a MARKET or LIMIT order (Binance ``POST /fapi/v1/order`` rules). A MARKET order, or a
        LIMIT that crosses the last price, fills at once (taker); other LIMITs rest."""
        try:
            return self._place_order(account, symbol, side, type, quantity, price, client_id,
                                     position_side, reduce_only, time_in_force)
        except SimError as e:
            req = {"side": str(side), "type": str(type), "quantity": str(quantity), "price": str(price),
                   "positionSide": position_side, "reduceOnly": reduce_only, "timeInForce": time_in_force}
            self._reject("order", account, symbol, client_id, e, req)
            raise

    def _place_order(self, account, symbol, side, type, quantity, price, client_id, position_side,
                     reduce_only, time_in_force) -> Order:
        acct = self.account(account)
        spec = self.spec(symbol)
        st = self._sym(symbol)
        try:
            side = Side(str(side).upper())
        except ValueError:
            raise SimError(-1117, "Invalid side.") from None
        t = str(type).upper()
        if t in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise SimError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        if t not in ("MARKET", "LIMIT"):
            raise SimError(-1116, "Invalid orderType.")
        otype = OrderType(t)
        pside = self._pside(acct, position_side, reduce_only)
        qty = self._check_qty(spec, quantity, otype is OrderType.MARKET)
        tif = "GTC"
        if otype is OrderType.LIMIT:
            price = self._check_price(spec, price, "price")
            tif = (time_in_force or "GTC").upper()
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                raise SimError(-1115, "Invalid timeInForce.")
        elif price is not None:
            raise SimError(-1106, "Parameter 'price' sent when not required.")
        last = self.last_price(symbol)
        ref = price if otype is OrderType.LIMIT else last
        reducible = self.reducible(acct, symbol, side, pside)
        reduce = bool(reduce_only) or self._closing(pside, side)
        if reduce and qty > reducible:
            raise E.reduce_only_rejected()
        if not reduce and qty * ref < spec.filters.min_notional:
            raise SimError(-4164, f"Order's notional must be no smaller than {spec.filters.min_notional.normalize():f} (unless you choose reduce only).")
        if not reduce:
            self._check_margin(acct, symbol, qty - reducible, ref)
        cid = self._client_id(acct, client_id, algo=False)
        if self.realism.open_order_limits and otype is OrderType.LIMIT:
            cap = getattr(spec, "max_num_orders", 200)
            if sum(1 for o in acct.open_orders.values() if o.symbol == symbol) >= cap:
                raise SimError(-2025, "Reach max open order limit.")
        order = Order(self._next_order, cid, account, symbol, side, pside, otype, qty,
                      price if otype is OrderType.LIMIT else ZERO, bool(reduce_only), False, tif,
                      self.now, self.now, seen_at=self.lnow() + self.realism.lookup_ms)
        self._next_order += 1
        acct.orders[order.order_id] = order
        self.all_orders.append(order)
        self._observe("order_new", order)
        marketable = otype is OrderType.MARKET or (side is Side.BUY and price >= last) or (
            side is Side.SELL and price <= last)
        if marketable and tif == "GTX":
            order.status = "EXPIRED"
            self._observe("order_done", order)
        elif marketable:
            self._fill(acct, order, last, qty, maker=False)
        elif tif in ("IOC", "FOK"):
            order.status = "EXPIRED"
            self._observe("order_done", order)
        else:
            acct.open_orders[order.order_id] = order
            st.orders[order.order_id] = order
            self._epoch += 1
        self._refresh(st)
        self._emit("order", order)
        return order

    def _find_order(self, acct: Account, symbol: str, order_id: int | None, client_id: str | None) -> Order | None:
        if order_id is not None:
            o = acct.orders.get(int(order_id))
            return o if o is not None and o.symbol == symbol else None
        if client_id:
            # an open order with that id wins, else the most recent one
            for o in acct.open_orders.values():
                if o.client_id == client_id and o.symbol == symbol:
                    return o
            o = self._latest_order(acct.name, symbol, client_id)
            if o is None or acct.orders.get(o.order_id) is o:
                return o
            for o in reversed(list(acct.orders.values())):  # history removed by hand (a purge staged): scan
                if o.client_id == client_id and o.symbol == symbol:
                    return o
            return None
        raise SimError(-1102, "Either orderId or origClientOrderId must be sent.")

    def _latest_order(self, account: str, symbol: str, client_id: str) -> Order | None:
        """The most recently placed order of ``account`` on ``symbol`` with ``client_id`` — what a scan of the
        account's orders from the newest finds first. Why an index: a backtest looks up its finished orders by
        client id after every trade, and a scan made each lookup cost O(all orders so far). Orders only enter an
        account through ``all_orders``; one removed from the account's history afterwards (tests stage a purge so)
        is caught by the caller, which then scans as before."""
        seen = self._cid_seen[0]
        if seen < len(self.all_orders):
            index = self._order_by_cid
            for o in self.all_orders[seen:]:
                index[(o.account, o.symbol, o.client_id)] = o
            self._cid_seen[0] = len(self.all_orders)
        return self._order_by_cid.get((account, symbol, client_id))

    def _latest_algo(self, account: str, client_algo_id: str) -> AlgoOrder | None:
        """The most recently placed algo order of ``account`` with ``client_algo_id`` (as :meth:`_latest_order`)."""
        seen = self._cid_seen[1]
        if seen < len(self.all_algos):
            index = self._algo_by_cid
            for a in self.all_algos[seen:]:
                index[(a.account, a.client_algo_id)] = a
            self._cid_seen[1] = len(self.all_algos)
        return self._algo_by_cid.get((account, client_algo_id))

    def _queryable(self, o: Order) -> bool:
        """Whether GET order finds ``o`` now: not before its lookup delay (eventual visibility), and not a
        CANCELED/EXPIRED order without fills more than 3 days old (Binance's Query Order notes)."""
        if o.seen_at > self.lnow():
            return False
        if (self.realism.purge_lookups and o.status in ("CANCELED", "EXPIRED") and o.executed_qty == 0
                and self.now - o.time > 3 * DAY_MS):
            return False
        return True

    def get_order(self, account: str, symbol: str, order_id: int | None = None,
                  client_id: str | None = None) -> Order:
        self.spec(symbol)
        o = self._find_order(self.account(account), symbol, order_id, client_id)
        if o is None or not self._queryable(o):
            raise E.no_such_order()
        return o

    def cancel_order(self, account: str, symbol: str, order_id: int | None = None,
                     client_id: str | None = None) -> Order:
        self.spec(symbol)
        acct = self.account(account)
        o = self._find_order(acct, symbol, order_id, client_id)
        if o is None or o.order_id not in acct.open_orders:
            raise E.unknown_order_cancel()
        self._close_order(acct, o, "CANCELED")
        return o

    def _close_order(self, acct: Account, o: Order, status: str) -> None:
        o.status = status
        o.update_time = self.now
        acct.open_orders.pop(o.order_id, None)
        st = self._syms[o.symbol]
        st.orders.pop(o.order_id, None)
        self._epoch += 1
        self._refresh(st)
        self._observe("order_done", o)
        self._emit("order", o)

    def open_orders(self, account: str, symbol: str | None = None) -> list[Order]:
        if symbol is not None:
            self.spec(symbol)
        return [o for o in self.account(account).open_orders.values() if symbol is None or o.symbol == symbol]

    def cancel_all(self, account: str, symbol: str) -> list[Order]:
        acct = self.account(account)
        out = self.open_orders(account, symbol)
        for o in out:
            self._close_order(acct, o, "CANCELED")
        return out

    # ------------------------------------------------------------------ algo orders
    def place_algo(self, account: str, symbol: str, side: Side | str, order_type: OrderType | str,
                   trigger_price: Decimal | None, quantity: Decimal | None = None, *,
                   client_algo_id: str | None = None, position_side: str | None = None,
                   reduce_only: bool | None = None, close_position: bool = False,
                   working_type: WorkingType | str | None = None) -> AlgoOrder:
        """Place a conditional STOP_MARKET / TAKE_PROFIT_MARKET (Binance ``POST /fapi/v1/algoOrder``).
        ``working_type`` defaults to CONTRACT_PRICE as on Binance."""
        try:
            return self._place_algo(account, symbol, side, order_type, trigger_price, quantity, client_algo_id,
                                    position_side, reduce_only, close_position, working_type)
        except SimError as e:
            req = {"side": str(side), "type": str(order_type), "quantity": str(quantity),
                   "triggerPrice": str(trigger_price), "positionSide": position_side, "reduceOnly": reduce_only,
                   "closePosition": close_position, "workingType": str(working_type)}
            self._reject("algo", account, symbol, client_algo_id, e, req)
            raise

    def _place_algo(self, account, symbol, side, order_type, trigger_price, quantity, client_algo_id,
                    position_side, reduce_only, close_position, working_type) -> AlgoOrder:
        acct = self.account(account)
        spec = self.spec(symbol)
        st = self._sym(symbol)
        try:
            side = Side(str(side).upper())
        except ValueError:
            raise SimError(-1117, "Invalid side.") from None
        t = str(order_type).upper()
        if t not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise SimError(-1116, "Invalid orderType.")
        otype = OrderType(t)
        try:
            wt = WorkingType(str(working_type or "CONTRACT_PRICE").upper())
        except ValueError:
            raise SimError(-1102, "Invalid workingType.") from None
        if close_position and reduce_only is not None:
            raise SimError(-1106, "Parameter 'reduceOnly' sent when not required.")
        if close_position and quantity is not None:
            raise SimError(-1106, "Parameter 'quantity' sent when not required.")
        pside = self._pside(acct, position_side, reduce_only)
        trig = self._check_price(spec, trigger_price, "triggerPrice")
        qty = ZERO if close_position else self._check_qty(spec, quantity, True)
        ref = self.mark_price(symbol) if wt is WorkingType.MARK_PRICE else self.last_price(symbol)
        down = (otype is OrderType.STOP_MARKET) == (side is Side.SELL)
        if (down and ref <= trig) or (not down and ref >= trig):
            raise SimError(-2021, "Order would immediately trigger.")
        reduce = bool(reduce_only) or close_position or self._closing(pside, side)
        if reduce_only and self.reducible(acct, symbol, side, pside) == 0:
            raise E.reduce_only_rejected()
        if not reduce and qty * trig < spec.filters.min_notional:
            raise SimError(-4164, f"Order's notional must be no smaller than {spec.filters.min_notional.normalize():f} (unless you choose reduce only).")
        cid = self._client_id(acct, client_algo_id, algo=True)
        if self.realism.open_order_limits:
            if sum(1 for x in acct.open_algos.values() if x.symbol == symbol) >= getattr(spec, "max_num_algo_orders", 100):
                raise SimError(-4045, "Reach max stop order limit.")
        a = AlgoOrder(self._next_algo, cid, account, symbol, side, pside, otype, qty, trig, wt,
                      bool(close_position), bool(reduce_only), self.now, self.now,
                      seen_at=self.lnow() + self.realism.lookup_ms)
        self._next_algo += 1
        acct.algos[a.algo_id] = a
        acct.open_algos[a.algo_id] = a
        st.algos[a.algo_id] = a
        self._epoch += 1
        self.all_algos.append(a)
        self._refresh(st)
        self._observe("algo", (a, "NEW"))
        self._emit("algo", a)
        return a

    def _find_algo(self, acct: Account, algo_id: int | None, client_algo_id: str | None) -> AlgoOrder | None:
        if algo_id is not None:
            return acct.algos.get(int(algo_id))
        if client_algo_id:
            for a in acct.open_algos.values():
                if a.client_algo_id == client_algo_id:
                    return a
            a = self._latest_algo(acct.name, client_algo_id)
            if a is None or acct.algos.get(a.algo_id) is a:
                return a
            for a in reversed(list(acct.algos.values())):  # history removed by hand (a purge staged): scan
                if a.client_algo_id == client_algo_id:
                    return a
            return None
        raise SimError(-1102, "Either algoId or clientAlgoId must be sent.")

    def get_algo(self, account: str, algo_id: int | None = None, client_algo_id: str | None = None) -> AlgoOrder:
        """What GET algoOrder shows: -2013 before its lookup delay; a fired order at the stage reached so far
        (TRIGGERING, TRIGGERED, then its final status), a copy — the record itself is already final."""
        a = self._find_algo(self.account(account), algo_id, client_algo_id)
        if a is None or a.seen_at > self.lnow():
            raise E.no_such_order()
        return self.algo_view(a)

    def algo_view(self, a: AlgoOrder) -> AlgoOrder:
        """``a`` as the API shows it now: before its last stage is reached, the stage's status, no child order
        id before TRIGGERED and no executed price before the final status."""
        if not a.stages or a.stages[-1][0] <= self.lnow():
            return a
        now = self.lnow()
        status = a.stages[0][1]
        for t, s in a.stages:
            if t <= now:
                status = s
        from dataclasses import replace as _replace
        return _replace(a, status=status, actual_order_id=a.actual_order_id if status != "TRIGGERING" else 0,
                        actual_price=ZERO, stages=list(a.stages))

    def cancel_algo(self, account: str, algo_id: int | None = None, client_algo_id: str | None = None) -> AlgoOrder:
        acct = self.account(account)
        a = self._find_algo(acct, algo_id, client_algo_id)
        if a is None or a.algo_id not in acct.open_algos:
            raise E.unknown_order_cancel()
        self._close_algo(acct, a, "CANCELED")
        return a

    def _close_algo(self, acct: Account, a: AlgoOrder, status: str, reason: str = "") -> None:
        a.status = status
        a.reason = reason
        a.update_time = self.now
        acct.open_algos.pop(a.algo_id, None)
        st = self._syms[a.symbol]
        st.algos.pop(a.algo_id, None)
        self._epoch += 1
        self._refresh(st)
        if not a.stages:  # a fired order's stages are observed by _trigger at their own times
            self._observe("algo", (a, status))
        self._emit("algo", a)

    def open_algos(self, account: str, symbol: str | None = None) -> list[AlgoOrder]:
        if symbol is not None:
            self.spec(symbol)
        return [a for a in self.account(account).open_algos.values() if symbol is None or a.symbol == symbol]

    def cancel_all_algos(self, account: str, symbol: str) -> list[AlgoOrder]:
        acct = self.account(account)
        out = self.open_algos(account, symbol)
        for a in out:
            self._close_algo(acct, a, "CANCELED")
        return out

    # ------------------------------------------------------------------ execution
    def _fill_resting(self, o: Order) -> None:
        acct = self.accounts[o.account]
        qty = o.qty - o.executed_qty
        if o.reduce_only:
            qty = min(qty, self.reducible(acct, o.symbol, o.side, o.position_side))
            if qty <= 0:
                self._close_order(acct, o, "EXPIRED")
                return
        self._fill(acct, o, o.price, qty, maker=True)

    def _trigger(self, a: AlgoOrder) -> None:
        """The order fires. As on Binance it goes TRIGGERING → TRIGGERED (its child market order exists,
        ``actualOrderId``) → FINISHED (the child is done), each stage observable ``trigger_ms`` / ``finish_ms``
        later on the latency clock. FINISHED does not mean filled: a reduce-only or closePosition child that
        finds nothing to reduce expires with zero executed and the algo is still FINISHED (read the child to
        know); a child denied by the margin check makes it REJECTED with no child. Approximation: the child
        executes (at the price of the trigger instant) when the order fires; only what the API shows of it
        waits."""
        acct = self.accounts[a.account]
        acct.open_algos.pop(a.algo_id, None)
        self._syms[a.symbol].algos.pop(a.algo_id, None)
        self._epoch += 1
        r = self.realism
        t0 = self.lnow()
        t1 = t0 + r.trigger_ms
        t2 = t1 + r.finish_ms
        a.stages = [(t0, "TRIGGERING"), (t1, "TRIGGERED"), (t2, "FINISHED")]
        a.trigger_time = a.update_time = self.now
        self._observe("algo", (a, "TRIGGERING"), t0)
        reduce = a.close_position or a.reduce_only or self._closing(a.position_side, a.side)
        last = self.last_price(a.symbol)
        child_status = ""
        why = self.reject_triggers.pop((a.account, a.symbol), None)
        if why is not None:  # the admin staged a refusal of this fired order's child: REJECTED, no child
            a.stages = [(t0, "TRIGGERING"), (t1, "REJECTED")]
            a.reason, a.status, a.update_time = why, "REJECTED", self.now
            self._observe("algo", (a, "REJECTED"), t1)
            self._emit("algo", a)
            return
        if reduce:
            can = self.reducible(acct, a.symbol, a.side, a.position_side)
            qty = can if a.close_position else min(a.qty, can)
            if qty <= 0:
                qty = a.qty
                child_status, a.reason = "EXPIRED", "Reduce Only reject"
        else:
            qty = a.qty
            reducible = self.reducible(acct, a.symbol, a.side, a.position_side)
            try:
                self._check_margin(acct, a.symbol, qty - reducible, last)
            except SimError as e:
                # denied by the matching engine's margin check: REJECTED, no child order (Algo Status)
                a.stages = [(t0, "TRIGGERING"), (t1, "REJECTED")]
                a.reason, a.status, a.update_time = f"Margin is insufficient: {e.msg}", "REJECTED", self.now
                self._observe("algo", (a, "REJECTED"), t1)
                self._emit("algo", a)
                return
        child = Order(self._next_order, f"algo-{a.algo_id}", acct.name, a.symbol, a.side, a.position_side,
                      OrderType.MARKET, qty, ZERO, a.reduce_only, a.close_position, "GTC", self.now, self.now,
                      stop_price=a.trigger_price, working_type=a.working_type, source="trigger",
                      seen_at=t1 + r.lookup_ms)
        self._next_order += 1
        acct.orders[child.order_id] = child
        self.all_orders.append(child)
        a.actual_order_id = child.order_id
        self._observe("algo", (a, "TRIGGERED"), t1)
        self._observe("order_new", child, t1)
        if child_status:
            child.status = child_status
            self._observe("order_done", child, t1)
        else:
            self._fill(acct, child, last, qty, maker=False, at=t1)
            a.actual_price = child.avg_price
        a.status = "FINISHED"
        a.update_time = self.now
        self._observe("algo", (a, "FINISHED"), t2)
        self._emit("algo", a)

    def _liquidate(self, acct: Account, pos: Position, price: Decimal) -> None:
        for o in list(acct.open_orders.values()):
            if o.symbol == pos.symbol:
                self._close_order(acct, o, "CANCELED")
        qty = abs(pos.amt)
        side = Side.SELL if pos.amt > 0 else Side.BUY
        price = self.spec(pos.symbol).filters.round_price(price)
        o = Order(self._next_order, f"autoclose-{self.now}", acct.name, pos.symbol, side, pos.side,
                  OrderType.MARKET, qty, ZERO, True, False, "IOC", self.now, self.now, source="liquidation")
        self._next_order += 1
        acct.orders[o.order_id] = o
        self.all_orders.append(o)
        self._fill(acct, o, price, qty, maker=False)
        if acct.wallet < 0:
            self._income(acct, pos.symbol, "INSURANCE_CLEAR", -acct.wallet, "liquidation loss beyond the wallet")
            acct.wallet = ZERO
            self._epoch += 1
        self._emit("liquidation", {"account": acct.name, "symbol": pos.symbol, "price": price, "qty": qty})

    def _fill(self, acct: Account, o: Order, price: Decimal, qty: Decimal, maker: bool, at: int | None = None) -> None:
        """Apply one execution to the position, wallet, order, trade history and income. ``at``: when it becomes
        observable on the latency clock (default now); it reaches userTrades ``trade_ms`` after that."""
        at = self.lnow() if at is None else at
        self._epoch += 1  # position, wallet and perhaps resting orders change
        sym = o.symbol
        pos = acct.position(sym, o.position_side)
        lev = acct.lev(sym)
        iso = acct.mm(sym) is MarginMode.ISOLATED
        signed = qty if o.side is Side.BUY else -qty
        old = pos.amt
        realized = ZERO
        if old == 0 or (old > 0) == (signed > 0):
            new = old + signed
            pos.entry = (abs(old) * pos.entry + qty * price) / abs(new)
            if iso:
                pos.isolated_margin += qty * price / lev
        else:
            close = min(qty, abs(old))
            realized = close * (price - pos.entry) * _sgn(old)
            if iso:
                pos.isolated_margin -= pos.isolated_margin * close / abs(old)
            new = old + signed
            if new == 0:
                pos.entry = ZERO
                pos.isolated_margin = ZERO
            elif _sgn(new) != _sgn(old):
                pos.entry = price
                if iso:
                    pos.isolated_margin = abs(new) * price / lev
        pos.amt = new
        pos.update_time = self.now
        fee = (qty * price * (self.fees.maker if maker else self.fees.taker)).quantize(_FEE_Q)
        fee_asset = acct.asset
        bnb_px = self.asset_prices.get("BNB")
        if acct.fee_burn and bnb_px:
            # BNB burn on (Toggle BNB Burn On Futures Trade): the fee is paid in BNB at a 10 % discount while the
            # wallet's BNB covers it, else in the margin asset as usual
            in_bnb = (fee * BNB_FEE_DISCOUNT / bnb_px).quantize(_BNB_Q)
            if acct.bnb >= in_bnb:
                acct.bnb -= in_bnb
                fee, fee_asset = in_bnb, "BNB"
        acct.wallet += realized - (fee if fee_asset == acct.asset else ZERO)
        acct.update_time = self.now
        o.executed_qty += qty
        o.cum_quote += qty * price
        o.avg_price = o.cum_quote / o.executed_qty
        o.update_time = self.now
        if o.executed_qty >= o.qty or o.type is OrderType.MARKET:
            o.status = "FILLED"
            acct.open_orders.pop(o.order_id, None)
            self._syms[sym].orders.pop(o.order_id, None)
        else:
            o.status = "PARTIALLY_FILLED"
        tid = self._next_trade
        self._next_trade += 1
        acct.trades.append({
            "id": tid, "orderId": o.order_id, "clientOrderId": o.client_id, "symbol": sym, "side": o.side.value,
            "positionSide": o.position_side.value, "price": price, "qty": qty, "quoteQty": qty * price,
            "realizedPnl": realized, "commission": fee, "commissionAsset": fee_asset, "time": self.now,
            "buyer": o.side is Side.BUY, "maker": maker, "_vis": at + self.realism.trade_ms,
        })
        if realized != 0:
            self._income(acct, sym, "REALIZED_PNL", realized, "", trade_id=tid, vis=at + self.realism.trade_ms)
        if fee != 0:
            self._income(acct, sym, "COMMISSION", -fee, "", trade_id=tid, vis=at + self.realism.trade_ms,
                         asset=fee_asset)
        if self.observers:
            self._observe("trade", (o, acct.trades[-1]), at)
            self._observe("account", (acct, "ORDER", sym), at)
        self._emit("fill", acct.trades[-1])

    def _income(self, acct: Account, symbol: str, kind: str, amount: Decimal, info: str,
                trade_id: int | None = None, vis: int | None = None, asset: str | None = None) -> None:
        self._next_tran += 1
        acct.income.append({"symbol": symbol, "incomeType": kind, "income": amount, "asset": asset or acct.asset,
                            "info": info, "time": self.now, "tranId": self._next_tran,
                            "tradeId": "" if trade_id is None else str(trade_id),
                            "_vis": self.lnow() if vis is None else vis})

    def _settle_funding(self, st: _Sym, f_ms: int) -> None:
        rate = st.funding.get(f_ms // FUNDING_INTERVAL_MS)
        if rate is None:
            holders = any(acct.live_positions(st.symbol) for acct in self.accounts.values())
            if self.default_funding_rate is None:
                if holders:
                    self.funding_missing.append((st.symbol, f_ms))
                return
            rate = self.default_funding_rate
            if holders:
                self.funding_defaulted[st.symbol] = self.funding_defaulted.get(st.symbol, 0) + 1
        mark = self.mark_price(st.symbol)
        for acct in self.accounts.values():
            for pos in acct.live_positions(st.symbol):
                pay = (-pos.amt * mark * rate).quantize(_FEE_Q)
                acct.wallet += pay
                self._epoch += 1
                if acct.mm(st.symbol) is MarginMode.ISOLATED:
                    pos.isolated_margin += pay
                self._income(acct, st.symbol, "FUNDING_FEE", pay, f"rate {rate}")
                acct.income[-1]["time"] = f_ms
                self._observe("account", (acct, "FUNDING_FEE", st.symbol))

    # ------------------------------------------------------------------ settings and transfers
    def set_leverage(self, account: str, symbol: str, leverage: int) -> dict:
        spec = self.spec(symbol)
        acct = self.account(account)
        if not isinstance(leverage, int) or leverage < 1 or leverage > spec.max_leverage:
            raise SimError(-4028, f"Leverage {leverage} is not valid")
        if (leverage < acct.lev(symbol) and acct.mm(symbol) is MarginMode.ISOLATED
                and acct.live_positions(symbol)):
            raise SimError(-4161, "Leverage reduction is not supported in Isolated Margin Mode with open positions")
        acct.leverage[symbol] = leverage
        cap = max(b.cap for b in spec.brackets if b.max_leverage >= leverage)
        return {"symbol": symbol, "leverage": leverage, "maxNotionalValue": cap}

    def set_margin_mode(self, account: str, symbol: str, mode: MarginMode | str) -> None:
        self.spec(symbol)
        acct = self.account(account)
        m = MarginMode(str(mode).lower().replace("crossed", "cross"))
        if acct.mm(symbol) is m:
            raise SimError(-4046, "No need to change margin type.")
        if acct.live_positions(symbol):
            raise SimError(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.symbol == symbol for o in [*acct.open_orders.values(), *acct.open_algos.values()]):
            raise SimError(-4047, "Margin type cannot be changed if there exists open orders.")
        acct.margin_mode[symbol] = m
        self._epoch += 1

    def set_position_mode(self, account: str, hedge: bool) -> None:
        acct = self.account(account)
        m = PositionMode.HEDGE if hedge else PositionMode.ONE_WAY
        if acct.mode is m:
            raise SimError(-4059, "No need to change position side.")
        if acct.live_positions():
            raise SimError(-4068, "Position side cannot be changed if there exists position.")
        if acct.open_orders or acct.open_algos:
            raise SimError(-4067, "Position side cannot be changed if there exists open orders.")
        acct.mode = m

    def set_fee_burn(self, account: str, on: bool) -> None:
        """``POST /fapi/v1/feeBurn``: trading fees in BNB (while the wallet's BNB covers them) or in USDT."""
        self.account(account).fee_burn = bool(on)

    def deposit_bnb(self, account: str, amount: Decimal) -> Decimal:
        """Put BNB into the account's futures wallet (for fees; the local server does not margin with it)."""
        acct = self.account(account)
        acct.bnb += D(amount)
        return acct.bnb

    def transfer(self, account: str, amount: Decimal, info: str = "") -> Decimal:
        """Deposit (amount > 0) or withdraw (amount < 0) the margin asset; recorded as TRANSFER income
        so the risk layer can tell deposits from trading PnL."""
        acct = self.account(account)
        amount = D(amount)
        if amount == 0:
            raise ValueError("transfer amount must not be zero")
        if amount < 0 and -amount > self.account_numbers(acct)["available"]:
            raise SimError(-5013, "Asset transfer failed: insufficient balance")
        acct.wallet += amount
        self._epoch += 1
        acct.update_time = self.now
        self._income(acct, "", "TRANSFER", amount, info)
        self._observe("account", (acct, "DEPOSIT" if amount > 0 else "WITHDRAW", ""))
        return acct.wallet

    # ------------------------------------------------------------------ history reads (Binance's windows)
    def trade_window(self, start: int | None, end: int | None, from_id: int | None) -> tuple[int | None, int | None]:
        """The [start, end] ``GET /fapi/v1/userTrades`` really answers for these parameters (Account Trade List:
        at most 7 days between startTime and endTime; without both, the last 7 days; with one, 7 days from or
        to it; fromId not with a time). None: unbounded (windows off, or fromId paging)."""
        if not self.realism.history_windows:
            return start, end
        if from_id is not None:
            if start is not None or end is not None:
                raise SimError(-1128, "Combination of optional parameters invalid. (fromId cannot be sent with "
                                      "startTime or endTime)")
            return None, None
        span = 7 * DAY_MS
        if start is not None and end is not None:
            if end - start > span:
                raise SimError(-1127, "More than 168 hours between startTime and endTime.")
            return start, end
        if start is not None:
            return start, start + span
        if end is not None:
            return end - span, end
        return self.now - span, self.now

    def income_window(self, start: int | None, end: int | None) -> tuple[int | None, int | None]:
        """Get Income History: without startTime and endTime, the recent 7 days."""
        if self.realism.history_windows and start is None and end is None:
            return self.now - 7 * DAY_MS, None
        return start, end

    def visible(self, row: dict) -> bool:
        """Whether a trade / income row has reached the history endpoints yet."""
        return row.get("_vis", 0) <= self.lnow()

    # ------------------------------------------------------------------ views
    def upnl(self, pos: Position) -> Decimal:
        if pos.amt == 0:
            return ZERO
        return pos.amt * (self.mark_price(pos.symbol) - pos.entry)

    def maint_margin(self, pos: Position) -> Decimal:
        if pos.amt == 0:
            return ZERO
        notional = abs(pos.amt) * self.mark_price(pos.symbol)
        b = self.spec(pos.symbol).bracket_for(notional)
        return notional * b.mmr - b.cum

    def account_numbers(self, acct: Account) -> dict[str, Decimal]:
        """Wallet, unrealized PnL, margins and available balance (Binance's account fields)."""
        upnl_cross = upnl_iso = im_cross = im_all = iso_total = maint = order_im = ZERO
        for p in acct.positions.values():
            if p.amt == 0:
                continue
            u = self.upnl(p)
            im = abs(p.amt) * self.mark_price(p.symbol) / acct.lev(p.symbol)
            im_all += im
            maint += self.maint_margin(p)
            if acct.mm(p.symbol) is MarginMode.ISOLATED:
                upnl_iso += u
                iso_total += p.isolated_margin
            else:
                upnl_cross += u
                im_cross += im
        for o in acct.open_orders.values():
            if not o.reduce_only and not self._closing(o.position_side, o.side):
                rest = o.qty - o.executed_qty - self.reducible(acct, o.symbol, o.side, o.position_side)
                if rest > 0:
                    order_im += rest * o.price / acct.lev(o.symbol)
        available = acct.wallet - iso_total + upnl_cross - im_cross - order_im
        return {"wallet": acct.wallet, "upnl": upnl_cross + upnl_iso, "margin_balance": acct.wallet + upnl_cross + upnl_iso,
                "position_im": im_all, "order_im": order_im, "initial_margin": im_all + order_im,
                "maint_margin": maint, "available": available, "cross_wallet": acct.wallet - iso_total,
                "cross_upnl": upnl_cross}

    def liquidation_price(self, acct: Account, pos: Position) -> Decimal | None:
        """Binance's liquidation-price formula (see module docstring); None when not reachable."""
        if pos.amt == 0:
            return None
        n = abs(pos.amt)
        s = _sgn(pos.amt)
        try:
            mark = self.mark_price(pos.symbol)
        except SimError:
            mark = pos.entry
        return self._liq(acct, pos, self.spec(pos.symbol).bracket_for(n * mark))

    def _liq(self, acct: Account, pos: Position, b: Bracket) -> Decimal | None:
        """The liquidation price of a non-empty position once its maintenance bracket is known."""
        n = abs(pos.amt)
        s = _sgn(pos.amt)
        if acct.mm(pos.symbol) is MarginMode.ISOLATED:
            wb = pos.isolated_margin
        else:
            wb = acct.wallet
            for q in acct.positions.values():
                if q.amt == 0:
                    continue
                if acct.mm(q.symbol) is MarginMode.ISOLATED:
                    wb -= q.isolated_margin
                elif q is not pos:
                    wb += self.upnl(q) - self.maint_margin(q)
        denom = n * b.mmr - s * n
        lp = (wb + b.cum - s * n * pos.entry) / denom
        return lp if lp > 0 else None

    def _emit(self, kind: str, obj: object) -> None:
        for cb in self.listeners:
            cb(kind, obj)
