"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): the page loads, shows the store's
figures exactly as the API writes them, draws the equity curves, keeps untrusted text as text, refreshes itself,
and works behind the token through the one-time login."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from albra.dashboard.policy import TOKEN_ENV, load_token
from albra.store import Store, journal
from albra.timefmt import now_ms
from tests.dashboard.conftest import Env, ServerThread, call
from tests.dashboard.seed import XSS_MESSAGE

WAIT_MS = 20_000  # generous upper bound for the page to settle; nothing asserts on how long it took


def _open(ctx: Any, url: str, problems: list[str]) -> Any:
    page = ctx.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(url)
    page.wait_for_selector('body[data-loaded="1"]', timeout=WAIT_MS)
    for acct in ("master", "sub1"):
        page.wait_for_selector(f'[data-testid="chart-{acct}"] svg[data-points]', timeout=WAIT_MS)
    return page


def _text(page: Any, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def test_page_shows_the_store(env: Env, server: ServerThread, browser_ctx: Any, tmp_path: Path) -> None:
    problems: list[str] = []
    page = _open(browser_ctx, server.url + "/", problems)
    try:
        api = json.loads(call(server.port, "GET", "/api/summary").body)
        api_accts = {a["account"]: a for a in api["accounts"]}
        with Store.open(env.db, create=False) as s:
            for acct in ("master", "sub1"):
                # equity per account: the store's latest snapshot, as written for people, is what the page shows
                latest = s.query_one("SELECT equity FROM equity_snapshots WHERE account=? ORDER BY ts DESC LIMIT 1",
                                     (acct,))["equity"]
                shown = _text(page, f'[data-testid="equity-{acct}"]')
                assert shown == env.seeded.equity[acct] == api_accts[acct]["equity"]
                assert Decimal(shown.replace(",", "")) == Decimal(latest)
                # open legs: count in the card and rows in the table match the store
                n = s.query_one("SELECT COUNT(*) AS n FROM legs WHERE account=? AND state IN ('pending','open',"
                                "'closing')", (acct,))["n"]
                assert _text(page, f'[data-testid="leg-count-{acct}"]') == str(n) == str(env.seeded.open_legs[acct])
                assert page.locator(f'tr[data-leg-id][data-account="{acct}"]').count() == n
                assert _text(page, f'[data-testid="drawdown-{acct}"]').startswith(env.seeded.drawdown[acct])
                assert _text(page, f'[data-testid="daily-loss-{acct}"]').startswith(env.seeded.daily_loss[acct])
                # the curve holds every snapshot of the window
                assert page.locator(f'[data-testid="chart-{acct}"] svg').get_attribute("data-points") == str(
                    env.seeded.snapshots[acct])
                assert page.locator(f'[data-testid="chart-{acct}"] path.line').count() == 1
            # one leg's entry and stop, exactly as stored
            leg = s.query_one("SELECT entry_price, stop_price, take_profit FROM legs WHERE leg_id='L-m1'")
        row = page.locator('tr[data-leg-id="L-m1"]')
        assert row.locator('td[data-col="entry"]').inner_text() == leg["entry_price"] == "43125.5"
        assert row.locator('td[data-col="stop"]').inner_text() == leg["stop_price"] == "42100"
        assert row.locator('td[data-col="take_profit"]').inner_text() == leg["take_profit"]
        assert row.locator('td[data-col="pnl_at_stop"]').inner_text() == "-12.31"
        assert row.locator('[data-testid="stop-status"]').inner_text() == "protected"
        assert page.locator('tr[data-leg-id="L-s1"] [data-testid="stop-status"]').inner_text() == "UNPROTECTED"
        assert page.locator('tr[data-leg-id="L-s0"]').count() == 0  # closed
        assert page.locator('tr[data-group="master/TFPE"]').count() == 1
        # flags: only the active pause
        flags = page.locator('[data-testid="flag"]')
        assert flags.count() == 1 and flags.first.get_attribute("data-scope") == "sub1/ZLMACD_ICHIMOKU"
        assert "drill: spread too wide" in flags.first.inner_text()
        assert _text(page, '[data-testid="kill-switch"]') == "kill switch off"
        # the incident, and runners up/down
        assert page.locator(f'tr[data-incident-id="{env.seeded.incident_id}"]').count() == 1
        assert "up" in _text(page, 'tr[data-runner="run:master"]')
        assert "DOWN since" in _text(page, 'tr[data-runner="run:sub1"]') and ", 10 min" in _text(
            page, 'tr[data-runner="run:sub1"]')  # the wording CLI and bot use too
        # untrusted journal text stays text: no element was injected
        assert XSS_MESSAGE in _text(page, '[data-testid="journal"]')
        assert page.locator('[data-testid="journal"] img, [data-testid="journal"] b').count() == 0
        assert _text(page, '[data-testid="conn"]') == "live"
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert problems == []  # no CSP violation, script error or failed request
    finally:
        page.close()


def test_page_refreshes_itself(env: Env, server: ServerThread, browser_ctx: Any) -> None:
    problems: list[str] = []
    page = _open(browser_ctx, server.url + "/?refresh=1", problems)
    try:
        with Store.open(env.db) as s:
            s.execute("INSERT INTO equity_snapshots VALUES ('master', ?, '10300', '1.01', '10301.01', '9000')",
                      (now_ms(),))
            journal.append(s, "note", "fresh event after the page loaded", actor="test")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=\"equity-master\"]').textContent === '10,301.01'",
            timeout=WAIT_MS)
        page.wait_for_function("() => document.querySelector('[data-testid=\"journal\"]').textContent"
                               ".includes('fresh event after the page loaded')", timeout=WAIT_MS)
        assert problems == []
    finally:
        page.close()


