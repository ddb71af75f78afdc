"""GET /api/v1/logs: filters and keyset pages over records the real writer stored."""

from __future__ import annotations

import asyncio
import time

import psycopg
from aiohttp.test_utils import TestClient

from storage.signals import LOG_STORAGE
from tests.api.conftest import ClientFactory, get_json
from tests.collector.otlp import make_logs_request
from tests.conftest import Database, create_database, drop_database


async def _store(database: Database, records: int, service: str) -> None:
    request = make_logs_request(records=records, service=service, trace_id=bytes(range(1, 17)))
    now = time.time_ns() - 60 * 10**9
    for n, record in enumerate(request.resource_logs[0].scope_logs[0].log_records):
        record.time_unix_nano = record.observed_time_unix_nano = now + n * 1000
    conn = await psycopg.AsyncConnection.connect(database.app_dsn, autocommit=True, options="-c TimeZone=UTC")
    try:
        rows = LOG_STORAGE.rows_of(list(LOG_STORAGE.units(LOG_STORAGE.parse_request(request.SerializeToString()))))
        assert await LOG_STORAGE.writer(conn, 30).write(rows) == records
    finally:
        await conn.close()


async def test_log_search_filters_and_pages_without_skipping_or_repeating(make_client: ClientFactory) -> None:
    database = await asyncio.to_thread(create_database)
    try:
        await _store(database, 7, "pager")
        client: TestClient = await make_client(database)
        seen: list[str] = []
        params = {"service": "pager", "limit": "3", "sort": "time"}
        while True:
            page = await get_json(client, "/api/v1/logs", **params)
            seen += [r["body"] if isinstance(r["body"], str) else r["body"]["content"] for r in page["logs"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == ["line 0", "structured 1", "line 2", "structured 3", "line 4", "structured 5", "line 6"]
        errors = await get_json(client, "/api/v1/logs", service="pager", min_severity="error")
        # make_logs_request gives record n the severity 9 + n % 12: 17 and up is error.
        assert [r["severity_number"] for r in errors["logs"]] == []
        warn = await get_json(client, "/api/v1/logs", service="pager", min_severity="warn", sort="time")
        assert [r["severity_number"] for r in warn["logs"]] == [13, 14, 15]
        found = await get_json(client, "/api/v1/logs", service="pager", text="STRUCTURED 3")
        assert [r["event_name"] for r in found["logs"]] == ["event.3"]
        assert (await get_json(client, "/api/v1/logs", service="pager", event_name="event.4"))["logs"][0]["body"] == "line 4"
        assert len((await get_json(client, "/api/v1/logs", **{"attr.attr.n": "5"}))["logs"]) == 1
        bad = await get_json(client, "/api/v1/logs", expect=400, min_severity="loud")
        assert bad["parameter"] == "min_severity"
    finally:
        await asyncio.to_thread(drop_database, database.name)
