"""Plain-SQL migrations: `NNNN_name.up.sql` and `NNNN_name.down.sql` in migrations/.

Each migration runs in its own transaction and is recorded in `schema_migrations` with a
checksum of its up file; an applied migration whose file has changed is refused. A
session-level advisory lock makes concurrent migrators (several writers starting at
once) apply each migration exactly once.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "migrations"
CONCURRENT_UPDATE_RETRIES = 5
LOCK_KEY = 7_244_105_018_264_113  # any constant; names the migration lock in pg_locks
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")

LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_path: Path
    down_path: Path | None

    @property
    def up_sql(self) -> str:
        return self.up_path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Status:
    migration: Migration
    applied_at: datetime | None
    changed: bool


def discover(directory: Path = DEFAULT_DIR) -> list[Migration]:
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.up.sql / NNNN_name.down.sql")
        version, name, direction = int(match[1]), match[2], match[3]
        if direction == "up":
            if version in ups:
                raise MigrationError(f"two up migrations numbered {version:04d}")
            ups[version] = (name, path)
        else:
            downs[version] = path
    return [Migration(v, n, p, downs.get(v)) for v, (n, p) in sorted(ups.items())]


class Migrator:
    def __init__(self, conn: psycopg.Connection, directory: Path = DEFAULT_DIR) -> None:
        self.conn = conn
        self.migrations = discover(directory)

    def __enter__(self) -> "Migrator":
        self.conn.autocommit = True
        self.conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        self.conn.execute(LEDGER)
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def applied(self) -> dict[int, tuple[str, datetime]]:
        rows = self.conn.execute("SELECT version, checksum, applied_at FROM schema_migrations").fetchall()
        return {v: (c, t) for v, c, t in rows}

    def status(self) -> list[Status]:
        applied = self.applied()
        return [
            Status(m, applied[m.version][1] if m.version in applied else None,
                   m.version in applied and applied[m.version][0] != m.checksum)
            for m in self.migrations
        ]

    def check_unchanged(self) -> None:
        changed = [s.migration for s in self.status() if s.changed]
        if changed:
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in changed)
            raise MigrationError(
                f"applied migration(s) {names} changed on disk since they ran; "
                "restore the original file(s) and add a new migration instead"
            )

    def up(self, to: int | None = None) -> list[Migration]:
        self.check_unchanged()
        applied = self.applied()
        done = []
        for migration in self.migrations:
            if migration.version in applied or (to is not None and migration.version > to):
                continue
            self._apply(migration.up_sql, "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum))
            done.append(migration)
        return done

    def _apply(self, script: str, record: str, params: tuple[object, ...]) -> None:
        """Run a migration script and its ledger change in one transaction.

        Roles and role settings live in catalogs shared by every database of the cluster, so
        migrating two databases at once can fail with "tuple concurrently updated"; the
        transaction rolled back whole, so it is simply run again.
        """
        for attempt in range(1, CONCURRENT_UPDATE_RETRIES + 1):
            try:
                with self.conn.transaction():
                    self.conn.execute(script)  # type: ignore[arg-type]
                    self.conn.execute(record, params)  # type: ignore[arg-type]
                return
            except psycopg.errors.InternalError_ as exc:
                if "concurrently updated" not in str(exc) or attempt == CONCURRENT_UPDATE_RETRIES:
                    raise
                time.sleep(0.05 * attempt)

    def down(self, steps: int = 1) -> list[Migration]:
        self.check_unchanged()
        applied = self.applied()
        undone = []
        for migration in reversed(self.migrations):
            if len(undone) >= steps:
                break
            if migration.version not in applied:
                continue
            if migration.down_path is None:
                raise MigrationError(f"{migration.version:04d}_{migration.name} has no down file")
            self._apply(migration.down_path.read_text(), "DELETE FROM schema_migrations WHERE version = %s",
                        (migration.version,))
            undone.append(migration)
        return undone


def set_role_passwords(conn: psycopg.Connection, dsns: dict[str, str]) -> list[str]:
    """ALTER ROLE … PASSWORD for each role whose DSN carries a password; returns their names."""
    updated = []
    for role, dsn in dsns.items():
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            updated.append(role)
    return updated
