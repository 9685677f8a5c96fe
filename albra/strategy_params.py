"""Strategy parameters from the command line: ``--param adx_min=30 --param TFPE.stop_loss_atr=2``.

Why validated here, before any candle is read: a typo must cost the operator an immediate exit 2 naming the key,
not a ten-minute backtest of the defaults. Validation is the strategy's own ``Params`` model (``extra="forbid"``),
so the command line, the config file and ``albra optimize`` accept exactly the same values.

``KEY=VALUE`` applies to every strategy given (each must know the key); ``NAME.KEY=VALUE`` to that strategy only.
A value is read as JSON when it parses (``30``, ``2.5``, ``true``, ``[1,2]``), else as a plain string; pydantic then
checks type and bounds.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from pydantic import ValidationError


class ParamError(ValueError):
    """A ``--param`` that is malformed, names an unknown key or strategy, or has an invalid value."""


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def validate_params(cls: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` checked against ``cls.Params``; returns the validated values of the given keys."""
    try:
        model = cls.Params.model_validate(params)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(params)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(cls.Params.model_fields)
            raise ParamError(f"--param {key}: {cls.name} has no parameter {key!r} (known: {known})") from None
        raise ParamError(f"--param {key}={params.get(key)!r}: {err['msg']} ({cls.name})") from None
    return {k: getattr(model, k) for k in params}


def parse_params(specs: Sequence[str], strategies: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Overrides per strategy name (every given strategy has an entry, maybe empty), validated."""
    by_name = {c.name.upper(): c for c in strategies}
    raw: dict[str, dict[str, Any]] = {c.name: {} for c in strategies}
    for spec in specs:
        if "=" not in spec:
            raise ParamError(f"--param {spec!r}: expected KEY=VALUE or STRATEGY.KEY=VALUE, e.g. adx_min=30")
        key, val = (x.strip() for x in spec.split("=", 1))
        if not key:
            raise ParamError(f"--param {spec!r}: empty key")
        targets = strategies
        if "." in key:
            name, key = key.split(".", 1)
            cls = by_name.get(name.strip().upper())
            if cls is None:
                raise ParamError(f"--param {spec!r}: strategy {name!r} is not one of the --strategy given "
                                 f"({', '.join(c.name for c in strategies)})")
            targets = [cls]
        for cls in targets:
            raw[cls.name][key] = _value(val)
    for cls in strategies:
        validate_params(cls, raw[cls.name])
    return {c.name: raw[c.name] for c in strategies}
