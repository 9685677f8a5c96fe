"""Write albra's CSV candles, mark candles and funding rates as freqtrade feather data (run with freqtrade's
Python: it stores through freqtrade's own data handler, so the layout is whatever the installed version expects).

Usage: FT_PYTHON prepare_data.py DATADIR SYMBOL CANDLES_15M MARK_1H FUNDING_CSV
"""

import sys
from pathlib import Path

import pandas as pd

from freqtrade.data.history import get_datahandler
from freqtrade.enums import CandleType


def main() -> None:
    datadir, symbol, candles, mark, funding = sys.argv[1:6]
    pair = f"{symbol[:-4]}/USDT:USDT"
    (Path(datadir) / "futures").mkdir(parents=True, exist_ok=True)
    h = get_datahandler(Path(datadir), "feather")

    def ohlcv(path: str) -> pd.DataFrame:
        df = pd.read_csv(path)
        df["date"] = pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True)
        return df[["date", "open", "high", "low", "close", "volume"]]

    h.ohlcv_store(pair, "15m", ohlcv(candles), CandleType.FUTURES)
    h.ohlcv_store(pair, "1h", ohlcv(mark), CandleType.MARK)
    f = pd.read_csv(funding)
    f["date"] = pd.to_datetime(f.pop("timestamp"), unit="ms", utc=True)
    h.ohlcv_store(pair, "1h", f[["date", "funding_rate"]], CandleType.FUNDING_RATE)


if __name__ == "__main__":
    main()
