"""Legs sum to the exchange (invariant 4): compare, explain, and repair only explicitly.

Per (account, symbol, position side) the signed sum of live legs must equal the exchange's position (signed like
Binance's positionAmt: short < 0, also on the hedge SHORT side). :func:`compare_positions` is pure and returns a
:class:`Difference` for every key where they disagree, with a likely cause for the operator. The repairs are
explicit and leave a trace: :func:`adopt_unattributed` turns an exchange excess into an ``UNATTRIBUTED`` leg plus a
journal entry plus an incident; :func:`close_missing` closes a leg the exchange no longer has, with its PnL taken from
the trade history. Nothing here overwrites a leg's size to make numbers agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from albra.exchange.fees import fee_asset, fee_in_quote
from albra.exchange.types import ExchangePosition
from albra.ledger import daily_pnl
from albra.ledger import legs as L
from albra.ledger.errors import LedgerError
from albra.model import Direction, Fill, PositionSide
from albra.store import incidents, journal
from albra.store.db import Store


@dataclass(frozen=True, slots=True)
class Difference:
    """Ledger vs exchange on one (symbol, position side). Quantities are signed; ``delta`` = exchange − ledger."""

    symbol: str
    position_side: PositionSide
    ledger_qty: Decimal
    exchange_qty: Decimal
    delta: Decimal
    likely_cause: str
    leg_ids: tuple[str, ...] = ()
    exchange_entry_price: Decimal | None = None
    unresolved_intents: int = 0

    def as_dict(self) -> dict:
        return {"symbol": self.symbol, "position_side": self.position_side.value,
                "ledger_qty": str(self.ledger_qty), "exchange_qty": str(self.exchange_qty),
                "delta": str(self.delta), "likely_cause": self.likely_cause, "leg_ids": list(self.leg_ids),
                "unresolved_intents": self.unresolved_intents}


def _cause(ledger: Decimal, exchange: Decimal, mode_clash: bool, unresolved: int) -> str:
    tail = f"; {unresolved} unresolved order intent(s) on this symbol may explain it" if unresolved else ""
    if mode_clash:
        return ("the exchange reports this position side but the ledger's legs use the other position mode "
                "(mode changed by hand?)" + tail)
    if ledger == 0:
        return "position on the exchange with no leg (opened by hand, another bot, or a fill not applied)" + tail
    if exchange == 0:
        return ("legs the exchange no longer has (closed by a stop, a liquidation or by hand, fills not applied)"
                + tail)
    if (ledger > 0) != (exchange > 0):
        return "the exchange holds the opposite direction (netted by another order in one-way mode)" + tail
    if abs(exchange) < abs(ledger):
        return "exchange smaller: a partial close the ledger has not seen (stop/TP fill not applied, or by hand)" + tail
    return "exchange larger: an entry fill not applied, or a manual add" + tail


def compare_positions(legs: Sequence[L.Leg], positions: Sequence[ExchangePosition], *,
                      unresolved_by_symbol: dict[str, int] | None = None,
                      tolerance: Decimal = Decimal(0)) -> list[Difference]:
    """Differences between live legs (any account filtering is the caller's) and exchange positions, sorted by
    (symbol, side). Legs in terminal states are ignored; a pending leg counts with whatever it has filled."""
    ledger: dict[tuple[str, PositionSide], Decimal] = {}
    ids: dict[tuple[str, PositionSide], list[str]] = {}
    for g in legs:
        if not g.state.is_live:
            continue
        k = (g.symbol, g.position_side)
        ledger[k] = ledger.get(k, Decimal(0)) + g.signed_qty
        ids.setdefault(k, []).append(g.leg_id)
    exch: dict[tuple[str, PositionSide], Decimal] = {}
    entry: dict[tuple[str, PositionSide], Decimal] = {}
    for p in positions:
        k = (p.symbol, p.position_side)
        exch[k] = exch.get(k, Decimal(0)) + p.qty
        entry[k] = p.entry_price
    ledger_modes = {("hedge" if s is not PositionSide.BOTH else "one_way") for (_, s) in ledger}
    out: list[Difference] = []
    for k in sorted(set(ledger) | set(exch)):
        lq, eq = ledger.get(k, Decimal(0)), exch.get(k, Decimal(0))
        if abs(eq - lq) <= tolerance:
            continue
        sym, side = k
        side_mode = "hedge" if side is not PositionSide.BOTH else "one_way"
        clash = k not in ledger and bool(ledger_modes) and side_mode not in ledger_modes
        n = (unresolved_by_symbol or {}).get(sym, 0)
        out.append(Difference(sym, side, lq, eq, eq - lq, _cause(lq, eq, clash, n), tuple(ids.get(k, ())),
                              entry.get(k), n))
    return out


def adopt_unattributed(store: Store, account: str, difference: Difference, *, now_ms: int) -> L.Leg:
    """Make an exchange excess explicit: an UNATTRIBUTED leg for |delta| in the excess's direction, a journal
    entry, and an incident (kind ``unattributed_leg``, one open incident per account reused).

    Only an *excess* can be adopted (the exchange holds more in the direction it already has, or holds something
    where the ledger has nothing). A shortfall or a flipped side is refused: close the missing legs first
    (:func:`close_missing`), then compare again."""
    d = difference
    if d.delta == 0:
        raise LedgerError(f"{d.symbol} {d.position_side}: nothing to adopt (no difference)")
    excess = d.exchange_qty != 0 and (d.ledger_qty == 0 or ((d.ledger_qty > 0) == (d.exchange_qty > 0)
                                                             and abs(d.exchange_qty) > abs(d.ledger_qty)))
    if not excess:
        raise LedgerError(f"{d.symbol} {d.position_side}: the exchange holds {d.exchange_qty} against the ledger's "
                          f"{d.ledger_qty}; only an excess on the exchange can be adopted — close the missing legs "
                          "first")
    direction = Direction.LONG if d.delta > 0 else Direction.SHORT
    qty = abs(d.delta)
    leg_id = f"unattr-{account}-{d.symbol}-{d.position_side.value}-{now_ms}"
    with store.tx() as c:
        leg = L.insert_leg(c, leg_id=leg_id, account=account, symbol=d.symbol, strategy=L.UNATTRIBUTED,
                           direction=direction, position_side=d.position_side, now_ms=now_ms,
                           state=L.LegState.OPEN, qty=qty, entry_price=d.exchange_entry_price,
                           entry_reason=f"adopted by reconciliation: {d.likely_cause}")
        journal.append(store, "unattributed_leg", f"adopted {direction} {qty} {d.symbol} ({d.position_side}) as "
                       f"unattributed leg {leg_id}: ledger {d.ledger_qty}, exchange {d.exchange_qty}",
                       level="ERROR", account=account, symbol=d.symbol, data=d.as_dict(), ts=now_ms, conn=c)
    inc = incidents.open_incident(store, "unattributed_leg", f"unattributed position on {account}",
                                  severity="HIGH", account=account, opened_by="reconcile",
                                  details=d.as_dict(), ts=now_ms, reuse_open=True)
    journal.append(store, "unattributed_leg_incident", f"leg {leg_id} tracked in {inc.incident_id}",
                   level="WARNING", account=account, symbol=d.symbol, incident_id=inc.incident_id, ts=now_ms)
    return leg


def close_missing(store: Store, account: str, leg: L.Leg, trades: Sequence[Fill], *, now_ms: int,
                  allow_without_trades: bool = False) -> L.Leg:
    """Close a live leg the exchange no longer holds, taking its exit from the trade history.

    Candidate trades: the leg's symbol and position side, its exit side, at or after the leg opened, and not
    already attributed to another leg. They are consumed oldest first up to the leg's qty; the exit price is their
    volume-weighted price, realized PnL ``(exit − entry) × qty × sign``, fees pro rata. With no candidate trade the
    leg is not closed (a missing read must not look like a close) unless ``allow_without_trades``, in which case it
    is closed with no exit price and no PnL and journaled as an error.
    """
    fresh = L.require_leg(store, leg.leg_id)
    if not fresh.state.is_live:
        raise LedgerError(f"leg {leg.leg_id} is already {fresh.state}")
    with store.tx() as c:
        taken: list[tuple[Fill, Decimal]] = []
        need = fresh.qty
        for t in sorted(trades, key=lambda t: (t.ts, str(t.trade_id))):
            if need <= 0:
                break
            if (t.symbol != fresh.symbol or t.position_side is not fresh.position_side
                    or t.side is not fresh.direction.exit_side or t.ts < fresh.opened_ms):
                continue
            row = c.execute("SELECT leg_id FROM fills WHERE account=? AND symbol=? AND trade_id=?",
                            (account, t.symbol, str(t.trade_id))).fetchone()
            if row is not None and row[0] is not None:
                continue
            use = min(t.qty, need)
            taken.append((t, use))
            need -= use
        if not taken and not allow_without_trades:
            raise LedgerError(f"leg {leg.leg_id}: no trade in the history closes it; refusing to close it blind "
                              "(pass allow_without_trades after checking by hand)")
        qty_done = sum((u for _, u in taken), Decimal(0))
        vwap = (sum((t.price * u for t, u in taken), Decimal(0)) / qty_done) if qty_done else None
        fees = sum((fee_in_quote(t) * u / t.qty for t, u in taken), Decimal(0))
        entry = fresh.entry_price or Decimal(0)
        realized = (vwap - entry) * qty_done * fresh.direction.sign if vwap is not None else Decimal(0)
        for t, _ in taken:
            c.execute(
                "INSERT INTO fills(account, symbol, trade_id, exchange_order_id, client_id, leg_id, side,"
                " position_side, price, qty, fee, fee_asset, fee_quote, realized_pnl, ts)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(account, symbol, trade_id) DO UPDATE SET leg_id = excluded.leg_id",
                (account, t.symbol, str(t.trade_id), str(t.order_id), t.client_id or None, fresh.leg_id,
                 t.side.value, t.position_side.value, format(t.price, "f"), format(t.qty, "f"), format(t.fee, "f"),
                 fee_asset(t), format(fee_in_quote(t), "f"), format(t.realized_pnl, "f"), t.ts))
        c.execute("UPDATE legs SET qty='0', realized_pnl=?, fees=?, exit_price=?, updated_ms=? WHERE leg_id=?",
                  (format(fresh.realized_pnl + realized, "f"), format(fresh.fees + fees, "f"),
                   None if vwap is None else format(vwap, "f"), now_ms, fresh.leg_id))
        if fresh.state is L.LegState.PENDING:
            L.transition_in(c, fresh.leg_id, L.LegState.OPEN, now_ms=now_ms)
        out = L.transition_in(c, fresh.leg_id, L.LegState.CLOSED, now_ms=now_ms, close_reason="missing_on_exchange")
        daily_pnl.add(c, account, fresh.strategy, taken[-1][0].ts if taken else now_ms, realized - fees, now_ms)
        short = fresh.qty - qty_done
        journal.append(store, "leg_closed_missing",
                       f"leg {fresh.leg_id} ({fresh.strategy} {fresh.direction} {fresh.qty} {fresh.symbol}) closed: "
                       f"not on the exchange; exit {vwap if vwap is not None else 'unknown'}, PnL {realized}"
                       + (f"; {short} not matched by any trade" if short > 0 else ""),
                       level="ERROR" if short > 0 else "WARNING", account=account, strategy=fresh.strategy,
                       symbol=fresh.symbol, data={"trades": [str(t.trade_id) for t, _ in taken],
                                                  "realized": str(realized), "unmatched": str(short)},
                       ts=now_ms, conn=c)
        return out
