"""`observatory migrate up|down|status`."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli import db
from cli.errors import Failure
from cli.settings import CliSettings
from storage.migrations import DEFAULT_DIR, MigrationError, Migrator, set_role_passwords


def _dir(settings: CliSettings) -> Path:
    return Path(settings.migrations_dir) if settings.migrations_dir else DEFAULT_DIR


def migrate_up(settings: CliSettings, to: int | None = None, quiet: bool = False) -> int:
    if db.ensure_database(settings.database_url) and not quiet:
        print(f"created database at {db.describe(settings.database_url)}")
    with db.connect(settings.database_url) as conn:
        try:
            with Migrator(conn, _dir(settings)) as migrator:
                applied = migrator.up(to)
        except MigrationError as exc:
            raise Failure(str(exc)) from None
        roles = set_role_passwords(
            conn, {"observatory_app": settings.database_app_url, "observatory_readonly": settings.database_readonly_url}
        )
    if not quiet:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
        if not applied:
            print("database is up to date")
        for role in roles:
            print(f"set the password of role {role} from its DSN")
    return 0


def migrate_down(settings: CliSettings, steps: int) -> int:
    with db.connect(settings.database_url) as conn:
        try:
            with Migrator(conn, _dir(settings)) as migrator:
                undone = migrator.down(steps)
        except MigrationError as exc:
            raise Failure(str(exc)) from None
    for migration in undone:
        print(f"reverted {migration.version:04d}_{migration.name}")
    if not undone:
        print("nothing to revert")
    return 0


def migrate_status(settings: CliSettings) -> int:
    with db.connect(settings.database_url) as conn, Migrator(conn, _dir(settings)) as migrator:
        statuses = migrator.status()
    pending = 0
    for status in statuses:
        m = status.migration
        if status.applied_at is None:
            state = "pending"
            pending += 1
        elif status.changed:
            state = f"applied {status.applied_at:%Y-%m-%d %H:%M:%S}, CHANGED ON DISK"
        else:
            state = f"applied {status.applied_at:%Y-%m-%d %H:%M:%S}"
        print(f"{m.version:04d}  {m.name:<32} {state}")
    print(f"{len(statuses) - pending} applied, {pending} pending")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "migrate", help="apply, revert or list schema migrations",
        description="Apply, revert or list the SQL migrations in migrations/.",
        epilog="examples:\n  observatory migrate up\n  observatory migrate status\n  observatory migrate down --steps 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    up = actions.add_parser("up", help="apply pending migrations (creates the database if missing)")
    up.add_argument("--to", type=int, metavar="N", help="stop after migration N")
    down = actions.add_parser("down", help="revert applied migrations, newest first")
    down.add_argument("--steps", type=int, default=1, metavar="N", help="how many to revert (default 1)")
    actions.add_parser("status", help="list migrations and whether each is applied")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    action = args.action or "up"
    if action == "up":
        return migrate_up(settings, args.to if hasattr(args, "to") else None)
    if action == "down":
        return migrate_down(settings, args.steps)
    return migrate_status(settings)
