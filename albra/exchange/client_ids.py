"""Deterministic client order ids (ADR 0004).

An id is derived only from (account, strategy, symbol, candle open time, purpose, generation), so the engine can
re-derive it after a crash and look the order up instead of sending it again. Format (≤ 36 chars, Binance's
charset ``^[.A-Z:/a-z0-9_-]{1,36}$``)::

    al-<purpose code>-<candle ts base36>-<generation base36>-<leg hash>

e.g. ``al-sl-lr0hrxs0-0-3k9d0x1q2m`` — readable enough for a human to see "stop-loss of the candle at ..., first
attempt", and the 10-character base36 hash of (account, strategy, symbol) (~51 bits) keeps ids of different legs
apart. Purpose, candle and generation are encoded injectively, so two intents of one leg never share an id.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

PREFIX = "al"
HASH_LEN = 10
MAX_LEN = 36
MAX_GENERATION = 36**3 - 1
BINANCE_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

#: purpose name -> short code that appears in the id. Codes are distinct and contain no '-'.
PURPOSES: dict[str, str] = {
    "entry": "en",
    "exit": "ex",
    "stop_loss": "sl",
    "take_profit": "tp",
    "close": "cl",
    "reduce": "rd",
    "emergency": "em",
    "reconcile": "rc",
    "manual": "mn",
}
_CODE_TO_PURPOSE = {code: name for name, code in PURPOSES.items()}
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_PARSE = re.compile(r"^al-([a-z]{2})-([0-9a-z]{1,13})-([0-9a-z]{1,3})-([0-9a-z]{%d})$" % HASH_LEN)


def to_base36(n: int) -> str:
    if n < 0:
        raise ValueError(f"base36 needs a non-negative integer, got {n}")
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def leg_hash(account: str, strategy: str, symbol: str) -> str:
    """The 10-char base36 hash that ties an id to one (account, strategy, symbol)."""
    for name, value in (("account", account), ("strategy", strategy), ("symbol", symbol)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"client id needs a non-empty {name}, got {value!r}")
    return _leg_hash(account, strategy, symbol)


@lru_cache(maxsize=1024)
def _leg_hash(account: str, strategy: str, symbol: str) -> str:
    """The hash itself, remembered: a process asks for the same few legs' hash for every order it places (a
    backtest thousands of times); a pure function of its three strings, so the cache cannot be stale."""
    digest = hashlib.blake2b(f"{account}\x1f{strategy}\x1f{symbol}".encode(), digest_size=8).digest()
    h = to_base36(int.from_bytes(digest, "big"))
    return h.rjust(HASH_LEN, "0")[-HASH_LEN:]


def make_client_id(account: str, strategy: str, symbol: str, candle_ts: int, purpose: str,
                   generation: int = 0) -> str:
    """The client id for one order intent. ``purpose`` is a key of :data:`PURPOSES`; ``generation`` counts
    deliberate re-submissions of the same intent (e.g. a stop re-placed after a cancel), starting at 0."""
    code = PURPOSES.get(purpose)
    if code is None:
        raise ValueError(f"unknown order purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    if not isinstance(candle_ts, int) or isinstance(candle_ts, bool) or candle_ts < 0:
        raise ValueError(f"candle_ts must be a non-negative epoch-ms int, got {candle_ts!r}")
    if not isinstance(generation, int) or isinstance(generation, bool) or not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"generation must be an int in 0..{MAX_GENERATION}, got {generation!r}")
    cid = f"{PREFIX}-{code}-{to_base36(candle_ts)}-{to_base36(generation)}-{leg_hash(account, strategy, symbol)}"
    if len(cid) > MAX_LEN or not BINANCE_CLIENT_ID.match(cid):  # only reachable for absurd candle_ts values
        raise ValueError(f"client id {cid!r} would break Binance's format (candle_ts {candle_ts} too large?)")
    return cid


@dataclass(frozen=True, slots=True)
class ParsedClientId:
    """What a human (or the reconciler) can read back from an albra client id."""

    purpose: str
    candle_ts: int
    generation: int
    leg_hash: str

    def belongs_to(self, account: str, strategy: str, symbol: str) -> bool:
        return self.leg_hash == leg_hash(account, strategy, symbol)


def parse_client_id(cid: str) -> ParsedClientId | None:
    """Decode an albra client id; None for an id albra did not make (manual orders, other bots)."""
    m = _PARSE.match(cid or "")
    if m is None or m.group(1) not in _CODE_TO_PURPOSE:
        return None
    return ParsedClientId(purpose=_CODE_TO_PURPOSE[m.group(1)], candle_ts=int(m.group(2), 36),
                          generation=int(m.group(3), 36), leg_hash=m.group(4))


def is_albra_id(cid: str) -> bool:
    return parse_client_id(cid) is not None
