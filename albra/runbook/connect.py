"""An account's exchange gateway for a runbook command, or why the account cannot be reached.

The gateway itself is built by :func:`albra.exchange.factory.gateway_for`, the one place gateways are built
(runners, dashboard and runbook alike: the same client settings, the same shared weight file, the same
``ALBRA_EXCHANGE_TEST_MODE`` rule). What this module adds is the runbook's way of failing: runbook commands talk
to every configured account at once and must report an account they cannot use (no keys, wrong keys, exchange
down, a paper account that only exists inside its runner) as *that account's* problem while the others are still
handled. So :func:`account_gateway` never raises for one account's trouble; it returns an :class:`Unreachable`
with the reason, and a missing key is ``kind="config"`` (exit 2, the env var named), not an unreachable exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.exchange.types import Gateway


@dataclass(frozen=True)
class Unreachable:
    """Why an account's exchange could not be used: ``kind`` is ``paper``, ``config`` (keys missing),
    ``auth`` (keys refused), ``network`` (no answer / breaker open) or ``error``."""

    account: str
    kind: str
    reason: str

    @property
    def is_config(self) -> bool:
        """A configuration problem (exit 2), as opposed to an exchange that did not answer (exit 3)."""
        return self.kind == "config"

    def as_dict(self) -> dict[str, str]:
        return {"account": self.account, "kind": self.kind, "reason": self.reason}


def account_gateway(settings: "Settings", account: str, emergency: bool = False) -> "Gateway | Unreachable":
    """``account``'s ccxt gateway from :func:`albra.exchange.factory.gateway_for` (nothing is sent yet), or why
    there cannot be one. ``emergency`` selects the factory's emergency profile (short breaker cool-down, ccxt's
    throttler off; the shared weight limiter still applies — see ``gateway_for``)."""
    from albra.config import AccountMode, ConfigError
    from albra.exchange.factory import gateway_for

    acc = settings.account(account)
    if acc.mode is AccountMode.PAPER:
        return Unreachable(account, "paper", "paper account: its simulated exchange lives inside its runner; "
                                             "there is no exchange to contact")
    try:
        secrets = settings.require_secrets(account)
    except ConfigError as e:
        return Unreachable(account, "config", f"account {account}: API keys not configured — {e}")
    state_dir = settings.paths.state_dir
    try:
        return gateway_for(account, acc, secrets, state_dir=state_dir if state_dir.is_dir() else None,
                           emergency=emergency)
    except ValueError as e:
        return Unreachable(account, "config", str(e))


def classify_failure(account: str, exc: BaseException) -> Unreachable:
    """An exchange error seen while reading an account, as the reason it is unreachable."""
    from albra.exchange.errors import AuthFailed, CircuitOpen, Fatal, Retryable

    msg = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, AuthFailed):
        return Unreachable(account, "auth", f"the exchange refused the API key ({msg[:300]})")
    if isinstance(exc, (Retryable, CircuitOpen)):
        return Unreachable(account, "network", f"no usable answer from the exchange ({msg[:300]})")
    if isinstance(exc, Fatal):
        return Unreachable(account, "error", msg[:300])
    return Unreachable(account, "error", msg[:300])


def note_clock(store: Any, gw: Any) -> None:
    """Record the exchange clock this gateway measured (one clock, :mod:`albra.store.clock`), when it measured one."""
    if store is None or not getattr(gw, "_time_synced", False) or not hasattr(gw, "exchange_now"):
        return
    try:
        from albra.store.clock import record_offset

        record_offset(store, gw.account, gw.exchange_now())
    except Exception:  # noqa: BLE001 - a clock note must never fail a runbook command
        pass


async def close_quietly(gw: Any, store: Any = None) -> None:
    """Close a gateway's HTTP session (noting its exchange clock in ``store`` first); a failure to close is not worth
    failing a runbook command for."""
    note_clock(store, gw)
    try:
        await gw.close()
    except Exception:  # noqa: BLE001 - closing is best effort after the work is done
        pass
