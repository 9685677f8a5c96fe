"""The dashboard's HTTP surface: read-only (GET/HEAD only, on every path), no CORS, security headers, the token
rule off-loopback, and an API that reports the store's figures (or an error, never an empty answer)."""

from __future__ import annotations

import json

import pytest

from albra.dashboard.policy import (
    COOKIE_NAME,
    MIN_TOKEN_LEN,
    TOKEN_ENV,
    DashboardRefused,
    check_bind,
    cookie_value,
    host_header_is_loopback,
    is_loopback,
    load_token,
    token_matches,
)
from albra.secrets import resolve_secret
from tests.dashboard.conftest import Env, ServerThread, call
from tests.dashboard.seed import dump

ROUTES = ["/", "/static/app.js", "/static/app.css", "/login", "/login?token=x", "/api/summary",
          "/api/equity?account=master", "/api/sync", "/api/positions", "/nope", "/static/../albra.db"]
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]
TOKEN = "dashboard-test-token-0123456789abcdef"


def _token(monkeypatch: pytest.MonkeyPatch, value: str = TOKEN):
    monkeypatch.setenv(TOKEN_ENV, value)
    tok = load_token(None)
    assert tok is not None
    return tok


# ------------------------------------------------------------------ policy, as functions
@pytest.mark.parametrize("host, loop", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("LOCALHOST", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False),
    ("10.0.0.1", False), ("dashboard.example.com", False), ("127.0.0.1.nip.io", False),
])
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_bind_policy_refuses_off_loopback_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(DashboardRefused, match=f"refusing to listen on {host}.*{TOKEN_ENV}"):
            check_bind(host, None)
    with pytest.raises(DashboardRefused, match="--host is empty"):
        check_bind("  ", None)
    tok = _token(monkeypatch)
    check_bind("0.0.0.0", tok)


def test_token_must_be_long_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "x" * (MIN_TOKEN_LEN - 1))
    with pytest.raises(DashboardRefused, match="too short"):
        load_token(None)
    monkeypatch.delenv(TOKEN_ENV)
    assert load_token(None) is None


def test_token_from_env_file_is_redacted_and_compared_exactly(tmp_path, monkeypatch) -> None:
    from albra.redact import redact

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    envf = tmp_path / ".env"
    envf.write_text(f"{TOKEN_ENV}={TOKEN}\n", encoding="utf-8")
    tok = load_token(envf)
    assert tok is not None and tok.reveal() == TOKEN and TOKEN not in repr(tok) + str(tok)
    assert TOKEN not in redact(f"GET /login?token={TOKEN}")
    assert token_matches(tok, TOKEN)
    for wrong in (None, "", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert not token_matches(tok, wrong)
    assert TOKEN not in cookie_value(tok)
    assert resolve_secret([TOKEN_ENV], None) is None  # only the .env had it; nothing leaked into os.environ


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8787", True), ("localhost:8787", True), ("localhost", True), ("[::1]:8787", True),
    ("evil.example:8787", False), ("evil.example", False), (None, False), ("", False),
    ("127.0.0.1.evil.example", False),
])
def test_host_header_check(host: str | None, ok: bool) -> None:
    assert host_header_is_loopback(host) is ok


# ------------------------------------------------------------------ the running server
def test_no_state_changing_method_on_any_route(env: Env, server: ServerThread) -> None:
    before = dump(env.db)
    for path in ROUTES:
        for method in WRITE_METHODS:
            r = call(server.port, method, path, {"Content-Type": "application/json", "Origin": "http://evil.example"},
                     body=b'{"action": "sync"}')
            assert r.status == 405, (method, path, r.status)
            assert r.header("Allow") == "GET, HEAD"
            assert r.header("Access-Control-Allow-Origin") is None
            assert not any(h.startswith("access-control-") for h in r.headers)
    for path in ROUTES:  # reads do not write either
        call(server.port, "GET", path)
        call(server.port, "HEAD", path)
    assert dump(env.db) == before


def test_no_cors_and_security_headers_everywhere(server: ServerThread) -> None:
    for path in ROUTES:
        for method in ("GET", "HEAD", "POST"):
            r = call(server.port, method, path, {"Origin": "http://evil.example"})
            assert not any(h.startswith("access-control-") for h in r.headers), (method, path)
            assert r.header("Content-Security-Policy").startswith("default-src 'self'")
            assert "frame-ancestors 'none'" in r.header("Content-Security-Policy")
            assert r.header("X-Frame-Options") == "DENY"
            assert r.header("X-Content-Type-Options") == "nosniff"
            assert r.header("Cache-Control") == "no-store"
            assert "aiohttp" not in (r.header("Server") or "")


