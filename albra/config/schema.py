"""The shape of albra's configuration: what an operator may write in ``config/albra.toml``.

Every model forbids unknown keys (``extra="forbid"``): a typo such as ``leverge = 10`` must fail
loudly instead of silently trading with a default. Secrets are not fields here — only the *names*
of the environment variables that hold them (``api_key_env``, ``token_env``); values are resolved by
``albra.secrets`` from the environment or ``.env``.

Cross-field checks that need the whole file (duplicate strategy+symbol, the strategy registry,
replay files on disk, secrets) live in ``albra.config.loader`` so that all problems are reported at
once, each with its own key path.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from albra.model import MarginMode, PositionMode
from albra.secrets import AccountSecrets, Secret
from albra.timefmt import TIMEFRAME_MS, parse_time

ACCOUNT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,15}$")
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")

# Original deployment's variable names (docs drifted: BINANCE_API_SECRET is accepted for master).
_KNOWN_KEY_ENVS: dict[str, tuple[str, ...]] = {"master": ("BINANCE_API_KEY",), "sub1": ("SUB1_API_KEY",)}
_KNOWN_SECRET_ENVS: dict[str, tuple[str, ...]] = {
    "master": ("BINANCE_SECRET_KEY", "BINANCE_API_SECRET"),
    "sub1": ("SUB1_API_SECRET",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AccountMode(StrEnum):
    """Where an account's orders go: Binance live, Binance demo trading (the rehearsal exchange: real market, play
    money, its own keys from demo.binance.com), or the in-process simulator."""

    LIVE = "live"
    DEMO = "demo"
    PAPER = "paper"


#: what an account that still says ``mode = "testnet"`` is told (the mode is gone, not silently mapped)
TESTNET_GONE = ('"testnet" is no longer a mode: Binance retired the USDⓈ-M futures testnet for API trading and '
                'ccxt refuses every signed futures call in sandbox mode. Use mode = "demo" (Binance demo trading: '
                'create keys at https://demo.binance.com/en/my/settings/api-management)')


class AlertLevel(StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class PathsSettings(_Strict):
    """Where runtime files go. Relative paths are resolved against the project root (see loader)."""

    state_dir: Path = Path("state")
    log_dir: Path = Path("logs")
    #: downloaded market data (``albra data download``): paper replays find candles and funding here by symbol
    data_dir: Path = Path("state/data")


class RunnerSettings(_Strict):
    """How runners report that they live, and how old a signal may be when a runner acts on it.

    A runner writes its heartbeat every ``heartbeat_s``; a runner whose heartbeat is older than ``down_after_s``
    (or whose process is gone) is *down* — the one definition the CLI, dashboard and bot show, and on which the bot
    sends its CRITICAL alert. After downtime an entry is sent only for a candle that closed at most
    ``max_signal_age_bars`` bars ago (1: the newest closed candle); older entry signals are journaled as skipped."""

    heartbeat_s: float = Field(2.0, ge=0.2, le=60)
    down_after_s: float = Field(30.0, ge=1, le=600)
    max_signal_age_bars: int = Field(1, ge=1, le=100)

    @model_validator(mode="after")
    def _beats(self) -> "RunnerSettings":
        if self.down_after_s < 3 * self.heartbeat_s:
            raise ValueError(f"down_after_s ({self.down_after_s:g}) must be at least 3 × heartbeat_s "
                             f"({self.heartbeat_s:g}): one late heartbeat is not a dead runner")
        return self


class AlertSettings(_Strict):
    """Which alert levels go to Telegram at once, which are batched into a digest, and how often.

    Levels in neither list are only logged (the original system's LOW level)."""

    immediate: list[AlertLevel] = Field(default_factory=lambda: [AlertLevel.CRITICAL, AlertLevel.HIGH])
    digest: list[AlertLevel] = Field(default_factory=lambda: [AlertLevel.MEDIUM])
    digest_interval_s: int = Field(3600, ge=60, le=86_400)

    @model_validator(mode="after")
    def _disjoint(self) -> "AlertSettings":
        both = sorted(set(self.immediate) & set(self.digest))
        if both:
            raise ValueError(f"level(s) {', '.join(both)} listed in both immediate and digest")
        if AlertLevel.CRITICAL not in self.immediate:
            raise ValueError("CRITICAL must be in immediate: critical alerts are never delayed")
        return self


class TelegramSettings(_Strict):
    """The Telegram bot and alerts. The token itself comes from the env var named by ``token_env``.

    The bot answers only ``admin_user_ids`` (every command) and ``readonly_user_ids`` (queries, not
    pause/resume/emergency), and only in ``chat_ids``; with none configured it refuses to start."""

    enabled: bool = True
    token_env: str = "TELEGRAM_BOT_TOKEN"
    api_base_url: str | None = None
    chat_ids: list[int] = Field(default_factory=list)
    admin_user_ids: list[int] = Field(default_factory=list)
    readonly_user_ids: list[int] = Field(default_factory=list)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        return _check_env_name(v)

    @field_validator("api_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _check_url(v)

    @model_validator(mode="after")
    def _roles(self) -> "TelegramSettings":
        both = sorted(set(self.admin_user_ids) & set(self.readonly_user_ids))
        if both:
            raise ValueError(f"user id(s) {both} are both admin and readonly; pick one role")
        return self


class MddLevel(_Strict):
    """At ``drawdown_pct`` or deeper, new entries are sized × ``size_multiplier``."""

    drawdown_pct: float = Field(gt=0, lt=100)
    size_multiplier: float = Field(gt=0, le=1)


class CorrelationSettings(_Strict):
    """Correlated exposure: at most ``max_same_direction_legs`` open legs in one direction across the
    symbols of one group (per account). A symbol in no group is a group of its own."""

    max_same_direction_legs: int = Field(2, ge=1, le=50)
    groups: dict[str, list[str]] = Field(default_factory=lambda: {"majors": ["BTCUSDT", "ETHUSDT"]})

    @field_validator("groups")
    @classmethod
    def _symbols(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for group, symbols in v.items():
            for s in symbols:
                _check_symbol(s)
                if s in seen:
                    raise ValueError(f"symbol {s} is in groups {seen[s]!r} and {group!r}; one group per symbol")
                seen[s] = group
        return v


class KellySettings(_Strict):
    """Fractional Kelly sizing from a strategy's own closed trades, clamped to [min_pct, max_pct] of
    equity; below ``min_trades`` the configured ``size_pct`` is used unchanged."""

    enabled: bool = True
    min_trades: int = Field(20, ge=1)
    fraction: float = Field(0.5, gt=0, le=1)
    min_pct: float = Field(5.0, gt=0, le=100)
    max_pct: float = Field(20.0, gt=0, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> "KellySettings":
        if self.min_pct > self.max_pct:
            raise ValueError(f"min_pct ({self.min_pct}) is above max_pct ({self.max_pct})")
        return self


def _default_mdd_levels() -> list[MddLevel]:
    return [
        MddLevel(drawdown_pct=30, size_multiplier=0.7),
        MddLevel(drawdown_pct=35, size_multiplier=0.5),
        MddLevel(drawdown_pct=40, size_multiplier=0.3),
        MddLevel(drawdown_pct=50, size_multiplier=0.1),
    ]


class RiskLimits(_Strict):
    """Risk limits. ``[risk]`` sets the defaults; accounts and strategies override single fields."""

    daily_loss_pct: float = Field(3.0, gt=0, le=100)
    max_open_legs: int = Field(3, ge=1, le=100)
    #: legs one strategy may hold on one symbol at a time (None: no per-symbol limit, only ``max_open_legs``) —
    #: a strategy trading several symbols can hold one on each with 1 here
    max_legs_per_symbol: int | None = Field(None, ge=1, le=100)
    mdd_levels: list[MddLevel] = Field(default_factory=_default_mdd_levels)
    mdd_halt_pct: float = Field(60.0, gt=0, le=100)
    mdd_flatten_on_halt: bool = False
    max_leg_notional_pct: float = Field(40.0, gt=0, le=1000)
    correlation: CorrelationSettings = Field(default_factory=CorrelationSettings)
    kelly: KellySettings = Field(default_factory=KellySettings)

    @model_validator(mode="after")
    def _mdd_order(self) -> "RiskLimits":
        prev: MddLevel | None = None
        for i, lvl in enumerate(self.mdd_levels):
            if prev is not None and lvl.drawdown_pct <= prev.drawdown_pct:
                raise ValueError(f"mdd_levels[{i}].drawdown_pct must be above the previous level's")
            if prev is not None and lvl.size_multiplier > prev.size_multiplier:
                raise ValueError(f"mdd_levels[{i}].size_multiplier must not exceed the previous level's")
            if lvl.drawdown_pct >= self.mdd_halt_pct:
                raise ValueError(
                    f"mdd_levels[{i}].drawdown_pct ({lvl.drawdown_pct}) must be below mdd_halt_pct ({self.mdd_halt_pct})"
                )
            prev = lvl
        return self


class RiskOverrides(_Strict):
    """The same fields as ``RiskLimits``, all optional: only what is written here overrides."""

    daily_loss_pct: float | None = Field(None, gt=0, le=100)
    max_open_legs: int | None = Field(None, ge=1, le=100)
    max_legs_per_symbol: int | None = Field(None, ge=1, le=100)
    mdd_levels: list[MddLevel] | None = None
    mdd_halt_pct: float | None = Field(None, gt=0, le=100)
    mdd_flatten_on_halt: bool | None = None
    max_leg_notional_pct: float | None = Field(None, gt=0, le=1000)
    correlation: CorrelationSettings | None = None
    kelly: KellySettings | None = None


class StrategyEntry(_Strict):
    """One strategy an account runs. ``size_pct`` is the position notional as % of equity;
    ``leverage`` only decides the margin that notional ties up."""

    name: str = Field(min_length=1)
    symbols: list[str] = Field(min_length=1)
    timeframe: str
    leverage: int = Field(ge=1, le=125)
    size_pct: float = Field(gt=0, le=100)
    params: dict[str, Any] = Field(default_factory=dict)
    risk: RiskOverrides | None = None
    enabled: bool = True

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        for s in v:
            _check_symbol(s)
        dup = sorted({s for s in v if v.count(s) > 1})
        if dup:
            raise ValueError(f"symbol(s) {', '.join(dup)} listed twice")
        return v

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        if v not in TIMEFRAME_MS:
            raise ValueError(f"unknown timeframe {v!r}; known: {', '.join(TIMEFRAME_MS)}")
        return v


class AccountSettings(_Strict):
    """One Binance account (or a paper one) and the strategies it runs.

    ``api_key_env``/``api_secret_env`` name the env vars holding its key; left out, they default to
    the original deployment's names (master: BINANCE_API_KEY/BINANCE_SECRET_KEY, sub1:
    SUB1_API_KEY/SUB1_API_SECRET, other: <NAME>_API_KEY/<NAME>_API_SECRET)."""

    mode: AccountMode
    base_url: str | None = None
    api_key_env: str | None = None
    api_secret_env: str | None = None
    position_mode: PositionMode = PositionMode.ONE_WAY
    margin_mode: MarginMode = MarginMode.ISOLATED
    paper_balance: Decimal = Field(Decimal("10000"), gt=0, le=Decimal("1e12"))
    # "replay": recorded candles, as fast as the engine consumes them (or at replay_speed); "live": Binance's public
    # market (closed klines, streamed), fills from the in-process exchange at the live price
    paper_feed: Literal["replay", "live"] = "replay"
    replay: dict[str, Path] = Field(default_factory=dict)
    replay_start: str | None = None
    replay_end: str | None = None
    replay_speed: float = Field(0.0, ge=0)
    # a flat funding rate per 8 h for funding times the replay's funding history does not cover, given on purpose;
    # unset, a replay window without a known rate for every funding time is refused (funding is never invented)
    funding_rate: Decimal | None = Field(None, ge=Decimal("-0.03"), le=Decimal("0.03"))
    risk: RiskOverrides | None = None
    strategies: list[StrategyEntry] = Field(default_factory=list)

    @field_validator("mode", mode="before")
    @classmethod
    def _no_testnet(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() == "testnet":
            raise ValueError(TESTNET_GONE)
        return v

    @field_validator("api_key_env", "api_secret_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        return None if v is None else _check_env_name(v)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _check_url(v)

    @field_validator("replay")
    @classmethod
    def _replay_symbols(cls, v: dict[str, Path]) -> dict[str, Path]:
        # Upper-cased: environment overrides arrive lower-cased (ALBRA_ACCOUNTS__DEMO__REPLAY__BTCUSDT).
        out = {s.upper(): p for s, p in v.items()}
        for s in out:
            _check_symbol(s)
        return out

    @field_validator("replay_start", "replay_end")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        if v is not None:
            parse_time(v)
        return v

    @model_validator(mode="after")
    def _replay_window(self) -> "AccountSettings":
        if self.replay_start and self.replay_end and parse_time(self.replay_start) >= parse_time(self.replay_end):
            raise ValueError(f"replay_start ({self.replay_start}) must be before replay_end ({self.replay_end})")
        return self

    def needs_keys(self) -> bool:
        """Live and demo accounts sign requests; paper accounts need no key."""
        return self.mode in (AccountMode.LIVE, AccountMode.DEMO)

    def symbols(self) -> list[str]:
        """Every symbol an enabled strategy of this account trades, in first-seen order."""
        out: list[str] = []
        for st in self.strategies:
            if st.enabled:
                out.extend(s for s in st.symbols if s not in out)
        return out


def key_env_names(account: str, acc: AccountSettings) -> tuple[str, ...]:
    """Env vars (preferred first, then accepted aliases) that may hold ``account``'s API key."""
    default = _KNOWN_KEY_ENVS.get(account, (f"{_env_stem(account)}_API_KEY",))
    if acc.api_key_env and acc.api_key_env != default[0]:
        return (acc.api_key_env,)
    return default


def secret_env_names(account: str, acc: AccountSettings) -> tuple[str, ...]:
    """Env vars (preferred first, then accepted aliases) that may hold ``account``'s API secret."""
    default = _KNOWN_SECRET_ENVS.get(account, (f"{_env_stem(account)}_API_SECRET",))
    if acc.api_secret_env and acc.api_secret_env != default[0]:
        return (acc.api_secret_env,)
    return default


def _env_stem(account: str) -> str:
    return account.upper().replace("-", "_")


def _check_env_name(v: str) -> str:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
        raise ValueError(f"{v!r} is not an environment variable name (letters, digits, '_')")
    return v


def _check_url(v: str | None) -> str | None:
    if v is not None and not re.match(r"^https?://[^\s/]+", v):
        raise ValueError(f"{v!r} is not an http(s) URL")
    return v


def _check_symbol(s: str) -> str:
    if not SYMBOL_RE.match(s):
        raise ValueError(f"symbol {s!r} must be an upper-case Binance futures symbol such as BTCUSDT")
    return s


class Settings(BaseSettings):
    """The whole effective configuration: TOML file, overridden by ``ALBRA_*`` environment variables.

    Build it with :func:`albra.config.load_settings`, which also resolves relative paths, checks the
    strategy registry and replay files, and knows where secrets come from.
    """

    model_config = SettingsConfigDict(
        env_prefix="ALBRA_",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
    )

    paths: PathsSettings = Field(default_factory=PathsSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    accounts: dict[str, AccountSettings] = Field(default_factory=dict)

    _config_path: Path | None = PrivateAttr(default=None)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _env_file: Path | None = PrivateAttr(default=None)
    _env_file_values: dict[str, str] = PrivateAttr(default_factory=dict)
    #: True when no config was given and the example shipped with albra was loaded instead (loader._resolve)
    _example: bool = PrivateAttr(default=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The loader passes the parsed TOML as init kwargs; environment variables win over it.
        # No .env here: .env holds secrets only and is read by albra.secrets on demand.
        return (env_settings, init_settings)

    @field_validator("accounts")
    @classmethod
    def _account_names(cls, v: dict[str, AccountSettings]) -> dict[str, AccountSettings]:
        for name in v:
            if not ACCOUNT_NAME_RE.match(name):
                raise ValueError(
                    f"account name {name!r} is invalid: start with a lower-case letter, then up to 15 of "
                    "a-z, 0-9, '_', '-'"
                )
        return v

    # -- what other modules call -------------------------------------------------------------

    @property
    def config_path(self) -> Path | None:
        """The TOML file these settings came from (None when built without one)."""
        return self._config_path

    @property
    def base_dir(self) -> Path:
        """The project root relative paths were resolved against."""
        return self._base_dir

    @property
    def env_file(self) -> Path | None:
        """The ``.env`` file secrets may come from (it may not exist)."""
        return self._env_file

    @property
    def db_path(self) -> Path:
        """``<state_dir>/albra.db``: the SQLite store every process shares."""
        return self.paths.state_dir / "albra.db"

    def account(self, name: str) -> AccountSettings:
        """The named account, or a ConfigError listing the configured ones."""
        from albra.config.errors import ConfigError, ConfigProblem

        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise ConfigError(
                [ConfigProblem(self._source_label(), f"accounts.{name}", f"no such account (configured: {known})")]
            ) from None

    def effective_risk(self, account: str, strategy: StrategyEntry | int | None = None) -> RiskLimits:
        """``[risk]`` ← the account's ``risk`` overrides ← the strategy's ``risk`` overrides."""
        acc = self.account(account)
        merged = self.risk.model_dump()
        layers = [acc.risk]
        if strategy is not None:
            st = acc.strategies[strategy] if isinstance(strategy, int) else strategy
            layers.append(st.risk)
        for layer in layers:
            if layer is not None:
                merged.update(layer.model_dump(exclude_none=True))
        return RiskLimits.model_validate(merged)

    def require_secrets(self, account: str) -> AccountSecrets | None:
        """The API key and secret ``albra run --account NAME`` needs; None for a paper account.

        Raises ConfigError naming each unset env var and the account — a live runner must not start
        keyless and fail on its first signed request."""
        from albra.config.errors import ConfigError
        from albra.config.secrets_check import account_secret_problems, resolve_account_secrets

        acc = self.account(account)
        if not acc.needs_keys():
            return None
        if self._example:
            from albra.config.errors import ConfigProblem

            raise ConfigError([ConfigProblem(self._source_label(), f"accounts.{account}",
                                             f"no configuration was given (no {Path('config') / 'albra.toml'}, no "
                                             "--config or ALBRA_CONFIG), so albra loaded its shipped example; a "
                                             f"{acc.mode.value} account needs your own configuration")])
        problems = account_secret_problems(self, account)
        if problems:
            raise ConfigError(problems)
        return resolve_account_secrets(self, account)

    def telegram_token(self, required: bool = True) -> Secret | None:
        """The bot token from ``telegram.token_env`` (env, then .env). With ``required`` a missing
        token is a ConfigError naming the variable."""
        from albra.config.errors import ConfigError, ConfigProblem
        from albra.secrets import resolve_secret

        tok = resolve_secret([self.telegram.token_env], self._env_file, env_file_values=self._env_file_values)
        if tok is None and required:
            raise ConfigError(
                [ConfigProblem(f"env {self.telegram.token_env}", "telegram.token_env",
                               f"Telegram bot token is not set: export {self.telegram.token_env} or put it in "
                               f"{self._env_file or '.env'}")]
            )
        return tok

    def _source_label(self) -> str:
        return str(self._config_path) if self._config_path else "settings"

