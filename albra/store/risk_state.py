"""Risk state that must survive restarts (invariant 5): a small JSON key-value table per (account, strategy).

Named keys used across albra live here so that the engine, ``status`` and the bot agree on them.
"""

from __future__ import annotations

import json
from typing import Any

from albra.store.db import BEFORE_COMMIT, RISK_STATE_UNWRITTEN, Store, batched, memo_of, on_rollback
from albra.timefmt import now_ms as _now_ms

MDD_PEAK = "mdd_peak_equity"          # {"equity": "12345.6", "ts": ms}
MDD_LEVEL = "mdd_level"               # {"level": 0..5, "drawdown_pct": "12.3", "ts": ms}
DAILY_ANCHOR = "daily_anchor"         # {"kst_day": "2026-11-24", "start_equity": "...", "ts": ms}
LAST_ENTRY = "last_entry"             # strategy level: {"<SYMBOL>": ms of the signal candle}
INCOME_CURSOR = "income_cursor"       # {"ts": ms of the last income row read}


_MISSING = object()
#: the memo part of values a backtest's batch keeps in memory until it commits: (account, strategy, key) →
#: :class:`_Waiting`. Why: the issue asks for risk state in memory within a run — every entry rewrote the MDD
#: level and every fill the day's realised PnL, ~4.5 upserts per trade, read back by nobody but this process.
UNWRITTEN = RISK_STATE_UNWRITTEN
_UPSERT = ("INSERT INTO risk_state(account, strategy, key, value, updated_ms) VALUES (?,?,?,?,?)"
           " ON CONFLICT(account, strategy, key) DO UPDATE SET value=excluded.value, updated_ms=excluded.updated_ms")


class _Waiting:
    """A value kept in memory until the batch commits: JSON-native ones as a copy (keys in the stored order) whose
    text is made only when something asks for it (a read of the text, the commit); others as their text."""

    __slots__ = ("ts", "native", "_text")

    def __init__(self, ts: int, native: Any = _MISSING, text: str | None = None) -> None:
        self.ts, self.native, self._text = ts, native, text

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self.native, default=str, sort_keys=True)
        return self._text


def _write_unwritten(conn: Any, memo: dict) -> None:
    """Before a memo store's batch commits: write the risk state it kept in memory (:data:`UNWRITTEN`)."""
    waiting = memo.get(UNWRITTEN)
    if not waiting:
        return
    for (account, strategy, key), w in list(waiting.items()):
        conn.execute(_UPSERT, (account, strategy, key, w.text, w.ts))
    waiting.clear()


BEFORE_COMMIT.append(_write_unwritten)


def _memo(store: Store | None, conn: Any) -> dict | None:
    """The store's risk-state cache (only a backtest's single-writer store has one: :meth:`Store.enable_memo`):
    JSON text by (account, strategy, key), filled by :func:`put` and by reads; values are decoded per read so a
    caller can never change the cached one."""
    m = memo_of(conn) if conn is not None else (store.memo if store is not None else None)
    return None if m is None else m.setdefault("risk_state", {})


def raw(conn: Any, account: str, key: str, strategy: str = "") -> str | None:
    """The stored JSON text of a key, read on ``conn`` (inside a transaction), or None."""
    m = _memo(None, conn)
    if m is not None:
        waiting = memo_of(conn).get(UNWRITTEN)  # type: ignore[union-attr]
        if waiting and (w := waiting.get((account, strategy, key))) is not None:
            return w.text
        hit = m.get((account, strategy, key), _MISSING)
        if hit is not _MISSING:
            return hit
    r = conn.execute("SELECT value FROM risk_state WHERE account=? AND strategy=? AND key=?",
                     (account, strategy, key)).fetchone()
    text = None if r is None else r[0]
    if m is not None:
        m[(account, strategy, key)] = text
    return text


#: a memo store's decoded values: (account, strategy, key) → (the JSON text, what it decodes to); a read whose text
#: is that text answers a copy instead of decoding it again (risk state is read on every entry and fill)
_DECODED = "risk_state_decoded"
_NATIVE = (str, int, float, bool, type(None))


def _native(v: Any) -> bool:
    """Whether ``v`` is exactly what decoding its JSON gives (dicts with str keys, lists, str/int/float/bool/None)."""
    t = type(v)
    if t is dict:
        return all(type(k) is str and _native(x) for k, x in v.items())
    if t is list:
        return all(_native(x) for x in v)
    return t in _NATIVE and not (t is float and v != v)


def _same(a: Any, b: Any) -> bool:
    """Whether two :func:`_native` values have the same JSON text (types included: 1, 1.0 and True differ)."""
    t = type(a)
    if t is not type(b):
        return False
    if t is dict:
        return a.keys() == b.keys() and all(_same(x, b[k]) for k, x in a.items())
    if t is list:
        return len(a) == len(b) and all(map(_same, a, b))
    return repr(a) == repr(b) if t is float else a == b


