"""`observatory backup [FILE]` and `observatory restore FILE`: pg_dump / pg_restore, custom format.

The password never appears on a command line (where `ps` shows it): the child gets the
DSN without it and the password in PGPASSWORD. A backup is written to FILE.partial and
renamed when pg_dump succeeded, so a file with the final name is always complete.

Restore is TimescaleDB-aware: when the archive holds the timescaledb extension, the
extension is created first and the restore runs between timescaledb_pre_restore() and
timescaledb_post_restore(), as TimescaleDB requires (post_restore runs even after a
failure, so the database does not stay in restoring mode). It runs as one transaction
with --exit-on-error, so a failed restore leaves no half-restored tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from cli import db
from cli.errors import Failure, UsageError
from cli.migrate import migrator
from cli.reset import clear, describe_contents
from cli.settings import CliSettings
from storage.migrations import ensure_database, role_dsns, set_role_passwords

ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'observatory_app') THEN CREATE ROLE observatory_app LOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'observatory_readonly') THEN CREATE ROLE observatory_readonly LOGIN; END IF;
END $$
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    backup = subparsers.add_parser(
        "backup", help="dump the database with pg_dump (custom format)",
        description="Dump the database at DATABASE_URL with pg_dump in custom format (compressed; restore it "
        "with `observatory restore`). pg_dump must be installed, of the server's major version or newer.",
        epilog="examples:\n  observatory backup\n  observatory backup /backups/observatory-$(date +%F).dump",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backup.add_argument("file", nargs="?", metavar="FILE", help="where to write (default observatory-DB-TIME.dump here)")
    backup.set_defaults(handler=_backup)
    restore = subparsers.add_parser(
        "restore", help="restore a backup with pg_restore (refuses a non-empty database without --force)",
        description="Restore a custom-format dump into the database at DATABASE_URL (created if missing). "
        "A database whose tables hold rows is refused unless --force; its observatory schema is then "
        "dropped (reverting the migrations) before the restore. TimescaleDB dumps are restored between "
        "timescaledb_pre_restore() and timescaledb_post_restore().",
        epilog="examples:\n  observatory restore observatory-llm_observatory-20260101T000000Z.dump\n"
        "  observatory restore --force last-night.dump",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    restore.add_argument("file", metavar="FILE", help="a dump made by `observatory backup` (or pg_dump -Fc)")
    restore.add_argument("--force", action="store_true", help="replace a database that holds rows")
    restore.set_defaults(handler=_restore)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Failure(f"{name} is not installed or not on PATH; install the PostgreSQL client tools "
                      f"(Debian: apt-get install postgresql-client) of the server's major version or newer")
    return path


def _child(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and an environment carrying it."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    password = info.pop("password", None)
    environment = dict(os.environ)  # the child needs PATH, locale and the PG* variables of this one
    if password:
        environment["PGPASSWORD"] = str(password)
    return psycopg.conninfo.make_conninfo(**info), environment  # type: ignore[arg-type]


def _call(argv: list[str], environment: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        detail = " ".join(line.strip() for line in done.stderr.strip().splitlines()[-3:]) or f"exit code {done.returncode}"
        raise Failure(f"{what} failed: {detail}")
    return done.stdout


def _backup(args: argparse.Namespace, settings: CliSettings) -> int:
    pg_dump = _tool("pg_dump")
    name = db.database_name(settings.database_url)
    target = Path(args.file or f"observatory-{name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.dump")
    if target.is_dir():
        raise UsageError(f"{target} is a folder; give a file name")
    with db.connect(settings.database_url) as conn:
        contents = describe_contents(conn)
        timescale = db.has_extension(conn, "timescaledb")
    dsn, environment = _child(settings.database_url)
    partial = target.with_name(target.name + ".partial")
    try:
        _call([pg_dump, "--format=custom", "--file", str(partial), "--dbname", dsn], environment,
              f"pg_dump of {db.describe(settings.database_url)}")
    except Failure:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    flavour = f" (TimescaleDB {timescale})" if timescale else ""
    print(f"backed up {db.describe(settings.database_url)}{flavour} to {target} ({target.stat().st_size:,} bytes): {contents}")
    return 0


def _archive_has_timescaledb(pg_restore: str, file: Path) -> bool:
    listing = _call([pg_restore, "--list", str(file)], dict(os.environ), f"reading {file}")
    return any(" EXTENSION " in line and line.rstrip().endswith(" timescaledb") for line in listing.splitlines())


def _restore(args: argparse.Namespace, settings: CliSettings) -> int:
    pg_restore = _tool("pg_restore")
    file = Path(args.file)
    if not file.is_file():
        raise Failure(f"{file} does not exist or is not a file")
    try:
        timescale = _archive_has_timescaledb(pg_restore, file)
    except Failure as exc:
        raise Failure(f"{file} is not a pg_dump custom-format archive ({exc})") from None
    where = db.describe(settings.database_url)
    if ensure_database(settings.database_url, db.connect):
        print(f"created database {db.database_name(settings.database_url)}")
    with db.connect(settings.database_url) as conn:
        _refuse_unless_empty(conn, where, args.force)
        clear(conn, settings)
        conn.execute(ROLES)  # the dump grants to them; roles are cluster-wide, so not in it
    if timescale:
        with db.connect(settings.database_url) as conn:  # a fresh session: see _prepare_timescaledb
            _prepare_timescaledb(conn, where)
    dsn, environment = _child(settings.database_url)
    try:
        _call([pg_restore, "--exit-on-error", "--single-transaction", "--dbname", dsn, str(file)], environment,
              f"pg_restore of {file} into {where}")
    finally:
        if timescale:
            with db.connect(settings.database_url) as conn:
                conn.execute("SELECT timescaledb_post_restore()")
    with db.connect(settings.database_url) as conn:
        contents = describe_contents(conn)
        set_role_passwords(conn, role_dsns(settings))
        with migrator(conn, settings) as m:
            pending = m.pending()
    print(f"restored {file} into {where}: {contents}")
    if pending:
        print(f"the backup predates {len(pending)} migration(s); run `observatory migrate up`")
    print("run ANALYZE on the database (or wait for autovacuum) before judging query speed")
    return 0


def _refuse_unless_empty(conn: psycopg.Connection, where: str, force: bool) -> None:
    tables = [t for t in db.user_tables(conn) if t != "public.schema_migrations"]
    holding = [t for t in tables
               if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]  # type: ignore[index]  # noqa: S608 (names from the catalog, quoted)
    if holding and not force:
        raise UsageError(
            f"the database at {where} is not empty ({describe_contents(conn)}); restore would replace it. "
            "Rerun with --force, or restore into a new database (DATABASE_URL=…/other_name)"
        )


def _prepare_timescaledb(conn: psycopg.Connection, where: str) -> None:
    available = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if available is None:
        raise Failure(f"the backup holds TimescaleDB data but the server at {where} has no timescaledb extension; "
                      "restore into a TimescaleDB server of the same extension version")
    # The archive carries the extension's catalog (hypertables, chunks, jobs), which must land
    # in an empty one, as in a new database: a dropped hypertable can leave internal
    # compressed-chunk tables behind that the restore would collide with. TimescaleDB wants
    # DROP EXTENSION first in its session, before anything loads the library.
    conn.execute("DROP EXTENSION IF EXISTS timescaledb CASCADE")
    conn.execute("CREATE EXTENSION timescaledb")
    conn.execute("SELECT timescaledb_pre_restore()")
