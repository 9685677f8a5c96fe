"""Trading strategies: one module per strategy, the contract in :mod:`strategies.base`, lookup by
name in :mod:`strategies.registry`.

This file stays import-light on purpose (the CLI may import the package path for ``--help``);
strategy modules pull numpy/pandas only when the registry imports them.
"""
