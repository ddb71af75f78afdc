"""`observatory reset --confirm`: revert every migration and apply them again, leaving empty tables.

The schema is dropped through the migrations' own down files rather than with DROP SCHEMA
… CASCADE: they remove exactly what the project created (tables, their partitions or
chunks, functions, grants) and nothing else that may live in the database, and the roles
stay (they are cluster-wide). Redis is not touched: spans still on the streams are written
into the new tables.
"""

from __future__ import annotations

import argparse

import psycopg

from cli import db
from cli.errors import Failure, UsageError
from cli.migrate import migrate_up, migrator
from cli.settings import CliSettings
from storage.migrations import MigrationError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reset", help="drop and recreate the schema, deleting every stored span (needs --confirm)",
        description="Revert every applied migration (dropping the tables and all their rows), then apply them "
        "all again. Without --confirm, only says what it would delete.",
        epilog="examples:\n  observatory reset            # shows what would be deleted\n  observatory reset --confirm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--confirm", action="store_true", help="really delete")
    parser.set_defaults(handler=_run)


def describe_contents(conn: psycopg.Connection) -> str:
    tables = [t for t in db.user_tables(conn) if t != "public.schema_migrations"]
    if not tables:
        return "no tables"
    counts = db.row_counts(conn, tables)
    return ", ".join(f"{t.removeprefix('public.')} ({'too many to count' if n is None else f'{n:,} rows'})"
                     for t, n in counts.items())


def clear(conn: psycopg.Connection, settings: CliSettings) -> int:
    """Revert every applied migration and drop the ledger; returns how many were reverted."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:  # type: ignore[index]
        return 0
    try:
        with migrator(conn, settings) as m:
            reverted = m.down(steps=None, to=0)
            conn.execute("DROP TABLE schema_migrations")
    except MigrationError as exc:
        raise Failure(f"cannot drop the schema: {exc}") from None
    return len(reverted)


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    where = db.describe(settings.database_url)
    with db.connect(settings.database_url) as conn:
        contents = describe_contents(conn)
        if not args.confirm:
            raise UsageError(
                f"reset would delete every table of the observatory schema at {where} with all rows: {contents}; "
                "then recreate them empty. Rerun with --confirm (consider `observatory backup` first)"
            )
        reverted = clear(conn, settings)
    print(f"dropped the schema at {where} ({reverted} migrations reverted; it held {contents})")
    return migrate_up(settings)
