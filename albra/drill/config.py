"""The drill's configuration: the operator's own accounts, strategies, position modes and risk, pointed at the local
Binance server, with the drill's own state directory and no Telegram.

Why rewrite the operator's TOML rather than build a config from scratch: the drill rehearses *this* deployment —
the same strategy parameters, sizes, leverages, position modes and risk overrides the runners trade with. What is
changed, and only that: every account that trades on an exchange (paper accounts only when there is no other)
becomes a ``live`` account whose ``base_url`` is the local server and whose keys are the drill's (throw-away, in ``DRILL_<ACCOUNT>_KEY/SECRET``); paths point into the drill directory; Telegram
is off (a drill must not page the operator or answer the real chat); a symbol the local server has no candles for is
left out and named in the drill report.

The children's environment (:func:`child_env`) drops every ``ALBRA_*`` variable of the operator's shell (an
``ALBRA_PATHS__STATE_DIR`` there would point the drill at the real store) and every systemd variable, and sets
``ALBRA_NO_SYSTEMD=1`` so no drill command ever runs ``systemctl`` on the operator's real ``albra@ACCOUNT`` units.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: account keys a live account may carry in the drill config (paper-only keys are dropped)
LIVE_KEYS = ("position_mode", "margin_mode", "risk", "strategies")


@dataclass
class DrillConfig:
    path: Path
    keys: dict[str, tuple[str, str]]          # account → (api key, secret) on the local server
    hedge: set[str]
    dropped: list[str] = field(default_factory=list)   # "account/strategy SYMBOL: no candles on the local server"
    raw: dict[str, Any] = field(default_factory=dict)

    def env_names(self, account: str) -> tuple[str, str]:
        stem = account.upper().replace("-", "_")
        return f"DRILL_{stem}_KEY", f"DRILL_{stem}_SECRET"


def build(operator_config: Path, drill_dir: Path, url: str, symbols: set[str]) -> DrillConfig:
    """Write ``drill_dir/config/albra.toml`` from the operator's config (see the module docstring)."""
    with open(operator_config, "rb") as fh:
        raw = tomllib.load(fh)
    out: dict[str, Any] = {k: v for k, v in raw.items() if k not in ("paths", "telegram", "accounts", "dashboard")}
    out["paths"] = {"state_dir": str(drill_dir / "state"), "log_dir": str(drill_dir / "logs")}
    out["telegram"] = {"enabled": False}
    accounts: dict[str, Any] = {}
    keys: dict[str, tuple[str, str]] = {}
    hedge: set[str] = set()
    dropped: list[str] = []
    dc = DrillConfig(drill_dir / "config" / "albra.toml", keys, hedge, dropped)
    all_accounts = raw.get("accounts") or {}
    # a paper account's exchange lives inside its runner: an exchange incident cannot reach it, so it is rehearsed only
    # when the config has nothing else
    exchange_traded = {n for n, a in all_accounts.items() if str(a.get("mode", "")) != "paper"}
    for name, acct in all_accounts.items():
        if exchange_traded and name not in exchange_traded:
            dropped.append(f"{name}: paper account (its exchange lives in its runner), not rehearsed")
            continue
        a: dict[str, Any] = {"mode": "live", "base_url": url}
        a["api_key_env"], a["api_secret_env"] = dc.env_names(name)
        for k in LIVE_KEYS:
            if k in acct:
                a[k] = acct[k]
        strategies = []
        for st in a.get("strategies", []):
            if not st.get("enabled", True):
                continue
            keep = [s for s in st.get("symbols", []) if s.upper() in symbols]
            for s in st.get("symbols", []):
                if s.upper() not in symbols:
                    dropped.append(f"{name}/{st.get('name')} {s}: the local server has no candles for it")
            if keep:
                strategies.append({**st, "symbols": keep})
        if not strategies:
            dropped.append(f"{name}: no strategy left to run on the local server")
            continue
        a["strategies"] = strategies
        accounts[name] = a
        keys[name] = (f"drill-{name}-{secrets.token_hex(8)}", secrets.token_hex(24))
        if str(acct.get("position_mode", "one_way")) == "hedge":
            hedge.add(name)
    out["accounts"] = accounts
    dc.raw = out
    dc.path.parent.mkdir(parents=True, exist_ok=True)
    dc.path.write_text("# written by `albra drill` from " + str(operator_config) + "\n" + dumps(out))
    return dc


def child_env(dc: DrillConfig) -> dict[str, str]:
    """The environment of every drill subprocess (see the module docstring)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ALBRA_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                                       "INVOCATION_ID", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")}
    env.update(ALBRA_NO_SYSTEMD="1", ALBRA_EXCHANGE_TEST_MODE="1", PYTHONUNBUFFERED="1")
    for acct, (k, s) in dc.keys.items():
        kn, sn = dc.env_names(acct)
        env[kn], env[sn] = k, s
    return env


# ---------------------------------------------------------------------------------------------- a small TOML writer
def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _value(k)


def dumps(doc: dict[str, Any], prefix: str = "") -> str:
    """TOML text for the shapes a config has: scalars, lists, inline tables, tables and arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for k, v in doc.items():
        name = f"{prefix}.{_key(k)}" if prefix else _key(k)
        if isinstance(v, dict) and (prefix == "" or k not in ("risk", "params")):
            tables.append((name, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and k == "strategies":
            arrays.append((name, v))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for name, t in tables:
        text += f"\n[{name}]\n" + dumps(t, name)
    for name, items in arrays:
        for it in items:
            text += f"\n[[{name}]]\n" + dumps(it, name)
    return text
