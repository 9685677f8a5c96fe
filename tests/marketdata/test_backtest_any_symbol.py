"""Any listed symbol in `albra backtest`, read from the data directory by symbol (no file paths): SOLUSDT candles and
funding produced by `albra data download` against the local server, SOLUSDT's real filters, funding never invented."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from decimal import Decimal

import pytest

from albra.marketdata.download import Downloader, Job, make_public_client
from albra.marketdata.layout import DataDir
from albra.sim.markets import DEFAULT_MARKETS
from albra.sim.testing import run_sim_server
from albra.timefmt import parse_time

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sol_data(sol_files, tmp_path):
    """Two data directories: SOLUSDT 15m candles with funding, and the same candles without funding."""
    candles, funding = sol_files
    async with run_sim_server(start="2024-03-05", data={"SOLUSDT": str(candles)},
                              funding={"SOLUSDT": str(funding)}) as h:
        for name, with_funding in (("full", True), ("nofunding", False)):
            client = make_public_client(h.url, test_mode=True)
            try:
                await Downloader(DataDir(tmp_path / name), client).run(
                    Job(["SOLUSDT"], ["15m"], [], with_funding, parse_time("2024-01-10"), parse_time("2024-03-01")),
                    DEFAULT_MARKETS)
            finally:
                await client.close()
    return tmp_path / "full", tmp_path / "nofunding"


def _backtest(data_dir, *extra):
    cmd = [sys.executable, "-m", "albra", "backtest", "--strategy", "TFPE", "--strategy", "ZLMACD_ICHIMOKU",
           "--symbol", "SOLUSDT", "--data-dir", str(data_dir), "--start", "2024-02-01", "--end", "2024-03-01",
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


async def test_backtest_on_downloaded_solusdt_with_its_filters_and_funding(sol_data, tmp_path):
    full, nofunding = sol_data
    trades_csv = tmp_path / "trades.csv"
    r = _backtest(full, "--json", "--trades-csv", str(trades_csv))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    summary, trades = doc["summary"], doc["trades"]
    assert trades and {t["symbol"] for t in trades} == {"SOLUSDT"}
    spec = DEFAULT_MARKETS["SOLUSDT"].filters
    for t in trades:  # quantities on SOLUSDT's real step, entries on its tick
        assert Decimal(t["quantity"]) % spec.step_size == 0 and Decimal(t["entry_price"]) % spec.tick_size == 0
    f = summary["funding"]["SOLUSDT"]
    assert f["source"].startswith("downloaded ") and f["source"].endswith("SOLUSDT-funding.csv.gz")
    assert f["settlements_at_flat_rate"] == 0 and f["settlements_without_rate"] == 0 and f["flat_rate"] is None
    words = summary["markets"]["SOLUSDT"]["filters"].split()
    assert [Decimal(words[i]) for i in (1, 3, 6, 9)] == [spec.tick_size, spec.step_size, spec.min_qty,
                                                         spec.min_notional]
    src = summary["markets"]["SOLUSDT"]["source"]  # the download's exchangeInfo filters, the snapshot's brackets
    assert src.startswith("filters of the downloaded exchangeInfo ") and "brackets of the bundled snapshot" in src
    rows = list(csv.DictReader(trades_csv.open()))
    assert len(rows) == len(trades) and rows[0]["funding_source"] == f["source"] and rows[0]["filters"]


async def test_funding_is_never_invented(sol_data):
    _, nofunding = sol_data
    r = _backtest(nofunding)
    assert r.returncode == 2, r.stdout
    err = " ".join(r.stderr.split())
    assert "SOLUSDT: funding is not known for the whole window (no funding history for SOLUSDT)" in err, err
    assert "albra data download SOLUSDT --start 2024-02-01" in err and "--funding-rate" in err
    r = _backtest(nofunding, "--funding-rate", "0.0001", "--json")
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)["summary"]["funding"]["SOLUSDT"]
    assert f["flat_rate"] == "0.0001" and f["source"].startswith("none")
    assert f["settlements_at_flat_rate"] > 0 and "flat rate 0.0001 given with --funding-rate" in f["source"]


def test_unknown_and_undownloaded_symbols_exit_2_with_the_way_out(tmp_path):
    r = _backtest(tmp_path, "--json")  # SOLUSDT is listed, but nothing is downloaded
    assert r.returncode == 2 and "albra data download SOLUSDT --interval 15m" in " ".join(r.stderr.split())
    cmd = [sys.executable, "-m", "albra", "backtest", "--strategy", "TFPE", "--symbol", "FOOUSDT",
           "--data-dir", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "albra sim markets" in r.stderr and "Traceback" not in r.stderr


def test_downloaded_exchange_info_overrides_filters_not_brackets():
    from albra.sim.markets import with_filters_from

    base = DEFAULT_MARKETS["SOLUSDT"]
    row = {"symbol": "SOLUSDT", "contractType": "PERPETUAL", "pricePrecision": 3, "quantityPrecision": 1,
           "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.005", "minPrice": "0.1", "maxPrice": "9000"},
                       {"filterType": "LOT_SIZE", "stepSize": "0.1", "minQty": "0.1", "maxQty": "100000"},
                       {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.1", "minQty": "0.1", "maxQty": "3000"},
                       {"filterType": "MIN_NOTIONAL", "notional": "5"}]}
    new = with_filters_from({"symbols": [row, dict(row, symbol="NEWCOINUSDT")]})
    sol = new["SOLUSDT"]
    assert (sol.filters.tick_size, sol.filters.step_size, sol.price_precision) == (Decimal("0.005"), Decimal("0.1"), 3)
    assert sol.brackets == base.brackets and "NEWCOINUSDT" not in new  # no brackets known: not simulated
