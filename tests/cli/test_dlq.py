"""`observatory dlq`: list, show, replay into a running writer, purge; and what bad input gets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cli.loadgen import Profile, TraceFactory, plan
from common.stream import SpanStream, StreamEntry, StreamKeys
from storage.consumer import StreamConsumer
from storage.deadletter import DeadLetters
from tests.cli.conftest import Cli, query
from tests.conftest import REDIS_URL, Database
from tests.support import ServiceProcess, free_port, service_env, wait_for


def _request_body(spans: int, seed: int) -> bytes:
    profile = Profile(count=spans, end_ns=time.time_ns() - 3_600 * 10**9, seed=seed, batch_spans=spans)
    (batch,) = list(TraceFactory(profile).batches(plan(profile)))
    return batch.body()


async def _dead_letter(prefix: str, body: bytes, spans: int, error: str) -> None:
    """Publish an entry and dead-letter it the way the writer does (storage.deadletter)."""
    redis = Redis.from_url(REDIS_URL)
    try:
        stream = SpanStream(redis, StreamKeys(prefix))
        await stream.ensure_group()
        await stream.publish(0, StreamEntry(body=body, spans=spans, received_ns=time.time_ns()))
        consumer = StreamConsumer(redis, stream, "test-writer", 60_000)
        (delivery,) = await consumer.read(count=1, block_ms=1000)
        await DeadLetters(redis, stream, consumer).entry(delivery, error, "test")
    finally:
        await redis.aclose()


def dead_letter(prefix: str, spans: int = 30, seed: int = 1, body: bytes | None = None,
                error: str = "delivered 6 times without being stored") -> None:
    asyncio.run(_dead_letter(prefix, body if body is not None else _request_body(spans, seed), spans, error))


def dlq_ids(cli: Cli, redis_client) -> list[str]:  # type: ignore[no-untyped-def]
    return [i.decode() for i, _ in redis_client.xrange(f"{cli.env['REDIS_KEY_PREFIX']}otlp:spans:dlq")]


def test_list_and_show_describe_each_dead_letter(cli: Cli, redis_client) -> None:  # type: ignore[no-untyped-def]
    prefix = cli.env["REDIS_KEY_PREFIX"]
    assert cli("dlq", "list").out.startswith("no dead letters")
    dead_letter(prefix, spans=12)
    (entry_id,) = dlq_ids(cli, redis_client)
    listing = cli("dlq", "list")
    assert listing.code == 0
    assert entry_id in listing.out and "otlp:spans:{0}" in listing.out and "delivered 6 times" in listing.out
    assert "1 dead letter(s)" in listing.out
    shown = cli("dlq", "show", entry_id)
    assert shown.code == 0
    assert f"{prefix}otlp:spans:{{0}} entry" in shown.out and "12 spans" in shown.out
    assert "services:" in shown.out and "span names:" in shown.out and "POST /v1/" in shown.out


def test_replay_puts_the_entry_back_and_a_running_writer_stores_it(
    cli: Cli, fresh_database: Database, redis_client, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    prefix = cli.env["REDIS_KEY_PREFIX"]
    dead_letter(prefix, spans=25)
    assert redis_client.get(f"{prefix}otlp:spans:{{0}}:backlog") == b"0"  # dead-lettering acknowledged it
    (entry_id,) = dlq_ids(cli, redis_client)
    port = free_port()
    writer = ServiceProcess("storage", service_env(cli.env, STORAGE_METRICS_PORT=str(port), METRICS_HOST="127.0.0.1",
                                                   FLUSH_INTERVAL="0.2"), port, tmp_path / "storage.log")
    writer.start()
    try:
        writer.wait_ready()
        assert query(fresh_database.admin_dsn, "SELECT count(*) FROM spans") == [(0,)]
        replayed = cli("dlq", "replay", entry_id)
        assert replayed.code == 0, replayed.err
        assert f"replayed {entry_id} (25 spans) as {prefix}otlp:spans:{{0}}" in replayed.out
        assert dlq_ids(cli, redis_client) == []
        wait_for(lambda: query(fresh_database.admin_dsn, "SELECT count(*) FROM spans") == [(25,)], 20, 0.1, "replayed spans stored")
        # The backlog counted the replayed entry and the writer's acknowledgement took it off again.
        wait_for(lambda: redis_client.get(f"{prefix}otlp:spans:{{0}}:backlog") == b"0", 10, 0.1, "backlog back to 0")
    finally:
        writer.stop()


def test_replay_all_moves_every_entry_a_page_at_a_time_and_counts_the_backlog(
    cli: Cli, redis_client, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from cli import dlq

    monkeypatch.setattr(dlq, "REPLAY_PAGE", 2)
    prefix = cli.env["REDIS_KEY_PREFIX"]
    for seed in (1, 2, 3, 4, 5):
        dead_letter(prefix, spans=10, seed=seed)
    outcome = cli("dlq", "replay", "--all")
    assert outcome.code == 0 and "replayed 5 dead letter(s)" in outcome.out
    assert dlq_ids(cli, redis_client) == []
    assert redis_client.xlen(f"{prefix}otlp:spans:{{0}}") == 5  # the five replays; the acknowledged originals left the stream
    assert redis_client.get(f"{prefix}otlp:spans:{{0}}:backlog") == b"50"


def test_replay_skips_entries_that_would_fail_again(cli: Cli, redis_client) -> None:  # type: ignore[no-untyped-def]
    prefix = cli.env["REDIS_KEY_PREFIX"]
    dead_letter(prefix, spans=3, body=b"\xff\x00 not protobuf", error="body is not an ExportTraceServiceRequest")
    dead_letter(prefix, spans=10)
    bad, good = dlq_ids(cli, redis_client)
    outcome = cli("dlq", "replay", "--all")
    assert outcome.code == 1
    assert "replayed 1 dead letter(s), skipped 1" in outcome.out and bad in outcome.out
    assert "observatory dlq purge --confirm ID" in outcome.err
    assert dlq_ids(cli, redis_client) == [bad]


def test_purge_needs_confirm_and_then_deletes(cli: Cli, redis_client) -> None:  # type: ignore[no-untyped-def]
    prefix = cli.env["REDIS_KEY_PREFIX"]
    for seed in (1, 2):
        dead_letter(prefix, spans=5, seed=seed)
    first, second = dlq_ids(cli, redis_client)
    refused = cli("dlq", "purge")
    assert refused.code == 2 and "would delete 2 dead letter(s)" in refused.err
    assert len(dlq_ids(cli, redis_client)) == 2
    assert cli("dlq", "purge", "--confirm", first).out.strip().startswith("deleted 1")
    assert dlq_ids(cli, redis_client) == [second]
    assert "deleted 1" in cli("dlq", "purge", "--confirm").out
    assert dlq_ids(cli, redis_client) == []


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("dlq", "show", "banana"), 2, "is not a stream entry id"),
        (("dlq", "replay"), 2, "one or more IDs, or --all"),
        (("dlq", "replay", "--all", "1-0"), 2, "one or more IDs, or --all"),
        (("dlq", "show", "1-0"), 1, "no dead letter 1-0"),
        (("dlq", "replay", "1-0"), 1, "nothing was replayed"),
    ],
)
def test_bad_dlq_input_gets_a_clear_answer(cli: Cli, argv: tuple[str, ...], code: int, message: str) -> None:
    outcome = cli(*argv)
    assert outcome.code == code and message in outcome.err


def test_redis_down_is_a_failure_naming_the_server_not_the_password(cli: Cli) -> None:
    port = free_port()
    outcome = cli("dlq", "list", REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0", REDIS_TIMEOUT="1")
    assert outcome.code == 1 and f"127.0.0.1:{port}" in outcome.err and "hunter2" not in outcome.err
