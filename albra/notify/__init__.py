"""Alerts and the Telegram bot.

Writers (runners, commands) call :func:`emit` with an :class:`AlertEvent`; it is a local store insert
that never touches the network. :class:`albra.notify.sender.AlertSender` drains the outbox to Telegram
(build one from the config with :func:`albra.notify.wiring.sender_from_settings`); :mod:`albra.notify.bot`
is the command bot; :mod:`albra.notify.testing` is a local Bot API server for tests. This package's top level stays light (no telegram import) so
runners and commands may import it freely.
"""

from albra.notify.event import AlertEvent, make_event_id
from albra.notify.kinds import DEFAULT_ROUTING, KINDS, Level, Routing, UnknownAlertKind, level_for
from albra.notify.outbox import Emitted, emit

__all__ = ["AlertEvent", "DEFAULT_ROUTING", "Emitted", "KINDS", "Level", "Routing", "UnknownAlertKind", "emit",
           "level_for", "make_event_id"]
