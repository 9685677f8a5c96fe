"""The paper gateway: the same :class:`~albra.exchange.types.Gateway` over the in-process simulated exchange
(``albra.sim.exchange.SimExchange``), with no HTTP in between.

A paper account behaves exactly like a ccxt client against the local server (``albra sim serve``):
orders are built by the same ``order_rules.order_params`` (quantisation, hedge-mode rules), simulator errors
become the same error classes through ``from_binance_code``, and every answer is the value the ccxt gateway's
parsers read from the Binance JSON the server would send — taken straight from the simulator's records by
``albra.sim.answers`` (ADR 0022; ADR 0018 had kept a JSON round trip per answer). A corpus test pins the direct
answers equal to ``binance_parse.parse_*(payloads.*(...))`` field for field, so engine code cannot tell them
apart. The cost is per *call*, never per candle: a backtest feeds candles to the core directly and the gateway
does nothing until the engine asks something.

Time: with a ``clock`` (paper trading, replay at a speed) each call first brings the replay up to the clock's
time, as the server does per request; without one the exchange's own time is used, i.e. whatever the backtest
driver last fed it.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal
from typing import Any, Callable, Sequence

from albra.exchange import binance_parse as P
from albra.exchange.errors import (
    BadSymbol,
    ExchangeError,
    OutcomeUnknown,
    Rejected,
    UnknownOrder,
    from_binance_code,
)
from albra.exchange.fees import value_fees
from albra.exchange.order_rules import order_params
from albra.exchange.types import Balance, ExchangePosition, IncomeRow, OrderRequest, OrderResult
from albra.model import Candle, Fill, MarginMode, MarketFilters, PositionMode
from albra.timefmt import Clock, timeframe_ms

MARGIN_ALREADY_SET = -4046
POSITION_MODE_ALREADY_SET = -4059


def _row_time(r: dict) -> int:
    return r["time"]


class PaperGateway:
    """:class:`Gateway` over a ``SimExchange`` account. ``replay`` (a ``MarketReplay``) serves candles and, with
    ``clock``, moves the market to the clock's time before every call."""

    def __init__(self, account: str, exchange: Any, *, replay: Any = None, clock: Clock | None = None) -> None:
        from albra.sim import answers, payloads
        from albra.sim.errors import SimError

        self.account = account
        self.ex = exchange
        self.replay = replay
        self.clock = clock
        self._payloads = payloads  # exchange_info only: the markets are read once, through the parser
        self._answers = answers
        self._sim_error = SimError
        exchange.account(account)  # unknown account: ValueError now, not on the first order
        self._markets: dict[str, MarketFilters] | None = None
        self._order_checks: dict[int, list[Any]] = {}  # id(history list) -> [list, rows checked, ordered, last time]

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _now(self) -> int:
        if self.clock is None:
            return int(self.ex.now)
        now = self.clock.now_ms()
        if self.replay is not None:
            self.replay.sync(now)
        else:
            self.ex.set_time(now)
        return now

    def _run(self, fn: Callable[[], Any], placement: bool = False) -> Any:
        try:
            return fn()
        except self._sim_error as e:
            err = from_binance_code(e.code, e.msg, during_placement=placement)
            if isinstance(err, OutcomeUnknown):  # in-process and synchronous: an error means nothing happened
                err = Rejected(str(err), code=e.code)
            raise err from e

    def _select(self, rows: list[dict], since: int | None, limit: int,
                keep: Callable[[dict], bool] | None) -> list[dict]:
        """The history rows ``keep`` accepts: with ``since`` the first ``limit`` at or after it, else the last
        ``limit`` — in history order, exactly what a full scan returns. Why not a full scan: the histories only
        grow, and a backtest asks after every fill, so scanning all of them made each trade cost O(history).
        With ``since`` the start is found by binary search on ``time`` while the list is verified
        non-decreasing in time (checked incrementally, per list); an unordered list falls back to the scan."""
        if limit < 1:  # the slicing rules of a plain scan, kept for odd limits (0 means "all" without since)
            hits = [r for r in rows if (keep is None or keep(r)) and (since is None or r["time"] >= since)]
            return hits[:limit] if since is not None else hits[-limit:]
        if since is None:
            out: list[dict] = []
            for r in reversed(rows):
                if len(out) >= limit:
                    break
                if keep is None or keep(r):
                    out.append(r)
            out.reverse()
            return out
        start = bisect_left(rows, since, key=_row_time) if self._time_ordered(rows) else 0
        out = []
        for i in range(start, len(rows)):
            if len(out) >= limit:
                break
            r = rows[i]
            if r["time"] >= since and (keep is None or keep(r)):
                out.append(r)
        return out

    def _time_ordered(self, rows: list[dict]) -> bool:
        """Whether ``rows`` is non-decreasing in ``time``; only rows appended since the last call are checked
        (a list that shrank or was replaced is checked again from its start)."""
        st = self._order_checks.get(id(rows))
        if st is None or st[0] is not rows or st[1] > len(rows):
            st = [rows, 0, True, None]
            self._order_checks[id(rows)] = st
        _, checked, ok, last = st
        if ok:
            for i in range(checked, len(rows)):
                t = rows[i]["time"]
                if last is not None and t < last:
                    ok = False
                    break
                last = t
            st[1], st[2], st[3] = len(rows), ok, last
        return ok

    # -- reads ---------------------------------------------------------------------------------------------------

    async def server_time(self) -> int:
        return self._now()

    async def load_markets(self, reload: bool = False) -> dict[str, MarketFilters]:
        if self._markets is None or reload:
            self._markets = P.parse_markets(self._payloads.exchange_info(self.ex, self._now()))
        return dict(self._markets)

    async def filters(self, symbol: str) -> MarketFilters:
        markets = self._markets if self._markets is not None else await self.load_markets()
        try:
            return markets[symbol]
        except KeyError:
            known = sorted(markets)
            shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
            raise BadSymbol(f"{symbol} is not simulated here (known: {shown}); `albra sim markets` lists every "
                            f"Binance USDⓈ-M market a paper account can replay") from None

    async def fetch_candles(self, symbol: str, timeframe: str, since: int | None = None,
                            limit: int = 500) -> list[Candle]:
        tf_ms = timeframe_ms(timeframe)
        if not 1 <= limit <= 1500:
            raise ValueError(f"candle limit must be in 1..1500, got {limit}")
        if self.replay is None or symbol not in self.replay.series:
            raise BadSymbol(f"paper account {self.account}: no candle data for {symbol} (the replay has "
                            f"{', '.join(sorted(self.replay.series)) if self.replay else 'no replay at all'})")
        now = self._now()
        try:
            rows = self.replay.klines(symbol, timeframe, now, limit, since)
        except ValueError as e:
            raise Rejected(f"paper klines {symbol} {timeframe}: {e}") from None
        return P.parse_klines(rows, symbol, tf_ms, now)

    async def fetch_balance(self) -> Balance:
        now = self._now()
        return self._run(lambda: self._answers.balance(self.ex, self.ex.account(self.account), now))

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[ExchangePosition]:
        self._now()
        acct = self.ex.account(self.account)
        return self._run(lambda: self._answers.positions(self.ex, acct, symbols))

    async def fetch_position_mode(self) -> PositionMode:
        return self.ex.account(self.account).mode

    async def fetch_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        self._now()
        try:
            if is_algo:
                a = self._run(lambda: self.ex.get_algo(self.account, None, client_id))
                return self._answers.algo(a)
            o = self._run(lambda: self.ex.get_order(self.account, symbol, None, client_id))
            return self._answers.order(o)
        except UnknownOrder:
            return None

    async def fetch_open_orders(self, symbol: str | None = None, algo: bool = False) -> list[OrderResult]:
        self._now()
        if algo:
            return [self._answers.algo(a) for a in self._run(lambda: self.ex.open_algos(self.account, symbol))]
        return [self._answers.order(o) for o in self._run(lambda: self.ex.open_orders(self.account, symbol))]

    async def fetch_trades(self, symbol: str, since: int | None = None, limit: int = 1000) -> list[Fill]:
        """``userTrades`` as Binance answers it: the 7-day window from ``since`` (the last 7 days without it)
        and only the fills that have reached trade history (``SimExchange.trade_window`` / ``visible``)."""
        self._now()
        self._run(lambda: self.ex.spec(symbol))
        lo, hi = self._run(lambda: self.ex.trade_window(since, None, None))
        vis = self.ex.visible
        rows = self._select(self.ex.account(self.account).trades, since, limit,
                            lambda t: t["symbol"] == symbol and (lo is None or t["time"] >= lo)
                            and (hi is None or t["time"] <= hi) and vis(t))
        return await value_fees(self.fetch_candles, [self._answers.fill(t) for t in rows])

    async def fetch_income(self, since: int | None = None, income_type: str | None = None,
                           limit: int = 1000) -> list[IncomeRow]:
        self._now()
        lo, _ = self.ex.income_window(since, None)
        vis = self.ex.visible
        rows = self._select(self.ex.account(self.account).income, since, limit,
                            lambda r: (income_type is None or r["incomeType"] == income_type) and vis(r)
                            and (lo is None or r["time"] >= lo))
        return [self._answers.income(r) for r in rows]

    # -- set-up --------------------------------------------------------------------------------------------------

    async def set_position_mode(self, mode: PositionMode) -> None:
        self._now()
        try:
            self._run(lambda: self.ex.set_position_mode(self.account, PositionMode(mode) is PositionMode.HEDGE))
        except ExchangeError as e:
            if e.code != POSITION_MODE_ALREADY_SET:
                raise

    async def setup_symbol(self, symbol: str, leverage: int, margin_mode: MarginMode) -> None:
        if not 1 <= leverage <= 125:
            raise ValueError(f"leverage for {symbol} must be 1..125, got {leverage}")
        await self.filters(symbol)
        self._now()
        try:
            self._run(lambda: self.ex.set_margin_mode(self.account, symbol, MarginMode(margin_mode).value))
        except ExchangeError as e:
            if e.code != MARGIN_ALREADY_SET:
                raise
        self._run(lambda: self.ex.set_leverage(self.account, symbol, int(leverage)))

    # -- orders --------------------------------------------------------------------------------------------------

    async def place_order(self, req: OrderRequest) -> OrderResult:
        p = order_params(req, await self.filters(req.symbol))
        self._now()
        qty = Decimal(p["quantity"]) if "quantity" in p else None
        reduce_only = True if p.get("reduceOnly") == "true" else None
        if req.is_algo:
            a = self._run(lambda: self.ex.place_algo(
                self.account, req.symbol, p["side"], p["type"], Decimal(p["triggerPrice"]), qty,
                client_algo_id=req.client_id, position_side=p.get("positionSide"), reduce_only=reduce_only,
                close_position=p.get("closePosition") == "true", working_type=p["workingType"]), placement=True)
            return self._answers.algo(a)
        o = self._run(lambda: self.ex.place_order(
            self.account, req.symbol, p["side"], p["type"], qty, Decimal(p["price"]) if "price" in p else None,
            client_id=req.client_id, position_side=p.get("positionSide"), reduce_only=reduce_only,
            time_in_force=p.get("timeInForce")), placement=True)
        return self._answers.order(o)

    async def cancel_order(self, symbol: str, client_id: str, is_algo: bool) -> OrderResult | None:
        self._now()
        try:
            if is_algo:
                a = self._run(lambda: self.ex.cancel_algo(self.account, None, client_id))
                return self._answers.algo(a)
            o = self._run(lambda: self.ex.cancel_order(self.account, symbol, None, client_id))
            return self._answers.order(o)
        except UnknownOrder:
            return None

    async def cancel_all(self, symbol: str, kinds: str = "both") -> None:
        if kinds not in ("both", "regular", "algo"):
            raise ValueError(f"kinds must be both, regular or algo, got {kinds!r}")
        await self.filters(symbol)
        self._now()
        if kinds in ("both", "regular"):
            self._run(lambda: self.ex.cancel_all(self.account, symbol))
        if kinds in ("both", "algo"):
            self._run(lambda: self.ex.cancel_all_algos(self.account, symbol))

    async def close(self) -> None:
        return None
