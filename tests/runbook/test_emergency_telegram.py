"""``emergency-shutdown`` tells Telegram itself (the runners it stops are what would otherwise send the alert):
through the local Bot API server the alert is delivered; with the server down the shutdown still exits 0 once flat
and says the alert stays queued (for ``albra bot`` or a runner), its lease given back."""

from __future__ import annotations

import pytest

from albra.notify.testing import FakeBotApi
from tests.runbook.drill import BOOK, make_drill, seed_book, telegram_section

pytestmark = pytest.mark.anyio

CHAT = -100500


async def test_alert_is_delivered_through_the_bot_api(sim, tmp_path) -> None:
    async with FakeBotApi() as api:
        drill = make_drill(tmp_path, sim.url, telegram=telegram_section(api.base_url[:-len("/bot")], CHAT))
        drill.env["TELEGRAM_BOT_TOKEN"] = api.token
        code, out, err = await drill.albra_json("emergency-shutdown", "--yes")  # (flattening: the next test)
        assert code == 0, (out, err)
        assert out["notified"] == "delivered to Telegram", out["notified"]
        mine = [a for a in out["telegram"] if a["kind"] == "emergency_shutdown"]
        assert [(a["status"], a["level"]) for a in mine] == [("delivered", "CRITICAL")]
        texts = api.sent_to(CHAT)
        assert len(texts) == 1 and "mergency" in texts[0] and out["incident_id"] in texts[0]
    with drill.store() as s:
        row = s.query_one("SELECT status, claimed_by FROM alerts WHERE kind='emergency_shutdown'")
        assert row["status"] == "sent" and row["claimed_by"] is None


async def test_telegram_down_the_shutdown_still_succeeds_and_the_alert_stays_queued(sim, tmp_path, capsys) -> None:
    api = FakeBotApi()
    await api.start()
    root = api.base_url[:-len("/bot")]
    await api.stop()  # nothing listens on that port any more: connection refused
    drill = make_drill(tmp_path, sim.url, telegram=telegram_section(root, CHAT))
    drill.env["TELEGRAM_BOT_TOKEN"] = "123456:TEST-token-for-the-local-fake-bot-api-xx"
    await seed_book(drill, await sim.admin.clock(), BOOK[:2])
    code, out, err = await drill.albra_json("emergency-shutdown", "--yes")
    assert code == 0, (out, err)
    assert [a["status"] for a in out["accounts"]] == ["flat", "flat"]
    assert "NOT delivered" in out["notified"] and "stays queued" in out["notified"]
    mine = [a for a in out["telegram"] if a["kind"] == "emergency_shutdown"]
    assert [a["status"] for a in mine] == ["queued"] and mine[0]["detail"]  # with the error it got
    with drill.store() as s:
        row = s.query_one("SELECT status, claimed_by, attempts FROM alerts WHERE kind='emergency_shutdown'")
        assert row["status"] == "queued" and row["claimed_by"] is None and row["attempts"] == 1
    from albra.commands.emergency import render

    capsys.readouterr()
    render(out)  # the human output of the same report
    text = capsys.readouterr().out
    assert "telegram emergency_shutdown (CRITICAL): queued — stays queued" in text and "verified" in text


async def test_a_hanging_telegram_is_cut_off_and_its_lease_given_back(sim, tmp_path) -> None:
    from albra.notify.testing import Fault

    async with FakeBotApi() as api:
        api.fault("sendMessage", Fault(hang=True, times=None))
        drill = make_drill(tmp_path, sim.url, telegram=telegram_section(api.base_url[:-len("/bot")], CHAT))
        drill.env["TELEGRAM_BOT_TOKEN"] = api.token
        code, out, err = await drill.albra_json("emergency-shutdown", "--yes", "--telegram-timeout", "0.5")
        assert code == 0, (out, err)
        assert "did not answer within 0.5 s" in out["notified"] and "stays queued" in out["notified"]
        api.release()
    with drill.store() as s:
        row = s.query_one("SELECT status, claimed_by FROM alerts WHERE kind='emergency_shutdown'")
        assert row["status"] == "queued" and row["claimed_by"] is None  # `albra bot` may send it at once
