"""A runbook drill on loopback: the local Binance server, two accounts (``main`` one-way, ``sub1`` hedge), a
config pointing at it, a store with legs opened the way the engine opens them (write-ahead entry intent → real
order through the real ccxt gateway → fill applied → per-leg stop placed), and ``albra`` run as a real process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from albra.exchange.ccxt_gateway import CcxtGateway
from albra.exchange.client import make_ccxt_client
from albra.exchange.client_ids import make_client_id
from albra.exchange.types import OrderRequest
from albra.ledger import intents as I
from albra.ledger import legs as L
from albra.exchange.resolve import await_fills
from albra.ledger.fills import apply_fill
from albra.orders.manager import OrderManager
from albra.orders.protection import protect_leg
from albra.model import Direction, OrderType, PositionMode
from albra.store import Store

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"main": ("main-key", "main-secret"), "sub1": ("sub1-key", "sub1-secret")}
SIM_START = "2024-03-01"

CONFIG = """
[paths]
state_dir = "state"
log_dir = "logs"

[telegram]
enabled = false

[accounts.main]
mode = "live"
base_url = "{url}"
api_key_env = "DRILL_MAIN_KEY"
api_secret_env = "DRILL_MAIN_SECRET"
position_mode = "one_way"

[accounts.sub1]
mode = "live"
base_url = "{url}"
api_key_env = "DRILL_SUB1_KEY"
api_secret_env = "DRILL_SUB1_SECRET"
position_mode = "hedge"
"""


@dataclass
class Drill:
    """Paths and environment of one drill; ``env`` is what the ``albra`` subprocesses get."""

    root: Path
    url: str
    env: dict[str, str] = field(default_factory=dict)
    #: called before each command: the drill runs many commands within one minute, far more request weight than an
    #: operator's commands minutes apart, so the per-minute weight window is restarted (the bench measures weight).
    before_command: Any = None

    @property
    def config(self) -> Path:
        return self.root / "config" / "albra.toml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def db(self) -> Path:
        return self.state / "albra.db"

    def store(self) -> Store:
        return Store.open(self.db)

    def gateway(self, account: str) -> CcxtGateway:
        k, s = KEYS[account]
        return CcxtGateway(account, make_ccxt_client("local", k, s, self.url, test_mode=True))

    async def albra(self, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """Run ``python -m albra ARGS --config …`` as a real process; (exit code, stdout, stderr)."""
        if self.before_command is not None:
            await self.before_command()
        (self.state / "weight.json").unlink(missing_ok=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "albra", *args, "--config", str(self.config), cwd=str(ROOT), env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        import time as _t

        t0 = _t.monotonic()
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        if os.environ.get("DRILL_TIMES"):
            print(f"albra {' '.join(args)}: {_t.monotonic() - t0:.2f}s", file=sys.stderr)
        return proc.returncode or 0, out.decode(), err.decode()

    async def albra_json(self, *args: str) -> tuple[int, Any, str]:
        code, out, err = await self.albra(*args, "--json")
        try:
            return code, json.loads(out), err
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {code}): {out!r} {err!r}") from None


def telegram_section(api_root: str, chat_id: int = -100500, admin: int = 111) -> str:
    """A ``[telegram]`` section for a local Bot API server at ``api_root`` (``http://127.0.0.1:PORT``)."""
    return (f'[telegram]\nenabled = true\napi_base_url = "{api_root}"\nchat_ids = [{chat_id}]\n'
            f'admin_user_ids = [{admin}]\n')


def make_drill(tmp: Path, url: str, wrong_keys: set[str] = frozenset(), telegram: str | None = None,
               missing_keys: set[str] = frozenset()) -> Drill:
    """A drill in ``tmp``; ``telegram`` replaces the (disabled) ``[telegram]`` section; accounts in ``wrong_keys``
    get a wrong secret, those in ``missing_keys`` no key variables at all."""
    (tmp / "config").mkdir(parents=True, exist_ok=True)
    text = CONFIG.format(url=url)
    if telegram is not None:
        assert "[telegram]\nenabled = false\n" in text
        text = text.replace("[telegram]\nenabled = false\n", telegram)
    (tmp / "config" / "albra.toml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALBRA_")}
    env.update(ALBRA_EXCHANGE_TEST_MODE="1", PYTHONUNBUFFERED="1")
    env.pop("TELEGRAM_BOT_TOKEN", None)
    for acct, (k, s) in KEYS.items():
        stem = acct.upper()
        if acct in missing_keys:
            env.pop(f"DRILL_{stem}_KEY", None)
            env.pop(f"DRILL_{stem}_SECRET", None)
            continue
        env[f"DRILL_{stem}_KEY"] = k
        env[f"DRILL_{stem}_SECRET"] = "wrong-secret" if acct in wrong_keys else s
    d = Drill(tmp, url, env)
    Store.open(d.db).close()
    return d


