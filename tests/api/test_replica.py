"""The API served from a real PostgreSQL streaming replica (made with pg_basebackup -R).

The oracles are the two servers themselves: with replay paused on the replica, a trace
committed on the primary is invisible to the API until replay resumes (so its answers come
from the replica, and show what replica lag means), and the primary's statement log holds
none of the API's queries while the replica's holds them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from api.keys import entry_for, new_key
from tests.api import scenario
from tests.api.data import MS, Span, insert_spans, ns
from tests.conftest import REDIS_URL, create_database
from tests.infra import PrivatePostgres
from tests.support import ServiceProcess, free_port, http_get, service_env, wait_for

pytestmark = pytest.mark.e2e

LOG_EVERY_STATEMENT = ("log_statement=all", "log_line_prefix='%m [%p] %u@%d app=%a '")
LATE = Span("e" * 32, "e1" * 8, "committed while replay was paused", ns("2025-06-01T10:30:00Z"), 5 * MS, "late")


@pytest.fixture
def primary() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(settings=("wal_level=replica", *LOG_EVERY_STATEMENT)).init().start()
    yield server
    server.remove()


def _trace(api_port: int, key: str, trace_id: str) -> tuple[int, dict]:
    status, body = http_get(f"http://127.0.0.1:{api_port}/api/v1/traces/{trace_id}", {"Authorization": f"Bearer {key}"})
    return status, json.loads(body or b"{}")


def _api_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "observatory_readonly@" in line]


def test_the_api_answers_from_the_replica_and_never_queries_the_primary(
    primary: PrivatePostgres, redis_prefix: str, tmp_path: Path,
) -> None:
    database = create_database("obs_replica", server=primary.admin_dsn)
    with database.connect() as conn:
        scenario.seed(conn)
    replica = primary.base_backup("hot_standby=on", *LOG_EVERY_STATEMENT).start()
    try:
        replica_admin = psycopg.conninfo.make_conninfo(database.admin_dsn, port=replica.port)
        replica_readonly = psycopg.conninfo.make_conninfo(database.readonly_dsn, port=replica.port)
        with psycopg.connect(replica_admin, autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            # Replay paused: what the primary commits from now on stays off the replica.
            standby.execute("SELECT pg_wal_replay_pause()")
            wait_for(lambda: standby.execute("SELECT pg_get_wal_replay_pause_state()").fetchone() == ("paused",),
                     10, 0.05, "replay to pause")
            with database.connect() as conn:
                insert_spans(conn, [LATE])
        
            key = new_key()
            api_port, metrics_port = free_port(), free_port()
            env = service_env({
                "DATABASE_READONLY_URL": replica_readonly, "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": redis_prefix,
                "API_KEYS": entry_for("replica-test", "*", key), "API_PORT": str(api_port),
                "API_METRICS_PORT": str(metrics_port), "LOG_FORMAT": "pretty",
            })
            api = ServiceProcess("api", env, metrics_port, tmp_path / "api.log").start()
            try:
                api.wait_ready(60)
                status, body = _trace(api_port, key, scenario.TRACE_A)
                assert status == 200 and len(body["spans"]) == 3
                # Committed on the primary, not yet replayed: the API does not have it (lag).
                assert _trace(api_port, key, LATE.trace_id)[0] == 404
                standby.execute("SELECT pg_wal_replay_resume()")
                wait_for(lambda: _trace(api_port, key, LATE.trace_id)[0] == 200, 20, 0.1, "the replayed trace to show")
            finally:
                assert api.stop() == 0
        replica_lines = _api_lines(replica.log_path)
    finally:
        replica.remove()
    assert any("statement: " in line or "execute " in line for line in replica_lines), f"the replica logged the API's queries: {replica_lines[:5]}"
    primary_log = primary.log_path.read_text(errors="replace")
    assert "INSERT INTO spans" in primary_log  # the primary logs every statement it runs
    assert _api_lines(primary.log_path) == [], "the primary saw queries of the API"
