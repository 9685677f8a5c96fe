"""Find, read and validate the configuration; report every problem with its file/env var and key.

Resolution of the file: ``--config PATH`` → env ``ALBRA_CONFIG`` → ``config/albra.toml`` (relative
to the current directory).

Project root (the base for relative paths and the place of ``.env``): the parent of the config
file's directory when that directory is named ``config`` (the shipped layout:
``<root>/config/albra.toml`` → ``<root>``), otherwise the config file's own directory. So
``state_dir = "state"`` means ``<root>/state`` whatever the current directory of the process is
(systemd, cron, a shell elsewhere), and secrets come from ``<root>/.env``.

Environment overrides: ``ALBRA_<SECTION>__<KEY>[__<KEY>…]`` (case-insensitive), e.g.
``ALBRA_ACCOUNTS__DEMO__PAPER_BALANCE=20000`` or ``ALBRA_PATHS__STATE_DIR=/var/lib/albra``; lists and
tables take JSON (``ALBRA_TELEGRAM__CHAT_IDS='[123]'``). A list entry cannot be overridden by index;
override the whole list. ``ALBRA_X__…`` with an unknown section is an error; single-word ``ALBRA_*``
variables that are not a section (such as ``ALBRA_CONFIG``) are left to whoever reads them.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from albra.config.errors import ConfigError, ConfigProblem, display_path
from albra.config.schema import AccountMode, Settings, key_env_names, secret_env_names
from albra.redact import BINANCE_KEY_PATTERN, TELEGRAM_TOKEN_PATTERN
from albra.secrets import EnvFileError, read_env_file, resolve_secret

DEFAULT_CONFIG = Path("config") / "albra.toml"
EXAMPLE_CONFIG = Path("config") / "albra.example.toml"
ENV_PREFIX = "ALBRA_"
CONFIG_ENV = "ALBRA_CONFIG"
CHAT_ID_ENV = "TELEGRAM_CHAT_ID"

_SECRET_KEY_RE = re.compile(r"(^|_)(key|secret|token|password|passphrase)$", re.IGNORECASE)
_SECRET_VALUE_RE = re.compile(f"{BINANCE_KEY_PATTERN}|{TELEGRAM_TOKEN_PATTERN}")
_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


@dataclass
class CheckResult:
    """What :func:`check_config` found: the settings (None if they could not be built) and problems."""

    settings: Settings | None
    problems: list[ConfigProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.settings is not None and not self.errors


def packaged_example() -> Path | None:
    """The example configuration shipped with albra: ``config/albra.example.toml`` of the checkout, or the copy the
    wheel installs as ``albra/example_config/albra.example.toml``; None if neither is there."""
    here = Path(__file__).resolve().parent.parent  # the albra package
    for p in (here.parent / "config" / "albra.example.toml", here / "example_config" / "albra.example.toml"):
        if p.is_file():
            return p
    return None


def resolve_config_path(config_path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to read (explicit → ``ALBRA_CONFIG`` → ``config/albra.toml`` → the example shipped with
    albra, see :func:`_resolve`); a missing explicit file is a ConfigError that says how it was chosen."""
    return _resolve(config_path, environ)[0]


