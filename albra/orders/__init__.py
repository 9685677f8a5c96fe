"""The order manager: the one package that sends and cancels orders (docs/adr/0012-order-manager.md).

Every order of an account — entries, exits, reduces, stops, take-profits, forced closes, emergency closes — is
sent, cancelled, looked up after an unknown outcome and settled from its fills here, as one lifecycle per order:
write-ahead intent → sent → acknowledged | unknown → working → filled | cancelled | expired | rejected | not found.
Nothing outside this package calls a gateway's ``place_order``, ``cancel_order`` or ``cancel_all`` (a test walks
the source tree and pins it).

* :mod:`albra.orders.manager` — :class:`~albra.orders.manager.OrderManager`: send, resolve, cancel, fills.
* :mod:`albra.orders.protection` — the stop/take-profit protocol of a leg (protect, replace, re-size).
* :mod:`albra.orders.resolution` — the start-up / reconciliation pass over intents without a known outcome.
"""
