"""Parameter search (``albra optimize``): walk-forward folds over a strategy's declared search space, scored by
the same backtest as ``albra backtest``, with Optuna sampling and a shared study that worker processes — local
or on other machines — evaluate (docs/adr/0019-optimize-scale-out.md)."""
