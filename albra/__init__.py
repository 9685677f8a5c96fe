"""albra: an operator toolkit and a thin, boring trading runner for Binance USDⓈ-M futures.

Importing this package must stay cheap: no ccxt, pandas, ta or telegram at module level
anywhere on the path of ``albra --help`` (a test pins it).
"""

__version__ = "0.1.0"
