"""The runner's resilience-event sink (albra.engine.exchange_events): every event journaled at its level, the
alert-worthy ones queued once per kind and minute, a breaker open past its threshold opens one incident; and the
runner's gateway really carries the sink (a retry against the local server lands in the journal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from albra.engine.exchange_events import LEVELS, ExchangeEventSink
from albra.exchange.resilience import ResilienceEvent
from albra.store import incidents, journal

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.ms = 1_704_067_200_000

    def mono(self) -> float:
        return self.t

    def now(self) -> int:
        return self.ms


def _ev(kind: str, alert: bool = False, detail: str = "") -> ResilienceEvent:
    return ResilienceEvent(kind, "acct", detail or f"{kind} happened", alert, 0)


def _alerts(store) -> list[str]:
    return [r["kind"] for r in store.query("SELECT kind FROM alerts ORDER BY rowid")]


def test_every_event_is_journaled_at_its_level_and_alerts_are_deduplicated(store):
    clk = Clock()
    sink = ExchangeEventSink(store, "acct", now_ms=clk.now, monotonic=clk.mono, actor="run:acct")
    for kind in ("retry", "time_resync", "weight_throttle", "breaker_half_open"):
        sink(_ev(kind))
    sink(_ev("rate_limited", True))
    sink(_ev("rate_limited", True))  # same minute: journaled again, alerted once
    sink(_ev("ip_banned", True, "POST order: HTTP 418; Binance asks to wait 120s"))
    rows = journal.entries(store, account="acct")
    assert [(r.kind, r.level) for r in rows] == [
        ("retry", "WARNING"), ("time_resync", "WARNING"), ("weight_throttle", "WARNING"),
        ("breaker_half_open", "WARNING"), ("rate_limited", "ERROR"), ("rate_limited", "ERROR"),
        ("ip_banned", "CRITICAL")]
    assert rows[-1].message.endswith("wait 120s") and rows[-1].actor == "run:acct"
    assert _alerts(store) == ["rate_limited", "ip_banned"]
    clk.ms += 60_000
    sink(_ev("rate_limited", True))  # a new minute: a new alert
    assert _alerts(store) == ["rate_limited", "ip_banned", "rate_limited"]
    assert set(LEVELS) == {"retry", "time_resync", "weight_throttle", "breaker_half_open", "breaker_closed",
                           "rate_limited", "breaker_open", "ip_banned"}


def test_a_breaker_open_past_the_threshold_opens_one_incident(store):
    clk = Clock()
    sink = ExchangeEventSink(store, "acct", now_ms=clk.now, monotonic=clk.mono, incident_after_s=300)
    sink(_ev("breaker_open", True))
    assert journal.entries(store, kinds=("breaker_open",))[0].level == "ERROR"
    clk.t += 299
    sink.tick()
    sink(_ev("breaker_half_open"))
    sink(_ev("breaker_open", True))  # the probe failed: re-opened, still counted from the first opening
    assert incidents.list_incidents(store) == []
    clk.t += 2
    sink.tick()  # no event during a cool-down: the runner's heartbeat ticks
    sink.tick()
    [inc] = incidents.list_incidents(store)
    assert inc.kind == "breaker_open" and inc.account == "acct" and inc.status == "open"
    assert "incident_opened" in _alerts(store)
    sink(_ev("breaker_closed", True))
    assert journal.entries(store, kinds=("breaker_recovered",))
    # it opens again later: the open incident is reused, not duplicated
    sink(_ev("breaker_open", True))
    clk.t += 400
    sink.tick()
    assert len(incidents.list_incidents(store)) == 1


def test_a_failing_journal_never_breaks_the_exchange_call(store):
    sink = ExchangeEventSink(store, "acct", now_ms=lambda: 1 // 0)  # noqa: the clock itself raises
    sink(_ev("retry"))  # logged, not raised
    assert journal.entries(store, kinds=("retry",)) == []


async def test_the_runners_gateway_journals_a_retry_against_the_local_server(store, tmp_path: Path):
    from albra.config.schema import AccountSettings
    from albra.engine.runner import build_gateway
    from albra.sim.testing import run_sim_server

    class Settings:  # what build_gateway reads of the settings
        class paths:
            state_dir = tmp_path

        def __init__(self, acc, keys):
            self.acc, self.keys = acc, keys

        def account(self, _name):
            return self.acc

        def require_secrets(self, _name):
            from pydantic import SecretStr

            from albra.secrets import AccountSecrets, Secret

            return AccountSecrets(Secret("K", "test", SecretStr(self.keys[0])),
                                  Secret("S", "test", SecretStr(self.keys[1])))

    async with run_sim_server(start="2024-01-02", speed=0) as sim:
        sink = ExchangeEventSink(store, "main", now_ms=lambda: 1_704_153_600_000)
        gw, replay = build_gateway(Settings(AccountSettings(mode="live", base_url=sim.url), sim.accounts["main"]),
                                   "main", on_event=sink)
        try:
            assert replay is None
            await sim.admin.fault("GET", "*", action="status", status=503,
                                  body='{"code":-1001,"msg":"Internal error"}', count=1, probability=1.0)
            await gw.fetch_balance()  # retried once, then answered
        finally:
            await gw.close()
    [row] = journal.entries(store, kinds=("retry",))
    assert row.account == "main" and row.level == "WARNING" and "retrying" in row.message
