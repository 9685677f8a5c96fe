"""`albra data download` against the local Binance server (its public routes, weight limits on): files, an
incremental second run that fetches nothing, an interrupted run that resumes, a reported gap, refusals."""

from __future__ import annotations

import json

import pytest

from albra.candles import load_candles, load_funding
from albra.marketdata.download import Downloader, Job
from albra.marketdata.layout import DataDir, part_path
from albra.sim.markets import DEFAULT_MARKETS
from albra.sim.testing import run_sim_server
from albra.timefmt import parse_time

pytestmark = pytest.mark.anyio

FEB, MAR = parse_time("2024-02-01"), parse_time("2024-03-01")
N_15M = (MAR - FEB) // 900_000  # 2784 candles: three pages of 1000


def _client(url):
    from albra.marketdata.download import make_public_client

    return make_public_client(url, test_mode=True)


async def _download(url, data, job, progress=None):
    client = _client(url)
    try:
        return await Downloader(data, client, progress=progress).run(job, DEFAULT_MARKETS)
    finally:
        await client.close()


@pytest.fixture
async def sol_server(sol_files):
    candles, funding = sol_files
    async with run_sim_server(start="2024-03-05", data={"SOLUSDT": str(candles)},
                              funding={"SOLUSDT": str(funding)}) as h:
        yield h


async def test_download_then_incremental_run_fetches_nothing(sol_server, tmp_path):
    data = DataDir(tmp_path / "data")
    job = Job(["SOLUSDT"], ["15m", "1h"], ["1h"], True, FEB, MAR)
    first = await _download(sol_server.url, data, job)
    assert first.clean, [r.lines() for r in first.reports]
    assert first.requests["klines"] == 3 + 1 and first.requests["markPriceKlines"] == 1
    assert first.requests["fundingRate"] == 1 and first.info_refreshed
    s = load_candles(data.path("SOLUSDT", "klines", "15m"))
    assert (s.symbol, s.timeframe, len(s), int(s.ts[0]), int(s.ts[-1])) == ("SOLUSDT", "15m", N_15M, FEB,
                                                                           MAR - 900_000)
    assert len(load_candles(data.path("SOLUSDT", "klines", "1h"))) == N_15M // 4
    assert len(load_candles(data.path("SOLUSDT", "mark", "1h"))) == N_15M // 4
    f = load_funding(data.path("SOLUSDT", "funding"))
    assert len(f) == 29 * 3 + 1 and f[0][0] == FEB and f[-1][0] == MAR  # [start, end] inclusive
    info = json.loads(__import__("gzip").open(data.exchange_info, "rt").read())
    assert [x["symbol"] for x in info["symbols"]] == ["SOLUSDT"]
    # the same command again: nothing missing, nothing requested but the server time
    again = await _download(sol_server.url, data, job)
    assert again.requests == {"time": 1} and again.rows == 0 and again.clean
    # an earlier start fetches only the head that is missing
    head = await _download(sol_server.url, data, Job(["SOLUSDT"], ["15m"], [], False, FEB - 86_400_000, MAR))
    assert head.requests == {"time": 1, "klines": 1} and head.fetched == {"SOLUSDT-15m.csv.gz": 96}


async def test_interrupted_download_resumes_where_it_stopped(sol_server, tmp_path):
    data = DataDir(tmp_path / "data")
    job = Job(["SOLUSDT"], ["15m"], [], False, FEB, MAR)
    path = data.path("SOLUSDT", "klines", "15m")

    def stop_after_first_page(key, done, total):
        if done >= 1000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await _download(sol_server.url, data, job, stop_after_first_page)
    assert part_path(path).is_file() and not path.exists()  # the page received is kept, no final file yet
    resumed = await _download(sol_server.url, data, job)
    assert resumed.requests["klines"] == 2 and resumed.fetched == {"SOLUSDT-15m.csv.gz": N_15M - 1000}
    assert resumed.clean and not part_path(path).exists()
    assert len(load_candles(path)) == N_15M


