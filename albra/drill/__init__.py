"""``albra drill``: a complete fire drill offline — the operator's config against the local Binance server, runners
trading, a staged incident, the runbook walked and timed (:mod:`albra.drill.run`), reported as a Rich table and
Markdown (:mod:`albra.drill.report`)."""
