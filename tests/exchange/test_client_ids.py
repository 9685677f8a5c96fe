"""Client ids (ADR 0004): Binance's format, deterministic, readable back, and no collisions between legs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albra.exchange.client_ids import (
    BINANCE_CLIENT_ID,
    MAX_GENERATION,
    PURPOSES,
    is_albra_id,
    make_client_id,
    parse_client_id,
)

names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=24)
symbols = st.from_regex(r"[A-Z0-9]{3,20}", fullmatch=True)
candles = st.integers(min_value=0, max_value=4_102_444_800_000)  # up to 2100-01-01
purposes = st.sampled_from(sorted(PURPOSES))
gens = st.integers(min_value=0, max_value=MAX_GENERATION)


@given(names, names, symbols, candles, purposes, gens)
@settings(max_examples=150)
def test_format_determinism_and_round_trip(account, strategy, symbol, ts, purpose, gen):
    cid = make_client_id(account, strategy, symbol, ts, purpose, gen)
    assert len(cid) <= 36
    assert BINANCE_CLIENT_ID.match(cid), cid
    assert cid == make_client_id(account, strategy, symbol, ts, purpose, gen)
    parsed = parse_client_id(cid)
    assert parsed is not None
    assert (parsed.purpose, parsed.candle_ts, parsed.generation) == (purpose, ts, gen)
    assert parsed.belongs_to(account, strategy, symbol)


@given(st.lists(st.tuples(names, names, symbols, candles, purposes, gens), min_size=2, max_size=60, unique=True))
@settings(max_examples=60)
def test_distinct_intents_never_share_an_id(intents):
    ids = {make_client_id(*i) for i in intents}
    assert len(ids) == len(intents)


def test_legs_that_differ_only_in_one_field_differ():
    base = ("master", "TURTLE", "BTCUSDT", 1_704_067_200_000, "stop_loss", 0)
    ids = {make_client_id(*base)}
    for i, alt in enumerate(["sub1", "ZLMACD", "ETHUSDT", 1_704_068_100_000, "take_profit", 1]):
        variant = list(base)
        variant[i] = alt
        ids.add(make_client_id(*variant))
    assert len(ids) == 7
    # field boundaries are not ambiguous: ("ab", "c") vs ("a", "bc")
    assert make_client_id("ab", "c", "BTCUSDT", 0, "entry") != make_client_id("a", "bc", "BTCUSDT", 0, "entry")


def test_readable_prefix():
    cid = make_client_id("master", "TURTLE", "BTCUSDT", 1_704_067_200_000, "stop_loss", 2)
    assert cid.startswith("al-sl-")
    assert cid.split("-")[3] == "2"


@pytest.mark.parametrize("args, word", [
    (("", "s", "BTCUSDT", 0, "entry"), "account"),
    (("a", "", "BTCUSDT", 0, "entry"), "strategy"),
    (("a", "s", "", 0, "entry"), "symbol"),
    (("a", "s", "BTCUSDT", -1, "entry"), "candle_ts"),
    (("a", "s", "BTCUSDT", 0, "buy"), "purpose"),
    (("a", "s", "BTCUSDT", 0, "entry", MAX_GENERATION + 1), "generation"),
    (("a", "s", "BTCUSDT", 1.5, "entry"), "candle_ts"),
])
def test_bad_input_is_named(args, word):
    with pytest.raises(ValueError, match=word):
        make_client_id(*args)


@pytest.mark.parametrize("foreign", ["", "x-cvBPrNm9abcdefghijklmnopqrstuv", "albra-entry-1", "al-zz-1-0-abcdefghij",
                                     "al-sl-1-0-short"])
def test_foreign_ids_are_not_parsed(foreign):
    assert parse_client_id(foreign) is None
    assert not is_albra_id(foreign)