def _copy(v: Any, ordered: bool = False) -> Any:
    """A copy a caller may change (of a :func:`_native` value); ``ordered`` sorts dict keys as the stored text has
    them (:func:`put` writes ``sort_keys``), so the copy is exactly what decoding that text gives."""
    t = type(v)
    if t is dict:
        items = sorted(v.items()) if ordered else v.items()
        return {k: _copy(x, ordered) for k, x in items}
    if t is list:
        return [_copy(x, ordered) for x in v]
    return v


def _decoded(memo: dict | None, k: tuple[str, str, str], text: str) -> Any:
    if memo is None:
        return json.loads(text)
    part = memo.setdefault(_DECODED, {})
    hit = part.get(k)
    if hit is not None and hit[0] == text:
        return _copy(hit[1])
    obj = json.loads(text)
    part[k] = (text, obj)
    return _copy(obj)


def value(conn: Any, account: str, key: str, strategy: str = "", default: Any = None) -> Any:
    """The decoded value of a key, read on ``conn`` (inside a transaction), or ``default``; a copy the caller owns."""
    m = memo_of(conn)
    waiting = m.get(UNWRITTEN) if m is not None else None
    if waiting and (w := waiting.get((account, strategy, key))) is not None and w.native is not _MISSING:
        return _copy(w.native)
    text = raw(conn, account, key, strategy)
    return default if text is None else _decoded(memo_of(conn), (account, strategy, key), text)


def get(store: Store, account: str, key: str, strategy: str = "", default: Any = None) -> Any:
    m = _memo(store, None)
    if m is not None:
        k = (account, strategy, key)
        waiting = store.memo.get(UNWRITTEN) if store.memo is not None else None
        if waiting and (w := waiting.get(k)) is not None:
            return _copy(w.native) if w.native is not _MISSING else _decoded(store.memo, k, w.text)
        hit = m.get(k, _MISSING)
        if hit is not _MISSING:
            return default if hit is None else _decoded(store.memo, k, hit)
    r = store.query_one("SELECT value FROM risk_state WHERE account=? AND strategy=? AND key=?",
                        (account, strategy, key))
    if m is not None:
        m[(account, strategy, key)] = None if r is None else r["value"]
    return default if r is None else json.loads(r["value"])


def put(store: Store, account: str, key: str, value: Any, strategy: str = "", ts: int | None = None,
        conn: Any = None) -> None:
    m = _memo(store, conn)
    k = (account, strategy, key)
    c = conn if conn is not None else store._conn
    if m is not None and batched(c) and _native(value):
        # inside a backtest's batch: kept in memory as the value itself (its JSON made at the commit), written when
        # the batch commits; a failed transaction puts the previous value back
        waiting = memo_of(c).setdefault(UNWRITTEN, {})  # type: ignore[union-attr]
        before = waiting.get(k, _MISSING)
        if before is not _MISSING:
            current = before.native if before.native is not _MISSING else json.loads(before.text)
        else:
            text = m.get(k, _MISSING)
            current = _MISSING if text is _MISSING or text is None else json.loads(text)
        if current is not _MISSING and _same(current, value):
            return  # the stored value is already this (only updated_ms would change)
        _wait(c, k, _Waiting(_now_ms() if ts is None else ts, _copy(value, ordered=True)))
        return
    text = json.dumps(value, default=str, sort_keys=True)
    waiting = memo_of(c).get(UNWRITTEN) if m is not None else None  # type: ignore[union-attr]
    if m is not None and (waiting[k].text if waiting and k in waiting else m.get(k, _MISSING)) == text:
        return  # a backtest's memo store: the stored value is already this (only updated_ms would change)
    params = (account, strategy, key, text, _now_ms() if ts is None else ts)
    if m is not None and batched(c):  # a value JSON cannot give back as it is (a Decimal): kept as its text
        _wait(c, k, _Waiting(params[4], text=text))
        return
    if conn is not None:
        conn.execute(_UPSERT, params)
    else:
        store.execute(_UPSERT, params)
    if m is not None:
        m[k] = text


def _wait(conn: Any, k: tuple[str, str, str], w: _Waiting) -> None:
    """Keep ``w`` as the key's value until the batch commits; a failed transaction puts back what waited before."""
    waiting = memo_of(conn).setdefault(UNWRITTEN, {})  # type: ignore[union-attr]
    before = waiting.get(k, _MISSING)
    waiting[k] = w
    on_rollback(conn, lambda: waiting.pop(k, None) if before is _MISSING else waiting.__setitem__(k, before))


def all_for(store: Store, account: str) -> dict[tuple[str, str], Any]:
    """Every (strategy, key) → value of an account (with what a backtest's batch still keeps in memory)."""
    out = {(r["strategy"], r["key"]): json.loads(r["value"])
           for r in store.query("SELECT strategy, key, value FROM risk_state WHERE account=?", (account,))}
    for (acct, strategy, key), w in ((store.memo or {}).get(UNWRITTEN) or {}).items():
        if acct == account:
            out[(strategy, key)] = json.loads(w.text)
    return out
