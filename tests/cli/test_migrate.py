"""`observatory migrate`: round trips, refusals, the lock, and create."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from storage.migrations import LOCK_KEY, split_statements
from tests.cli.conftest import Cli, cli_env, query, schema_dump
from tests.conftest import ADMIN_DSN
from tests.support import SHIPPED_MIGRATIONS, migration_number

N2, N3 = migration_number(), migration_number(2)  # the numbers a test's own migrations take

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_up_down_up_leaves_the_same_schema(cli: Cli) -> None:
    dsn = cli.env["DATABASE_URL"]
    before = schema_dump(dsn)
    assert "CREATE TABLE public.spans" in before

    down = cli("migrate", "down", "--to", "0")
    assert down.code == 0, down.err
    assert "reverting 0001_initial" in down.out
    assert "CREATE TABLE public.spans" not in schema_dump(dsn)

    up = cli("migrate", "up")
    assert up.code == 0, up.err
    assert schema_dump(dsn) == before
    assert cli("migrate", "up").out.strip() == "database is up to date"


def test_status_lists_each_migration(cli: Cli) -> None:
    status = cli("migrate", "status")
    assert status.code == 0
    assert "0001     initial" in status.out and f"{len(SHIPPED_MIGRATIONS)} applied, 0 pending" in status.out


def test_a_changed_migration_is_refused(cli: Cli, migrations_copy: Path) -> None:
    (migrations_copy / f"{N2}_extra.up.sql").write_text("CREATE TABLE extra (id int);\n")
    (migrations_copy / f"{N2}_extra.down.sql").write_text("DROP TABLE extra;\n")
    env = {"MIGRATIONS_DIR": str(migrations_copy)}
    assert cli("migrate", "up", **env).code == 0
    (migrations_copy / f"{N2}_extra.up.sql").write_text("CREATE TABLE extra (id bigint);\n")
    (migrations_copy / f"{N3}_more.up.sql").write_text("CREATE TABLE more (id int);\n")

    refused = cli("migrate", "up", **env)
    assert refused.code == 1
    assert f"{N2}_extra changed on disk" in refused.err and "new migration" in refused.err
    assert query(cli.env["DATABASE_URL"], "SELECT to_regclass('more')") == [(None,)]  # nothing else ran either
    assert cli("migrate", "down", **env).code == 1
    status = cli("migrate", "status", **env)
    assert status.code == 1 and "CHANGED ON DISK" in status.out


def test_a_migration_missing_from_disk_is_refused(cli: Cli, migrations_copy: Path) -> None:
    (migrations_copy / f"{N2}_extra.up.sql").write_text("CREATE TABLE extra (id int);\n")
    env = {"MIGRATIONS_DIR": str(migrations_copy)}
    assert cli("migrate", "up", **env).code == 0
    (migrations_copy / f"{N2}_extra.up.sql").unlink()
    refused = cli("migrate", "up", **env)
    assert refused.code == 1 and f"{N2}_extra applied that are not in" in refused.err
    assert "NOT ON DISK" in cli("migrate", "status", **env).out


def test_a_pending_migration_numbered_below_an_applied_one_is_refused(cli: Cli, migrations_copy: Path) -> None:
    (migrations_copy / f"{N3}_late.up.sql").write_text("CREATE TABLE late (id int);\n")
    env = {"MIGRATIONS_DIR": str(migrations_copy)}
    assert cli("migrate", "up", **env).code == 0
    (migrations_copy / f"{N2}_early.up.sql").write_text("CREATE TABLE early (id int);\n")
    refused = cli("migrate", "up", **env)
    assert refused.code == 1 and f"{N2}_early" in refused.err and "renumber" in refused.err


def test_a_failing_migration_rolls_back_and_is_not_recorded(cli: Cli, migrations_copy: Path) -> None:
    (migrations_copy / f"{N2}_broken.up.sql").write_text("CREATE TABLE half (id int);\nSELEC 1;\n")
    failed = cli("migrate", "up", MIGRATIONS_DIR=str(migrations_copy))
    assert failed.code == 1
    assert f"apply {N2}_broken failed and was rolled back: syntax error at or near \"SELEC\" (line 2)" in failed.err
    dsn = cli.env["DATABASE_URL"]
    assert query(dsn, "SELECT to_regclass('half')") == [(None,)]
    assert query(dsn, "SELECT version FROM schema_migrations ORDER BY 1") == [(v,) for v in SHIPPED_MIGRATIONS]


def test_no_transaction_migrations_run_statements_one_by_one(cli: Cli, migrations_copy: Path) -> None:
    (migrations_copy / f"{N2}_concurrent_index.up.sql").write_text(
        "-- observatory:no-transaction\nCREATE INDEX CONCURRENTLY spans_name ON spans_default (name);\n"
        "CREATE INDEX CONCURRENTLY spans_kind ON spans_default (kind);\n"
    )
    (migrations_copy / f"{N2}_concurrent_index.down.sql").write_text(
        "-- observatory:no-transaction\nDROP INDEX CONCURRENTLY spans_kind;\nDROP INDEX CONCURRENTLY spans_name;\n"
    )
    env = {"MIGRATIONS_DIR": str(migrations_copy)}
    assert cli("migrate", "up", **env).code == 0
    dsn = cli.env["DATABASE_URL"]
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('spans_name', 'spans_kind')") == [(2,)]
    assert cli("migrate", "down", **env).code == 0
    assert query(dsn, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('spans_name', 'spans_kind')") == [(0,)]


def test_down_refuses_before_running_anything_when_a_down_file_is_missing(cli: Cli, migrations_copy: Path) -> None:
    (migrations_copy / f"{N2}_oneway.up.sql").write_text("CREATE TABLE oneway (id int);\n")
    env = {"MIGRATIONS_DIR": str(migrations_copy)}
    assert cli("migrate", "up", **env).code == 0
    refused = cli("migrate", "down", "--steps", str(len(SHIPPED_MIGRATIONS) + 1), **env)
    assert refused.code == 1 and f"{N2}_oneway has no down file" in refused.err
    assert query(cli.env["DATABASE_URL"], "SELECT version FROM schema_migrations ORDER BY 1") == [
        (v,) for v in [*SHIPPED_MIGRATIONS, int(N2)]]


def test_two_concurrent_migrate_up_apply_each_migration_once(cli: Cli, unmigrated_dsn: str, migrations_copy: Path) -> None:
    # A slow second migration keeps the first migrator inside the lock while the other arrives.
    (migrations_copy / f"{N2}_slow.up.sql").write_text("SELECT pg_sleep(3);\nCREATE TABLE slow_marker (id int);\n")
    (migrations_copy / f"{N2}_slow.down.sql").write_text("DROP TABLE slow_marker;\n")
    env = {**cli_env(unmigrated_dsn, "unused:"), "MIGRATIONS_DIR": str(migrations_copy)}
    procs = [cli.spawn("migrate", "up", **env) for _ in range(2)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    outs = [out for out, _err in outcomes]
    assert sum(f"applied {len(SHIPPED_MIGRATIONS) + 1} migration(s)" in out for out in outs) == 1
    assert sum("database is up to date" in out for out in outs) == 1
    assert any("waiting for the migration lock, held by pid" in err for _out, err in outcomes)
    assert query(unmigrated_dsn, "SELECT version, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1") == [
        (v, 1) for v in [*SHIPPED_MIGRATIONS, int(N2)]]


def test_a_migrator_gives_up_when_the_lock_stays_held(cli: Cli) -> None:
    with psycopg.connect(cli.env["DATABASE_URL"], autocommit=True, application_name="lock-hog") as hog:
        hog.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        started = time.monotonic()
        refused = cli("migrate", "up", MIGRATION_LOCK_TIMEOUT="0.5")
        assert time.monotonic() - started < 10
    assert refused.code == 1
    assert "lock-hog" in refused.err and "held the migration lock for over 0.5s" in refused.err


def test_create_writes_the_next_numbered_pair(cli: Cli, migrations_copy: Path) -> None:
    made = cli("migrate", "create", "add_kind_index", MIGRATIONS_DIR=str(migrations_copy))
    assert made.code == 0
    assert (migrations_copy / f"{N2}_add_kind_index.up.sql").is_file()
    assert (migrations_copy / f"{N2}_add_kind_index.down.sql").is_file()
    bad = cli("migrate", "create", "Add-Index", MIGRATIONS_DIR=str(migrations_copy))
    assert bad.code == 2 and "lowercase letters, digits and underscores" in bad.err


def test_a_badly_named_file_is_reported(cli: Cli, migrations_copy: Path) -> None:
    (migrations_copy / "2_oops.sql").write_text("SELECT 1;\n")
    outcome = cli("migrate", "up", MIGRATIONS_DIR=str(migrations_copy))
    assert outcome.code == 1 and "2_oops.sql" in outcome.err and "NNNN_name.up.sql" in outcome.err


def test_up_creates_the_database_when_missing(cli: Cli, unmigrated_dsn: str) -> None:
    outcome = cli("migrate", "up", **cli_env(unmigrated_dsn, "unused:"))
    assert outcome.code == 0 and "created database" in outcome.out
    assert query(unmigrated_dsn, "SELECT count(*) FROM schema_migrations") == [(len(SHIPPED_MIGRATIONS),)]


@pytest.mark.parametrize(
    ("text", "statements"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT ';'; SELECT \"a;b\" FROM t", ["SELECT ';'", 'SELECT "a;b" FROM t']),
        ("-- a; comment\nSELECT 1; /* b; */ SELECT 2", ["-- a; comment\nSELECT 1", "/* b; */ SELECT 2"]),
        ("CREATE FUNCTION f() RETURNS int AS $body$ BEGIN; RETURN 1; END $body$ LANGUAGE plpgsql; SELECT $$;$$",
         ["CREATE FUNCTION f() RETURNS int AS $body$ BEGIN; RETURN 1; END $body$ LANGUAGE plpgsql", "SELECT $$;$$"]),
        ("SELECT 1; -- trailing\n", ["SELECT 1"]),
        ("SELECT 'it''s; fine'", ["SELECT 'it''s; fine'"]),
    ],
)
def test_statements_split_outside_quotes_comments_and_dollar_bodies(text: str, statements: list[str]) -> None:
    assert split_statements(text) == statements


def test_admin_dsn_is_the_default_server() -> None:
    assert psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)["host"]
