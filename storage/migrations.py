"""Plain-SQL migrations: `NNNN_name.up.sql` and `NNNN_name.down.sql` in migrations/.

Each migration runs in its own transaction and is recorded in `schema_migrations` with a
checksum of its up file. The ledger is checked before anything runs: an applied migration
whose file changed, an applied version missing from disk (a newer release migrated this
database) or a pending version older than an applied one (two branches numbered theirs
alike) is refused, because applying on top of any of them would leave a schema no release
describes. A session-level advisory lock makes concurrent migrators (several writers
starting at once, an operator and a writer) apply each migration exactly once.

A file whose first line is `-- observatory:no-transaction` runs statement by statement
outside a transaction, for the statements PostgreSQL and TimescaleDB refuse inside one
(CREATE INDEX CONCURRENTLY, a continuous aggregate created WITH DATA). Such a migration
cannot roll back: if it fails half way, the error says so.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from common.settings import MigrationSettings

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "migrations"
LOCK_KEY = 7_244_105_018_264_113  # any constant; names the migration lock in pg_locks
LOCK_POLL = 0.25
CATALOG_RACES = ("tuple concurrently updated", "tuple concurrently deleted")
CATALOG_RACE_ATTEMPTS = 5
NO_TRANSACTION = "-- observatory:no-transaction"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")
NAME_RULE = "lowercase letters, digits and underscores"

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
    up_sql: str = field(repr=False, default="")
    checksum: str = ""

    @classmethod
    def load(cls, version: int, name: str, up_path: Path, down_path: Path | None) -> "Migration":
        raw = up_path.read_bytes()  # read once: the checksum and the SQL that runs are the same bytes
        return cls(version, name, up_path, down_path, raw.decode(), hashlib.sha256(raw).hexdigest())

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def down_sql(self) -> str:
        if self.down_path is None:
            raise MigrationError(f"{self.label} has no down file ({self.label}.down.sql); it cannot be reverted")
        return self.down_path.read_text()


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class Status:
    version: int
    name: str
    applied_at: datetime | None
    state: str  # "applied", "pending", "changed" (file differs from what ran), "missing" (not on disk)


def discover(directory: Path = DEFAULT_DIR) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist; set MIGRATIONS_DIR to the right one")
    ups: dict[int, tuple[str, Path]] = {}
    downs: dict[int, Path] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_name.up.sql / NNNN_name.down.sql ({NAME_RULE})")
        version, name, direction = int(match[1]), match[2], match[3]
        if direction == "up":
            if version in ups:
                raise MigrationError(f"two up migrations are numbered {version:04d} in {directory}; renumber one")
            ups[version] = (name, path)
        else:
            downs[version] = path
    orphans = sorted(set(downs) - set(ups))
    if orphans:
        raise MigrationError(f"down file(s) without an up file in {directory}: {', '.join(f'{v:04d}' for v in orphans)}")
    return [Migration.load(v, n, p, downs.get(v)) for v, (n, p) in sorted(ups.items())]


def create(directory: Path, name: str) -> tuple[Path, Path]:
    """Write the next-numbered empty up and down files; returns their paths."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"migration name {name!r} must be {NAME_RULE}, e.g. add_span_kind_index")
    directory.mkdir(parents=True, exist_ok=True)
    version = max((m.version for m in discover(directory)), default=0) + 1
    if version > 9999:
        raise MigrationError("migration numbers are four digits and 9999 is taken")
    up = directory / f"{version:04d}_{name}.up.sql"
    down = directory / f"{version:04d}_{name}.down.sql"
    up.write_text(f"-- {version:04d}_{name}: what this migration changes, and why.\n")
    down.write_text(f"-- Reverts {version:04d}_{name}.up.sql, statement by statement in reverse order.\n")
    return up, down


