"""Every market (issue 12): the listed markets come from the bundled Binance USDⓈ-M exchangeInfo snapshot;
SOLUSDT is served, quantised and backtested with its real filters; an unknown symbol is a clear error."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
from decimal import Decimal

import pytest

from albra.candles import bundled
from albra.sim.errors import SimError
from albra.sim.markets import DEFAULT_MARKETS, SNAPSHOT, market_spec
from albra.sim.testing import DEFAULT_ACCOUNTS, ccxt_client, sim_process

# SOLUSDT in Binance's exchangeInfo of 2024-10-20 (albra/sim/data/PROVENANCE.md)
SOL = {"tick": Decimal("0.01"), "step": Decimal("1"), "min_qty": Decimal("1"), "max_qty": Decimal("1000000"),
       "market_max": Decimal("5000"), "min_notional": Decimal("5")}


def sol_candles(path, rows: int = 400) -> None:
    """A SOLUSDT 15m file derived from the bundled BTCUSDT candles (prices ÷ 400, on SOL's 0.01 tick; volume × 400):
    shaped like real candles, not real SOL prices — the test is about filters, not returns."""
    with gzip.open(bundled("BTCUSDT-15m.csv.gz"), "rt") as fh:
        lines = fh.read().splitlines()
    out = [lines[0]]
    for line in lines[1:rows + 1]:
        ts, o, h, lo, c, v = line.split(",")
        px = [round(float(x) / 400, 2) for x in (o, h, lo, c)]
        out.append(",".join([ts, *(f"{p:.2f}" for p in px), f"{float(v) * 400:.0f}"]))
    path.write_text("\n".join(out) + "\n")


def test_snapshot_lists_every_perpetual_with_real_filters_and_brackets():
    assert SNAPSHOT.is_file() and SNAPSHOT.stat().st_size < 300_000
    assert len(DEFAULT_MARKETS) == DEFAULT_MARKETS.info.symbols == 323
    assert DEFAULT_MARKETS.info.date.startswith("2024-10-20")
    sol = DEFAULT_MARKETS["SOLUSDT"]
    f = sol.filters
    assert (f.tick_size, f.step_size, f.min_qty, f.max_qty, f.market_max_qty, f.min_notional) == tuple(SOL.values())
    assert (sol.base, sol.quote, sol.price_precision, sol.qty_precision) == ("SOL", "USDT", 4, 0)
    assert sol.brackets[0].max_leverage == 100 and sol.brackets[0].cap == 20000 and sol.brackets[0].mmr == Decimal("0.005")
    btc = DEFAULT_MARKETS["BTCUSDT"].filters
    assert (btc.tick_size, btc.step_size, btc.min_notional, btc.market_max_qty) == (
        Decimal("0.10"), Decimal("0.001"), Decimal("100"), Decimal("120"))
    for spec in DEFAULT_MARKETS.values():  # every tier chain is contiguous and cum follows Binance's recurrence
        cum, prev = Decimal(0), Decimal(0)
        assert spec.brackets and spec.brackets[0].floor == 0
        for a, b in zip(spec.brackets, spec.brackets[1:]):
            assert a.cap == b.floor
        for b in spec.brackets:
            cum += b.floor * (b.mmr - prev)
            prev = b.mmr
            assert abs(cum - b.cum) < Decimal("0.01"), spec.symbol
    assert {s.symbol for s in DEFAULT_MARKETS.search("sol")} >= {"SOLUSDT", "SOLUSDC"}


def test_unknown_symbol_in_the_core_says_how_to_list_markets():
    with pytest.raises(SimError) as e:
        market_spec("NOPEUSDT")
    assert e.value.code == -1121 and "albra sim markets" in e.value.msg
    with pytest.raises(SimError) as e:  # listed on Binance, but this simulation has no candles for it
        market_spec("SOLUSDT", {"BTCUSDT": DEFAULT_MARKETS["BTCUSDT"]})
    assert e.value.code == -1121 and "--data SOLUSDT=FILE" in e.value.msg


def _albra(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "albra", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_sim_markets_lists_and_searches():
    out = _albra("sim", "markets", "--search", "SOL")
    assert out.returncode == 0, out.stderr
    row = next(line.split() for line in out.stdout.splitlines() if line.startswith("SOLUSDT "))
    assert row[1:7] == ["0.0100", "1", "1", "1000000", "5000", "5"]
    assert "of 323 markets" in out.stdout
    js = _albra("sim", "markets", "--json", "--search", "ETHUSDT")
    assert json.loads(js.stdout.splitlines()[0])["minNotional"] == "20"
    none = _albra("sim", "markets", "--search", "NOPE")
    assert none.returncode == 1 and "no listed market" in none.stderr


def test_unknown_symbol_commands_exit_2_with_a_pointer(tmp_path):
    csv = tmp_path / "XYZ.csv"
    sol_candles(csv, 50)
    bt = _albra("backtest", "-s", "TFPE", "--symbol", "XYZUSDT", "--data", f"XYZUSDT={csv}", "--json", cwd=tmp_path)
    assert bt.returncode == 2 and "albra sim markets" in bt.stderr and "Traceback" not in bt.stderr
    sv = _albra("sim", "serve", "--speed", "0", "--account", "a:k:s", "--data", f"XYZUSDT={csv}")
    assert sv.returncode == 2 and "'XYZUSDT' is not listed" in sv.stderr and "albra sim markets" in sv.stderr
    assert "Traceback" not in sv.stderr
    typo = _albra("sim", "serve", "--speed", "0", "--account", "a:k:s", "--data", f"SOLUSD={csv}")
    assert typo.returncode == 2 and "Did you mean SOLUSDT" in typo.stderr


def test_backtest_solusdt_with_its_real_filters(tmp_path):
    csv = tmp_path / "SOLUSDT-15m.csv"
    sol_candles(csv, 3000)
    args = ("backtest", "-s", "TFPE", "--symbol", "SOLUSDT", "--data", f"SOLUSDT={csv}", "--json")
    refused = _albra(*args, cwd=tmp_path)  # no funding history for these candles: refused, never invented
    assert refused.returncode == 2 and "--funding-rate" in refused.stderr
    out = _albra(*args, "--funding-rate", "0.0001", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["summary"]["funding"]["SOLUSDT"]["flat_rate"] == "0.0001"
    assert doc["summary"]["total"]["candles"] > 0 and doc["trades"]
    for t in doc["trades"]:  # SOLUSDT trades whole coins (step 1) on a 0.01 tick
        assert t["symbol"] == "SOLUSDT"
        assert Decimal(t["quantity"]) % SOL["step"] == 0 and Decimal(t["quantity"]) >= SOL["min_qty"]


def test_sim_serve_solusdt_real_filters_through_ccxt(tmp_path):
    csv = tmp_path / "SOLUSDT-15m.csv"
    sol_candles(csv, 300)
    name, (key, secret) = next(iter(DEFAULT_ACCOUNTS.items()))
    with sim_process("--speed", "0", "--data", f"SOLUSDT={csv}") as (url, _proc):
        async def go() -> None:
            ex = ccxt_client(url, key, secret)
            try:
                markets = await ex.load_markets()
                m = markets["SOL/USDT:USDT"]
                assert "BTC/USDT:USDT" not in markets  # only the markets given candles are served
                info = {f["filterType"]: f for f in m["info"]["filters"]}
                assert Decimal(info["PRICE_FILTER"]["tickSize"]) == SOL["tick"]
                assert Decimal(info["LOT_SIZE"]["stepSize"]) == SOL["step"]
                assert Decimal(info["MARKET_LOT_SIZE"]["maxQty"]) == SOL["market_max"]
                assert Decimal(info["MIN_NOTIONAL"]["notional"]) == SOL["min_notional"]
                assert m["limits"]["cost"]["min"] == 5 and m["precision"]["amount"] == 1
                assert ex.amount_to_precision("SOL/USDT:USDT", 2.7) == "2"  # ccxt quantises to whole SOL
                order = await ex.create_order("SOL/USDT:USDT", "market", "buy", 2)
                assert Decimal(str(order["amount"])) == 2
                with pytest.raises(Exception) as e:  # 0.5 SOL is below LOT_SIZE minQty 1
                    await ex.fapiPrivatePostOrder({"symbol": "SOLUSDT", "side": "BUY", "type": "MARKET",
                                                   "quantity": "0.5"})
                assert "-4003" in str(e.value) or "-1111" in str(e.value) or "-4164" in str(e.value)
            finally:
                await ex.close()

        asyncio.run(go())
