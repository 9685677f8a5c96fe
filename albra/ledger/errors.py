"""Errors the ledger raises. They are distinct classes because callers react differently: an illegal transition
or a conflicting intent is a bug to stop on, a fill the ledger cannot attribute is a reconciliation matter."""

from __future__ import annotations


class LedgerError(RuntimeError):
    """Base class: the ledger refused an operation that would make it disagree with reality or with itself."""


class IllegalTransition(LedgerError):
    """A leg or an intent was asked to move to a state its state machine does not allow from where it is."""


class IntentConflict(LedgerError):
    """A client id was recorded again with different content (account, symbol, purpose or order): two intents
    must never share an id, so this is a bug in whoever derived the id."""


class UnknownLeg(LedgerError):
    """No leg with that id (for that account)."""
