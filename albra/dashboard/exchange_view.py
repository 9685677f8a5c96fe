"""The opt-in live view: each account's balance and positions read from the exchange, next to the store's figures.

Why opt-in twice: the dashboard is a read-only store viewer by default and holds no API keys. Started with
``albra dashboard --exchange`` it loads the keys of live/demo accounts and the page may ask for this view
(``/?exchange=1`` polls ``/api/exchange?account=NAME``). Only reads are made (balance, positions), through the
same gateway the runners use (``albra.exchange.factory.gateway_for``), sharing their request-weight file.

A read is cached per account for :data:`CACHE_MS` and never runs twice at once for one account, so a page left
open, or several, cannot hammer the exchange. A failed read is an error the page shows, never an empty list.
Paper accounts have no exchange to ask: their simulator lives inside their runner process.

With mark prices in hand, each open leg's unrealised PnL is ``(mark − entry) × qty`` (sign by direction).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from albra.dashboard import figures as F
from albra.store.db import Store
from albra.timefmt import Clock, fmt_kst

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.exchange.types import Gateway

CACHE_MS = 10_000


class ExchangeViewError(RuntimeError):
    """This account's exchange view cannot be produced (``status`` is the HTTP status the API answers with)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ExchangeView:
    """Live balance and positions per account, cached, one read in flight per account."""

    def __init__(self, settings: "Settings", store: Store, clock: Clock, cache_ms: int = CACHE_MS) -> None:
        self.settings, self.store, self.clock, self.cache_ms = settings, store, clock, cache_ms
        self._gateways: dict[str, "Gateway"] = {}
        self._cache: dict[str, tuple[int, dict[str, Any]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _gateway(self, account: str) -> "Gateway":
        from albra.config import ConfigError
        from albra.exchange.factory import gateway_for

        gw = self._gateways.get(account)
        if gw is not None:
            return gw
        acct = self.settings.accounts[account]
        if str(acct.mode) == "paper":
            raise ExchangeViewError(f"{account} is a paper account: its simulated exchange lives inside its runner "
                                    f"(albra run); the store's figures are the ones to read", 409)
        try:
            secrets = self.settings.require_secrets(account)
        except ConfigError as e:
            raise ExchangeViewError(f"{account}: {e}", 503) from None
        gw = gateway_for(account, acct, secrets, state_dir=self.settings.paths.state_dir)
        self._gateways[account] = gw
        return gw

    async def read(self, account: str) -> dict[str, Any]:
        """The account's live figures (cached up to ``cache_ms``); raises :class:`ExchangeViewError`."""
        from albra.exchange.errors import ExchangeError

        lock = self._locks.setdefault(account, asyncio.Lock())
        async with lock:
            now = self.clock.now_ms()
            hit = self._cache.get(account)
            if hit is not None and now - hit[0] < self.cache_ms:
                return hit[1] | {"cached": True}
            gw = self._gateway(account)
            try:
                balance = await gw.fetch_balance()
                positions = await gw.fetch_positions()
            except ExchangeError as e:
                raise ExchangeViewError(f"{account}: exchange read failed ({type(e).__name__}): {e}", 502) from None
            data = self._render(account, balance, positions, now)
            self._cache[account] = (now, data)
            return data | {"cached": False}

    def _render(self, account: str, balance: Any, positions: list[Any], now: int) -> dict[str, Any]:
        marks = {p.symbol: p.mark_price for p in positions}
        legs = self.store.query("SELECT leg_id, symbol, direction, qty, entry_price FROM legs WHERE account=? AND"
                                " state IN ('pending','open','closing')", (account,))
        leg_unrealized = {}
        for leg in legs:
            mark, entry, qty = marks.get(leg["symbol"]), F.dec(leg["entry_price"]), F.dec(leg["qty"])
            if mark is None or entry is None or qty is None:
                leg_unrealized[leg["leg_id"]] = F.MISSING
                continue
            sign = 1 if leg["direction"] == "LONG" else -1
            leg_unrealized[leg["leg_id"]] = F.money((mark - entry) * qty * sign, signed=True)
        return {
            "account": account,
            "read_at": fmt_kst(now),
            "balance": {
                "wallet": F.money(balance.wallet), "unrealized": F.money(balance.unrealized, signed=True),
                "equity": F.money(balance.equity), "available": F.money(balance.available),
            },
            "positions": [{
                "symbol": p.symbol, "position_side": str(getattr(p.position_side, "value", p.position_side)),
                "qty": F.plain(p.qty), "entry": F.plain(p.entry_price), "mark": F.plain(p.mark_price),
                "unrealized": F.money(p.unrealized, signed=True),
                "liquidation": F.plain(p.liquidation_price), "leverage": p.leverage,
            } for p in sorted(positions, key=lambda p: (p.symbol, str(p.position_side)))],
            "leg_unrealized": leg_unrealized,
        }

    async def close(self) -> None:
        for gw in self._gateways.values():
            await gw.close()
        self._gateways.clear()
