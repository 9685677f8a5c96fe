"""The effective configuration as plain data, with every secret reduced to "set"/"missing".

Why a separate view: ``config check`` (human and ``--json``) and later ``status``/the bot show the
configuration; none of them may ever print a character of a secret. This view never holds a secret
value — only the env var name, whether it is set, and where it came from — and the result is passed
through the redactor once more as a belt-and-braces step.
"""

from __future__ import annotations

from typing import Any

from albra.config.errors import display_path
from albra.config.loader import env_overrides
from albra.config.schema import AccountSettings, Settings, key_env_names, secret_env_names
from albra.redact import redact_obj
from albra.secrets import resolve_secret


def account_endpoint(acc: AccountSettings) -> str:
    """Where the account's requests go, said plainly: the Binance (or base_url) REST origin orders are sent to, or
    for a paper account where its candles come from."""
    from albra.exchange.client import LIVE, endpoint

    if acc.mode.value == "paper":
        if acc.paper_feed == "live":
            return f"market data {endpoint(LIVE, acc.base_url)} (orders: in-process simulator)"
        return "in-process simulator (recorded candles)"
    return endpoint(acc.mode.value, acc.base_url)


def _secret_status(settings: Settings, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    sec = resolve_secret(list(names), settings.env_file, env_file_values=settings._env_file_values)
    out: dict[str, Any] = {"env": names[0], "status": "set" if sec else "missing"}
    if len(names) > 1:
        out["aliases"] = list(names[1:])
    if sec is not None:
        out["env"] = sec.env_var
        out["from"] = "environment" if sec.source == "environment" else display_path(settings.env_file)  # type: ignore[arg-type]
    return out


def effective_config(settings: Settings) -> dict[str, Any]:
    """JSON-ready dict of the effective settings (TOML + env overrides, defaults filled in)."""
    env_file = settings.env_file
    out: dict[str, Any] = {
        "source": {
            "config_file": display_path(settings.config_path) if settings.config_path else None,
            "project_root": str(settings.base_dir),
            "env_file": display_path(env_file) if env_file else None,
            "env_file_exists": bool(env_file and env_file.is_file()),
            "env_overrides": sorted(env_overrides().values()),
        },
        "paths": {
            "state_dir": str(settings.paths.state_dir),
            "log_dir": str(settings.paths.log_dir),
            "db": str(settings.db_path),
        },
        "telegram": settings.telegram.model_dump(mode="json"),
        "risk": settings.risk.model_dump(mode="json"),
        "accounts": {},
    }
    out["telegram"]["token"] = _secret_status(settings, [settings.telegram.token_env])
    for name, acc in settings.accounts.items():
        a = acc.model_dump(mode="json", exclude={"strategies", "risk"})
        a["replay"] = {sym: str(p) for sym, p in acc.replay.items()}
        a["endpoint"] = account_endpoint(acc)
        if acc.needs_keys():
            a["api_key"] = _secret_status(settings, key_env_names(name, acc))
            a["api_secret"] = _secret_status(settings, secret_env_names(name, acc))
        a["risk_overrides"] = acc.risk.model_dump(mode="json", exclude_none=True) if acc.risk else {}
        a["strategies"] = []
        for i, st in enumerate(acc.strategies):
            d = st.model_dump(mode="json", exclude={"risk"})
            d["risk_overrides"] = st.risk.model_dump(mode="json", exclude_none=True) if st.risk else {}
            eff = settings.effective_risk(name, i)
            d["effective_risk"] = {
                "daily_loss_pct": eff.daily_loss_pct,
                "max_open_legs": eff.max_open_legs,
                "mdd_halt_pct": eff.mdd_halt_pct,
                "max_leg_notional_pct": eff.max_leg_notional_pct,
            }
            a["strategies"].append(d)
        out["accounts"][name] = a
    return redact_obj(out)
