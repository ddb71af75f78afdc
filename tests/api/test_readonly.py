"""The API cannot write: its role is refused every write, and crafted input stays data."""

from __future__ import annotations

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from api.app import make_pool
from tests.api.conftest import api_settings, get_json
from tests.conftest import Database

WRITES = [
    "INSERT INTO spans (trace_id, span_id, name, service_name, start_time, end_time, start_time_unix_nano, "
    "end_time_unix_nano, duration_ns) VALUES ('\\x01', '\\x01', 'x', 'x', now(), now(), 0, 0, 0)",
    "UPDATE spans SET name = 'x'",
    "DELETE FROM span_events",
    "TRUNCATE span_links",
    "INSERT INTO span_rollups_1m (bucket, service_name, span_count, error_count, duration_sum_ns, duration_max_ns) "
    "VALUES (now(), 'x', 1, 0, 0, 0)",
    "CREATE TABLE api_was_here (x int)",
    "SELECT observatory_ensure_partitions(current_date, current_date)",
]


@pytest.mark.parametrize("statement", WRITES)
async def test_the_api_role_cannot_write(api_database: Database, statement: str) -> None:
    pool = make_pool(api_settings(api_database, "unused:"))
    await pool.open()
    try:
        async with pool.connection() as conn:
            with pytest.raises((psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
                await conn.execute(statement)
            # Even with read-only sessions switched off, the role lacks the grants.
            await conn.execute("SET default_transaction_read_only = off")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(statement)
    finally:
        await pool.close()


CRAFTED = [
    {"service": "x'; DROP TABLE spans; --"},
    {"name_prefix": "'; DELETE FROM spans WHERE '' = '"},
    {"attr.x') OR 1=1; --": "1"},
    {"attr.user.tier": "gold' OR '1'='1"},
    {"has_attr": "a'; TRUNCATE spans; --"},
    {"model": "\\'); DROP TABLE span_events; --"},
]


@pytest.mark.parametrize("params", CRAFTED)
async def test_crafted_parameters_are_only_data(client: TestClient, api_database: Database, params: dict[str, str]) -> None:
    with api_database.connect() as conn:
        before = conn.execute("SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM span_events)").fetchone()
    body = await get_json(client, "/api/v1/spans", start="2025-06-01T00:00:00Z", end="2025-06-05T00:00:00Z", **params)
    assert body["spans"] == []
    with api_database.connect() as conn:
        after = conn.execute("SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM span_events)").fetchone()
    assert after == before
