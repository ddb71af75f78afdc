"""The write stage against the real PostgreSQL: refused spans come back alone with a reason
that names the fault and not the content; an outage is retried until the rows commit."""

from __future__ import annotations

import asyncio
import os

import psycopg

from common.otlp import key_value as kv
from storage.decode import SpanRows, parse_request, span_units
from storage.store import Store
from storage.writer import SpanWriter
from tests.conftest import Database
from tests.storage.support import request, trace_ids
from tests.support import free_port

SECRET = "not-for-the-logs"


def units(poison_at: set[int]) -> list[SpanRows]:
    req = request(trace_ids(4))  # 12 spans
    for index, span in enumerate(req.resource_spans[0].scope_spans[0].spans):
        if index in poison_at:  # an indexed text past the btree limit: SQLSTATE 54000
            span.attributes.append(kv("gen_ai.request.model", SECRET + os.urandom(4000).hex()))
    return [u for u in span_units(parse_request(req.SerializeToString())) if isinstance(u, SpanRows)]


def test_refused_spans_come_back_alone_and_the_rest_is_stored(fresh_database: Database) -> None:
    async def scenario() -> None:
        async def connect() -> SpanWriter:
            conn = await psycopg.AsyncConnection.connect(fresh_database.app_dsn, autocommit=True)
            return SpanWriter(conn)

        store = Store(connect)
        batch = units({3, 7})
        refused = await store.write(batch)
        assert [batch.index(unit) for unit, _error in refused] == [3, 7]
        for _unit, error in refused:
            assert "SQLSTATE 54000" in str(error) and SECRET not in str(error)
        await store.close()

    asyncio.run(scenario())
    with psycopg.connect(fresh_database.admin_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (10,)


def test_an_outage_is_retried_until_the_rows_commit(fresh_database: Database) -> None:
    attempts = []

    async def scenario() -> None:
        async def connect() -> SpanWriter:  # the first two attempts find no server (as during a restart)
            attempts.append(1)
            dsn = fresh_database.app_dsn if len(attempts) > 2 else f"postgresql://observatory_app@127.0.0.1:{free_port()}/x"
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=2)
            return SpanWriter(conn)

        store = Store(connect)
        assert await store.write(units(set())) == []
        assert store.db_error is None
        await store.close()

    asyncio.run(scenario())
    assert len(attempts) == 3
    with psycopg.connect(fresh_database.admin_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM spans").fetchone() == (12,)
