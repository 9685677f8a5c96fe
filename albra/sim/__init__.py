"""The simulated USDⓈ-M futures exchange (core, replay feed) and the local Binance server.

See ``albra/sim/README.md``. Import submodules directly: :mod:`albra.sim.exchange` (core),
:mod:`albra.sim.feed` (clock, replay, klines), :mod:`albra.sim.server` (aiohttp app),
:mod:`albra.sim.testing` (helpers for tests in any folder).
"""
