"""albra's configuration: a TOML file, ``ALBRA_*`` environment overrides, secrets from env/.env.

Commands call :func:`load_settings` (raises :class:`ConfigError` listing every problem);
``albra config check`` calls :func:`check_config`. The schema is in ``schema.py``, file/env handling
in ``loader.py``, the masked view in ``view.py``.
"""

from __future__ import annotations

from albra.config.errors import ConfigError, ConfigProblem
from albra.config.loader import (
    DEFAULT_CONFIG,
    EXAMPLE_CONFIG,
    CheckResult,
    check_config,
    load_settings,
    project_root,
    resolve_config_path,
)
from albra.config.schema import (
    AccountMode,
    AccountSettings,
    AlertLevel,
    AlertSettings,
    CorrelationSettings,
    KellySettings,
    MddLevel,
    PathsSettings,
    RiskLimits,
    RiskOverrides,
    Settings,
    StrategyEntry,
    TelegramSettings,
    key_env_names,
    secret_env_names,
)

__all__ = [
    "AccountMode",
    "AccountSettings",
    "AlertLevel",
    "AlertSettings",
    "CheckResult",
    "ConfigError",
    "ConfigProblem",
    "CorrelationSettings",
    "DEFAULT_CONFIG",
    "EXAMPLE_CONFIG",
    "KellySettings",
    "MddLevel",
    "PathsSettings",
    "RiskLimits",
    "RiskOverrides",
    "Settings",
    "StrategyEntry",
    "TelegramSettings",
    "check_config",
    "key_env_names",
    "load_settings",
    "project_root",
    "resolve_config_path",
    "secret_env_names",
]
