"""A store with two accounts the dashboard tests read: open and closed legs with and without protective orders,
equity series, risk state, flags, journal entries, an incident and runner heartbeats.

Rows go in through the store modules (flags, journal, incidents, runners, risk_state) and plain SQL for the
tables the engine fills (legs, order_intents, equity_snapshots). The expected figures are written out by hand
below, not computed with the dashboard's formatter, so a formatting mistake shows up as a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from albra.store import Store, flags, incidents, journal, risk_state, runners
from albra.timefmt import kst_date

HOUR = 3_600_000
CONFIG = """\
[paths]
state_dir = "{state}"
log_dir = "{logs}"

[telegram]
enabled = false

[accounts.master]
mode = "paper"
position_mode = "hedge"

[[accounts.master.strategies]]
name = "TFPE"
symbols = ["BTCUSDT", "ETHUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 24.0

[accounts.sub1]
mode = "paper"
risk = {{ daily_loss_pct = 5.0 }}

[[accounts.sub1.strategies]]
name = "ZLMACD_ICHIMOKU"
symbols = ["BTCUSDT"]
timeframe = "1h"
leverage = 8
size_pct = 24.0
"""
XSS_MESSAGE = "operator note <img src=x onerror=alert(1)><b>bold</b>"


@dataclass(frozen=True)
class Seeded:
    """What the page must show for the seeded store (hand-written)."""

    equity: dict[str, str]
    snapshots: dict[str, int]
    drawdown: dict[str, str]
    daily_loss: dict[str, str]
    open_legs: dict[str, int]
    incident_id: str


def write_config(root: Path) -> Path:
    state = root / "state"
    cfg = root / "albra.toml"
    cfg.write_text(CONFIG.format(state=state, logs=root / "logs"), encoding="utf-8")
    return cfg


def _snapshots(store: Store, account: str, equities: list[str], wallet_last: str, unreal_last: str,
               available_last: str, now: int) -> None:
    n = len(equities)
    with store.tx() as c:
        for i, eq in enumerate(equities):
            last = i == n - 1
            c.execute("INSERT INTO equity_snapshots(account, ts, wallet, unrealized, equity, available)"
                      " VALUES (?,?,?,?,?,?)",
                      (account, now - (n - 1 - i) * HOUR - 60_000, wallet_last if last else eq,
                       unreal_last if last else "0", eq, available_last if last else eq))


def _leg(store: Store, leg_id: str, account: str, symbol: str, strategy: str, direction: str, pos_side: str,
         state: str, qty: str, entry: str, stop: str | None, tp: str | None, opened: int,
         realized: str = "0") -> None:
    store.execute(
        "INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty, qty_initial,"
        " entry_price, entry_ts, stop_price, take_profit, realized_pnl, opened_ms, updated_ms, closed_ms)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (leg_id, account, symbol, strategy, direction, pos_side, state, qty, qty, entry, opened - 900_000, stop, tp,
         realized, opened, opened, opened + HOUR if state == "closed" else None))


def _intent(store: Store, client_id: str, leg_id: str, account: str, strategy: str, symbol: str, purpose: str,
            side: str, pos_side: str, order_type: str, qty: str, trigger: str, state: str, ts: int) -> None:
    store.execute(
        "INSERT INTO order_intents(client_id, account, strategy, symbol, purpose, leg_id, side, position_side,"
        " order_type, qty, trigger_price, reduce_only, is_algo, state, created_ms, updated_ms)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (client_id, account, strategy, symbol, purpose, leg_id, side, pos_side, order_type, qty, trigger,
         int(pos_side == "BOTH"), 1, state, ts, ts))


def seed(db: Path, now: int) -> Seeded:
    with Store.open(db) as store:
        # master: 48 hourly snapshots rising to 10234.56; peak 10500 → drawdown 2.53 %; day start 10300 → 0.64 %
        master_eq = [f"{10000 + i * 5:.2f}" for i in range(47)] + ["10234.56"]
        _snapshots(store, "master", master_eq, "10180.06", "54.50", "8000.00", now)
        # sub1: 30 snapshots falling to 4876.40; peak 5200 → 6.22 %; day start 4800 → a gain (0.00 % used)
        sub1_eq = [f"{5200 - i * 11:.2f}" for i in range(29)] + ["4876.40"]
        _snapshots(store, "sub1", sub1_eq, "4880.00", "-3.60", "3900.10", now)
        # an old snapshot outside the 168 h window the page asks for
        store.execute("INSERT INTO equity_snapshots VALUES ('master', ?, '9000', '0', '9000', '9000')",
                      (now - 200 * HOUR,))
        day = kst_date(now)
        risk_state.put(store, "master", risk_state.MDD_PEAK, {"equity": "10500.00", "ts": now - 100 * HOUR}, ts=now)
        risk_state.put(store, "master", risk_state.MDD_LEVEL, {"level": 0, "drawdown_pct": "2.53", "ts": now}, ts=now)
        risk_state.put(store, "master", risk_state.DAILY_ANCHOR,
                       {"kst_day": day, "start_equity": "10300.00", "ts": now - 2 * HOUR}, ts=now)
        risk_state.put(store, "sub1", risk_state.MDD_PEAK, {"equity": "5200", "ts": now - 40 * HOUR}, ts=now)
        risk_state.put(store, "sub1", risk_state.MDD_LEVEL, {"level": 1, "drawdown_pct": "6.22", "ts": now}, ts=now)
        risk_state.put(store, "sub1", risk_state.DAILY_ANCHOR,
                       {"kst_day": day, "start_equity": "4800", "ts": now - 2 * HOUR}, ts=now)

        # legs: master hedge mode, two TFPE legs (one long BTC protected, one short ETH whose stop is in flight)
        _leg(store, "L-m1", "master", "BTCUSDT", "TFPE", "LONG", "LONG", "open", "0.012", "43125.5", "42100",
             "45200", now - 5 * HOUR)
        _intent(store, "tfpe-m1-sl-1", "L-m1", "master", "TFPE", "BTCUSDT", "stop_loss", "SELL", "LONG",
                "STOP_MARKET", "0.012", "42100", "open", now - 5 * HOUR)
        _intent(store, "tfpe-m1-tp-1", "L-m1", "master", "TFPE", "BTCUSDT", "take_profit", "SELL", "LONG",
                "TAKE_PROFIT_MARKET", "0.012", "45200", "open", now - 5 * HOUR)
        _leg(store, "L-m2", "master", "ETHUSDT", "TFPE", "SHORT", "SHORT", "open", "0.500", "2310.25", "2380.00",
             None, now - 3 * HOUR)
        _intent(store, "tfpe-m2-sl-1", "L-m2", "master", "TFPE", "ETHUSDT", "stop_loss", "BUY", "SHORT",
                "STOP_MARKET", "0.5", "2380", "canceled", now - 3 * HOUR)
        _intent(store, "tfpe-m2-sl-2", "L-m2", "master", "TFPE", "ETHUSDT", "stop_loss", "BUY", "SHORT",
                "STOP_MARKET", "0.5", "2380", "sent", now - 2 * HOUR)
        # sub1: one open leg with no stop on the exchange (must be flagged), one closed leg (must not show)
        _leg(store, "L-s1", "sub1", "BTCUSDT", "ZLMACD_ICHIMOKU", "LONG", "BOTH", "open", "0.02", "42980",
             "41800", None, now - 7 * HOUR, realized="1.25")
        _leg(store, "L-s0", "sub1", "BTCUSDT", "ZLMACD_ICHIMOKU", "SHORT", "BOTH", "closed", "0", "44000",
             "45000", None, now - 30 * HOUR, realized="-20.5")

        flags.pause(store, "sub1", "ZLMACD_ICHIMOKU", reason="drill: spread too wide", actor="cli", ts=now - HOUR)
        flags.pause(store, "master", reason="was paused", actor="telegram:42", ts=now - 3 * HOUR)
        flags.resume(store, "master", actor="telegram:42", ts=now - 2 * HOUR)  # inactive: must not show
        journal.append(store, "entry", "TFPE long BTCUSDT 0.012 @ 43125.5", account="master", strategy="TFPE",
                       symbol="BTCUSDT", ts=now - 5 * HOUR)
        journal.append(store, "note", XSS_MESSAGE, level="WARNING", actor="cli", ts=now - 30 * 60_000)
        inc = incidents.open_incident(store, "unattributed_leg", "sub1: BTCUSDT position larger than its legs",
                                      account="sub1", opened_by="reconcile", ts=now - 20 * 60_000)
        runners.beat(store, "run:master", "running", {"loop": 12}, ts=now, started_ms=now - 6 * HOUR)
        runners.beat(store, "run:sub1", "crashed", ts=now - 10 * 60_000, started_ms=now - 9 * HOUR)
    return Seeded(
        equity={"master": "10,234.56", "sub1": "4,876.40"},
        snapshots={"master": 48, "sub1": 30},
        drawdown={"master": "2.53%", "sub1": "6.22%"},
        daily_loss={"master": "0.64%", "sub1": "0.00%"},
        open_legs={"master": 2, "sub1": 1},
        incident_id=inc.incident_id,
    )


def dump(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, to prove the dashboard changed nothing."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in tables}
    finally:
        con.close()
