"""The admin API of the local Binance server, under ``/_sim/`` (a prefix Binance never uses).

JSON in and out, unsigned, answered only to loopback peers. Tests and drills use it to inspect
every order the server received, drive the clock, move money, force the mark price and inject
faults. Documented in ``albra/sim/README.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from albra.model import PositionMode
from albra.sim import payloads as P
from albra.sim.errors import SimError

if TYPE_CHECKING:
    from albra.sim.server import SimServer

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _ok(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, default=str), status=status, content_type="application/json")


def _bad(msg: str, status: int = 400) -> web.Response:
    return _ok({"error": msg}, status)


def add_admin_routes(app: web.Application, srv: "SimServer") -> None:
    """Attach every ``/_sim/`` route to ``app``."""

    def guard(fn):
        async def wrapped(request: web.Request) -> web.Response:
            if (request.remote or "") not in _LOOPBACK:
                return _bad("the admin API answers loopback peers only", 403)
            try:
                body = await request.json() if request.method == "POST" and request.can_read_body else {}
                if not isinstance(body, dict):
                    return _bad("body must be a JSON object")
                srv.now()
                return _ok(fn(request, body))
            except (ValueError, KeyError, TypeError, InvalidOperation) as e:
                return _bad(f"{type(e).__name__}: {e}")
            except SimError as e:
                return _ok({"error": e.msg, "code": e.code}, 400)
        return wrapped

    def order_row(o) -> dict:
        return {"kind": "order", "account": o.account, "source": o.source, **P.order(o)}

    def algo_row(a) -> dict:
        return {"kind": "algo", "account": a.account, "reason": a.reason, **P.algo(a)}

    def orders(request, body):
        acct = request.query.get("account")
        cid = request.query.get("client_id")
        regs = [order_row(o) for o in srv.ex.all_orders if (not acct or o.account == acct)
                and (not cid or o.client_id == cid)]
        algos = [algo_row(a) for a in srv.ex.all_algos if (not acct or a.account == acct)
                 and (not cid or a.client_algo_id == cid)]
        rej = [r for r in srv.ex.rejections if (not acct or r["account"] == acct) and (not cid or r["client_id"] == cid)]
        counts = Counter(r["clientOrderId"] for r in regs if r["source"] == "api")
        counts.update(r["clientAlgoId"] for r in algos)
        counts.update(r["client_id"] for r in rej if r["client_id"])
        return {"orders": regs, "algos": algos, "rejected": rej, "counts": dict(counts)}

    def accounts(request, body):
        out = {}
        for name, acct in srv.ex.accounts.items():
            n = srv.ex.account_numbers(acct)
            out[name] = {
                "mode": acct.mode.value, "balances": {k: P.num(v) for k, v in n.items()},
                "positions": [P.position_row(srv.ex, acct, p) for p in acct.live_positions()],
                "leverage": acct.leverage, "margin_mode": {k: v.value for k, v in acct.margin_mode.items()},
                "open_orders": len(acct.open_orders), "open_algos": len(acct.open_algos),
                "keys": [k.key for k in srv.keys.values() if k.account == name],
            }
        return out

    def clock_get(request, body):
        return {"now_ms": srv.now(), "speed": srv.clock.speed}

    def clock_set(request, body):
        if "speed" in body:
            now = srv.clock.now_ms()
            srv.clock.speed = float(body["speed"])
            srv.clock._base, srv.clock._wall0 = now, srv.clock._wall()
        if "advance_ms" in body:
            srv.clock.advance(int(body["advance_ms"]))
        if "to_ms" in body:
            srv.clock.set(int(body["to_ms"]))
        if body.get("forget_time_sync"):
            srv.ts_check.forget()
        return clock_get(request, body)

    def transfer(request, body):
        amount = Decimal(str(body["amount"]))
        wallet = srv.ex.transfer(body["account"], amount, body.get("info", "admin transfer"))
        return {"account": body["account"], "wallet": P.num(wallet)}

    def asset_price(request, body):
        """Set the price of a fee asset (BNB) and optionally deposit some into an account's futures wallet."""
        asset = str(body["asset"]).upper()
        srv.ex.asset_prices[asset] = Decimal(str(body["price"]))
        out: dict = {"asset": asset, "price": P.num(srv.ex.asset_prices[asset])}
        if body.get("account") and body.get("deposit"):
            if asset != "BNB":
                raise ValueError("only BNB can be deposited for fees")
            out["balance"] = P.num(srv.ex.deposit_bnb(body["account"], Decimal(str(body["deposit"]))))
        return out

    def reject_trigger(request, body):
        """Stage a refusal: the next algo order of (account, symbol) that fires ends REJECTED with no child."""
        srv.ex.account(body["account"])
        srv.ex.reject_triggers[(body["account"], str(body["symbol"]).upper())] = str(
            body.get("reason", "Order would immediately trigger / price protection"))
        return {"staged": True}

    def position_mode(request, body):
        acct = srv.ex.account(body["account"])
        hedge = bool(body["hedge"])
        if (acct.mode is PositionMode.HEDGE) != hedge:
            srv.ex.set_position_mode(body["account"], hedge)
        return {"account": acct.name, "mode": acct.mode.value}

    def mark(request, body):
        price = body.get("price")
        srv.ex.set_mark(body["symbol"], None if price is None else Decimal(str(price)))
        return {"symbol": body["symbol"], "mark": P.num(srv.ex.mark_price(body["symbol"]))}

    def faults_get(request, body):
        return {"faults": srv.faults.describe()}

    def faults_add(request, body):
        f = srv.faults.add(body)
        return {"id": f.id}

    def faults_clear(request, body):
        srv.faults.clear()
        return {"faults": []}

    def requests(request, body):
        rows = list(srv.unknown) if request.query.get("unknown") in ("1", "true") else list(srv.requests)
        return {"requests": rows, "unknown": len(srv.unknown)}

    def weights(request, body):
        w = srv.weights
        for k in ("limit", "ban_after", "ban_ms"):
            if k in body:
                setattr(w, k, int(body[k]))
        if "clock" in body:
            if body["clock"] not in ("wall", "sim"):
                raise ValueError("clock must be 'wall' or 'sim'")
            w.clock = body["clock"]
        if body.get("reset"):
            w.reset()
        return {"limit": w.limit, "ban_after": w.ban_after, "ban_ms": w.ban_ms, "clock": w.clock}

    def history(request, body):
        acct = srv.ex.account(request.query["account"])
        return {"trades": [P.trade(t) | {"clientOrderId": t["clientOrderId"]} for t in acct.trades],
                "income": [P.income(r) for r in acct.income]}

    def realism_get(request, body):
        return srv.ex.realism.describe()

    def realism_set(request, body):
        """Replace the realism windows: ``{"ideal": true}``, or fields over the realistic defaults."""
        from albra.sim.realism import Realism

        if body.get("ideal"):
            if set(body) - {"ideal"}:
                raise ValueError("'ideal' excludes other realism fields")
            srv.ex.realism = Realism.ideal()
        else:
            srv.ex.realism = Realism.from_spec(body)
        return srv.ex.realism.describe()

    def stream_events(request, body):
        acct = request.query.get("account")
        return {"events": [e for e in srv.hub.sent if not acct or e["account"] == acct],
                "listen_keys": {a: {"expires": k.expires} for a, k in srv.hub.keys.by_account.items()}}

    def expire_listen_key(request, body):
        """The account's listenKey lapses now: ``listenKeyExpired`` on its stream, PUT answers -1125."""
        return {"expired": srv.hub.keys.expire_now(body["account"], srv.ex.lnow())}

    r = app.router
    r.add_get("/_sim/realism", guard(realism_get))
    r.add_post("/_sim/realism", guard(realism_set))
    r.add_get("/_sim/stream", guard(stream_events))
    r.add_post("/_sim/stream/expire", guard(expire_listen_key))
    r.add_get("/_sim/orders", guard(orders))
    r.add_get("/_sim/accounts", guard(accounts))
    r.add_get("/_sim/clock", guard(clock_get))
    r.add_post("/_sim/clock", guard(clock_set))
    r.add_post("/_sim/transfer", guard(transfer))
    r.add_post("/_sim/asset_price", guard(asset_price))
    r.add_post("/_sim/reject_trigger", guard(reject_trigger))
    r.add_post("/_sim/position_mode", guard(position_mode))
    r.add_post("/_sim/mark", guard(mark))
    r.add_get("/_sim/faults", guard(faults_get))
    r.add_post("/_sim/faults", guard(faults_add))
    r.add_delete("/_sim/faults", guard(faults_clear))
    r.add_get("/_sim/requests", guard(requests))
    r.add_get("/_sim/weights", guard(weights))
    r.add_post("/_sim/weights", guard(weights))
    r.add_get("/_sim/history", guard(history))
