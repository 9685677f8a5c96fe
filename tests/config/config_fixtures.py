"""Helpers for configuration tests: real-looking secrets and small config texts."""

from __future__ import annotations

import random
import string

def fake_key(seed: int) -> str:
    """A real-looking 64-character Binance key/secret (letters and digits)."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(64))


def fake_bot_token(seed: int) -> str:
    """A real-looking Telegram bot token: ``<bot id>:<35 chars>``."""
    rng = random.Random(seed)
    return f"{rng.randint(10**9, 10**10 - 1)}:AA" + "".join(
        rng.choice(string.ascii_letters + string.digits + "_-") for _ in range(33)
    )


TELEGRAM_OFF = """
[telegram]
enabled = false
"""

PAPER_BODY = """
[accounts.demo]
mode = "paper"

[[accounts.demo.strategies]]
name = "TEMPLATE"
symbols = ["BTCUSDT"]
timeframe = "1h"
leverage = 5
size_pct = 10
"""

PAPER_ONLY = TELEGRAM_OFF + PAPER_BODY

LIVE_MASTER = TELEGRAM_OFF + """
[accounts.master]
mode = "live"

[[accounts.master.strategies]]
name = "TEMPLATE"
symbols = ["BTCUSDT"]
timeframe = "1h"
leverage = 10
size_pct = 24
"""
