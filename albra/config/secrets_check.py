"""Which secrets an account needs, whether they are set, and their resolution.

Kept apart from the schema because it touches the environment and ``.env``: the schema describes,
this module looks things up.
"""

from __future__ import annotations

from albra.config.errors import ConfigProblem, display_path
from albra.config.schema import Settings, key_env_names, secret_env_names
from albra.secrets import AccountSecrets, resolve_secret

#: a key or secret shorter than this is almost certainly not what was meant (Binance's are 64 characters)
SHORT_SECRET = 16


def _where(settings: Settings) -> str:
    return f"the environment or {display_path(settings.env_file)}" if settings.env_file else "the environment"


def account_secret_problems(settings: Settings, account: str, severity: str = "error") -> list[ConfigProblem]:
    """One problem per unset key/secret variable of a live/demo ``account`` (none for paper)."""
    acc = settings.accounts[account]
    if not acc.needs_keys():
        return []
    problems = []
    for what, names, field in (
        ("API key", key_env_names(account, acc), "api_key_env"),
        ("API secret", secret_env_names(account, acc), "api_secret_env"),
    ):
        if resolve_secret(names, settings.env_file, env_file_values=settings._env_file_values) is None:
            alias = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
            problems.append(
                ConfigProblem(
                    f"env {names[0]}",
                    f"accounts.{account}.{field}",
                    f"{what} for {acc.mode.value} account {account!r} is not set: set {names[0]}{alias} "
                    f"in {_where(settings)}",
                    severity,
                )
            )
    return problems


def short_secret_warnings(settings: Settings, account: str) -> list[ConfigProblem]:
    """A warning per key/secret that is set but far too short to be a Binance one (``config check`` only)."""
    acc = settings.accounts[account]
    if not acc.needs_keys():
        return []
    out = []
    for what, names, field in (("API key", key_env_names(account, acc), "api_key_env"),
                               ("API secret", secret_env_names(account, acc), "api_secret_env")):
        got = resolve_secret(names, settings.env_file, env_file_values=settings._env_file_values)
        if got is not None and len(got.reveal()) < SHORT_SECRET:
            out.append(ConfigProblem(
                f"env {got.env_var}", f"accounts.{account}.{field}",
                f"{what} for {acc.mode.value} account {account!r} is only {len(got.reveal())} characters: a Binance "
                f"{what} is 64 — is {got.env_var} set to the right value?", "warning"))
    return out


def resolve_account_secrets(settings: Settings, account: str) -> AccountSecrets | None:
    """The key pair of ``account`` if both are set, else None."""
    acc = settings.accounts[account]
    key = resolve_secret(key_env_names(account, acc), settings.env_file, env_file_values=settings._env_file_values)
    secret = resolve_secret(
        secret_env_names(account, acc), settings.env_file, env_file_values=settings._env_file_values
    )
    if key is None or secret is None:
        return None
    return AccountSecrets(key, secret)
