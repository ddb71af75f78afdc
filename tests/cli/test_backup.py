"""`observatory backup`, `restore` and `reset`: the rows survive a round trip; the refusals hold."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli, cli_env, query
from tests.conftest import create_database, drop_database
from tests.support import SHIPPED_MIGRATIONS, free_port

ROWS = """SELECT md5(string_agg(concat_ws('|', encode(trace_id, 'hex'), encode(span_id, 'hex'), start_time, name,
                                         attributes::text, cost_total_usd), ',' ORDER BY trace_id, span_id)), count(*)
          FROM spans"""
EVENTS = "SELECT md5(string_agg(concat_ws('|', encode(span_id, 'hex'), name, attributes::text), ',' ORDER BY span_id, event_index)) FROM span_events"


def test_backup_then_reset_then_restore_returns_the_same_rows(cli: Cli, tmp_path: Path) -> None:
    dsn = cli.env["DATABASE_URL"]
    assert cli("seed", "--count", "1200", "--via", "db", "--end", "2026-02-01T00:00:00Z", "--error-rate", "0.3", "--quiet").code == 0
    rows, events = query(dsn, ROWS), query(dsn, EVENTS)
    assert rows[0][1] == 1200

    dump = tmp_path / "observatory.dump"
    backup = cli("backup", str(dump))
    assert backup.code == 0, backup.err
    assert dump.stat().st_size > 10_000 and "spans (1,200 rows)" in backup.out
    assert not dump.with_name("observatory.dump.partial").exists()

    refused = cli("reset")
    assert refused.code == 2 and "spans (1,200 rows)" in refused.err and "--confirm" in refused.err
    assert query(dsn, "SELECT count(*) FROM spans") == [(1200,)]
    assert cli("reset", "--confirm").code == 0
    assert query(dsn, "SELECT count(*) FROM spans") == [(0,)]
    assert query(dsn, "SELECT version FROM schema_migrations") == [(v,) for v in SHIPPED_MIGRATIONS]

    restored = cli("restore", str(dump))  # empty tables: nothing to lose, so no --force needed
    assert restored.code == 0, restored.err
    assert query(dsn, ROWS) == rows and query(dsn, EVENTS) == events
    assert query(dsn, "SELECT version FROM schema_migrations") == [(v,) for v in SHIPPED_MIGRATIONS]
    # The grants came back too: the API's role can read what was restored.
    readonly = cli.env["DATABASE_READONLY_URL"]
    assert query(readonly, "SELECT count(*) FROM spans") == [(1200,)]


def test_restore_refuses_a_database_holding_rows_without_force(cli: Cli, tmp_path: Path) -> None:
    dsn = cli.env["DATABASE_URL"]
    assert cli("seed", "--count", "300", "--via", "db", "--seed", "1", "--quiet").code == 0
    dump = tmp_path / "one.dump"
    assert cli("backup", str(dump)).code == 0
    assert cli("seed", "--count", "200", "--via", "db", "--seed", "2", "--quiet").code == 0

    refused = cli("restore", str(dump))
    assert refused.code == 2 and "is not empty" in refused.err and "spans (500 rows)" in refused.err
    assert query(dsn, "SELECT count(*) FROM spans") == [(500,)]

    forced = cli("restore", "--force", str(dump))
    assert forced.code == 0, forced.err
    assert query(dsn, "SELECT count(*) FROM spans") == [(300,)]


def test_restore_into_a_new_database_creates_it(cli: Cli, tmp_path: Path, unmigrated_dsn: str) -> None:
    assert cli("seed", "--count", "100", "--via", "db", "--quiet").code == 0
    dump = tmp_path / "copy.dump"
    assert cli("backup", str(dump)).code == 0
    outcome = cli("restore", str(dump), **cli_env(unmigrated_dsn, "unused:"))
    assert outcome.code == 0, outcome.err
    assert "created database" in outcome.out
    assert query(unmigrated_dsn, "SELECT count(*) FROM spans") == [(100,)]


def test_restore_of_something_that_is_not_a_dump_fails_clearly(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a dump\n")
    outcome = cli("restore", str(junk))
    assert outcome.code == 1 and "is not a pg_dump custom-format archive" in outcome.err
    missing = cli("restore", str(tmp_path / "absent.dump"))
    assert missing.code == 1 and "does not exist" in missing.err


def test_backup_of_an_unreachable_server_fails_without_a_partial_file_or_the_password(cli: Cli, tmp_path: Path) -> None:
    dump = tmp_path / "never.dump"
    dsn = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/nothing"
    outcome = cli("backup", str(dump), DATABASE_URL=dsn)
    assert outcome.code == 1 and "cannot connect to PostgreSQL at 127.0.0.1" in outcome.err
    assert "s3cret-pw" not in outcome.err + outcome.out
    assert not dump.exists() and not list(tmp_path.glob("*.partial"))


def test_reset_keeps_other_databases_untouched(cli: Cli) -> None:
    other = create_database()
    try:
        assert cli("seed", "--count", "50", "--via", "db", "--quiet", **cli_env(other.admin_dsn, "unused:")).code == 0
        assert cli("reset", "--confirm").code == 0
        assert query(other.admin_dsn, "SELECT count(*) FROM spans") == [(50,)]
    finally:
        drop_database(other.name)
