"""`observatory migrate up|down|status|create`."""

from __future__ import annotations

import argparse
import sys

from cli import db
from cli.args import non_negative_int, positive_int
from cli.errors import Failure, UsageError
from cli.settings import CliSettings
from storage import migrations
from storage.migrations import Migration, MigrationError, Migrator, create, directory


def _waiting(holder: str) -> None:
    print(f"waiting for the migration lock, held by {holder} ...", file=sys.stderr)


def migrator(conn: object, settings: CliSettings) -> Migrator:
    try:
        return Migrator(conn, directory(settings), settings.migration_lock_timeout, _waiting)  # type: ignore[arg-type]
    except MigrationError as exc:
        raise Failure(str(exc)) from None


def _announce(verb: str, quiet: bool):  # type: ignore[no-untyped-def]
    def announce(migration: Migration) -> None:
        if not quiet:
            print(f"{verb} {migration.label} ...", flush=True)
    return announce


def migrate_up(settings: CliSettings, to: int | None = None, quiet: bool = False) -> int:
    try:
        outcome = migrations.migrate_up(
            settings, to, on_start=_announce("applying", quiet), on_wait=_waiting, open_connection=db.connect,
        )
    except MigrationError as exc:
        raise Failure(str(exc)) from None
    if not quiet:
        if outcome.created_database:
            print(f"created database {db.database_name(settings.database_url)}")
        print(f"applied {len(outcome.applied)} migration(s)" if outcome.applied else "database is up to date")
        for role in outcome.roles:
            print(f"set the password of role {role} from its DSN")
    return 0


def migrate_down(settings: CliSettings, steps: int | None, to: int | None) -> int:
    with db.connect(settings.database_url) as conn:
        try:
            with migrator(conn, settings) as m:
                undone = m.down(steps, to, on_start=_announce("reverting", False))
        except MigrationError as exc:
            raise Failure(str(exc)) from None
    print(f"reverted {len(undone)} migration(s)" if undone else "nothing to revert")
    return 0


def migrate_status(settings: CliSettings) -> int:
    with db.connect(settings.database_url) as conn, migrator(conn, settings) as m:
        statuses = m.status()
    labels = {"applied": "applied", "pending": "pending", "changed": "CHANGED ON DISK since applied",
              "missing": "applied, NOT ON DISK (newer release?)"}
    print(f"{'version':<8} {'name':<36} {'applied at (UTC)':<20} state")
    for s in statuses:
        when = f"{s.applied_at:%Y-%m-%d %H:%M:%S}" if s.applied_at else "-"
        print(f"{s.version:04d}     {s.name:<36} {when:<20} {labels[s.state]}")
    counts = {state: sum(s.state == state for s in statuses) for state in labels}
    print(f"{counts['applied'] + counts['changed'] + counts['missing']} applied, {counts['pending']} pending")
    if counts["changed"] or counts["missing"]:
        print("the ledger and the files disagree: `migrate up` and `down` refuse until that is fixed", file=sys.stderr)
        return 1
    return 0


def migrate_create(settings: CliSettings, name: str) -> int:
    try:
        up, down = create(directory(settings), name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except (MigrationError, OSError) as exc:
        raise Failure(f"cannot create the migration files: {exc}") from None
    print(f"created {up}\ncreated {down}\nwrite the change in the first and its undoing in the second")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "migrate", help="apply, revert, list or create schema migrations",
        description="Apply, revert, list or create the SQL migrations (MIGRATIONS_DIR, default migrations/). "
        "Each runs in a transaction and is recorded with a checksum in schema_migrations; a lock keeps "
        "concurrent migrators apart. Without an action, `up`.",
        epilog="examples:\n  observatory migrate up\n  observatory migrate status\n  observatory migrate down --steps 1\n"
        "  observatory migrate create add_span_kind_index",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    up = actions.add_parser(
        "up", help="apply pending migrations (creates the database if missing)",
        description="Apply pending migrations in order, each in its own transaction; create the database first "
        "if it does not exist; set the app and read-only roles' passwords from their DSNs.",
        epilog="examples:\n  observatory migrate up\n  observatory migrate up --to 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--to", type=positive_int, metavar="N", help="apply up to and including migration N")
    down = actions.add_parser(
        "down", help="revert applied migrations, newest first",
        description="Revert applied migrations with their down files, newest first, each in its own transaction.",
        epilog="examples:\n  observatory migrate down            # the newest one\n"
        "  observatory migrate down --steps 2\n  observatory migrate down --to 0     # all of them",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = down.add_mutually_exclusive_group()
    which.add_argument("--steps", type=positive_int, metavar="N", help="how many to revert (default 1)")
    which.add_argument("--to", type=non_negative_int, metavar="N", help="revert every migration above N (0: all)")
    actions.add_parser(
        "status", help="list migrations and whether each is applied",
        description="List every migration on disk or in the ledger with its state. Exits 1 when an applied "
        "file changed or an applied migration is missing from disk.",
        epilog="example:\n  observatory migrate status", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create_parser = actions.add_parser(
        "create", help="write the next-numbered empty up and down files",
        description="Write NNNN_NAME.up.sql and NNNN_NAME.down.sql with the next free number.",
        epilog="example:\n  observatory migrate create add_span_kind_index",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create_parser.add_argument("name", metavar="NAME", help="lowercase letters, digits and underscores")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    action = args.action or "up"
    if action == "up":
        return migrate_up(settings, getattr(args, "to", None))
    if action == "down":
        steps = args.steps if args.steps is not None or args.to is not None else 1
        return migrate_down(settings, steps, args.to)
    if action == "create":
        return migrate_create(settings, args.name)
    return migrate_status(settings)
