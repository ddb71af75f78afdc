"""`observatory seed`: exact counts in the database, the promised shape, determinism, both paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.loadgen import BUILT_IN
from tests.cli.conftest import Cli, cli_env, query
from tests.conftest import Database, create_database, drop_database
from tests.support import free_port

END = "2026-01-15T12:00:00Z"
DIGEST = """SELECT md5(string_agg(concat_ws('|', encode(trace_id, 'hex'), encode(span_id, 'hex'), start_time_unix_nano,
                                          name, status_code, llm_request_model, input_tokens, attributes::text), ',' ORDER BY trace_id, span_id))
            FROM spans"""


def test_seed_via_db_stores_exactly_n_spans_of_the_promised_shape(cli: Cli) -> None:
    outcome = cli("seed", "--count", "1500", "--via", "db", "--end", END, "--days", "2", "--services", "4", "--quiet")
    assert outcome.code == 0, outcome.err
    assert "seeded 1,500 spans" in outcome.out and "1,500 new rows" in outcome.out
    dsn = cli.env["DATABASE_URL"]
    assert query(dsn, "SELECT count(*), count(DISTINCT service_name) FROM spans") == [(1500, 4)]
    (roots, traces), = query(dsn, "SELECT count(*) FILTER (WHERE parent_span_id IS NULL), count(DISTINCT trace_id) FROM spans")
    assert roots == traces
    llm = query(dsn, """SELECT count(*), count(DISTINCT llm_request_model), min(input_tokens), bool_and(llm_provider IS NOT NULL)
                        FROM spans WHERE llm_operation = 'chat'""")[0]
    assert llm[0] > 300 and llm[1] >= 3 and llm[2] > 0 and llm[3]
    models = {m.request for m in BUILT_IN}
    assert {r for (r,) in query(dsn, "SELECT DISTINCT llm_request_model FROM spans WHERE llm_request_model IS NOT NULL")} <= models
    assert query(dsn, "SELECT count(*) > 0 FROM spans WHERE status_code = 2") == [(True,)]
    assert query(dsn, "SELECT count(*) > 0 FROM span_events WHERE name = 'exception'") == [(True,)]
    (oldest, newest), = query(dsn, "SELECT min(start_time), max(start_time) FROM spans")
    assert (newest - oldest).total_seconds() > 86_400 and newest.isoformat() < "2026-01-15T13"
    assert query(dsn, "SELECT count(*) FROM spans WHERE start_time < timestamptz '2026-01-13T12:00:00Z'") == [(0,)]


def test_seed_is_deterministic_by_seed(cli: Cli) -> None:
    args = ("seed", "--count", "800", "--via", "db", "--end", END, "--quiet")
    assert cli(*args, "--seed", "42").code == 0
    first = query(cli.env["DATABASE_URL"], DIGEST)
    again = cli(*args, "--seed", "42")
    assert "0 new rows, 800 were already stored" in again.out  # the same keys, so nothing new

    other = create_database()
    try:
        env = cli_env(other.admin_dsn, "unused:")
        assert cli(*args, "--seed", "42", "--jobs", "2", **env).code == 0  # workers build the same spans
        assert query(other.admin_dsn, DIGEST) == first
        assert cli(*args, "--seed", "43", **cli_env(other.admin_dsn, "unused:")).code == 0
        assert query(other.admin_dsn, "SELECT count(*) FROM spans") == [(1600,)]
    finally:
        drop_database(other.name)


def test_seed_via_db_on_an_unmigrated_database_says_what_to_do(cli: Cli, unmigrated_dsn: str) -> None:
    from tests.conftest import ADMIN_DSN  # a server that answers, a database without tables
    import psycopg

    name = psycopg.conninfo.conninfo_to_dict(unmigrated_dsn)["dbname"]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    outcome = cli("seed", "--count", "10", "--via", "db", "--quiet", **cli_env(unmigrated_dsn, "unused:"))
    assert outcome.code == 1 and "observatory migrate up" in outcome.err


def test_seed_via_otlp_to_nothing_fails_fast_and_names_the_endpoint(cli: Cli) -> None:
    port = free_port()
    outcome = cli("seed", "--count", "10", "--endpoint", f"127.0.0.1:{port}", "--quiet")
    assert outcome.code == 1
    assert f"cannot reach the collector at 127.0.0.1:{port} (grpc)" in outcome.err and "--via db" in outcome.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [(("--count", "abc"), "expected a whole number"), (("--count", "10", "--error-rate", "2"), "between 0 and 1"),
     (("--count", "10", "--end", "yesterday"), "not an ISO 8601 time"), (("--count", "10", "--via", "kafka"), "invalid choice")],
)
def test_bad_arguments_are_usage_errors(cli: Cli, argv: tuple[str, ...], message: str) -> None:
    outcome = cli("seed", *argv)
    assert outcome.code == 2 and message in outcome.err


@pytest.mark.e2e
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_seed_via_otlp_goes_through_the_collector_into_the_database(
    fresh_database: Database, redis_prefix: str, tmp_path: Path, cli: Cli, protocol: str,
) -> None:
    from tests.e2e.conftest import start_stack
    from tests.support import wait_for

    stack = start_stack(fresh_database, redis_prefix, tmp_path)
    try:
        endpoint = stack.grpc_target if protocol == "grpc" else stack.http_url
        outcome = cli("seed", "--count", "700", "--end", END, "--protocol", protocol, "--endpoint", endpoint,
                      "--concurrency", "3", "--quiet", **cli_env(fresh_database.admin_dsn, redis_prefix))
        assert outcome.code == 0, outcome.err
        assert "700 accepted by the collector" in outcome.out
        dsn = fresh_database.admin_dsn
        wait_for(lambda: query(dsn, "SELECT count(*) FROM spans") == [(700,)], 30, 0.2, "700 seeded spans stored")
    finally:
        stack.stop()