async def open_leg(store: Store, gw: CcxtGateway, strategy: str, symbol: str, direction: Direction, qty: str,
                   stop: str | None, mode: PositionMode, now_ms: int, candle_ts: int) -> L.Leg:
    """Open a leg exactly as the engine does: write-ahead entry → market order → fill applied → stop placed."""
    cid = make_client_id(gw.account, strategy, symbol, candle_ts, "entry")
    pside = L.position_side_for(direction, mode)
    req = OrderRequest(cid, symbol, direction.entry_side, OrderType.MARKET, Decimal(qty), pside)
    intent, leg = I.record_entry(store, req, account=gw.account, strategy=strategy, direction=direction,
                                 position_mode=mode, candle_ts=candle_ts, now_ms=now_ms,
                                 stop_price=Decimal(stop) if stop else None)
    I.mark_sent(store, cid, now_ms=now_ms)
    res = await gw.place_order(req)
    I.mark_outcome(store, res, now_ms=now_ms)
    # as the engine does: the fill reaches trade history a little after the answer, so it is awaited
    for t in await await_fills(gw, symbol, now_ms - 60_000, lambda: now_ms, lambda t: t.order_id == res.exchange_id,
                               res.filled_qty):
        apply_fill(store, gw.account, t, now_ms=now_ms)
    if stop:
        await protect_leg(OrderManager(store, gw, leg.account, lambda: now_ms), leg.leg_id, await gw.filters(symbol))
    got = L.get_leg(store, leg.leg_id)
    assert got is not None and got.state is L.LegState.OPEN, got
    return got


#: (account, strategy, symbol, direction, qty, stop) — several strategies per account, two on one symbol,
#: opposite directions on one symbol in hedge mode.
BOOK = [
    ("main", "TFPE", "BTCUSDT", Direction.LONG, "0.010", "55000"),
    ("main", "MOMENTUM", "BTCUSDT", Direction.LONG, "0.005", "54000"),
    ("main", "ZLMACD_ICHIMOKU", "ETHUSDT", Direction.SHORT, "0.20", "4000"),
    ("sub1", "ZLHMA_EMA_CROSS", "BTCUSDT", Direction.LONG, "0.004", "52000"),
    ("sub1", "TFPE", "BTCUSDT", Direction.SHORT, "0.003", "70000"),
    ("sub1", "MOMENTUM", "ETHUSDT", Direction.LONG, "0.30", "2500"),
]
MODES = {"main": PositionMode.ONE_WAY, "sub1": PositionMode.HEDGE}


async def seed_book(drill: Drill, now_ms: int, book: list = BOOK) -> list[L.Leg]:
    """Every leg of ``book`` opened on the sim and in the store (candle ts spaced so client ids differ), in book
    order per account; the accounts concurrently (as their runners would be). Legs come back in book order."""
    gws = {a: drill.gateway(a) for a in KEYS}
    opened: dict[int, L.Leg] = {}
    try:
        with drill.store() as store:
            async def account(acct: str) -> None:
                for i, (a, strat, sym, direction, qty, stop) in enumerate(book):
                    if a == acct:
                        opened[i] = await open_leg(store, gws[a], strat, sym, direction, qty, stop, MODES[a],
                                                   now_ms, candle_ts=now_ms - 3_600_000 * (i + 1))

            await asyncio.gather(*(account(a) for a in KEYS))
    finally:
        for g in gws.values():
            await g.close()
    return [opened[i] for i in range(len(book))]
