"""100,000 spans with planted PII of every detector kind in every position go through the
real stack with redaction on: afterwards no planted value is anywhere in the database (every
text and JSONB column of every table), and few ordinary values were changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import psycopg
import pytest

from cli.loadgen.send import Payload, send_all
from tests.conftest import Database
from tests.e2e.conftest import start_stack
from tests.faults.load import total_spans
from tests.faults.planted_pii import KINDS, POSITIONS, build, found
from tests.support import wait_for

pytestmark = pytest.mark.e2e

SPANS = 100_000
FALSE_POSITIVE_LIMIT = 0.005


def database_text(dsn: str) -> str:
    """Every text and JSONB column of every table in the public schema, as one string."""
    parts = []
    with psycopg.connect(dsn) as conn:
        columns = conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
            "AND c.data_type IN ('text', 'jsonb', 'json', 'character varying')"
        ).fetchall()
        for table, column in columns:
            with conn.cursor().copy(f'COPY (SELECT "{column}" FROM "{table}") TO STDOUT') as copy:
                parts.extend(bytes(chunk).decode() for chunk in copy)
    assert parts, "found no text columns to search"
    return "".join(parts)


def test_no_planted_pii_reaches_the_database(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    requests, planted = build(SPANS)
    assert planted.combinations == {(k, p) for k in KINDS for p in POSITIONS}  # every kind in every position
    stack = start_stack(fresh_database, redis_prefix, tmp_path, ENABLE_PII_DETECTION="true", BATCH_SIZE="5000")
    try:
        payloads = [Payload(r.SerializeToString(), sum(len(s.spans) for rs in r.resource_spans for s in rs.scope_spans))
                    for r in requests]
        sent = asyncio.run(send_all(payloads, "http/protobuf", stack.http_url, concurrency=4))
        assert sent.failed_spans == 0 and sent.spans + sent.rejected_spans == SPANS, sent.errors
        wait_for(lambda: total_spans(fresh_database.admin_dsn) == sent.spans, 180, 0.5, "every span stored")
    finally:
        stack.stop()

    text = database_text(fresh_database.admin_dsn)
    # The check can fail: the same search over the bodies as sent finds every kind.
    sent_text = "".join(orjson.dumps([str(r)]).decode() for r in requests[:50])
    assert set(found(sent_text, planted)) == set(KINDS)
    leaks = found(text, planted)
    assert not leaks, {kind: sorted(values)[:3] for kind, values in leaks.items()}

    with psycopg.connect(fresh_database.admin_dsn) as conn:
        rows = conn.execute("SELECT span_id, attributes->>'app.clean' FROM spans").fetchall()
    changed = sum(1 for span_id, value in rows if value != planted.clean[bytes(span_id).hex()])
    rate = changed / len(rows)
    print(f"false positives on ordinary values: {changed} of {len(rows)} ({rate:.3%})")
    assert rate <= FALSE_POSITIVE_LIMIT
