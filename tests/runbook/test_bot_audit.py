"""The bot's /audit through python-telegram-bot polling the local Bot API server, auditing the local Binance
server: ``albra bot`` offers /audit because the runbook provides ``bot_audit`` (commands/bot.bot_functions), the
verdict is "OK" when ledger and exchange agree and lists the mismatch when a stop fired on the exchange."""

from __future__ import annotations

import asyncio

import pytest

from albra.config import load_settings
from albra.notify.access import Access
from albra.notify.bot import AlbraBot, run_bot
from albra.notify.testing import FakeBotApi
from albra.runbook.audit import bot_audit
from albra.store import Store
from albra.commands.bot import bot_functions
from tests.runbook.drill import BOOK, make_drill, seed_book, telegram_section

pytestmark = pytest.mark.anyio

ADMIN = 111


async def _ask(api: FakeBotApi, text: str, replies: int) -> list[str]:
    before = len(api.sent)
    api.command(text, user_id=ADMIN)
    await api.wait_sent(before + replies, timeout=30)
    return [m["text"] for m in api.sent[before:]]


async def test_bot_audit_ok_then_lists_the_mismatch(sim, tmp_path, monkeypatch) -> None:
    async with FakeBotApi() as api:
        drill = make_drill(tmp_path, sim.url, telegram=telegram_section(api.base_url[:-len("/bot")], admin=ADMIN))
        for k, v in drill.env.items():
            if k.startswith(("DRILL_", "ALBRA_")):
                monkeypatch.setenv(k, v)
        await seed_book(drill, await sim.admin.clock(), BOOK)
        settings = load_settings(drill.config)
        audit_fn, emergency_fn = bot_functions(settings)
        assert audit_fn is not None and emergency_fn is not None  # the bot picks the runbook's bot_audit up
        store = Store.open(settings.db_path)
        bot = AlbraBot(settings, store, Access.from_settings(settings.telegram), audit_fn=audit_fn,
                       emergency_fn=emergency_fn)
        assert "audit" in {c.name for c in bot.commands()}
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run_bot(bot, api.token, base_url=api.base_url, stop=stop, ready=ready,
                                           poll_interval=0.02, poll_timeout=0))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            offered = [c for c in api.calls if c.method == "setMyCommands"]
            assert offered and "audit" in str(offered[-1].params)

            running, verdict = await _ask(api, "/audit", replies=2)
            assert "running the audit" in running
            assert "audit OK" in verdict and "main: ok" in verdict and "sub1: ok" in verdict, verdict

            await sim.admin.mark("BTCUSDT", "54500")  # main TFPE's stop (55000) fires on the exchange
            _, verdict = await _ask(api, "/audit", replies=2)
            assert "audit found differences" in verdict, verdict
            assert "main: 2 discrepancy(ies)" in verdict and "position BTCUSDT" in verdict
            assert "missing_stop BTCUSDT" in verdict and "reconcile" in verdict
            assert "sub1: ok" in verdict  # the hedge account's BTCUSDT stops (52000, 70000) did not fire
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            store.close()


async def test_bot_audit_with_an_unreadable_store_is_not_ok(tmp_path) -> None:
    drill = make_drill(tmp_path, "http://127.0.0.1:9")
    drill.db.write_bytes(b"not a database" * 100)
    for p in drill.state.glob("albra.db-*"):
        p.unlink()
    v = await bot_audit(load_settings(drill.config))
    assert not v.ok and "store unreadable" in v.summary