class Migrator:
    """Applies and reverts migrations over one connection while holding the migration lock.

    `on_wait` is called once, with a description of the holder, when another migrator
    holds the lock; the wait ends after `lock_timeout` seconds with a MigrationError.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        directory: Path = DEFAULT_DIR,
        lock_timeout: float = 600.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.conn = conn
        self.migrations = discover(directory)
        self.lock_timeout = lock_timeout
        self.on_wait = on_wait

    def __enter__(self) -> "Migrator":
        self.conn.autocommit = True
        self._lock()
        self.conn.execute(LEDGER)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.conn.closed:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    def _lock(self) -> None:
        deadline = time.monotonic() + self.lock_timeout
        told = False
        while not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
            if not told and self.on_wait is not None:
                self.on_wait(self._lock_holder())
                told = True
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"another migrator ({self._lock_holder()}) held the migration lock for over "
                    f"{self.lock_timeout:g}s; wait for it to finish, or end that session"
                )
            time.sleep(LOCK_POLL)

    def _lock_holder(self) -> str:
        row = self.conn.execute(
            """SELECT a.pid, coalesce(nullif(a.application_name, ''), 'unnamed client'), a.client_addr
               FROM pg_locks l JOIN pg_stat_activity a USING (pid)
               WHERE l.locktype = 'advisory' AND l.granted
                 AND ((l.classid::bigint << 32) | l.objid::bigint) = %s""",
            (LOCK_KEY,),
        ).fetchone()
        if row is None:
            return "a session that just let go"
        return f"pid {row[0]}, {row[1]}" + (f" from {row[2]}" if row[2] else "")

    # --- the ledger ------------------------------------------------------------------
    def applied(self) -> dict[int, Applied]:
        rows = self.conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations").fetchall()
        return {v: Applied(v, n, c, t) for v, n, c, t in rows}

    def status(self) -> list[Status]:
        applied = self.applied()
        on_disk = {m.version: m for m in self.migrations}
        statuses = []
        for version in sorted(set(applied) | set(on_disk)):
            migration, record = on_disk.get(version), applied.get(version)
            if record is None:
                statuses.append(Status(version, migration.name, None, "pending"))  # type: ignore[union-attr]
            elif migration is None:
                statuses.append(Status(version, record.name, record.applied_at, "missing"))
            else:
                state = "applied" if record.checksum == migration.checksum else "changed"
                statuses.append(Status(version, migration.name, record.applied_at, state))
        return statuses

    def check(self) -> None:
        """Refuse to move when the ledger and the files disagree (see the module docstring)."""
        statuses = self.status()
        changed = [s for s in statuses if s.state == "changed"]
        if changed:
            raise MigrationError(
                f"applied migration(s) {_labels(changed)} changed on disk since they ran; "
                "restore the original file(s) (git checkout) and put the change in a new migration"
            )
        missing = [s for s in statuses if s.state == "missing"]
        if missing:
            raise MigrationError(
                f"this database has migration(s) {_labels(missing)} applied that are not in "
                f"{self.migrations[0].up_path.parent if self.migrations else 'the migrations folder'}; "
                "it was migrated by a newer release: run that release's observatory, or set MIGRATIONS_DIR"
            )
        newest = max((s.version for s in statuses if s.state == "applied"), default=0)
        late = [s for s in statuses if s.state == "pending" and s.version < newest]
        if late:
            raise MigrationError(
                f"pending migration(s) {_labels(late)} are numbered below the newest applied one ({newest:04d}); "
                "renumber them above it (observatory migrate create makes the next number)"
            )

    # --- moving ----------------------------------------------------------------------
    def pending(self, to: int | None = None) -> list[Migration]:
        applied = self.applied()
        return [m for m in self.migrations if m.version not in applied and (to is None or m.version <= to)]

    def up(self, to: int | None = None, on_start: Callable[[Migration], None] | None = None) -> list[Migration]:
        self.check()
        done = []
        for migration in self.pending(to):
            if on_start is not None:
                on_start(migration)
            self._run(migration, migration.up_sql, "apply")
            done.append(migration)
        return done

    def down(
        self, steps: int | None = 1, to: int | None = None, on_start: Callable[[Migration], None] | None = None,
    ) -> list[Migration]:
        """Revert the newest `steps` applied migrations, or all applied above version `to`."""
        self.check()
        applied = self.applied()
        targets = [m for m in reversed(self.migrations) if m.version in applied]
        if to is not None:
            targets = [m for m in targets if m.version > to]
        elif steps is not None:
            targets = targets[:steps]
        for migration in targets:
            migration.down_sql()  # refuse before anything runs when one has no down file
        for migration in targets:
            if on_start is not None:
                on_start(migration)
            self._run(migration, migration.down_sql(), "revert")
        return targets

    def _run(self, migration: Migration, text: str, verb: str) -> None:
        record = (
            ("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
             (migration.version, migration.name, migration.checksum))
            if verb == "apply" else
            ("DELETE FROM schema_migrations WHERE version = %s", (migration.version,))
        )
        if text.lstrip().startswith(NO_TRANSACTION):
            self._run_outside_transaction(migration, text, verb)
            self.conn.execute(*record)
            return
        for attempt in range(1, CATALOG_RACE_ATTEMPTS + 1):
            try:
                with self.conn.transaction():
                    self.conn.execute(text)  # type: ignore[arg-type]
                    self.conn.execute(*record)
                return
            except psycopg.Error as exc:
                # Roles are cluster-wide and the migration lock is per database: migrators of
                # two databases can update one role's catalog row at once; TimescaleDB's
                # background jobs touch their catalog rows while a down migration drops them.
                # The loser's transaction rolled back whole, so running it again is safe.
                if _pg_message(exc) in CATALOG_RACES and attempt < CATALOG_RACE_ATTEMPTS:
                    time.sleep(0.05 * attempt)
                    continue
                raise MigrationError(
                    f"{verb} {migration.label} failed and was rolled back: {_pg_message(exc, text)}"
                ) from None

    def _run_outside_transaction(self, migration: Migration, text: str, verb: str) -> None:
        statements = split_statements(text)
        for number, statement in enumerate(statements, 1):
            try:
                self.conn.execute(statement)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise MigrationError(
                    f"{verb} {migration.label} failed at statement {number} of {len(statements)}: {_pg_message(exc, statement)}. "
                    f"It runs without a transaction ({NO_TRANSACTION}), so statements 1-{number - 1} stay done "
                    "and it is not recorded; fix the cause, undo or finish those statements by hand, then rerun"
                ) from None


def _labels(statuses: list[Status]) -> str:
    return ", ".join(f"{s.version:04d}_{s.name}" for s in statuses)


def _pg_message(exc: psycopg.Error, text: str | None = None) -> str:
    diag = exc.diag
    message = diag.message_primary or str(exc).strip() or type(exc).__name__
    if text is not None and diag.statement_position:
        position = int(diag.statement_position)
        message += f" (line {text.count(chr(10), 0, position) + 1})"
    return message


_TOKEN = re.compile(
    r"""--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|(\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$)|;""",
    re.DOTALL,
)


def split_statements(text: str) -> list[str]:
    """The statements of a SQL file, split on semicolons outside quotes, comments and $$ bodies."""
    statements, start, position = [], 0, 0
    while match := _TOKEN.search(text, position):
        position = match.end()
        if match[1]:  # a dollar-quote opens: skip to the same tag closing it
            close = text.find(match[1], position)
            position = len(text) if close < 0 else close + len(match[1])
        elif match[0] == ";":
            statements.append(text[start:match.start()])
            start = position
    statements.append(text[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    return bool(re.sub(r"--[^\n]*|/\*.*?\*/|\s", "", statement, flags=re.DOTALL))


def set_role_passwords(conn: psycopg.Connection, dsns: dict[str, str]) -> list[str]:
    """ALTER ROLE … PASSWORD for each role whose DSN carries a password; returns their names."""
    updated = []
    for role, dsn in dsns.items():
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            updated.append(role)
    return updated


Connect = Callable[[str], psycopg.Connection]


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10, application_name="observatory-migrate")


def directory(settings: MigrationSettings) -> Path:
    return Path(settings.migrations_dir) if settings.migrations_dir else DEFAULT_DIR


def role_dsns(settings: MigrationSettings) -> dict[str, str]:
    """The roles the migrations create, each with the DSN its service logs in with."""
    return {"observatory_app": settings.database_app_url, "observatory_readonly": settings.database_readonly_url}


def ensure_database(dsn: str, open_connection: Connect = connect) -> bool:
    """Create the DSN's database when it does not exist yet; True when it was created."""
    name = str(psycopg.conninfo.conninfo_to_dict(dsn).get("dbname") or "")
    if not name:
        return False
    with open_connection(psycopg.conninfo.make_conninfo(dsn, dbname="postgres")) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # Another migrator created it a moment ago; two racing CREATE DATABASE can also
            # collide on the catalog's unique index instead of the friendlier error.
            return False
        except psycopg.errors.InsufficientPrivilege:
            raise MigrationError(
                f"database {name} does not exist and the role of DATABASE_URL may not create it; "
                "create it as a superuser (CREATE DATABASE) or use a role with CREATEDB"
            ) from None
        return True


@dataclass(frozen=True)
class UpOutcome:
    created_database: bool
    applied: list[Migration]
    roles: list[str]  # roles whose password was set from their DSN


def migrate_up(
    settings: MigrationSettings,
    to: int | None = None,
    *,
    on_start: Callable[[Migration], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
    open_connection: Connect = connect,
) -> UpOutcome:
    """Everything `migrate up` means, for the CLI and a writer with RUN_MIGRATIONS alike:
    create the database if missing, apply pending migrations under the lock, then set the
    app and read-only roles' passwords from their DSNs (so rotating a DSN secret and
    restarting is enough to rotate the password)."""
    created = ensure_database(settings.database_url, open_connection)
    with open_connection(settings.database_url) as conn:
        with Migrator(conn, directory(settings), settings.migration_lock_timeout, on_wait) as migrator:
            applied = migrator.up(to, on_start=on_start)
        roles = set_role_passwords(conn, role_dsns(settings))
    return UpOutcome(created, applied, roles)
