"""Replayed market data for the simulation: the clock, the forming candle, and klines at any
multiple of the file's timeframe.

The clock runs at ``speed`` x real time from ``start_ms`` (speed 0: stands still until advanced).
:class:`MarketReplay` drives a :class:`~albra.sim.exchange.SimExchange` to the clock's time.

Forming candle (documented approximation): inside a base candle the price walks the path
O→H→L→C, or O→L→H→C when the low is nearer the open, at constant speed over the candle's
interval. At time t the forming candle shows open O, the high/low visited so far, close = the
point reached, and volume x the elapsed fraction. Closed candles are the file's rows.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from albra.candles import CandleSeries
from albra.sim.exchange import SimExchange
from albra.timefmt import timeframe_ms


class SimClock:
    """Exchange time: ``start_ms`` + elapsed wall time x ``speed`` + manual advances. Never goes back."""

    def __init__(self, start_ms: int, speed: float = 1.0, wall: Callable[[], float] = time.monotonic) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._wall = wall
        self._base = int(start_ms)
        self._wall0 = wall()
        self.speed = float(speed)

    def now_ms(self) -> int:
        return self._base + int((self._wall() - self._wall0) * 1000 * self.speed)

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("the clock cannot go back (advance_ms must be >= 0)")
        self._base += int(ms)
        return self.now_ms()

    def set(self, to_ms: int) -> int:
        now = self.now_ms()
        if to_ms < now:
            raise ValueError(f"the clock cannot go back: now {now}, asked {to_ms}")
        return self.advance(to_ms - now)


def _path(o: float, h: float, l: float, c: float) -> list[float]:
    return [o, h, l, c] if abs(h - o) <= abs(o - l) else [o, l, h, c]


def path_point(o: float, h: float, l: float, c: float, frac: float) -> tuple[float, float, float, list[float]]:
    """Where the price is after ``frac`` of the candle: (price, high so far, low so far, vertices passed)."""
    pts = _path(o, h, l, c)
    total = sum(abs(pts[i + 1] - pts[i]) for i in range(3))
    if frac >= 1 or total == 0:
        passed = pts[1:] if frac >= 1 else []
        p = c if frac >= 1 else o
        return p, (h if frac >= 1 else o), (l if frac >= 1 else o), passed
    d = total * max(frac, 0.0)
    price, hi, lo, passed = o, o, o, []
    for i in range(3):
        seg = abs(pts[i + 1] - pts[i])
        if d >= seg:
            d -= seg
            price = pts[i + 1]
            passed.append(price)
        else:
            price = pts[i] + (d if pts[i + 1] > pts[i] else -d)
            break
        hi, lo = max(hi, price), min(lo, price)
    return price, max(hi, price), min(lo, price), passed


@dataclass
class _Cursor:
    idx: int = -1  # candle being processed (-1: none yet)
    frac: float = 0.0


class MarketReplay:
    """Candle series per symbol replayed into a :class:`SimExchange` up to the clock's time."""

    def __init__(self, exchange: SimExchange, series: dict[str, CandleSeries]) -> None:
        for sym in series:
            exchange.spec(sym)
        self.ex = exchange
        self.series = series
        self._cur = {s: _Cursor() for s in series}
        self._ts = {s: series[s].ts.tolist() for s in series}
        self._ohlc = {s: (series[s].open.tolist(), series[s].high.tolist(), series[s].low.tolist(),
                          series[s].close.tolist()) for s in series}
        self._tick = {s: float(exchange.spec(s).filters.tick_size) for s in series}

    def base_ms(self, symbol: str) -> int:
        return self.series[symbol].interval_ms

    def _locate(self, symbol: str, now: int) -> tuple[int, float]:
        ts = self._ts[symbol]
        i = bisect.bisect_right(ts, now) - 1
        if i < 0:
            return -1, 0.0
        step = self.base_ms(symbol)
        return i, min((now - ts[i]) / step, 1.0)

    def _round(self, symbol: str, x: float) -> Decimal:
        return self.ex.spec(symbol).filters.round_price(Decimal(repr(x)))

    def sync(self, now: int) -> None:
        """Feed every symbol's path up to ``now`` into the exchange (closed candles whole, the
        forming one up to its elapsed fraction)."""
        for sym, s in self.series.items():
            cur = self._cur[sym]
            i, frac = self._locate(sym, now)
            if i < 0 or (i == cur.idx and frac <= cur.frac):
                continue
            step = self.base_ms(sym)
            ts = self._ts[sym]
            if i > cur.idx:
                if cur.idx >= 0:
                    self._walk(sym, cur, 1.0, ts[cur.idx] + step - 1)
                start = cur.idx + 1 if cur.idx >= 0 else i
                o, h, lo, c = self._ohlc[sym]
                for j in range(start, i):
                    self.ex.set_time(ts[j])
                    self.ex.on_candle(sym, ts[j], o[j], h[j], lo[j], c[j])
                self.ex.set_time(ts[i])
                self.ex.open_at(sym, ts[i], o[i])
                cur.idx, cur.frac = i, 0.0
            self._walk(sym, cur, frac, now)
        self.ex.set_time(now)

    def _walk(self, sym: str, cur: _Cursor, frac: float, t: int) -> None:
        """Move the exchange along the current candle's path from cur.frac to ``frac``."""
        j = cur.idx
        oo, hh, ll, cc = self._ohlc[sym]
        o, h, lo, c = oo[j], hh[j], ll[j], cc[j]
        _, _, _, before = path_point(o, h, lo, c, cur.frac)
        price, _, _, after = path_point(o, h, lo, c, frac)
        self.ex.set_time(t)
        for p in after[len(before):]:
            self.ex.move(sym, p)
        self.ex.move(sym, self._round(sym, price) if frac < 1 else c)
        cur.frac = frac

    # ------------------------------------------------------------------ klines
    def klines(self, symbol: str, interval: str, now: int, limit: int = 500,
               start: int | None = None, end: int | None = None) -> list[list]:
        """Binance kline rows up to ``now``: closed candles plus the forming one last."""
        if symbol not in self.series:
            if symbol.endswith("USDT") and symbol[:-4] in self.ex.asset_prices:
                return self._flat_klines(symbol, interval, now, limit, start, end)
            raise KeyError(symbol)
        s = self.series[symbol]
        base = self.base_ms(symbol)
        step = timeframe_ms(interval)
        if step % base != 0:
            raise ValueError(f"interval {interval} is not a multiple of the replay's {s.timeframe}")
        ts = self._ts[symbol]
        if not ts:
            return []
        first_bucket = ts[0] - ts[0] % step
        last_time = min(now, end if end is not None else now)
        if last_time < ts[0]:
            return []
        last_bucket = last_time - last_time % step
        if start is not None:
            b0 = max(start - start % step if start % step == 0 else start - start % step + step, first_bucket)
            buckets = list(range(b0, last_bucket + 1, step))[:limit]
        else:
            b0 = max(first_bucket, last_bucket - (limit - 1) * step)
            buckets = list(range(b0, last_bucket + 1, step))
        out = []
        prec = self.ex.spec(symbol).price_precision
        data_end = ts[-1] + base
        for b in buckets:
            if b >= data_end:
                break
            row = self._bucket(symbol, b, step, now)
            if row is None:
                continue
            o_, h_, l_, c_, v_ = row
            out.append([b, f"{o_:.{prec}f}", f"{h_:.{prec}f}", f"{l_:.{prec}f}", f"{c_:.{prec}f}", f"{v_:.3f}",
                        b + step - 1, f"{v_ * c_:.4f}", 0, f"{v_ / 2:.3f}", f"{v_ * c_ / 2:.4f}", "0"])
        return out

    def _flat_klines(self, symbol: str, interval: str, now: int, limit: int, start: int | None,
                     end: int | None) -> list[list]:
        """Klines of a fee asset (BNBUSDT) at the price the admin API set: flat rows, the forming one last. Why:
        fees paid in BNB are valued at BNB's price at the fill, read from these klines like on Binance."""
        step = timeframe_ms(interval)
        px = f"{self.ex.asset_prices[symbol[:-4]]:f}"
        last = min(now, end if end is not None else now)
        last_b = last - last % step
        first = (start - start % step) if start is not None else last_b - (limit - 1) * step
        out = []
        for b in range(max(0, first), last_b + 1, step):
            out.append([b, px, px, px, px, "0", b + step - 1, "0", 0, "0", "0", "0"])
            if len(out) >= limit:
                break
        return out

    def _bucket(self, symbol: str, b: int, step: int, now: int):
        s = self.series[symbol]
        ts = self._ts[symbol]
        base = self.base_ms(symbol)
        lo_i = bisect.bisect_left(ts, b)
        hi_i = bisect.bisect_left(ts, min(b + step, now + 1))
        if hi_i <= lo_i:
            return None
        # candles wholly closed by `now` vs the forming one
        last = hi_i - 1
        forming = ts[last] + base > now
        closed_hi = last if forming else hi_i
        o = float(s.open[lo_i])
        if closed_hi > lo_i:
            h = float(s.high[lo_i:closed_hi].max())
            l = float(s.low[lo_i:closed_hi].min())
            c = float(s.close[closed_hi - 1])
            v = float(s.volume[lo_i:closed_hi].sum())
        else:
            h, l, c, v = o, o, o, 0.0
        if forming:
            frac = (now - ts[last]) / base
            p, fh, fl, _ = path_point(float(s.open[last]), float(s.high[last]), float(s.low[last]),
                                      float(s.close[last]), frac)
            p = float(self._round(symbol, p))
            if closed_hi > lo_i:
                h, l = max(h, fh), min(l, fl)
            else:
                h, l = fh, fl
            c = p
            h, l = max(h, c), min(l, c)  # the tick-rounded point may lie just outside the unrounded extremes
            v += float(s.volume[last]) * frac
        return o, h, l, c, v

    def step_to_next_close(self, clock: SimClock) -> int | None:
        """"As fast as the consumer pulls": move the clock to the next base-candle close of any
        symbol and sync. Returns the new time, or None at the end of the data."""
        now = clock.now_ms()
        nxt = None
        for sym in self.series:
            ts = self._ts[sym]
            base = self.base_ms(sym)
            i = bisect.bisect_right(ts, now) - 1
            cand = (ts[i] + base) if i >= 0 else ts[0]
            if i >= len(ts) - 1 and ts[-1] + base <= now:
                continue
            nxt = cand if nxt is None else min(nxt, cand)
        if nxt is None:
            return None
        clock.set(nxt)
        self.sync(nxt)
        return nxt
