"""Market data on disk: downloading Binance's public USDⓈ-M history (``download``), where it lives (``layout``),
checking it (``verify``) and finding it again by symbol and interval (``sources``)."""
