"""Paper replays: funding from the data directory or the bundled files; a window without it is refused unless the
account sets a flat funding_rate on purpose; the runner's summary says which."""

from __future__ import annotations

from decimal import Decimal

import pytest

from albra.config.schema import AccountSettings
from albra.exchange.factory import paper_market
from albra.marketdata.layout import DataDir
from albra.marketdata.layout import write_rows


def _acc(candles, **kw):
    return AccountSettings(mode="paper", replay={"SOLUSDT": candles}, replay_start="2024-02-01",
                           replay_end="2024-03-01", **kw)


def test_paper_replay_refuses_unknown_funding_unless_a_flat_rate_is_set(sol_files, tmp_path):
    candles, funding = sol_files
    with pytest.raises(ValueError, match=r"funding is not known for the whole replay of SOLUSDT .*albra data "
                                         r"download SOLUSDT.*accounts\.p\.funding_rate"):
        paper_market("p", _acc(candles), data_dir=tmp_path)
    m = paper_market("p", _acc(candles, funding_rate=Decimal("0.0001")), data_dir=tmp_path)
    assert m.funding_sources == {"SOLUSDT": "none; flat 0.0001 where it has no rate"}
    assert m.exchange.default_funding_rate == Decimal("0.0001")
    # the data directory's history (what `albra data download` writes) is found by symbol
    data = DataDir(tmp_path)
    rows = [line.split(",") for line in funding.read_text().splitlines()[1:]]
    write_rows(data.path("SOLUSDT", "funding"), ["timestamp", "funding_rate"], rows)
    m = paper_market("p", _acc(candles), data_dir=tmp_path)
    assert m.funding_sources["SOLUSDT"].startswith("downloaded ") and m.exchange.default_funding_rate is None


def test_bundled_funding_covers_the_readme_demo_window(tmp_path):
    m = paper_market("demo", AccountSettings(mode="paper", strategies=[
        {"name": "TFPE", "symbols": ["BTCUSDT"], "timeframe": "15m", "leverage": 10, "size_pct": 24}]),
        data_dir=tmp_path)
    assert m.funding_sources == {"BTCUSDT": "bundled BTCUSDT-funding.csv"}
