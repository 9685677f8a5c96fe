"""The command bot through real python-telegram-bot polling a local Bot API server: every command, the
/emergency confirm flow, strangers, read-only users, journaling, redaction, and the fail-closed start."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import pytest

from albra.config import load_settings
from albra.notify import AlertEvent, emit
from albra.notify.access import Access, AccessConfigError
from albra.notify.bot import AlbraBot, run_bot
from albra.notify.sender import AlertSender
from albra.notify.testing import FakeBotApi, FakeTime
from albra.notify.transport import TelegramTransport
from albra.notify.wiring import alert_chats, bot_api_base_url, sender_from_settings
from albra.redact import REDACTOR, register_secret
from albra.store import Store, flags, incidents, journal, runners

pytestmark = pytest.mark.anyio

ADMIN = 111
READER = 222
STRANGER = 999
GROUP = -100500

CONFIG = """
[paths]
state_dir = "state"
[telegram]
admin_user_ids = [111]
readonly_user_ids = [222]
chat_ids = [-100500]
[accounts.master]
mode = "paper"
[[accounts.master.strategies]]
name = "TFPE"
symbols = ["BTCUSDT"]
timeframe = "15m"
leverage = 10
size_pct = 24
[accounts.sub1]
mode = "paper"
"""


@dataclass
class Verdict:
    ok: bool
    summary: str


@pytest.fixture
def settings(tmp_path: Path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "albra.toml").write_text(CONFIG)
    return load_settings(tmp_path / "config" / "albra.toml")


@dataclass
class Harness:
    api: FakeBotApi
    store: Store
    bot: AlbraBot
    time: FakeTime
    emergencies: list[str]
    audits: list[int]

    async def ask(self, text: str, user_id: int = ADMIN, chat_id: int | None = None, replies: int = 1) -> list[str]:
        """Send a command and return the replies it produced (waits for ``replies`` new messages)."""
        before = len(self.api.sent)
        self.api.command(text, user_id=user_id, chat_id=chat_id)
        await self.api.wait_sent(before + replies)
        return [m["text"] for m in self.api.sent[before:]]


@pytest.fixture
async def harness(settings, api) -> AsyncIterator[Harness]:
    store = Store.open(settings.db_path)
    fake_time = FakeTime()
    emergencies: list[str] = []
    audits: list[int] = []

    async def audit_fn() -> Verdict:
        audits.append(1)
        return Verdict(False, "master BTCUSDT: ledger 0.012 vs exchange 0.010")

    async def emergency_fn(actor: str) -> Verdict:
        emergencies.append(actor)
        return Verdict(True, "kill switch on; 0 positions left; INC-20260101-001")

    bot = AlbraBot(settings, store, Access.from_settings(settings.telegram), audit_fn=audit_fn,
                   emergency_fn=emergency_fn, clock=fake_time, confirm_ttl_s=120)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_bot(bot, api.token, base_url=api.base_url, stop=stop, ready=ready,
                                       poll_interval=0.02, poll_timeout=0))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield Harness(api, store, bot, fake_time, emergencies, audits)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        store.close()


def _seed(store: Store, now_ms: int) -> None:
    day = now_ms - 3_600_000  # one hour earlier, same KST day (09:00 KST start)
    with store.tx() as c:
        c.execute("INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty,"
                  " qty_initial, entry_price, stop_price, opened_ms, updated_ms) VALUES"
                  " ('L-1','master','BTCUSDT','TFPE','LONG','BOTH','open','0.012','0.012','60000.0','58800',?,?)",
                  (day, day))
        c.execute("INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty,"
                  " qty_initial, entry_price, exit_price, realized_pnl, opened_ms, closed_ms, updated_ms) VALUES"
                  " ('L-0','master','ETHUSDT','TFPE','SHORT','BOTH','closed','0','1','3000','2950','50',?,?,?)",
                  (day - 1000, day, day))
        c.execute("INSERT INTO fills VALUES ('master','ETHUSDT','t1','o1',NULL,'L-0','BUY','BOTH','2950','1',"
                  "'1.25','USDT','50',?,NULL)", (day,))
        c.execute("INSERT INTO fills VALUES ('master','ETHUSDT','t0','o0',NULL,'L-0','SELL','BOTH','3000','1',"
                  "'1.5','USDT','0',?,NULL)", (now_ms - 86_400_000 * 2,))  # two days ago: not today
        c.execute("INSERT INTO income VALUES ('master','f1','FUNDING_FEE','-0.75','USDT','BTCUSDT',?)", (day,))
        c.execute("INSERT INTO equity_snapshots VALUES ('master', ?, '10000', '12.5', '10012.5', '9000')", (day,))


async def test_queries_answer_from_the_store(harness: Harness) -> None:
    _seed(harness.store, harness.time.now_ms())
    incidents.open_incident(harness.store, "mdd_halt", "MDD 61% on master", account="master", ts=harness.time.now_ms())

    status = (await harness.ask("/status"))[0]
    assert "albra status" in status and "<b>master</b> (paper)" in status and "<b>sub1</b>" in status
    assert "equity 10,012.50 USDT" in status and "1 open incident" in status and "open legs 1" in status

    pos = (await harness.ask("/positions"))[0]
    assert "BTCUSDT LONG 0.012 · TFPE" in pos and "entry 60000 · stop 58800" in pos and "<b>sub1</b>: none" in pos

    bal = (await harness.ask("/balance"))[0]
    assert "wallet 10,000.00 USDT" in bal and "unrealised +12.50 USDT" in bal and "<b>sub1</b>: no snapshot yet" in bal

    pnl = (await harness.ask("/pnl"))[0]
    assert "realised +50.00 USDT · fees -1.25 USDT · funding -0.75 USDT" in pnl
    assert "net realised <b>+48.00 USDT</b> · 1 leg(s) closed today" in pnl
    assert "unrealised +12.50 USDT" in pnl and "total <b>+60.50 USDT</b>" in pnl

    inc = (await harness.ask("/incidents"))[0]
    assert "🚨 OPEN" in inc and "MDD 61% on master" in inc

    audit = await harness.ask("/audit", replies=2)
    assert "running the audit" in audit[0] and "audit found differences" in audit[1] and "0.010" in audit[1]

    helptext = (await harness.ask("/help"))[0]
    for name in ("status", "positions", "balance", "pnl", "incidents", "audit", "pause", "resume", "emergency"):
        assert f"/{name}" in helptext
    assert all(m["parse_mode"] == "HTML" for m in harness.api.sent)


async def test_pause_and_resume_scopes_are_validated_and_written(harness: Harness) -> None:
    r = (await harness.ask("/pause master tfpe"))[0]
    assert "paused" in r and "master/TFPE" in r
    f = flags.entry_block(harness.store, "master", "TFPE")
    assert f is not None and f.actor == f"telegram:{ADMIN}"
    assert "unknown account" in (await harness.ask("/pause nosuch"))[0]
    assert "runs no strategy" in (await harness.ask("/pause master ZLMACD"))[0]
    await harness.ask("/pause")
    r = (await harness.ask("/resume master TFPE"))[0]
    assert "resumed" in r and "still blocked by pause on all" in r
    await harness.ask("/resume")
    assert flags.entry_block(harness.store, "master", "TFPE") is None
    # commands work in the configured group chat too
    r = (await harness.ask("/pause sub1", chat_id=GROUP))[0]
    assert "paused" in r and flags.entry_block(harness.store, "sub1", "X") is not None


async def test_readonly_user_may_query_but_not_act(harness: Harness) -> None:
    assert "albra status" in (await harness.ask("/status", user_id=READER))[0]
    for cmd in ("/pause", "/resume master", "/emergency"):
        assert "read-only" in (await harness.ask(cmd, user_id=READER))[0]
    assert flags.active_flags(harness.store) == []
    assert harness.emergencies == []
    helptext = (await harness.ask("/help", user_id=READER))[0]
    assert "/status" in helptext and "/emergency" not in helptext and "readonly" in helptext


async def test_strangers_are_ignored_and_journaled(harness: Harness) -> None:
    harness.api.command("/status", user_id=STRANGER)
    harness.api.command("/emergency", user_id=STRANGER)
    harness.api.text("hello bot", user_id=STRANGER)
    harness.api.command("/status", user_id=STRANGER, chat_id=GROUP)        # a group member who is not listed
    harness.api.command("/status", user_id=ADMIN, chat_id=-100777)         # an admin in an unlisted group
    # updates are handled in order: once the admin's next reply is out, the others were processed
    replies = await harness.ask("/help")
    assert len(harness.api.sent) == 1 and replies[0].startswith("<b>albra bot</b>")
    assert {m["chat_id"] for m in harness.api.sent} == {ADMIN}
    cmds = journal.entries(harness.store, kinds=("bot_command",))
    refused = [e for e in cmds if not e.data["authorized"]]
    assert [e.actor for e in refused] == [f"telegram:{STRANGER}"] * 3 + [f"telegram:{ADMIN}"]
    assert {e.data["command"] for e in refused} == {"status", "emergency"}
    assert all(e.level == "WARNING" for e in refused)
    ok = [e for e in cmds if e.data["authorized"]]
    assert ok[-1].actor == f"telegram:{ADMIN}" and ok[-1].data["role"] == "admin"


async def test_emergency_needs_a_fresh_one_time_code(harness: Harness) -> None:
    first = (await harness.ask("/emergency"))[0]
    assert "kill switch" in first and "/emergency CONFIRM" in first
    code = first.split("/emergency CONFIRM ")[1].split("<")[0].strip()
    assert len(code) == 6 and harness.emergencies == []

    assert "wrong code" in (await harness.ask(f"/emergency CONFIRM {code}", user_id=ADMIN, chat_id=GROUP))[0]
    wrong = "000000" if code != "000000" else "111111"
    assert "wrong code" in (await harness.ask(f"/emergency CONFIRM {wrong}"))[0]
    # a wrong code voids the outstanding one: the operator asks again
    assert "voided by a wrong code" in (await harness.ask(f"/emergency CONFIRM {code}"))[0]
    assert harness.emergencies == []
    first = (await harness.ask("/emergency"))[0]
    code = first.split("/emergency CONFIRM ")[1].split("<")[0].strip()

    done = await harness.ask(f"/emergency CONFIRM {code}", replies=2)
    assert "confirmed" in done[0] and "emergency shutdown done" in done[1] and "INC-20260101-001" in done[1]
    assert harness.emergencies == [f"telegram:{ADMIN}"]

    assert "already used" in (await harness.ask(f"/emergency CONFIRM {code}"))[0]
    assert harness.emergencies == [f"telegram:{ADMIN}"]

    second = (await harness.ask("/emergency"))[0]
    code2 = second.split("/emergency CONFIRM ")[1].split("<")[0].strip()
    harness.time.advance(121)
    assert "code expired" in (await harness.ask(f"/emergency CONFIRM {code2}"))[0]
    assert harness.emergencies == [f"telegram:{ADMIN}"]
    kinds = [e.kind for e in journal.entries(harness.store) if e.kind.startswith("emergency_")]
    assert kinds.count("emergency_refused") == 5 and kinds.count("emergency_confirmed") == 1


async def test_killswitch_two_step_off_and_plain_words(harness: Harness) -> None:
    assert "kill switch: off" in (await harness.ask("/killswitch"))[0]
    on = (await harness.ask("/killswitch on master"))[0]
    assert "kill switch ON" in on and "master" in on
    f = flags.kill_switch(harness.store, "master")
    assert f is not None and f.account == "master" and f.actor == f"telegram:{ADMIN}"
    assert flags.kill_switch(harness.store, "sub1") is None  # scoped: the other account trades on
    # /resume and /status say plainly that the kill switch is what blocks
    r = (await harness.ask("/resume master"))[0]
    assert "KILL SWITCH ON for account master" in r and "/killswitch off" in r
    assert "KILL SWITCH ON for account master" in (await harness.ask("/status"))[0]
    assert "read-only" in (await harness.ask("/killswitch off", user_id=READER))[0]
    ask = (await harness.ask("/killswitch off master"))[0]
    code = ask.split("/killswitch CONFIRM ")[1].split("<")[0].strip()
    assert flags.kill_switch(harness.store, "master") is not None  # nothing cleared before the confirm
    wrong = "000000" if code != "000000" else "111111"
    assert "wrong code" in (await harness.ask(f"/killswitch CONFIRM {wrong}"))[0]
    assert "voided" in (await harness.ask(f"/killswitch CONFIRM {code}"))[0]
    assert flags.kill_switch(harness.store, "master") is not None
    ask = (await harness.ask("/killswitch off"))[0]
    code = ask.split("/killswitch CONFIRM ")[1].split("<")[0].strip()
    harness.time.advance(5)
    done = (await harness.ask(f"/killswitch CONFIRM {code}"))[0]
    assert "kill switch cleared" in done and "master" in done
    assert flags.kill_switches(harness.store) == []
    cleared = journal.entries(harness.store, kinds=("kill_switch_cleared",))
    assert [(e.account, e.actor) for e in cleared] == [("master", f"telegram:{ADMIN}")]
    assert "already used" in (await harness.ask(f"/killswitch CONFIRM {code}"))[0]


async def test_a_command_for_another_bot_is_not_obeyed(harness: Harness) -> None:
    harness.api.command("/pause@OtherBot", user_id=ADMIN)
    r = (await harness.ask("/pause@albra_test_bot master"))[0]  # addressed to us: obeyed
    assert "paused" in r and "master" in r
    assert [f.scope for f in flags.active_flags(harness.store)] == ["master"]
    assert len(harness.api.sent) == 1


async def test_no_secret_in_a_reply(harness: Harness) -> None:
    secret = "Sup3r-secret-api-value-0123"
    register_secret(secret)
    try:
        flags.pause(harness.store, "master", reason=f"oops pasted {secret} and 987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX")
        status = (await harness.ask("/status"))[0]
        assert secret not in status and "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX" not in status and "***" in status
        unknown = (await harness.ask(f"/{secret}"))[0]
        assert secret not in unknown
    finally:
        REDACTOR.clear()


async def test_bot_heartbeat_and_alerts_through_the_same_process(settings, api) -> None:
    """The bot drains the outbox through its own telegram.Bot; its runner row says running then stopped."""
    store = Store.open(settings.db_path)
    access = Access.from_settings(settings.telegram)
    bot = AlbraBot(settings, store, access)
    emit(store, AlertEvent("kill_switch:1", "kill_switch", message="set by operator"))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_bot(
        bot, api.token, base_url=api.base_url, stop=stop, ready=ready, poll_interval=0.02, poll_timeout=0,
        sender_factory=lambda b: AlertSender(store, TelegramTransport(b), alert_chats(settings))))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        sent = await api.wait_sent(1)
        assert sent[0]["chat_id"] == GROUP and "Kill switch ON" in sent[0]["text"]
        assert [r.state for r in runners.get_all(store) if r.name == "bot"] == ["running"]
        cmds = json.loads(api.calls[[c.method for c in api.calls].index("setMyCommands")].params["commands"])
        assert "audit" not in {c["command"] for c in cmds} and "emergency" not in {c["command"] for c in cmds}
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [r.state for r in runners.get_all(store) if r.name == "bot"] == ["stopped"]
    assert store.query_one("SELECT status FROM alerts WHERE event_id='kill_switch:1'")["status"] == "sent"
    store.close()


def test_access_fails_closed() -> None:
    with pytest.raises(AccessConfigError, match="no allowed users"):
        Access.of(chat_ids=[123])
    a = Access.of(admin_user_ids=[1], readonly_user_ids=[2], chat_ids=[-5])
    assert a.role(1, 1, "private") == "admin" and a.role(2, -5, "group") == "readonly"
    assert a.role(3, -5, "group") is None and a.role(1, -6, "group") is None and a.role(1, 2, "private") is None


async def test_sender_from_settings_uses_the_configured_server_and_chats(tmp_path: Path, api, monkeypatch) -> None:
    (tmp_path / "config").mkdir()
    toml = CONFIG.replace("chat_ids = [-100500]", f'chat_ids = [-100500]\napi_base_url = "{api.base_url[:-4]}"')
    (tmp_path / "config" / "albra.toml").write_text(toml)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    s = load_settings(tmp_path / "config" / "albra.toml")
    assert bot_api_base_url(s) == api.base_url
    store = Store.open(s.db_path)
    try:
        assert sender_from_settings(s, store) is None          # no token: alerts stay queued, not dropped
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", api.token)
        sender = sender_from_settings(s, store)
        assert sender is not None and sender.chat_ids == (GROUP,)
        emit(store, AlertEvent("leg_opened:L-9", "leg_opened", account="master", symbol="BTCUSDT"))
        assert await sender.drain() == 1
        assert api.sent_to(GROUP) and "Leg opened" in api.sent_to(GROUP)[0]
        await sender.transport.close()
    finally:
        store.close()


async def test_albra_bot_process_end_to_end(tmp_path: Path, api) -> None:
    """The real command in its own process: answers /status, sends a queued alert, stops cleanly on SIGTERM."""
    import os
    import signal
    import sys

    (tmp_path / "config").mkdir()
    toml = CONFIG.replace("chat_ids = [-100500]", f'chat_ids = [-100500]\napi_base_url = "{api.base_url[:-4]}"')
    (tmp_path / "config" / "albra.toml").write_text(toml)
    s = load_settings(tmp_path / "config" / "albra.toml")
    with Store.open(s.db_path) as store:
        emit(store, AlertEvent("kill_switch:e2e", "kill_switch", message="drill"))
    root = Path(__file__).resolve().parents[2]
    code = ("import sys, typer, albra.commands.bot\napp = typer.Typer()\napp.callback()(lambda: None)\n"
            "albra.commands.bot.register(app)\nsys.argv = ['albra'] + sys.argv[1:]\napp()")
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": api.token, "PYTHONPATH": str(root)}
    env.pop("TELEGRAM_CHAT_ID", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "bot", "--config", str(tmp_path / "config" / "albra.toml"), "--poll-timeout", "1",
        cwd=str(root), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        sent = await api.wait_sent(1, timeout=30)
        assert sent[0]["chat_id"] == GROUP and "drill" in sent[0]["text"]
        api.command("/status", user_id=ADMIN)
        sent = await api.wait_sent(2, timeout=30)
        assert sent[1]["chat_id"] == ADMIN and "albra status" in sent[1]["text"]
        # the real emergency shutdown (paper accounts: no exchange to flatten, no runner to stop)
        api.command("/emergency", user_id=ADMIN)
        sent = await api.wait_sent(3, timeout=30)
        code = sent[2]["text"].split("/emergency CONFIRM ")[1].split("<")[0].strip()
        api.command(f"/emergency CONFIRM {code}", user_id=ADMIN)
        sent = await api.wait_sent(6, timeout=60)    # "confirmed", the verdict, and the CRITICAL alert
        texts = [m["text"] for m in sent[3:]]
        assert any("emergency shutdown done" in t and "INC-" in t and "master: skipped" in t for t in texts), texts
        assert any(m["chat_id"] == GROUP and "Emergency shutdown" in m["text"] for m in sent[3:]), texts
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert api.token not in out.decode() + err.decode()
    assert (tmp_path / "logs" / "bot.log").exists()
    with Store.open(s.db_path) as store:
        assert [r.state for r in runners.get_all(store) if r.name == "bot"] == ["stopped"]
        assert flags.kill_switch(store) is not None and flags.kill_switch(store).actor == f"telegram:{ADMIN}"
        assert [i.kind for i in incidents.list_incidents(store)] == ["emergency_shutdown"]
