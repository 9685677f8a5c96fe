"""Shared helpers for ledger tests: a real SQLite store on tmp_path, Binance-like BTC/ETH filters, and a
helper that opens a leg the way the engine does (write-ahead entry intent, then the entry fill)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

from albra.exchange.client_ids import make_client_id
from albra.exchange.types import OrderRequest
from albra.ledger import intents as I
from albra.ledger.fills import apply_fill
from albra.ledger.legs import Leg, require_leg
from albra.model import Direction, Fill, MarketFilters, OrderType, PositionMode, PositionSide
from albra.ledger.legs import position_side_for
from albra.store import Store

T0 = 1_718_000_000_000  # 2024-06-10 06:13:20 UTC

BTC = MarketFilters("BTCUSDT", Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal("1000"),
                    Decimal("100"), Decimal("120"))
ETH = MarketFilters("ETHUSDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("10000"),
                    Decimal("20"), Decimal("2000"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "albra.db")
    yield s
    s.close()


_trade_seq = [0]


def fill_for(intent: I.Intent, qty: str, price: str, *, fee: str = "0", ts: int | None = None,
             trade_id: str | None = None, client_id: str | None = None, order_id: str = "") -> Fill:
    _trade_seq[0] += 1
    return Fill(trade_id or f"t{_trade_seq[0]}", order_id or f"o-{intent.client_id}",
                intent.client_id if client_id is None else client_id, intent.symbol, intent.side,
                intent.position_side, Decimal(price), Decimal(qty), Decimal(fee), Decimal(0),
                ts if ts is not None else intent.created_ms + 1)


def entry_intent(store: Store, *, account: str = "main", strategy: str = "TFPE", symbol: str = "BTCUSDT",
                 direction: Direction = Direction.LONG, mode: PositionMode = PositionMode.ONE_WAY,
                 candle_ts: int = T0, qty: str = "0.010", stop: str | None = "60000",
                 tp: str | None = None, now_ms: int = T0) -> tuple[I.Intent, Leg]:
    cid = make_client_id(account, strategy, symbol, candle_ts, "entry")
    req = OrderRequest(cid, symbol, direction.entry_side, OrderType.MARKET, Decimal(qty),
                       position_side_for(direction, mode))
    return I.record_entry(store, req, account=account, strategy=strategy, direction=direction, position_mode=mode,
                          candle_ts=candle_ts, now_ms=now_ms, stop_price=Decimal(stop) if stop else None,
                          take_profit=Decimal(tp) if tp else None)


def open_leg(store: Store, *, qty: str = "0.010", price: str = "65000", fee: str = "0", **kw) -> Leg:
    intent, leg = entry_intent(store, qty=qty, **kw)
    apply_fill(store, intent.account, fill_for(intent, qty, price, fee=fee))
    return require_leg(store, leg.leg_id)


def exit_intent(store: Store, leg: Leg, qty: str, *, purpose: str = "exit", candle_ts: int | None = None) -> I.Intent:
    cts = candle_ts if candle_ts is not None else (leg.entry_ts or T0) + 900_000
    cid = make_client_id(leg.account, leg.strategy, leg.symbol, cts, purpose)
    hedge = leg.position_side is not PositionSide.BOTH
    req = OrderRequest(cid, leg.symbol, leg.direction.exit_side, OrderType.MARKET, Decimal(qty), leg.position_side,
                       reduce_only=not hedge)
    return I.record_intent(store, req, account=leg.account, strategy=leg.strategy, purpose=purpose, candle_ts=cts,
                           now_ms=T0 + 1000, leg_id=leg.leg_id)
