"""Opening an account's exchange gateway for a runbook command, and classifying why it could not be reached.

Why the runbook has its own small opener: runbook commands talk to every configured account at once and must
report an account they cannot reach (no keys, wrong keys, exchange down, a paper account that only exists inside
its runner) as *that account's* problem while the others are still handled. So opening never raises for one
account's trouble; it returns an :class:`Unreachable` with the reason.

``ALBRA_EXCHANGE_TEST_MODE=1`` turns ccxt's client-side throttler off and makes ``close()`` return at once (tests and
benches against the local server only; production keeps the throttler, albra's weight limiter works on top of it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from albra.config import Settings
    from albra.exchange.types import Gateway

TEST_MODE_ENV = "ALBRA_EXCHANGE_TEST_MODE"


@dataclass(frozen=True)
class Unreachable:
    """Why an account's exchange could not be used: ``kind`` is ``paper``, ``config`` (keys missing),
    ``auth`` (keys refused), ``network`` (no answer / breaker open) or ``error``."""

    account: str
    kind: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"account": self.account, "kind": self.kind, "reason": self.reason}


def test_mode() -> bool:
    return os.environ.get(TEST_MODE_ENV, "") in ("1", "true", "yes")


#: the emergency gateway's breaker: a failing route must not lock the shutdown out for the default 30 s; it
#: still sheds load for a moment between rounds.
URGENT_BREAKER_COOLDOWN_S = 1.0


def open_gateway(settings: "Settings", account: str, urgent: bool = False) -> "Gateway | Unreachable":
    """A ccxt gateway for ``account`` (nothing is sent yet), or why there cannot be one. ``urgent`` (the emergency
    path) shortens the circuit breaker's cool-down and turns ccxt's client-side throttler off (see below)."""
    from albra.config import AccountMode, ConfigError
    from albra.exchange.ccxt_gateway import CcxtGateway
    from albra.exchange.client import make_ccxt_client

    acc = settings.account(account)
    if acc.mode is AccountMode.PAPER:
        return Unreachable(account, "paper", "paper account: its simulated exchange lives inside its runner; "
                                             "there is no exchange to contact")
    try:
        secrets = settings.require_secrets(account)
    except ConfigError as e:
        return Unreachable(account, "config", str(e))
    assert secrets is not None
    mode = "testnet" if acc.mode is AccountMode.TESTNET else "live"
    try:
        client = make_ccxt_client(mode, secrets.api_key.reveal(), secrets.api_secret.reveal(), acc.base_url,
                                  test_mode=test_mode())
    except ValueError as e:
        return Unreachable(account, "config", str(e))
    weight_file = str(settings.paths.state_dir / "weight.json") if settings.paths.state_dir.is_dir() else None
    resilience = None
    if urgent:
        # ccxt's client-side throttler charges its weight model up front (40 × 50 ms = 2 s for one open-orders
        # read without a symbol) and serialises every request of the client: it would turn a sub-second shutdown
        # into ~12 s. The emergency sends a few dozen requests (far below 2400 weight/min); albra's weight limiter,
        # fed by the exchange's own used-weight header and shared with the runners, still guards against a ban.
        client.enableRateLimit = False
        from albra.exchange.resilience import CircuitBreaker, Resilience, WeightLimiter

        resilience = Resilience(account, breaker=CircuitBreaker(account, cooldown_s=URGENT_BREAKER_COOLDOWN_S),
                                limiter=WeightLimiter(shared_path=weight_file),
                                attempt_timeout_s=float(getattr(client, "timeout", 10_000)) / 1000 + 2.0)
    return CcxtGateway(account, client, resilience=resilience, weight_file=weight_file)


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


async def close_quietly(gw: Any) -> None:
    """Close a gateway's HTTP session; a failure to close is not worth failing a runbook command for."""
    try:
        await gw.close()
    except Exception:  # noqa: BLE001 - closing is best effort after the work is done
        pass
