"""Upgrading keeps every unwritten span: streams of an older key layout are drained.

Before shards had hash tags the collector wrote `otlp:spans:0` (and `:backlog`); changing
STREAM_SHARDS also renames shards. A writer of this version finds such streams, stores what
is in them that the group had not yet stored (new entries and entries a dead writer left
pending), and deletes them once drained.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from common.stream import GROUP, StreamEntry, StreamKeys
from tests.conftest import Database
from tests.storage.support import _PUBLISH, Publisher, request, span_counts, trace_ids, writer_process
from tests.support import ServiceProcess, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def started() -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.kill()


def publish_to(client: redis_sync.Redis, stream: str, spans_per_trace: int = 3) -> tuple[bytes, int]:
    """An entry as the collector of that layout added it: XADD and the backlog counter beside it."""
    req = request(trace_ids(4), spans_per_trace)
    spans = 4 * spans_per_trace
    entry = StreamEntry(req.SerializeToString(), spans, 0)
    entry_id = client.eval(_PUBLISH, 2, stream, f"{stream}:backlog", 1, entry.body, spans, 0)
    return entry_id, spans


def test_streams_of_older_layouts_are_drained_then_deleted(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    legacy = f"{redis_prefix}otlp:spans:0"  # untagged, as written before hash tags
    redis_client.xgroup_create(legacy, GROUP, id="0", mkstream=True)
    written = [publish_to(redis_client, legacy) for _ in range(2)]
    # The old writer stored and acknowledged these (without deleting them, as it did then).
    read = redis_client.xreadgroup(GROUP, "old-writer", {legacy: ">"}, count=2)
    assert [i for i, _ in read[0][1]] == [i for i, _ in written]
    redis_client.xack(legacy, GROUP, *(i for i, _ in written))
    redis_client.decrby(f"{legacy}:backlog", sum(s for _, s in written))
    # Then it died holding one entry, and two more arrived that nobody read.
    held_by_dead_writer = publish_to(redis_client, legacy)
    redis_client.xreadgroup(GROUP, "old-writer", {legacy: ">"}, count=1)
    unread = [publish_to(redis_client, legacy) for _ in range(2)]
    # A collector once run with STREAM_SHARDS=2 left a shard no writer of that layout read.
    other_layout = StreamKeys(redis_prefix, 2).stream(1)
    orphaned = [publish_to(redis_client, other_layout, 2) for _ in range(3)]

    writer = writer_process(fresh_database, redis_prefix, tmp_path, CLAIM_IDLE="1").start()
    started.append(writer)
    writer.wait_ready()
    current = Publisher(redis_client, StreamKeys(redis_prefix, 1))
    current.publish(request(trace_ids(5)))  # and the current shard is read as usual: 15 spans

    expected = held_by_dead_writer[1] + sum(s for _, s in unread) + sum(s for _, s in orphaned) + 15
    wait_for(lambda: span_counts(fresh_database.admin_dsn) == (expected, expected), 40, 0.1, "every unwritten span stored")
    gone = [legacy, f"{legacy}:backlog", other_layout, f"{other_layout}:backlog"]
    wait_for(lambda: redis_client.exists(*gone) == 0, 30, 0.2, "the drained streams to be deleted")
    assert span_counts(fresh_database.admin_dsn) == (expected, expected)  # the acknowledged two were not written again
    assert "leftover stream drained and deleted" in writer.log()
