"""One clock: rows are stamped with the exchange's time as the store knows it (the offset a process that read the
exchange recorded), the journal keeps the wall time beside it, and heartbeats stay on the wall clock."""

from __future__ import annotations

from pathlib import Path

from albra.dashboard.snapshot import equity_curve
from albra.store import Store, clock, flags, incidents, journal, runners
from albra.timefmt import DAY_MS, parse_time


def test_rows_follow_the_exchange_clock_and_keep_the_wall_time(tmp_path: Path) -> None:
    with Store.open(tmp_path / "albra.db") as s:
        w = clock.wall_ms()
        assert abs(clock.exchange_now(s) - w) < 5_000  # nothing measured yet: the wall clock
        past = parse_time("2024-03-01T00:00:00Z")
        clock.record_offset(s, "main", past)  # a drill server started in the past
        e = journal.entries(s)  # nothing yet
        assert e == []
        journal.append(s, "note", "from the bot", actor="telegram:1")          # no account: the latest offset
        journal.append(s, "note", "for main", account="main")
        f = flags.set_kill_switch(s, True, reason="drill")
        inc = incidents.open_incident(s, "emergency_shutdown", "drill")
        rows = journal.entries(s)
        assert all(abs(r.ts - past) < 60_000 for r in rows), [r.ts for r in rows]
        assert all(r.wall_ms is not None and abs(r.wall_ms - w) < 60_000 for r in rows)
        assert abs(f.updated_ms - past) < 60_000 and abs(inc.opened_ms - past) < 60_000
        assert inc.incident_id.startswith("INC-20240301")
        # heartbeats stay wall-clock: a runner that beats now is up, whatever the exchange's clock says
        runners.beat(s, "run:main", "running", started_ms=runners.wall_now())
        assert runners.liveness(runners.get_all(s)[0], runners.wall_now(), 30_000).up
        # equity curves end at the exchange's now: a drill's snapshots are on its clock
        s.execute("INSERT INTO equity_snapshots VALUES ('main', ?, '100', '0', '100', '100')", (past - DAY_MS,))
        assert equity_curve(s, "main", 48, clock.exchange_now(s, "main"))["count"] == 1
        assert equity_curve(s, "main", 48, clock.wall_ms())["count"] == 0  # the two-clock bug this fixes


def test_offset_is_rewritten_only_when_it_moves(tmp_path: Path) -> None:
    with Store.open(tmp_path / "albra.db") as s:
        w = clock.wall_ms()
        clock.record_offset(s, "a", w + 1000, wall=w)
        clock.record_offset(s, "a", w + 1100, wall=w + 50)  # within the tolerance: not written
        assert s.query_one("SELECT offset_ms FROM clock_offsets WHERE account='a'")["offset_ms"] == 1000
        clock.record_offset(s, "b", w - 5000, wall=w)
        assert clock.offset_ms(s, "a") == 1000 and clock.offset_ms(s, "b") == -5000
        assert clock.offset_ms(s, "zzz") == -5000  # unknown account: the latest measurement of any