async def test_a_gap_is_reported_never_filled(sol_server, tmp_path):
    client = _client(sol_server.url)
    try:  # Binance answers a page with one candle missing (as its own history has holes)
        rows = await client.fapiPublicGetKlines({"symbol": "SOLUSDT", "interval": "15m", "startTime": FEB,
                                                 "endTime": MAR - 1, "limit": 1000})
    finally:
        await client.close()
    del rows[500]
    await sol_server.admin.fault("GET", "/fapi/v1/klines", "status", status=200, body=json.dumps(rows),
                                 content_type="application/json")
    data = DataDir(tmp_path / "data")
    out = await _download(sol_server.url, data, Job(["SOLUSDT"], ["15m"], [], False, FEB, MAR))
    rep = out.reports[0]
    assert not out.clean and rep.gaps == [(FEB + 499 * 900_000, FEB + 501 * 900_000)] and rep.rows == N_15M - 1
    assert "gap after 2024-02-06 " in rep.lines()[0]
    with pytest.raises(Exception, match="gap after"):
        load_candles(data.path("SOLUSDT", "klines", "15m"))  # readers refuse the hole instead of bridging it


def test_cli_refuses_unknown_symbol_and_interval(tmp_path):
    import subprocess
    import sys

    base = [sys.executable, "-m", "albra", "data", "download", "--data-dir", str(tmp_path)]
    r = subprocess.run(base + ["NOPEUSDT"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "albra sim markets" in r.stderr, r.stderr
    r = subprocess.run(base + ["SOLUSDT", "--interval", "7m"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown timeframe '7m'" in r.stderr, r.stderr


async def test_cli_download_with_progress_and_json(sol_server, tmp_path):
    import asyncio
    import os
    import sys

    env = dict(os.environ, ALBRA_EXCHANGE_TEST_MODE="1")
    base = [sys.executable, "-m", "albra", "data", "download", "SOLUSDT", "--base-url", sol_server.url,
            "--data-dir", str(tmp_path / "d"), "--start", "2024-02-20", "--end", "2024-03-01"]
    proc = await asyncio.create_subprocess_exec(*base, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "SOLUSDT-15m.csv.gz: 960 rows" in out.decode() and "SOLUSDT-funding.csv.gz: 31 rows" in out.decode()
    proc = await asyncio.create_subprocess_exec(*base, "--json", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    doc = json.loads(out)
    assert proc.returncode == 0 and doc["requests"] == {"time": 1} and doc["clean"] is True


def test_sim_serve_reads_the_data_directory_by_symbol(sol_files, tmp_path):
    import shutil
    import urllib.request

    from albra.sim.testing import sim_process

    candles, funding = sol_files
    data = DataDir(tmp_path / "data")
    data.symbol_dir("SOLUSDT").mkdir(parents=True)
    shutil.copy(candles, data.path("SOLUSDT", "klines", "15m"))
    rows = [line.split(",") for line in funding.read_text().splitlines()[1:]]
    from albra.marketdata.layout import write_rows

    write_rows(data.path("SOLUSDT", "funding"), ["timestamp", "funding_rate"], rows)
    with sim_process("--data", "SOLUSDT", "--data-dir", str(data.root), "--start", "2024-03-01",
                     "--speed", "0") as (url, _):
        kl = json.load(urllib.request.urlopen(f"{url}/fapi/v1/klines?symbol=SOLUSDT&interval=1h&limit=2"))
        fr = json.load(urllib.request.urlopen(f"{url}/fapi/v1/fundingRate?symbol=SOLUSDT&limit=1000"
                                              f"&startTime={FEB}"))
    assert len(kl) == 2 and kl[-1][0] == MAR
    assert len(fr) == 29 * 3 + 1 and fr[-1]["fundingTime"] == MAR and fr[0]["symbol"] == "SOLUSDT"
