"""The position ledger: legs per (account, symbol, strategy), write-ahead order intents, fills that drive legs,
protective orders per leg, and the comparison of legs with the exchange's positions.

Modules, one concern each: :mod:`~albra.ledger.legs` (state machine), :mod:`~albra.ledger.intents` (write-ahead
intents and start-up resolution), :mod:`~albra.ledger.fills` (fills and funding → legs),
:mod:`~albra.ledger.protection` (stop/take-profit orders and the stop replacement protocol),
:mod:`~albra.ledger.positions` (legs vs exchange, explicit repairs), :mod:`~albra.ledger.kelly` (trade returns),
:mod:`~albra.ledger.daily_pnl` (realised PnL per strategy per KST day, for the daily loss limit).
"""

from albra.ledger.errors import IllegalTransition, IntentConflict, LedgerError, UnknownLeg
from albra.ledger.legs import Leg, LegState, UNATTRIBUTED

__all__ = ["IllegalTransition", "IntentConflict", "LedgerError", "UnknownLeg", "Leg", "LegState", "UNATTRIBUTED"]
