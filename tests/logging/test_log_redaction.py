"""No API key, secret or bot token reaches a log line (file or console) by any route: the message,
%-args, extra fields, a dict's repr, a URL, or an exception logged with exc_info."""

from __future__ import annotations

import io
import logging
import random
import string

import pytest

from albra.log import setup_logging, teardown_logging
from albra.redact import MASK, Redactor, redact
from albra.secrets import Secret, resolve_secret


def fake_key(seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(64))


def fake_bot_token(seed: int) -> str:
    rng = random.Random(seed)
    return f"{rng.randint(10**9, 10**10 - 1)}:AA" + "".join(
        rng.choice(string.ascii_letters + string.digits + "_-") for _ in range(33))


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    level = root.level
    yield
    teardown_logging()
    root.setLevel(level)


def _all_fragments(secret: str) -> list[str]:
    return [secret, secret[:20], secret[-20:]]


def test_registered_and_secret_shaped_values_never_reach_a_log_line(tmp_path):
    key, secret, token = fake_key(1), fake_key(2), fake_bot_token(3)
    short_secret = "hunter2-not-shaped"  # no known shape: only registration can catch it
    # Resolved the way the runner resolves them: registration with the redactor happens here.
    env = {"BINANCE_API_KEY": key, "BINANCE_SECRET_KEY": secret, "X_PASS": short_secret}
    assert resolve_secret(["BINANCE_API_KEY"], environ=env) is not None
    assert resolve_secret(["BINANCE_SECRET_KEY"], environ=env) is not None
    assert resolve_secret(["X_PASS"], environ=env) is not None
    unregistered = fake_key(4)  # never resolved: caught by shape alone

    console = io.StringIO()
    log_file = setup_logging(tmp_path, "runner-master", stream=console)
    log = logging.getLogger("albra.exchange")
    log.info(f"key in message {key}")
    log.info("secret in args %s and %r", secret, {"apiKey": key, "nested": [secret, short_secret]})
    log.warning("url %s", f"https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT&signature=abc&apiKey={key}")
    log.warning("bot url https://api.telegram.org/bot%s/sendMessage", token)
    log.info("extra fields", extra={"headers": {"X-MBX-APIKEY": key}, "note": short_secret, "raw": unregistered})
    log.info("unregistered key-shaped value %s", unregistered)
    try:
        try:
            raise ConnectionError(f"POST https://fapi.binance.com/fapi/v1/order?apiKey={key} failed")
        except ConnectionError as inner:
            raise RuntimeError(f"order failed with secret={secret} token={token}") from inner
    except RuntimeError:
        log.exception("exchange error %s", short_secret)
    log.error("stack", stack_info=True, extra={"repr": repr({"secret": secret})})

    file_text = log_file.read_text(encoding="utf-8")
    console_text = console.getvalue()
    for text in (file_text, console_text):
        for s in (key, secret, token, short_secret, unregistered, token.split(":")[1]):
            for frag in _all_fragments(s):
                assert frag not in text
        assert MASK in text
        assert "RuntimeError: order failed with secret=*** token=***" in text
        assert "ConnectionError: POST https://fapi.binance.com/fapi/v1/order?apiKey=*** failed" in text
        assert "bot***/sendMessage" in text
    assert file_text.count("\n") == 8  # still one JSON object per line


def test_secret_wrapper_never_prints_its_value():
    value = fake_key(10)
    sec = resolve_secret(["K"], environ={"K": value})
    assert isinstance(sec, Secret) and sec.reveal() == value
    for shown in (str(sec), repr(sec), f"{sec}", repr([sec]), repr({"k": sec})):
        assert value not in shown and value[:8] not in shown
    assert str(sec) == "K (set, from environment)"


def test_url_encoded_form_of_a_registered_secret_is_redacted():
    r = Redactor(patterns=())  # registration only, no shapes
    r.register("p@ss/word:with=chars")
    assert r.redact("u=p@ss/word:with=chars&x") == "u=***&x"
    assert r.redact("u=p%40ss%2Fword%3Awith%3Dchars&x") == "u=***&x"
    assert r.redact_obj({"a": ["p@ss/word:with=chars", 1, None]}) == {"a": ["***", 1, None]}


def test_shapes_without_registration():
    key, token = fake_key(20), fake_bot_token(21)
    assert redact(f"k={key};") == "k=***;"
    assert redact(f"t={token} end") == "t=*** end"
    # Not secrets: a 40-char git sha, prices, an order id, a 63-character run of letters.
    plain = "commit 0123456789abcdef0123456789abcdef01234567 price 43123.5 order 8389765512345 " + "a" * 63
    assert redact(plain) == plain
