"""The writer process's delivery guarantees against the real Redis and PostgreSQL.

Each test runs real `python -m storage` processes and checks the end state: every span
stored exactly once, nothing left pending, bad entries in the dead-letter stream.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_sync

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common.stream import StreamKeys
from tests.conftest import Database
from tests.storage.support import Publisher, pending, publish_traces, request, span_counts, trace_ids, writer_process
from tests.support import ServiceProcess, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def started() -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.kill()


def rollup_total(dsn: str) -> int:
    """Spans counted by the rollups; both tiers must count the same."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("""SELECT (SELECT coalesce(sum(span_count), 0) FROM span_rollups_1m),
                                     (SELECT coalesce(sum(span_count), 0) FROM span_rollups_1h)""").fetchone()
    assert row is not None and row[0] == row[1], f"per-minute and hourly tiers disagree: {row}"
    return int(row[0])


def test_kill_9_after_commit_before_ack_stores_every_span_once(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    keys = StreamKeys(redis_prefix, 1)
    total = publish_traces(Publisher(redis_client, keys), entries=40)
    doomed = writer_process(fresh_database, redis_prefix, tmp_path, "doomed", ACK_DELAY="120", BATCH_SIZE="300").start()
    started.append(doomed)
    # The first batch is committed and its entries are still pending: kill in that window.
    wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] >= 300, 30, 0.05, "a committed batch")
    assert pending(redis_client, keys) > 0
    doomed.proc.kill()  # SIGKILL: no flush, no ack
    doomed.proc.wait(10)

    survivor = writer_process(fresh_database, redis_prefix, tmp_path, "survivor", CLAIM_IDLE="1").start()
    started.append(survivor)
    wait_for(lambda: pending(redis_client, keys) == 0 and span_counts(fresh_database.admin_dsn)[0] >= total,
             60, 0.1, "the survivor to claim and store everything")
    assert span_counts(fresh_database.admin_dsn) == (total, total)
    assert rollup_total(fresh_database.admin_dsn) == total  # redelivered rows were not counted twice
    assert survivor.metric("observatory_storage_entries_claimed_total") > 0
    assert survivor.metric("observatory_storage_spans_duplicate_total") >= 300
    assert int(redis_client.get(keys.backlog(0)) or 0) == 0
    assert survivor.stop() == 0


def test_a_writer_restarted_under_its_name_rereads_its_own_pending_entries_once(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    keys = StreamKeys(redis_prefix, 2)
    total = publish_traces(Publisher(redis_client, keys), entries=30)
    name = {"CONSUMER_NAME": "writer-0", "STREAM_SHARDS": "2", "CLAIM_IDLE": "3600", "MAX_DELIVERIES": "2"}
    first = writer_process(fresh_database, redis_prefix, tmp_path, "first", ACK_DELAY="120", BATCH_SIZE="150", **name)
    started.append(first.start())
    wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] >= 150, 30, 0.05, "a committed batch")
    first.kill()
    assert pending(redis_client, keys) > 5  # 5 entries committed, more read and held; none acked

    # No claiming (CLAIM_IDLE is an hour): only re-reading its own pending list can finish.
    again = writer_process(fresh_database, redis_prefix, tmp_path, "again", BATCH_SIZE="150", **name)
    started.append(again.start())
    wait_for(lambda: pending(redis_client, keys) == 0 and span_counts(fresh_database.admin_dsn)[0] >= total,
             30, 0.1, "the restarted writer to store its own pending entries")
    assert span_counts(fresh_database.admin_dsn) == (total, total)
    assert redis_client.xlen(keys.dlq) == 0  # each pending entry was re-read once, not until MAX_DELIVERIES
    assert again.metric("observatory_storage_entries_read_total", 'source="pending"') > 0


def test_poison_entries_go_to_the_dead_letter_stream_and_the_rest_is_stored(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    keys = StreamKeys(redis_prefix, 1)
    publisher = Publisher(redis_client, keys)
    total = publish_traces(publisher, entries=3)
    bad_ids = request(trace_ids(1))
    bad_ids.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02"
    poison = {
        b"garbage": {"v": 1, "body": b"\xff\xfe not protobuf", "spans": 1},
        b"version": {"v": 2, "body": request(trace_ids(1)).SerializeToString(), "spans": 3},
        b"bad ids": {"v": 1, "body": bad_ids.SerializeToString(), "spans": 3},
    }
    for fields in poison.values():
        publisher.publish_raw(0, fields)
    total += publish_traces(publisher, entries=3)
    total += 2  # the bad-ids entry's other two spans are stored; only its bad span is set apart
    started.append(writer_process(fresh_database, redis_prefix, tmp_path).start())

    wait_for(lambda: redis_client.xlen(keys.dlq) == 3 and pending(redis_client, keys) == 0, 30, 0.1, "3 dead letters")
    assert span_counts(fresh_database.admin_dsn) == (total, total)
    letters = {fields[b"error"].decode(): fields for _id, fields in redis_client.xrange(keys.dlq)}
    errors = sorted(letters)
    assert any("not an ExportTraceServiceRequest" in e for e in errors)
    assert any("version 2 is not supported" in e for e in errors)
    (span_error,) = [e for e in errors if "2-byte span id" in e]
    for fields in letters.values():
        assert fields[b"stream"] == keys.stream(0).encode() and fields[b"entry_id"]
    for error in errors:  # whole entries are kept as they were, for replay
        if error != span_error:
            assert letters[error][b"body"] in {f["body"] for f in poison.values()}
    # The bad span alone, with its resource and scope: replaying it cannot bring its neighbours back twice.
    alone = ExportTraceServiceRequest.FromString(letters[span_error][b"body"])
    assert [s.span_id for s in alone.resource_spans[0].scope_spans[0].spans] == [b"\x01\x02"]
    assert alone.resource_spans[0].resource == bad_ids.resource_spans[0].resource
    assert letters[span_error][b"spans"] == b"1"
    assert started[0].metric("observatory_storage_dead_letters_total", 'reason="undecodable"') == 3


def test_two_writers_on_four_shards_store_every_span_once(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    keys = StreamKeys(redis_prefix, 4)
    publisher = Publisher(redis_client, keys)
    writers = [writer_process(fresh_database, redis_prefix, tmp_path, f"w{n}", STREAM_SHARDS="4", BATCH_SIZE="30").start()
               for n in range(2)]
    started.extend(writers)
    for writer in writers:
        writer.wait_ready()
    # One trace per entry, so entries spread over the four shards by trace id; both writers
    # are blocked in XREADGROUP while they arrive, so the group hands entries to each.
    total = publish_traces(publisher, entries=300, traces_per_entry=1)
    # (entries-added, not XLEN: acknowledged entries leave the stream)
    assert all(redis_client.xinfo_stream(keys.stream(s))["entries-added"] > 30 for s in range(4))
    wait_for(lambda: pending(redis_client, keys) == 0 and span_counts(fresh_database.admin_dsn)[0] >= total,
             60, 0.1, "both writers to drain four shards")
    assert span_counts(fresh_database.admin_dsn) == (total, total)
    assert rollup_total(fresh_database.admin_dsn) == total
    written = [w.metric("observatory_storage_spans_written_total") for w in writers]
    assert sum(written) == total and all(w > 0 for w in written)  # the group shared the load
    for w in writers:  # reads are sized to the batch: BATCH_SIZE=30 gives no batch past 50 spans
        batches = w.metric("observatory_storage_batch_spans_count")
        assert batches > 0 and w.metric("observatory_storage_batch_spans_bucket", 'le="50.0"') == batches
    assert [w.stop() for w in writers] == [0, 0]


def test_sigterm_flushes_the_held_batch_acks_and_exits_0(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    keys = StreamKeys(redis_prefix, 1)
    writer = writer_process(fresh_database, redis_prefix, tmp_path, FLUSH_INTERVAL="60", BATCH_SIZE="100000").start()
    started.append(writer)
    writer.wait_ready()
    publisher = Publisher(redis_client, keys)
    with psycopg.connect(fresh_database.admin_dsn) as blocker:
        # Keep the database side busy: the first batch's write waits on this lock, so the
        # entries after it are read into the next batch and held there (a free writer would
        # take them at once).
        blocker.execute("LOCK TABLE spans IN ACCESS EXCLUSIVE MODE")
        total = publish_traces(publisher, entries=1)
        wait_for(lambda: _waiting_on_a_lock(fresh_database.admin_dsn), 20, 0.05, "the first write to wait on the lock")
        total += publish_traces(publisher, entries=5)
        wait_for(lambda: writer.metric("observatory_storage_entries_read_total") >= 6, 20, 0.05, "the entries to be read")
        assert writer.proc is not None
        writer.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping: flushing the current batch" in writer.log(), 10, 0.05, "the writer to take the signal")
        assert writer.proc.poll() is None  # it does not exit while a write is unfinished
        blocker.rollback()  # the lock goes; the blocked write and then the held batch complete
    began = time.monotonic()
    assert writer.proc.wait(25) == 0
    assert time.monotonic() - began < 10
    assert span_counts(fresh_database.admin_dsn) == (total, total)
    assert pending(redis_client, keys) == 0


def _waiting_on_a_lock(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'").fetchone()
    return bool(row and row[0])


def test_an_entry_whose_delivery_reply_was_lost_is_read_again_long_before_claim_idle(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    # Redis puts an entry in a consumer's pending list when it sends the XREADGROUP reply; if
    # the reply is lost (Redis restarted, the connection dropped), the writer never sees the
    # entry. Here the delivery to the writer's name happens inside a MULTI with the XADD, so
    # the writer's own blocked read never gets it: the same state, made on purpose.
    keys = StreamKeys(redis_prefix, 1)
    writer = writer_process(fresh_database, redis_prefix, tmp_path, CONSUMER_NAME="w-lost", CLAIM_IDLE="600").start()
    started.append(writer)
    writer.wait_ready()
    publisher = Publisher(redis_client, keys)
    total = publish_traces(publisher, entries=2)
    wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] == total, 20, 0.05, "the first entries to be stored")
    transaction = redis_client.pipeline(transaction=True)
    Publisher(transaction, keys).publish(request(trace_ids(10)))  # queued in the MULTI: 30 spans
    transaction.xreadgroup("storage", "w-lost", {keys.stream(0): ">"}, count=1)
    lost_id, delivered = transaction.execute()
    assert delivered[0][1][0][0] == lost_id  # delivered to the writer's name, not to the writer
    began = time.monotonic()
    wait_for(lambda: span_counts(fresh_database.admin_dsn) == (total + 30, total + 30), 20, 0.05, "the lost entry to be stored")
    assert time.monotonic() - began < 15  # CLAIM_IDLE is 600 s: it was not the stale-entry claim
    wait_for(lambda: pending(redis_client, keys) == 0, 10, 0.05, "the entry to be acknowledged")
    assert writer.metric("observatory_storage_entries_read_total", 'source="lost"') == 1