def test_page_shows_a_store_error_instead_of_blanks(env: Env, server: ServerThread, browser_ctx: Any) -> None:
    problems: list[str] = []
    page = _open(browser_ctx, server.url + "/?refresh=1", problems)
    try:
        with Store.open(env.db) as s:
            s.execute("UPDATE equity_snapshots SET equity='NaN' WHERE account='sub1'")
        page.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
        assert "not a finite number in the store" in _text(page, "#banner")
        assert _text(page, '[data-testid="conn"]') == "stale"
        assert _text(page, '[data-testid="equity-master"]') == env.seeded.equity["master"]  # last good figures kept
    finally:
        page.close()


def test_token_login_in_the_browser(env: Env, browser_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    token_value = "browser-login-token-abcdefghijklmnop"
    monkeypatch.setenv(TOKEN_ENV, token_value)
    srv = ServerThread(env.settings, "0.0.0.0", load_token(None)).start()
    page = browser_ctx.new_page()
    try:
        r = page.goto(srv.url + "/")
        assert r.status == 401 and "token required" in page.content()
        r = page.goto(srv.url + f"/login?token={token_value}")
        assert r.status == 200 and page.url == srv.url + "/"  # redirected: the token left the address bar
        page.wait_for_selector('body[data-loaded="1"]', timeout=WAIT_MS)
        assert _text(page, '[data-testid="equity-sub1"]') == env.seeded.equity["sub1"]
    finally:
        page.close()
        browser_ctx.clear_cookies()
        srv.close()


def test_exchange_param_without_the_view_says_it_is_off(env: Env, server: ServerThread, browser_ctx: Any) -> None:
    problems: list[str] = []
    page = _open(browser_ctx, server.url + "/?exchange=1", problems)
    try:
        for acct in ("master", "sub1"):
            page.wait_for_function(
                f"() => document.querySelector('[data-testid=\"exchange-{acct}\"]').textContent.includes('view is off')",
                timeout=WAIT_MS)
        assert page.locator('tr[data-leg-id="L-m1"] td[data-col="unrealized"]').inner_text() == "-"
        assert _text(page, '[data-testid="equity-master"]') == env.seeded.equity["master"]
        assert problems == []
    finally:
        page.close()


def test_exchange_view_in_the_page(tmp_path: Path, browser_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Live balance, positions and a leg's unrealised PnL from the local Binance server, as the API gives them."""
    from albra.config import load_settings
    from albra.exchange.factory import gateway_for
    from albra.exchange.types import OrderRequest
    from albra.model import OrderType, Side
    from albra.sim.testing import run_sim_server
    from tests.dashboard.conftest import LoopThread
    from tests.dashboard.test_dashboard_exchange import CONFIG, DATA

    bg = LoopThread()
    sim_cm = run_sim_server(start="2024-01-02", speed=0, data=DATA)
    sim = bg.run(sim_cm.__aenter__())
    srv = None
    try:
        key, secret = sim.accounts["main"]
        monkeypatch.setenv("DASH_LIVE1_KEY", key)
        monkeypatch.setenv("DASH_LIVE1_SECRET", secret)
        cfg = tmp_path / "albra.toml"
        cfg.write_text(CONFIG.format(state=tmp_path / "state", logs=tmp_path / "logs", url=sim.url), encoding="utf-8")
        settings = load_settings(cfg)

        async def enter() -> Decimal:
            gw = gateway_for("live1", settings.accounts["live1"], settings.require_secrets("live1"))
            try:
                r = await gw.place_order(OrderRequest("dash-page-entry-1", "BTCUSDT", Side.BUY, OrderType.MARKET,
                                                      Decimal("0.020")))
            finally:
                await gw.close()
            return r.avg_price

        entry = bg.run(enter())
        with Store.open(settings.db_path) as s:
            s.execute("INSERT INTO legs(leg_id, account, symbol, strategy, direction, position_side, state, qty,"
                      " qty_initial, entry_price, stop_price, opened_ms, updated_ms) VALUES ('L-x1', 'live1',"
                      " 'BTCUSDT', 'TFPE', 'LONG', 'BOTH', 'open', '0.020', '0.020', ?, '40000', 1, 1)",
                      (format(entry, "f"),))
        srv = ServerThread(settings, "127.0.0.1", None, exchange=True).start()
        problems: list[str] = []
        page = browser_ctx.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(srv.url + "/?exchange=1")
        page.wait_for_selector('[data-testid="exchange-live1"] [data-testid="exchange-equity"]', timeout=WAIT_MS)
        api = json.loads(call(srv.port, "GET", "/api/exchange?account=live1").body)  # cached: the same reading
        assert _text(page, '[data-testid="exchange-live1"] [data-testid="exchange-equity"]') == api["balance"]["equity"]
        assert "0.02 @ " + api["positions"][0]["entry"] in _text(page, '[data-testid="exchange-live1"]')
        page.wait_for_function("() => document.querySelector('tr[data-leg-id=\"L-x1\"] td[data-col=\"unrealized\"]')"
                               ".textContent !== '-'", timeout=WAIT_MS)
        assert page.locator('tr[data-leg-id="L-x1"] td[data-col="unrealized"]').inner_text() == \
            api["leg_unrealized"]["L-x1"]
        assert "paper account" in _text(page, '[data-testid="exchange-demo"]')
        assert all("409" in p for p in problems), problems  # only the paper account's 409, which Chromium logs
        page.screenshot(path=str(tmp_path / "dashboard-exchange.png"), full_page=True)
        page.close()
    finally:
        if srv is not None:
            srv.close()
        bg.run(sim_cm.__aexit__(None, None, None))
        bg.close()
