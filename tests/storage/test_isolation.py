"""The writer's second line: entries that reach the stream with values the database cannot
hold (an older collector, a hand-made entry, a replayed dead letter) cost only their own
spans. Each case is published straight to the stream between ordinary entries and run
through a real writer process; the good spans of the same entry are stored, only the
poison span is dead-lettered with a reason that names the fault and not the content, and
the writer keeps running and storing what comes after."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_sync
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common.otlp import key_value as kv
from common.stream import StreamKeys
from storage.isolation import Refused, isolate
from tests.conftest import Database
from tests.storage.support import Publisher, pending, publish_traces, request, span_counts, trace_ids, writer_process
from tests.support import ServiceProcess, wait_for

SECRET = "do-not-echo-me"


@pytest.fixture
def started() -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.kill()


def poisoned(mutate) -> tuple[ExportTraceServiceRequest, bytes]:  # type: ignore[no-untyped-def]
    """An entry of 3 traces x 3 spans whose 5th span is made poison by `mutate(span, resource_spans)`."""
    req = request(trace_ids(3))
    rs = req.resource_spans[0]
    span = rs.scope_spans[0].spans[4]
    span.name = SECRET
    mutate(span, req)
    return req, span.span_id


def huge_tokens(span, req) -> None:  # type: ignore[no-untyped-def]
    span.attributes.extend([kv("gen_ai.usage.input_tokens", 2**63 - 1), kv("gen_ai.usage.output_tokens", 2**63 - 1)])


def time_past_2262(span, req) -> None:  # type: ignore[no-untyped-def]
    span.end_time_unix_nano = 2**63 + 5


def long_model(span, req) -> None:  # type: ignore[no-untyped-def]
    span.attributes.append(kv("gen_ai.request.model", os.urandom(6000).hex()))  # 12 KB: past the btree limit


def nul_in_model(span, req) -> None:  # type: ignore[no-untyped-def]
    span.attributes.append(kv("gen_ai.request.model", f"gpt\x00{SECRET}"))


CASES = {
    "tokens overflow the total": (huge_tokens, "OverflowError"),
    "time past 2262": (time_past_2262, "past year 2262"),
    "model past the btree limit": (long_model, "SQLSTATE 54000"),
    "NUL in a text column": (nul_in_model, "SQLSTATE 22"),
}


@pytest.mark.e2e
def test_each_poison_costs_only_its_own_span(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    keys = StreamKeys(redis_prefix, 1)
    publisher = Publisher(redis_client, keys)
    total = publish_traces(publisher, entries=20)
    poison_ids = {}
    for name, (mutate, _reason) in CASES.items():
        req, span_id = poisoned(mutate)
        publisher.publish(req)
        poison_ids[span_id] = name
        total += 8  # the other 8 spans of the entry are stored
        total += publish_traces(publisher, entries=10)
    writer = writer_process(fresh_database, redis_prefix, tmp_path, BATCH_SIZE="500").start()
    started.append(writer)

    wait_for(lambda: pending(redis_client, keys) == 0 and redis_client.xlen(keys.dlq) == len(CASES), 60, 0.1,
             "every entry acknowledged and the poison dead-lettered")
    assert span_counts(fresh_database.admin_dsn) == (total, total)
    letters = [fields for _id, fields in redis_client.xrange(keys.dlq)]
    by_case = {}
    for fields in letters:
        alone = ExportTraceServiceRequest.FromString(fields[b"body"])
        (span,) = alone.resource_spans[0].scope_spans[0].spans
        by_case[poison_ids[span.span_id]] = fields[b"error"].decode()
        assert fields[b"spans"] == b"1" and fields[b"entry_id"]
    assert set(by_case) == set(CASES)
    for name, (_mutate, reason) in CASES.items():
        assert reason in by_case[name], (name, by_case[name])
        assert SECRET not in by_case[name]
    assert SECRET not in writer.log()
    with psycopg.connect(fresh_database.admin_dsn) as conn:
        stored_poison = conn.execute("SELECT count(*) FROM spans WHERE name = %s", (SECRET,)).fetchone()
        rollup = conn.execute("SELECT sum(span_count) FROM span_rollups_1h").fetchone()
    assert stored_poison == (0,) and rollup == (total,)

    # Still running, still storing; and a replayed poison only comes back to the dead letters.
    more = publish_traces(publisher, entries=5)
    req, _ = poisoned(huge_tokens)
    publisher.publish(req)
    wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] == total + more + 8 and redis_client.xlen(keys.dlq) == len(CASES) + 1,
             30, 0.1, "later entries stored")
    assert writer.proc is not None and writer.proc.poll() is None
    assert writer.metric("observatory_storage_dead_letters_total", 'reason="rejected"') == 4
    assert writer.stop() == 0


def test_isolation_writes_every_unit_but_the_refused_in_few_transactions() -> None:
    units = list(range(1000))
    poison = {17, 500, 501, 999}
    stored: list[int] = []
    writes = [0]

    async def write(chunk) -> None:  # type: ignore[no-untyped-def]
        writes[0] += 1
        if poison.intersection(chunk):
            raise Refused("bad")
        stored.extend(chunk)

    failed = asyncio.run(isolate(units, write))
    assert [f.unit for f in failed] == sorted(poison)
    assert sorted(stored) == [u for u in units if u not in poison]
    assert writes[0] <= 2 * len(poison) * 10 + 1  # about 2·k·log2(n), not n


def test_isolation_of_a_clean_batch_is_one_write() -> None:
    calls: list[int] = []

    async def write(chunk) -> None:  # type: ignore[no-untyped-def]
        calls.append(len(chunk))

    assert asyncio.run(isolate(list(range(10)), write)) == []
    assert calls == [10]