def test_routes_and_status_codes(server: ServerThread) -> None:
    assert call(server.port, "GET", "/").status == 200
    assert b"/static/app.js" in call(server.port, "GET", "/").body
    assert call(server.port, "HEAD", "/api/summary").status == 200
    assert call(server.port, "GET", "/static/app.js").header("Content-Type").startswith("application/javascript")
    assert call(server.port, "GET", "/nope").status == 404
    assert call(server.port, "GET", "/static/../albra.db").status == 404
    r = call(server.port, "GET", "/login?token=anything")  # no token configured: back to the page
    assert (r.status, r.header("Location"), r.header("Set-Cookie")) == (303, "/", None)


def test_loopback_server_rejects_foreign_host_header(server: ServerThread) -> None:
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 must not read the dashboard."""
    r = call(server.port, "GET", "/api/summary", {"Host": "evil.example:8787"})
    assert r.status == 403 and b"localhost" in r.body
    assert call(server.port, "GET", "/api/summary", {"Host": f"localhost:{server.port}"}).status == 200


def test_summary_reports_the_store(env: Env, server: ServerThread) -> None:
    r = call(server.port, "GET", "/api/summary")
    assert r.status == 200 and r.header("Content-Type").startswith("application/json")
    data = json.loads(r.body)
    accts = {a["account"]: a for a in data["accounts"]}
    assert {k: a["equity"] for k, a in accts.items()} == env.seeded.equity
    assert {k: a["drawdown"] for k, a in accts.items()} == env.seeded.drawdown
    assert {k: a["daily_loss_used"] for k, a in accts.items()} == env.seeded.daily_loss
    assert {k: a["open_legs"] for k, a in accts.items()} == env.seeded.open_legs
    assert accts["sub1"]["daily_loss_limit"] == "5.00%" and accts["master"]["daily_loss_limit"] == "3.00%"
    assert accts["master"]["unrealized"] == "+54.50" and accts["sub1"]["unrealized"] == "-3.60"
    assert accts["sub1"]["mdd_level"] == 1
    legs = {leg["leg_id"]: leg for a in data["accounts"] for leg in a["legs"]}
    assert set(legs) == {"L-m1", "L-m2", "L-s1"}  # the closed leg is not shown
    m1 = legs["L-m1"]
    assert (m1["entry"], m1["stop"], m1["take_profit"], m1["qty"]) == ("43125.5", "42100", "45200", "0.012")
    assert (m1["pnl_at_stop"], m1["pnl_at_take_profit"]) == ("-12.31", "+24.89")  # (42100-43125.5)*0.012
    assert legs["L-m2"]["pnl_at_stop"] == "-34.88"  # short: (2310.25-2380)*0.5, half-up
    assert [(o["purpose"], o["state"]) for o in m1["protection"]] == [("stop_loss", "open"), ("take_profit", "open")]
    assert [m1["stop_status"], legs["L-m2"]["stop_status"], legs["L-s1"]["stop_status"]] == [
        "protected", "pending", "UNPROTECTED"]
    assert accts["sub1"]["unprotected_legs"] == 1
    assert [(f["kind"], f["scope"]) for f in data["flags"]] == [("pause", "sub1/ZLMACD_ICHIMOKU")]
    assert accts["sub1"]["entries_blocked_by"] == ["sub1/ZLMACD_ICHIMOKU (pause)"]
    assert data["kill_switch"] is False
    assert [i["id"] for i in data["incidents"]] == [env.seeded.incident_id]
    assert {r["name"]: r["alive"] for r in data["runners"]} == {"run:master": True, "run:sub1": False}
    kinds = [e["kind"] for e in data["journal"]]
    assert kinds[0] == "incident_opened" and "pause_set" in kinds and "pause_cleared" in kinds
    assert all(e["time"].endswith(" KST") for e in data["journal"])


def test_equity_api(env: Env, server: ServerThread) -> None:
    d = json.loads(call(server.port, "GET", "/api/equity?account=master&hours=168").body)
    assert d["count"] == env.seeded.snapshots["master"] == len(d["points"])  # the 200 h old one is outside
    assert (d["first"], d["last"], d["change"]) == ("10,000.00", "10,234.56", "+234.56")
    assert d["points"][-1][1] == 10234.56
    assert [p[0] for p in d["points"]] == sorted(p[0] for p in d["points"])
    assert json.loads(call(server.port, "GET", "/api/equity?account=master&hours=300").body)["count"] == 49
    one = json.loads(call(server.port, "GET", "/api/equity?account=sub1&hours=1").body)
    assert one["count"] == 1 and one["last"] == "4,876.40"
    r = call(server.port, "GET", "/api/equity?account=ghost")
    assert r.status == 404 and "unknown account 'ghost' (configured: master, sub1)" in r.body.decode()
    for bad, msg in (("abc", "whole number"), ("0", "between 1 and"), ("999999", "between 1 and")):
        r = call(server.port, "GET", f"/api/equity?account=master&hours={bad}")
        assert r.status == 400 and msg in json.loads(r.body)["error"]


def test_curve_is_thinned_but_keeps_the_last_point(env: Env) -> None:
    from albra.dashboard import snapshot
    from albra.store import Store

    with Store.open(env.db) as s:
        last_ts = s.query_one("SELECT MAX(ts) AS t FROM equity_snapshots WHERE account='sub1'")["t"]
        with s.tx() as c:
            for i in range(1, 2001):
                c.execute("INSERT INTO equity_snapshots VALUES ('sub1', ?, '5000', '0', ?, '5000')",
                          (last_ts - 30 * 3_600_000 - i * 1000, f"{5000 + i}"))
        d = snapshot.equity_curve(s, "sub1", 168, last_ts + 1000)
    assert d["count"] == 2030 and len(d["points"]) == snapshot.MAX_CURVE_POINTS
    assert d["points"][-1] == [last_ts, 4876.40] and d["last"] == "4,876.40"
    assert d["max"] == "7,000.00"


def test_malformed_store_value_is_an_error_not_a_blank(env: Env, server: ServerThread) -> None:
    from albra.store import Store

    with Store.open(env.db) as s:
        s.execute("UPDATE legs SET entry_price='garbage' WHERE leg_id='L-m1'")
    r = call(server.port, "GET", "/api/summary")
    assert r.status == 500
    assert "not a number in the store: 'garbage'" in json.loads(r.body)["error"]


# ------------------------------------------------------------------ off loopback
def test_off_loopback_refuses_to_start_without_token(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(DashboardRefused, match="refusing to listen on 0.0.0.0"):
        ServerThread(env.settings, "0.0.0.0", None).start()


def test_off_loopback_requires_the_token_on_every_request(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = _token(monkeypatch)
    srv = ServerThread(env.settings, "0.0.0.0", tok).start()
    try:
        port = srv.port
        good = {"Authorization": f"Bearer {TOKEN}"}
        for path in ROUTES:
            if path.startswith("/login"):
                continue
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                            {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Cookie": f"{COOKIE_NAME}={TOKEN}"},
                            {"Cookie": f"{COOKIE_NAME}=00"}):
                for method in ("GET", "HEAD"):
                    r = call(port, method, path, headers)
                    assert r.status == 401, (method, path, headers, r.status)
                    assert r.header("WWW-Authenticate") == 'Bearer realm="albra-dashboard"'
                    assert TOKEN.encode() not in r.body
            expected = 404 if path in ("/api/sync", "/api/positions", "/nope", "/static/../albra.db") else 200
            assert call(port, "GET", path, good).status == expected, path
            # a foreign Host header is fine once the token is there (it is what proves the caller)
            assert call(port, "GET", path, dict(good, Host="dash.example")).status == expected
            assert call(port, "POST", path, good).status == 405
        assert call(port, "GET", "/api/summary", {"Authorization": f"bearer {TOKEN}"}).status == 200
        # one-time login: wrong token refused, right one sets a derived cookie and redirects away from the token
        assert call(port, "GET", "/login?token=wrong").status == 401
        assert call(port, "GET", "/login").status == 401
        r = call(port, "GET", f"/login?token={TOKEN}")
        assert r.status == 303 and r.header("Location") == "/"
        cookie = r.header("Set-Cookie")
        assert cookie.startswith(f"{COOKIE_NAME}={cookie_value(tok)};") and TOKEN not in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP here
        for proxy in ({"X-Forwarded-Proto": "https"}, {"Forwarded": "for=10.0.0.1;proto=https"}):
            # behind a TLS-terminating proxy the cookie must never travel over plain HTTP again (issue 14)
            tls = call(port, "GET", f"/login?token={TOKEN}", proxy).header("Set-Cookie")
            assert "Secure" in tls and "HttpOnly" in tls, tls
        assert call(port, "GET", "/api/summary", {"Cookie": f"{COOKIE_NAME}={cookie_value(tok)}"}).status == 200
    finally:
        srv.close()
