"""The monthly review: figures from the journal and the ledger (:mod:`albra.review.month`), rendered as Markdown
and as a self-contained HTML page with SVG charts (:mod:`albra.review.render`, :mod:`albra.review.charts`)."""