def _resolve(config_path: str | os.PathLike[str] | None,
             environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """(path, whether it is the shipped example taken because no config was given and the default is missing).

    Why fall back at all: ``albra run --account demo`` must work from an installed wheel with no project around it.
    Why it is safe: settings from that fallback refuse every account that needs keys (``require_secrets``), so a
    missing config never starts a live runner on example strategies."""
    env = os.environ if environ is None else environ
    if config_path:
        path, how = Path(config_path), "--config"
    elif env.get(CONFIG_ENV):
        path, how = Path(env[CONFIG_ENV]), f"env {CONFIG_ENV}"
    else:
        path, how = DEFAULT_CONFIG, "default"
    if path.is_file():
        return path, False
    example = packaged_example() if how == "default" else None
    if example is not None:
        return example, True
    if how == "default":
        msg = (
            f"no config file at the default {DEFAULT_CONFIG} (none given with --config or {CONFIG_ENV}); "
            f"try --config {EXAMPLE_CONFIG}, or copy it to {DEFAULT_CONFIG} and edit it"
        )
    elif path.exists():
        msg = f"config file named by {how} is not a regular file"
    else:
        msg = f"config file named by {how} does not exist"
    raise ConfigError([ConfigProblem(str(path), "", msg)])


def project_root(config_file: Path) -> Path:
    """The directory relative paths and ``.env`` are taken from (see module docstring)."""
    parent = config_file.resolve().parent
    return parent.parent if parent.name == "config" else parent


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the TOML file; malformed TOML is a ConfigError with the line and column."""
    label = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigProblem(label, "", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(label, "", f"not UTF-8 text (byte {exc.start})")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS_RE.search(msg)
        if m:
            line, col = m.group(1), m.group(2)
            reason = msg[: m.start()]
            raise ConfigError(
                [ConfigProblem(f"{label}:{line}:{col}", "", f"malformed TOML at line {line}, column {col}: {reason}")]
            ) from None
        raise ConfigError([ConfigProblem(label, "", f"malformed TOML: {msg}")]) from None


def _fmt_path(parts: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _strip_secret_literals(data: Any, label: str, path: tuple[Any, ...] = ()) -> list[ConfigProblem]:
    """Remove secret-looking keys/values from the parsed TOML (in place) and report each one.

    A key named like ``api_key``/``secret``/``token`` or a value shaped like a Binance key or a bot
    token is refused: secrets belong in the environment or ``.env`` (the value is never echoed)."""
    problems: list[ConfigProblem] = []
    if isinstance(data, dict):
        for key in list(data):
            value = data[key]
            here = path + (key,)
            if isinstance(key, str) and _SECRET_KEY_RE.search(key) and not isinstance(value, (dict, list)):
                hint = {
                    "api_key": "name the variable with api_key_env",
                    "api_secret": "name the variable with api_secret_env",
                    "secret_key": "name the variable with api_secret_env",
                    "token": "name the variable with telegram.token_env",
                    "bot_token": "name the variable with telegram.token_env",
                }.get(key.lower(), "name the environment variable that holds it instead")
                problems.append(
                    ConfigProblem(label, _fmt_path(here),
                                  f"secrets are not allowed in the config file: put the value in the environment "
                                  f"or .env and {hint}")
                )
                del data[key]
                continue
            problems.extend(_strip_secret_literals(value, label, here))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            problems.extend(_strip_secret_literals(value, label, path + (i,)))
    elif isinstance(data, str) and _SECRET_VALUE_RE.search(data):
        problems.append(
            ConfigProblem(label, _fmt_path(path),
                          "this value looks like an API key or bot token; secrets are not allowed in the config "
                          "file (use the environment or .env)")
        )
    return problems


def _replace_secret_values(data: Any) -> Any:
    """Copy of ``data`` with secret-shaped strings masked, so validation errors cannot echo them."""
    if isinstance(data, dict):
        return {k: _replace_secret_values(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace_secret_values(v) for v in data]
    if isinstance(data, str) and _SECRET_VALUE_RE.search(data):
        return _SECRET_VALUE_RE.sub("***", data)
    return data


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[tuple[str, ...], str]:
    """Key path (lower-case) → env var name for every ``ALBRA_*`` variable that overrides config."""
    env = os.environ if environ is None else environ
    sections = set(Settings.model_fields)
    out: dict[tuple[str, ...], str] = {}
    for name in env:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__"))
        if len(parts) == 1 and parts[0] not in sections:
            continue  # ALBRA_CONFIG and friends: not a config key
        out[parts] = name
    return out


def _source_for(loc: tuple[Any, ...], overrides: dict[tuple[str, ...], str], label: str) -> str:
    key = tuple(str(p).lower() for p in loc)
    best: tuple[str, ...] | None = None
    for path in overrides:
        if key[: len(path)] == path and (best is None or len(path) > len(best)):
            best = path
    return f"env {overrides[best]}" if best is not None else label


def _error_message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return f"unknown key {str(loc[-1])!r}" if loc else "unknown key"
    msg = str(err.get("msg", ""))
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    inp = err.get("input")
    if isinstance(inp, (str, int, float, bool)) and not isinstance(inp, type(None)):
        shown = json.dumps(inp) if isinstance(inp, str) else repr(inp)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg += f", got {shown}"
    return msg


def _validation_problems(exc: ValidationError, label: str, overrides: dict[tuple[str, ...], str]) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        problems.append(ConfigProblem(_source_for(loc, overrides, label), _fmt_path(loc), _error_message(err)))
    return problems


def _registry_module() -> Any | None:
    try:
        if importlib.util.find_spec("albra.strategies.registry") is None:
            return None
    except ModuleNotFoundError:
        return None
    return importlib.import_module("albra.strategies.registry")


def _strategy_problems(settings: Settings, label: str) -> tuple[list[ConfigProblem], list[str]]:
    """Duplicates per account, names known to the strategy registry, params valid for the strategy."""
    problems: list[ConfigProblem] = []
    notes: list[str] = []
    if not any(acc.strategies for acc in settings.accounts.values()):
        return problems, notes  # nothing to look up: do not import every strategy module for nothing
    try:
        registry = _registry_module()
        if registry is not None:
            registry.names()  # discovery imports every strategy module: a broken one fails here
    except Exception as exc:  # the registry is code: an import failure must be visible, not skipped
        problems.append(ConfigProblem("albra.strategies.registry", "", f"cannot load the strategy registry: {exc}"))
        registry = None
    else:
        if registry is None:
            notes.append("strategy names and params not checked: strategies.registry is not available")
    for acc_name, acc in settings.accounts.items():
        seen: dict[tuple[str, str], int] = {}
        leverage: dict[str, tuple[int, int]] = {}  # symbol → (leverage, strategies[i] that set it)
        for i, st in enumerate(acc.strategies):
            base = f"accounts.{acc_name}.strategies[{i}]"
            for sym in st.symbols:
                if not st.enabled:
                    continue
                if sym in leverage and leverage[sym][0] != st.leverage:
                    lv, j = leverage[sym]
                    problems.append(ConfigProblem(label, f"{base}.leverage",
                                                  f"{st.name} wants {st.leverage}x on {sym} but strategies[{j}] of "
                                                  f"this account sets {lv}x: Binance has one leverage per symbol per "
                                                  "account — give both the same leverage"))
                leverage.setdefault(sym, (st.leverage, i))
            for sym in st.symbols:
                k = (st.name.lower(), sym)
                if k in seen:
                    problems.append(ConfigProblem(label, f"{base}.symbols",
                                                  f"{st.name} already runs {sym} in strategies[{seen[k]}] of this "
                                                  "account (strategy+symbol must be unique per account)"))
                else:
                    seen[k] = i
            if registry is None:
                continue
            try:
                strat = registry.get(st.name)
            except (LookupError, ValueError) as exc:
                reason = exc.args[0] if exc.args else str(exc)
                problems.append(ConfigProblem(label, f"{base}.name", str(reason)))
                continue
            params_model = getattr(strat, "Params", None)
            if isinstance(params_model, type) and issubclass(params_model, BaseModel):
                try:
                    params_model.model_validate(st.params)
                except ValidationError as exc:
                    for err in exc.errors():
                        loc = tuple(err.get("loc", ()))
                        problems.append(ConfigProblem(label, f"{base}.params" + ("." + _fmt_path(loc) if loc else ""),
                                                      _error_message(err)))
    return problems, notes


def _replay_problems(settings: Settings, label: str) -> list[ConfigProblem]:
    """Resolve each paper account's replay files (given, or bundled) and check they exist.

    Afterwards ``acc.replay`` maps every traded symbol to an absolute path."""
    from albra.candles import bundled

    problems = []
    for acc_name, acc in settings.accounts.items():
        resolved = {sym: (p if p.is_absolute() else settings.base_dir / p) for sym, p in acc.replay.items()}
        for sym, p in resolved.items():
            if not p.is_file():
                problems.append(ConfigProblem(label, f"accounts.{acc_name}.replay.{sym}", f"replay file {p} does not exist"))
        if acc.mode is AccountMode.PAPER and acc.paper_feed == "live":
            from albra.sim.markets import DEFAULT_MARKETS, unknown_symbol_message

            for sym in acc.symbols():
                if sym not in DEFAULT_MARKETS:
                    problems.append(ConfigProblem(label, f"accounts.{acc_name}.strategies",
                                                  f"paper account cannot trade it: {unknown_symbol_message(sym)}"))
        if acc.mode is AccountMode.PAPER and acc.paper_feed == "replay":
            from albra.sim.markets import DEFAULT_MARKETS, unknown_symbol_message

            for sym in acc.symbols():
                if sym not in DEFAULT_MARKETS:  # a paper account trades on the simulated exchange's listed markets
                    problems.append(ConfigProblem(label, f"accounts.{acc_name}.strategies",
                                                  f"paper account cannot trade it: {unknown_symbol_message(sym)}"))
                    continue
                if sym in resolved:
                    continue
                from albra.marketdata.layout import DataDir

                data = DataDir(settings.paths.data_dir)
                have = data.candle_intervals(sym)
                default = data.path(sym, "klines", have[0]) if have else bundled(f"{sym}-15m.csv.gz")
                if default.is_file():
                    resolved[sym] = default
                else:
                    problems.append(ConfigProblem(label, f"accounts.{acc_name}.replay",
                                                  f"no replay data for {sym} in {settings.paths.data_dir} nor bundled: "
                                                  f"`albra data download {sym} --start YYYY-MM-DD`, or set "
                                                  f"accounts.{acc_name}.replay.{sym} to a candle file"))
        acc.replay = resolved
    return problems


def _chat_id_env(settings: Settings, env: Mapping[str, str]) -> list[ConfigProblem]:
    """``TELEGRAM_CHAT_ID`` (original name; env, then .env; comma-separated) adds allowed chat ids."""
    raw = env.get(CHAT_ID_ENV) or settings._env_file_values.get(CHAT_ID_ENV)
    if not raw:
        return []
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not re.fullmatch(r"-?\d+", part):
            return [ConfigProblem(f"env {CHAT_ID_ENV}", "telegram.chat_ids",
                                  f"{part!r} is not a Telegram chat id (an integer; several separated by commas)")]
        ids.append(int(part))
    for i in ids:
        if i not in settings.telegram.chat_ids:
            settings.telegram.chat_ids.append(i)
    return []


def _register_known_secrets(settings: Settings) -> None:
    """Resolve every configured secret that is set so the redactor knows it from the start."""
    names: list[str] = [settings.telegram.token_env]
    for acc_name, acc in settings.accounts.items():
        names.extend(key_env_names(acc_name, acc))
        names.extend(secret_env_names(acc_name, acc))
    for name in names:
        resolve_secret([name], settings.env_file, env_file_values=settings._env_file_values)


def _build(config_path: str | os.PathLike[str] | None) -> CheckResult:
    """Everything except the secret requirements (which depend on what the caller is about to do)."""
    env = os.environ
    path, example = _resolve(config_path, env)
    label = display_path(path)
    data = read_toml(path)
    problems = _strip_secret_literals(data, label)
    data = _replace_secret_values(copy.deepcopy(data))

    overrides = env_overrides(env)
    sections = set(Settings.model_fields)
    for parts, name in sorted(overrides.items(), key=lambda kv: kv[1]):
        if parts[0] not in sections:
            problems.append(ConfigProblem(f"env {name}", _fmt_path(parts),
                                          f"unknown setting section {parts[0]!r}; known: {', '.join(sorted(sections))}"))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        return CheckResult(None, problems + _validation_problems(exc, label, overrides))
    except SettingsError as exc:
        names = ", ".join(sorted(overrides.values())) or "ALBRA_*"
        return CheckResult(None, problems + [ConfigProblem(f"env {names}", "", f"cannot read environment override: {exc}")])

    # the fallback example's relative paths (state/, logs/, .env) belong to the directory albra runs in, not to
    # site-packages or a checkout elsewhere
    root = Path.cwd().resolve() if example else project_root(path)
    settings._config_path = path.resolve()
    settings._example = example
    settings._base_dir = root
    settings._env_file = root / ".env"
    try:
        settings._env_file_values = read_env_file(settings._env_file)
    except EnvFileError as exc:
        problems.append(ConfigProblem(display_path(settings._env_file), "", str(exc).split(": ", 1)[-1]))
    for attr in ("state_dir", "log_dir", "data_dir"):
        p = getattr(settings.paths, attr)
        if not p.is_absolute():
            setattr(settings.paths, attr, root / p)

    strat_problems, notes = _strategy_problems(settings, label)
    problems += strat_problems
    problems += _replay_problems(settings, label)
    problems += _chat_id_env(settings, env)
    _register_known_secrets(settings)
    return CheckResult(settings, problems, notes)


def check_config(config_path: str | os.PathLike[str] | None = None, account: str | None = None) -> CheckResult:
    """Validate everything, for ``albra config check``; never raises ConfigError.

    Secrets: with ``account`` None, every live/demo account's key and secret and (if Telegram is
    enabled) the bot token must be set — errors otherwise. With ``account`` given, only that
    account's secrets are required; other missing secrets are warnings. This lets a fresh machine
    check the paper ``demo`` account of the example config without any key."""
    from albra.config.secrets_check import account_secret_problems, short_secret_warnings

    try:
        result = _build(config_path)
    except ConfigError as exc:
        return CheckResult(None, list(exc.problems))
    settings = result.settings
    if settings is None:
        return result
    label = display_path(settings.config_path) if settings.config_path else "settings"
    if settings._example:
        result.problems.append(ConfigProblem(label, "", f"no config file given and none at {DEFAULT_CONFIG}: this is "
                                             "the example shipped with albra (its live/demo accounts are refused "
                                             f"when run); copy it to {DEFAULT_CONFIG} and edit it", "warning"))
    if account is not None and account not in settings.accounts:
        known = ", ".join(sorted(settings.accounts)) or "none"
        result.problems.append(ConfigProblem(label, f"accounts.{account}", f"no such account (configured: {known})"))
    for name in settings.accounts:
        severity = "error" if account is None or name == account else "warning"
        result.problems.extend(account_secret_problems(settings, name, severity))
        result.problems.extend(short_secret_warnings(settings, name))
    if settings.telegram.enabled and settings.telegram_token(required=False) is None:
        severity = "error" if account is None else "warning"
        result.problems.append(
            ConfigProblem(f"env {settings.telegram.token_env}", "telegram.token_env",
                          f"Telegram is enabled but {settings.telegram.token_env} is not set (environment or "
                          f"{display_path(settings.env_file) if settings.env_file else '.env'})", severity)
        )
    return result


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """The validated settings for a command or runner; ConfigError (all errors) if anything is wrong.

    Secrets are not required here (``albra status --offline`` needs none); call
    ``settings.require_secrets(account)`` / ``settings.telegram_token()`` where they are needed."""
    result = _build(config_path)
    if result.errors or result.settings is None:
        raise ConfigError(result.problems)
    return result.settings
