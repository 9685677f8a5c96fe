"""Run freqtrade without the internet (bench only): its exchange layer loads Binance's market list through ccxt at
start-up, so ``fapiPublicGetExchangeInfo`` is answered from a file: the ``GET /fapi/v1/exchangeInfo`` answer
albra's local Binance server gives for the benchmark's symbols (real filters from albra's stored snapshot,
written by bench_vs_freqtrade.py), and only USDⓈ-M markets are listed (the config's ``fetchMarkets``).
Everything else is freqtrade's own code, unchanged.

Usage: FT_PYTHON run_offline.py EXCHANGE_INFO_JSON freqtrade-args...
"""

import json
import sys

import ccxt
import ccxt.async_support as ccxta

with open(sys.argv.pop(1), encoding="utf-8") as fh:
    SNAPSHOT = json.load(fh)


async def _exchange_info_async(self, params=None, context=None):
    return SNAPSHOT


def _exchange_info(self, params=None, context=None):
    return SNAPSHOT


for cls in (ccxta.binance, ccxta.binanceusdm):
    cls.fapiPublicGetExchangeInfo = _exchange_info_async
for cls in (ccxt.binance, ccxt.binanceusdm):
    cls.fapiPublicGetExchangeInfo = _exchange_info

from freqtrade.main import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "freqtrade"
    main()
