"""The engine: candle-close scheduling, execution of strategy decisions, the trading loop and backtests.

Data flows one way (DESIGN.md): market data → strategy → risk → execution (write-ahead intent → exchange) →
ledger → journal/notify. ``runner`` (``albra run``) and ``backtest`` (``albra backtest``) drive the SAME
:class:`~albra.engine.executor.Executor`; only the source of candles and the clock differ.
"""
