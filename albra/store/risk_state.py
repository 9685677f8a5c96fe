"""Risk state that must survive restarts (invariant 5): a small JSON key-value table per (account, strategy).

Named keys used across albra live here so that the engine, ``status`` and the bot agree on them.
"""

from __future__ import annotations

import json
from typing import Any

from albra.store.db import Store
from albra.timefmt import now_ms as _now_ms

MDD_PEAK = "mdd_peak_equity"          # {"equity": "12345.6", "ts": ms}
MDD_LEVEL = "mdd_level"               # {"level": 0..5, "drawdown_pct": "12.3", "ts": ms}
DAILY_ANCHOR = "daily_anchor"         # {"kst_day": "2026-11-24", "start_equity": "...", "ts": ms}
LAST_ENTRY = "last_entry"             # strategy level: {"<SYMBOL>": ms of the signal candle}
INCOME_CURSOR = "income_cursor"       # {"ts": ms of the last income row read}


def get(store: Store, account: str, key: str, strategy: str = "", default: Any = None) -> Any:
    r = store.query_one("SELECT value FROM risk_state WHERE account=? AND strategy=? AND key=?",
                        (account, strategy, key))
    return default if r is None else json.loads(r["value"])


def put(store: Store, account: str, key: str, value: Any, strategy: str = "", ts: int | None = None,
        conn: Any = None) -> None:
    sql = ("INSERT INTO risk_state(account, strategy, key, value, updated_ms) VALUES (?,?,?,?,?)"
           " ON CONFLICT(account, strategy, key) DO UPDATE SET value=excluded.value, updated_ms=excluded.updated_ms")
    params = (account, strategy, key, json.dumps(value, default=str, sort_keys=True), _now_ms() if ts is None else ts)
    if conn is not None:
        conn.execute(sql, params)
    else:
        store.execute(sql, params)


def all_for(store: Store, account: str) -> dict[tuple[str, str], Any]:
    """Every (strategy, key) → value of an account."""
    return {(r["strategy"], r["key"]): json.loads(r["value"])
            for r in store.query("SELECT strategy, key, value FROM risk_state WHERE account=?", (account,))}
