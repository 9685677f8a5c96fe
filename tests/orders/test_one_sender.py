"""Pins "nothing outside the order manager sends orders" (issue 13, docs/adr/0012-order-manager.md).

Walks the shipped source and lists every call of a gateway's sending methods. Only the order manager
(``albra/orders``) may call them; the gateways themselves (``albra/exchange``: the ccxt gateway, the paper
gateway and the resilience wrapper that forwards to them) and the simulated exchange (``albra/sim``) implement
them. A new call anywhere else — a runbook command cancelling "just this once", a strategy helper placing a stop —
fails here and names the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SENDING = {"place_order", "cancel_order", "cancel_all", "create_order", "cancel_all_orders", "edit_order"}
IMPLEMENTERS = ("albra/orders/", "albra/exchange/", "albra/sim/")
#: not albra trading but a person's hands: ``albra drill`` stages the incident a human causes on the drill's own
#: local server (a stop cancelled by hand, a manual market order with a non-albra client id) — the very orders the
#: runbook must then find and repair. Anything else listed here needs the same kind of reason.
HUMAN_HANDS = {"albra/drill/run.py": {"cancel_order", "place_order"}}


def _calls(path: Path) -> list[tuple[int, str]]:
    """Sending calls on anything but an order manager (``om.cancel_all(...)``, ``self.om.cancel_all(...)`` and
    ``executor.om.…`` are the manager's own methods of the same name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [(n.lineno, n.func.attr) for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in SENDING
            and ast.unparse(n.func.value).split(".")[-1] != "om"]


def test_only_the_order_manager_sends_orders() -> None:
    offenders = []
    scanned = 0
    for top in ("albra", "commands", "strategies"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            scanned += 1
            if rel.startswith(IMPLEMENTERS):
                continue
            offenders += [f"{rel}:{line} calls .{name}()" for line, name in _calls(path)
                          if name not in HUMAN_HANDS.get(rel, set())]
    assert scanned > 100, "the walk found too few files: the layout moved and this test no longer looks anywhere"
    assert offenders == [], "only albra/orders may send or cancel orders:\n" + "\n".join(offenders)


def test_the_order_manager_is_where_orders_are_sent() -> None:
    """The other half: the manager does call them (a rename of the gateway methods must not make the first
    test vacuous)."""
    found = {name for path in (ROOT / "albra" / "orders").rglob("*.py") for _, name in _calls(path)}
    assert {"place_order", "cancel_order", "cancel_all"} <= found


def test_the_scan_sees_a_sending_call(tmp_path: Path) -> None:
    p = tmp_path / "x.py"
    p.write_text("async def f(gw, om):\n    await gw.cancel_order('BTCUSDT', 'x', True)\n"
                 "    await om.cancel_all('BTCUSDT')\n")
    assert _calls(p) == [(2, "cancel_order")]
