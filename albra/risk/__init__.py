"""Pre-trade risk (kill switch, pauses, opposite legs, open legs, daily loss, MDD, concentration, correlation,
sizing) and the persisted equity state it needs. "Size %" is notional as a share of equity; leverage only sets
margin. See :mod:`albra.risk.pretrade` for the order of the rules."""

from albra.risk.equity import EquityUpdate, LevelChange, RiskInputError, update_equity
from albra.risk.limits import RiskLimits
from albra.risk.pretrade import EntryRequest, RiskVerdict, evaluate_entry

__all__ = ["EquityUpdate", "LevelChange", "RiskInputError", "update_equity", "RiskLimits", "EntryRequest",
           "RiskVerdict", "evaluate_entry"]
