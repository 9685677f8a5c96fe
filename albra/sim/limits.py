"""Request weight (Binance's per-IP ``X-MBX-USED-WEIGHT-1M``) and signed-request timestamp checks.

Weight: summed per IP per minute; over ``limit`` the server answers 429 -1003, and after
``ban_after`` consecutive 429s 418 (IP banned) for ``ban_ms``. The minute is the wall clock's by
default (as on Binance) or the simulation clock's (``clock='sim'``: deterministic in tests).

Timestamps: ``/fapi/v1/time`` answers the simulation clock, and ccxt then signs with
``wall_now + (served_time - wall_at_serve)``. The server remembers the offsets it served
(simulation time minus wall time, last 64) and accepts a timestamp that lies within
``[t - recvWindow, t + 1000]`` for ``t = wall_now + offset`` of any of them (or of the current
offset). A client whose clock is skewed, or that never synced, gets -1021 until it re-syncs.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/fapi/v1/exchangeInfo"): 1, ("GET", "/fapi/v1/time"): 1, ("GET", "/fapi/v1/ping"): 1,
    ("GET", "/fapi/v3/account"): 5, ("GET", "/fapi/v3/positionRisk"): 5, ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v1/leverageBracket"): 1, ("POST", "/fapi/v1/leverage"): 1, ("POST", "/fapi/v1/marginType"): 1,
    ("GET", "/fapi/v1/positionSide/dual"): 30, ("POST", "/fapi/v1/positionSide/dual"): 1,
    ("POST", "/fapi/v1/order"): 1, ("GET", "/fapi/v1/order"): 1, ("DELETE", "/fapi/v1/order"): 1,
    ("GET", "/fapi/v1/openOrders"): 1, ("DELETE", "/fapi/v1/allOpenOrders"): 1,
    ("POST", "/fapi/v1/algoOrder"): 1, ("GET", "/fapi/v1/algoOrder"): 1, ("DELETE", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/openAlgoOrders"): 1, ("DELETE", "/fapi/v1/algoOpenOrders"): 1,
    ("GET", "/fapi/v1/userTrades"): 5, ("GET", "/fapi/v1/income"): 30, ("GET", "/fapi/v1/ticker/price"): 1,
    ("GET", "/fapi/v2/ticker/price"): 1, ("GET", "/fapi/v1/premiumIndex"): 1,
    ("POST", "/fapi/v1/listenKey"): 1, ("PUT", "/fapi/v1/listenKey"): 1, ("DELETE", "/fapi/v1/listenKey"): 1,
}


def request_weight(method: str, path: str, params: dict[str, str]) -> int:
    """Binance's weight for a request (klines by limit, open orders without a symbol 40)."""
    if path in ("/fapi/v1/klines", "/fapi/v1/markPriceKlines"):
        try:
            limit = int(params.get("limit", "500"))
        except ValueError:
            limit = 500
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if path in ("/fapi/v1/openOrders", "/fapi/v1/openAlgoOrders") and "symbol" not in params:
        return 40
    if path in FUNDING_PATHS:
        return 0  # its own limit (FundingMeter)
    return WEIGHTS.get((method, path), 1)


#: ``GET /fapi/v1/fundingRate`` is not weighed but "shares 500/5min/IP rate limit with GET /fapi/v1/fundingInfo"
FUNDING_PATHS = ("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo")
FUNDING_LIMIT_5M = 500


@dataclass
class FundingMeter:
    """Requests per IP per 5 minutes on the funding routes (Get Funding Rate History's own limit)."""

    limit: int = FUNDING_LIMIT_5M
    used: dict[tuple[str, int], int] = field(default_factory=dict)

    def charge(self, ip: str) -> bool:
        """Count one request; False when it is over the limit (answer 429)."""
        window = time.time_ns() // 300_000_000_000
        key = (ip, window)
        self.used[key] = self.used.get(key, 0) + 1
        for k in [k for k in self.used if k[1] < window]:
            del self.used[k]
        return not self.limit or self.used[key] <= self.limit


@dataclass
class WeightMeter:
    limit: int = 2400
    ban_after: int = 3
    ban_ms: int = 120_000
    clock: str = "wall"  # or "sim"
    used: dict[tuple[str, int], int] = field(default_factory=dict)
    strikes: dict[str, int] = field(default_factory=dict)
    banned_until: dict[str, int] = field(default_factory=dict)

    def _now(self, sim_now: int) -> int:
        return sim_now if self.clock == "sim" else time.time_ns() // 1_000_000

    def charge(self, ip: str, weight: int, sim_now: int) -> tuple[int, int | None]:
        """Add ``weight``; returns (used this minute, HTTP status to refuse with or None)."""
        now = self._now(sim_now)
        minute = now // 60_000
        if self.banned_until.get(ip, -1) > now:
            return self.used.get((ip, minute), 0), 418
        key = (ip, minute)
        used = self.used.get(key, 0) + weight
        self.used[key] = used
        if len(self.used) > 1000:
            for k in [k for k in self.used if k[1] < minute]:
                del self.used[k]
        if self.limit and used > self.limit:
            self.strikes[ip] = self.strikes.get(ip, 0) + 1
            if self.strikes[ip] > self.ban_after:
                self.banned_until[ip] = now + self.ban_ms
                return used, 418
            return used, 429
        self.strikes[ip] = 0
        return used, None

    def reset(self) -> None:
        self.used.clear()
        self.strikes.clear()
        self.banned_until.clear()


class TimestampCheck:
    """Accepts a signed request's timestamp if it matches a time the server has served (see module doc)."""

    def __init__(self) -> None:
        self.offsets: deque[int] = deque(maxlen=64)

    def served(self, sim_now: int) -> None:
        off = sim_now - time.time_ns() // 1_000_000
        if not self.offsets or self.offsets[-1] != off:
            self.offsets.append(off)

    def ok(self, ts: int, recv_window: int, sim_now: int) -> bool:
        wall = time.time_ns() // 1_000_000
        for off in (sim_now - wall, *self.offsets):
            t = wall + off
            if t - recv_window <= ts <= t + 1000:
                return True
        return False

    def forget(self) -> None:
        self.offsets.clear()


@dataclass
class OrderRateMeter:
    """Binance's order-rate limits per account (General Info, "Order Rate Limits"): every order placement
    answers ``X-MBX-ORDER-COUNT-10S`` and ``X-MBX-ORDER-COUNT-1M``; over 300 orders per 10 s or 1200 per minute
    the placement is refused with 429 -1015 (the refused one is counted too). Wall clock, as on Binance. The
    documentation states the 1200 per minute; the 10-second count is reported but not limited unless
    ``per_10s`` is set."""

    per_10s: int | None = None
    per_1m: int = 1200
    times: dict[str, deque] = field(default_factory=dict)

    def charge(self, account: str, now_ms: int | None = None) -> tuple[dict[str, str], str | None]:
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        q = self.times.setdefault(account, deque())
        q.append(now)
        while q and q[0] <= now - 60_000:
            q.popleft()
        n_1m = len(q)
        n_10s = sum(1 for t in q if t > now - 10_000)
        headers = {"X-MBX-ORDER-COUNT-10S": str(n_10s), "X-MBX-ORDER-COUNT-1M": str(n_1m)}
        if self.per_10s is not None and n_10s > self.per_10s:
            return headers, f"{self.per_10s} orders per 10 SECOND"
        if n_1m > self.per_1m:
            return headers, f"{self.per_1m} orders per 1 MINUTE"
        return headers, None
