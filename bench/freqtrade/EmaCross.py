"""freqtrade twin of albra's BENCH_EMA_CROSS (bench/strategies/ema_cross.py), for bench/bench_vs_freqtrade.py.

EMA 20 / EMA 50 of the 15m close (pandas ewm, adjust=False, NaN until 20 / 50 values: the same numbers albra's
indicator gives). Cross above: exit short, enter long; cross below: exit long, enter short. Stop-loss 0.6 %,
no ROI, leverage 1. ``startup_candle_count`` reaches back to the data file's first candle so both EMAs start
from the same seed as albra's (which prepares indicators over the whole file).
"""

from pandas import DataFrame

from freqtrade.strategy import IStrategy


class EmaCross(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "15m"
    can_short = True
    minimal_roi = {"0": 100.0}
    stoploss = -0.006
    trailing_stop = False
    use_exit_signal = True
    exit_profit_only = False
    ignore_roi_if_entry_signal = False
    process_only_new_candles = True
    startup_candle_count = 192

    def populate_indicators(self, df: DataFrame, metadata: dict) -> DataFrame:
        fast = df["close"].ewm(span=20, adjust=False, min_periods=20).mean()
        slow = df["close"].ewm(span=50, adjust=False, min_periods=50).mean()
        diff = fast - slow
        prev = diff.shift(1)
        df["up"] = (prev <= 0) & (diff > 0)
        df["down"] = (prev >= 0) & (diff < 0)
        return df

    def populate_entry_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        df.loc[df["up"], "enter_long"] = 1
        df.loc[df["down"], "enter_short"] = 1
        return df

    def populate_exit_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        df.loc[df["down"], "exit_long"] = 1
        df.loc[df["up"], "exit_short"] = 1
        return df

    def leverage(self, pair, current_time, current_rate, proposed_leverage, max_leverage, entry_tag, side,
                 **kwargs) -> float:
        return 1.0
