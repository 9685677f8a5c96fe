"""Talking to Binance USDⓈ-M: the gateway interface, the ccxt-backed gateway, the paper gateway, and the
resilience and error policy around them (docs/adr/0005-error-policy.md)."""
