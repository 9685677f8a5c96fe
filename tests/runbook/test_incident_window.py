"""The incident report's look-back stops at an earlier incident's own activity (issue 14: it counted the first
emergency's orders in the second's report), and its realised loss counts every fill since it opened."""

from __future__ import annotations

from pathlib import Path

from albra.runbook.incident_report import build_report
from albra.store import Store, incidents, journal

T = 1_709_251_200_000  # 2024-03-01 00:00 UTC


def _intent(s: Store, cid: str, created: int, oid: str) -> None:
    s.execute("INSERT INTO order_intents(client_id, account, strategy, symbol, purpose, side, position_side,"
              " order_type, qty, state, exchange_order_id, filled_qty, created_ms, updated_ms, candle_ts) VALUES"
              " (?, 'main', 'EMERGENCY-BOTH', 'BTCUSDT', 'emergency', 'SELL', 'BOTH', 'MARKET', '0.01', 'filled', ?,"
              " '0.01', ?, ?, ?)", (cid, oid, created, created, created))


def _fill(s: Store, tid: str, oid: str, ts: int, pnl: str, fee: str) -> None:
    s.execute("INSERT INTO fills(account, symbol, trade_id, exchange_order_id, side, position_side, price, qty, fee,"
              " fee_asset, realized_pnl, ts) VALUES ('main','BTCUSDT',?,?,'SELL','BOTH','60000','0.01',?,'USDT',?,?)",
              (tid, oid, fee, pnl, ts))


def test_second_incident_does_not_count_the_firsts_orders(tmp_path: Path) -> None:
    with Store.open(tmp_path / "albra.db") as s:
        a = incidents.open_incident(s, "emergency_shutdown", "first", ts=T)
        _intent(s, "al-em-first-1", T + 2_000, "1")
        _fill(s, "t1", "1", T + 2_000, "-50", "0.3")
        journal.append(s, "emergency_shutdown", "first done", incident_id=a.incident_id, ts=T + 5_000)
        b = incidents.open_incident(s, "emergency_shutdown", "second", ts=T + 10 * 60_000)  # 10 min later
        _intent(s, "al-em-second-1", T + 10 * 60_000 + 2_000, "2")
        _fill(s, "t2", "2", T + 10 * 60_000 + 2_000, "-20", "0.2")
        rep = build_report(s, b.incident_id, now_ms=T + 20 * 60_000)
        assert [o["client_id"] for o in rep["orders"]] == ["al-em-second-1"]
        assert "first done" not in [e["message"] for e in rep["timeline"]]
        loss = rep["loss"]["realized_since_opened"]
        assert loss["fills"] == "1" and loss["net"] == "-20.2"
        first = build_report(s, a.incident_id, now_ms=T + 20 * 60_000)  # the first (still open) sees both
        assert {o["client_id"] for o in first["orders"]} == {"al-em-first-1", "al-em-second-1"}
