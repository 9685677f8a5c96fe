"""Helpers shared by the engine tests: a simulated exchange with one account, a small paper config."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

from albra.model import PositionMode


def make_sim(mode: PositionMode = PositionMode.HEDGE, balance: str = "10000", price: float = 60000.0):
    from albra.exchange.paper import PaperGateway
    from albra.sim.exchange import SimExchange

    ex = SimExchange(now_ms=1_700_000_000_000)
    ex.add_account("acct", Decimal(balance), mode)
    ex.set_leverage("acct", "BTCUSDT", 10)
    ex.on_candle("BTCUSDT", ex.now, price, price, price, price)
    return ex, PaperGateway("acct", ex)


def settle(ex) -> None:
    """Sleep until everything the realistic exchange did so far is visible (a fired stop FINISHED, new orders found
    by their client id, fills in trade history): what a sync one poll later would see."""
    import time

    r = ex.realism
    time.sleep((r.trigger_ms + r.finish_ms + max(r.trade_ms, r.lookup_ms)) / 1000 + 0.03)


def write_config(tmp_path: Path, *, position_mode: str = "one_way", replay_speed: float = 0.0,
                 replay_start: str = "2024-02-01", replay_end: str = "2024-02-15", extra: str = "") -> Path:
    cfg = tmp_path / "albra.toml"
    cfg.write_text(textwrap.dedent(f"""
        [paths]
        state_dir = "{tmp_path / 'state'}"
        log_dir = "{tmp_path / 'logs'}"

        [telegram]
        enabled = false

        [accounts.demo]
        mode = "paper"
        position_mode = "{position_mode}"
        paper_balance = 10000
        replay_start = "{replay_start}"
        replay_end = "{replay_end}"
        replay_speed = {replay_speed}
        {extra}

        [[accounts.demo.strategies]]
        name = "TFPE"
        symbols = ["BTCUSDT"]
        timeframe = "15m"
        leverage = 10
        size_pct = 24.0

        [[accounts.demo.strategies]]
        name = "ZLMACD_ICHIMOKU"
        symbols = ["BTCUSDT"]
        timeframe = "1h"
        leverage = 10
        size_pct = 24.0
        """))
    return cfg


def QuietNotifier():
    """A systemd notifier that sends nothing: the real one without a socket (runner tests may run under systemd)."""
    from albra.systemd import Notifier

    return Notifier(env={})
