"""Settings the CLI reads: the admin DSN, and the service DSNs whose roles it manages."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import (
    AdminDatabaseSettings, AppDatabaseSettings, LogSettings, ReadonlyDatabaseSettings, RedisSettings, env,
)


@dataclass(frozen=True)
class CliSettings(LogSettings, RedisSettings, AdminDatabaseSettings, AppDatabaseSettings, ReadonlyDatabaseSettings):
    migrations_dir: str = env("MIGRATIONS_DIR", "", "Folder of the SQL migrations (default: migrations/ of this installation)")
