"""Typed settings read once from the environment (and `.env`), validated with clear messages.

Each service declares a frozen dataclass whose fields are made with `env(...)`; `load()`
reads them. A variable `X` may also be given as `X_FILE`, the path of a file holding the
value (Docker secrets). `.env.example` is generated from these declarations
(`observatory config env-example`) and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values

T = TypeVar("T")


class SettingsError(ValueError):
    """A variable has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Var:
    name: str
    help: str
    secret: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    example: str | None = None  # shown in .env.example instead of the default


def env(
    name: str,
    default: Any,
    help: str,
    *,
    secret: bool = False,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    example: str | None = None,
) -> Any:
    """Declare a settings field read from the environment variable `name`."""
    var = Var(name, help, secret, choices, minimum, example)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple default")
    return field(default=default, metadata={"env": var})


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _parse(name: str, raw: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw.strip() == "":
            return None
        return _parse(name, raw, args[0])
    if kind is bool:
        return _parse_bool(name, raw)
    if kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if kind is str:
        return raw
    if origin is tuple:
        # Newlines too: a list kept in a secret file (API_KEYS_FILE) reads best one a line.
        return tuple(part.strip() for part in re.split(r"[,\n]", raw) if part.strip())
    raise TypeError(f"unsupported settings type {kind!r} for {name}")


def _check(name: str, value: Any, var: Var) -> None:
    if var.choices is not None and value not in var.choices:
        raise SettingsError(f"{name} must be one of {', '.join(var.choices)}, got {value!r}")
    if var.minimum is not None and isinstance(value, (int, float)) and value < var.minimum:
        qualifier = "a positive" if var.minimum == 1 else f"at least {var.minimum:g}, a"
        raise SettingsError(f"{name} must be {qualifier} number, got {value!r}")


def read_sources(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> list[Mapping[str, str]]:
    """Where values come from, strongest first: the process environment, then the `.env` file.

    With `environ` given (tests, explicit callers) it is the only source.
    """
    if environ is not None:
        return [environ]
    dotenv = dotenv if dotenv is not None else Path(os.environ.get("OBSERVATORY_ENV_FILE", ".env"))
    file_values = {k: v for k, v in dotenv_values(dotenv).items() if v is not None} if dotenv.is_file() else {}
    return [os.environ, file_values]


def _raw_value(name: str, sources: list[Mapping[str, str]]) -> str | None:
    """`name` or `name_FILE` from the strongest source that has either.

    Sources are kept apart rather than merged so that the environment wins whatever the
    form: a Docker secret given as X_FILE must beat an X a developer left in `.env`.
    Within one source X beats X_FILE.
    """
    for source in sources:
        if name in source:
            return source[name]
        file_path = source.get(f"{name}_FILE")
        if file_path:
            try:
                return Path(file_path).read_text().strip()
            except OSError as exc:
                raise SettingsError(f"{name}_FILE={file_path!r} cannot be read: {exc.strerror}") from None
    return None


SettingsT = TypeVar("SettingsT")


def load(cls: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Build `cls` from the environment; raise SettingsError naming the first bad variable."""
    sources = read_sources(environ)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        var: Var | None = f.metadata.get("env")
        if var is None:
            continue
        raw = _raw_value(var.name, sources)
        if raw is None:
            continue
        value = _parse(var.name, raw, hints[f.name])
        _check(var.name, value, var)
        kwargs[f.name] = value
    settings = cls(**kwargs)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate()
    return settings


def variables(cls: type) -> list[tuple[Var, Any]]:
    """The (variable, default) pairs a settings class reads, in declaration order."""
    return [(f.metadata["env"], f.default) for f in dataclasses.fields(cls) if "env" in f.metadata]


def format_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if value >= 1 else str(value)
    return str(value)


# Variables every service shares; each service's settings class inherits the ones it uses.

@dataclass(frozen=True)
class LogSettings:
    log_format: str = env("LOG_FORMAT", "json", "Log format: json (one object a line) or pretty (for a terminal)", choices=("json", "pretty"))
    log_level: str = env("LOG_LEVEL", "info", "Minimum log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class RedisSettings:
    redis_url: str = env("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL: redis:// or rediss:// for one server; redis+cluster://host:port,host:port/ (rediss+cluster:// for TLS) for a Redis Cluster, listing any of its nodes. The whole URL may be given as REDIS_URL_FILE", secret=True)
    redis_key_prefix: str = env("REDIS_KEY_PREFIX", "", "Prefix put before every Redis key (lets several stacks or test runs share one Redis)")
    stream_shards: int = env("STREAM_SHARDS", 1, "Number of span streams; a trace always goes to one shard. On a Redis Cluster use a multiple of the number of masters (docs/OPERATIONS.md)", minimum=1)
    redis_timeout: float = env("REDIS_TIMEOUT", 5.0, "Seconds before a Redis call is given up", minimum=0.1)

    def __post_init__(self) -> None:
        from common.redis_client import check_redis_url  # common.redis_client imports this module

        check_redis_url(self.redis_url)


@dataclass(frozen=True)
class PublishSettings:
    """How a process that adds entries to the span streams (collector, `observatory dlq replay`)
    waits for Redis replication before it calls an entry published."""

    redis_wait_replicas: int = env("REDIS_WAIT_REPLICAS", 0, "Replicas that must hold a stream entry before the collector answers success (Redis WAIT after each XADD); 0 answers once the master has it. A failover can lose acknowledged entries with 0 (docs/OPERATIONS.md)", minimum=0)
    redis_wait_timeout_ms: int = env("REDIS_WAIT_TIMEOUT_MS", 1000, "Milliseconds WAIT may take before the export is refused with a retryable error (the entry may still be stored: the writer ignores duplicates)", minimum=1)


@dataclass(frozen=True)
class ServiceSettings:
    metrics_host: str = env("METRICS_HOST", "0.0.0.0", "Address the metrics/health ports listen on")
    shutdown_timeout: float = env("SHUTDOWN_TIMEOUT", 20.0, "Seconds a service may take to finish in-flight work on SIGTERM", minimum=1)


DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/llm_observatory"
DEFAULT_APP_DSN = "postgresql://observatory_app@127.0.0.1:5432/llm_observatory"
DEFAULT_READONLY_DSN = "postgresql://observatory_readonly@127.0.0.1:5432/llm_observatory"


@dataclass(frozen=True)
class AdminDatabaseSettings:
    database_url: str = env("DATABASE_URL", DEFAULT_ADMIN_DSN, "Admin DSN for migrations (used by the CLI, and by the writer when RUN_MIGRATIONS is true)", secret=True)


@dataclass(frozen=True)
class AppDatabaseSettings:
    database_app_url: str = env("DATABASE_APP_URL", DEFAULT_APP_DSN, "DSN the writer uses (the app role, which may insert spans); a password here is set on the role by `observatory migrate`", secret=True)


@dataclass(frozen=True)
class ReadonlyDatabaseSettings:
    database_readonly_url: str = env("DATABASE_READONLY_URL", DEFAULT_READONLY_DSN, "DSN the API uses (the read-only role); a password here is set on the role by `observatory migrate`", secret=True)


@dataclass(frozen=True)
class MigrationSettings(AdminDatabaseSettings, AppDatabaseSettings, ReadonlyDatabaseSettings):
    """What applying migrations needs: `observatory migrate up` and a writer with RUN_MIGRATIONS."""

    migrations_dir: str = env("MIGRATIONS_DIR", "", "Folder of the SQL migrations (default: migrations/ of this installation)")
    migration_lock_timeout: float = env("MIGRATION_LOCK_TIMEOUT", 600.0, "Seconds a migrator waits for another one to finish before giving up", minimum=0)
