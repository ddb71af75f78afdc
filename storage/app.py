"""The storage writer: consume → decode → batch → write → ack, until told to stop.

Reading and decoding the next batch overlaps with writing the current one (a queue of
one batch between them), so the database never waits for Python and Python never waits
for the database. An entry is acknowledged only after the transaction holding its spans
has committed. A database outage keeps the batch and retries it with capped backoff (the
writer reports not-ready meanwhile); an entry that cannot be decoded, or whose data the
database rejects, goes to the dead-letter stream and the group moves on.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from dataclasses import dataclass, field

import psycopg
from redis.asyncio import Redis

from common.logging import configure_logging, get_logger
from common.ops import ops_app, start_site
from common.settings import load
from common.stream import SpanStream, StreamKeys
from storage import metrics
from storage.consumer import Delivery, StreamConsumer, parse
from storage.decode import Rows, UndecodableEntry, decode
from storage.maintenance import maintain_async
from storage.migrations import MigrationError, migrate_up
from storage.settings import StorageSettings
from storage.writer import SpanWriter

log = get_logger("storage")

BACKOFF_START = 0.2
BACKOFF_MAX = 10.0
CLAIM_EVERY = 5.0
READ_COUNT = 100  # entries per stream and read, at most
FIRST_SPANS_PER_ENTRY = 50.0  # a guess until entries have been seen
STATS_EVERY = 5.0
# While a batch has spans and the database writer waits for it, reads block at most this long
# before the batch is handed over (a writer that is free should not wait for FLUSH_INTERVAL).
HANDOVER_POLL = 0.05
# Class 22 (data exception) and 23 (integrity): the rows are at fault, not the database, so
# retrying cannot help. Every other error (connection, privileges, missing table, deadlock)
# is retried with the batch kept: dead-lettering on those would empty the stream into the DLQ.
DATA_ERRORS = (psycopg.DataError, psycopg.IntegrityError)


class DataRejected(Exception):
    """The database refused the rows themselves."""


@dataclass
class Batch:
    deliveries: list[Delivery] = field(default_factory=list)
    rows: Rows = field(default_factory=Rows)
    started: float | None = None

    @property
    def spans(self) -> int:
        return len(self.rows.spans)


class StorageWriter:
    def __init__(self, settings: StorageSettings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.stream = SpanStream(redis, StreamKeys(settings.redis_key_prefix, settings.stream_shards))
        self.consumer = StreamConsumer(redis, self.stream, settings.consumer, int(settings.claim_idle * 1000))
        self.stopping = asyncio.Event()
        self.db_error: str | None = None
        self._conn: psycopg.AsyncConnection | None = None
        self._writer: SpanWriter | None = None
        self._last_claim = 0.0
        self._own_pending_done = False
        self._spans_per_entry = FIRST_SPANS_PER_ENTRY
        self._writer_idle = asyncio.Event()  # set while the database side waits for a batch
        self._held: set[tuple[int, bytes]] = set()  # (shard, entry id) read and not yet acked

    # --- database connection -------------------------------------------------------
    async def _connection(self) -> SpanWriter:
        if self._writer is None or self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.settings.database_app_url, autocommit=True, connect_timeout=5,
                application_name="observatory-storage", options="-c TimeZone=UTC",
            )
            self._writer = SpanWriter(self._conn, self.settings.retention_days)
        return self._writer

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn, self._writer = None, None

    # --- the loop ------------------------------------------------------------------
    async def run(self) -> None:
        await self._ensure_group()
        log.info("writer started", consumer=self.settings.consumer, streams=self.stream.keys.streams())
        ready: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        reader = asyncio.create_task(self._read_batches(ready))
        try:
            while True:
                self._writer_idle.set()
                batch = await ready.get()
                self._writer_idle.clear()
                if batch is None:
                    break
                await self._flush(batch)
            await reader  # re-raises whatever stopped the reader
        finally:
            reader.cancel()
            await self._drop_connection()
        log.info("writer stopped")

    async def _ensure_group(self) -> None:
        backoff = BACKOFF_START
        while not self.stopping.is_set():
            try:
                await self.stream.ensure_group()
                return
            except Exception as exc:  # Redis not up yet
                metrics.REDIS_ERRORS.labels("group").inc()
                log.warning("cannot create the consumer group yet", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _read_batches(self, ready: asyncio.Queue[Batch | None]) -> None:
        try:
            while not self.stopping.is_set():
                batch = await self._fill()
                if batch.deliveries:
                    await ready.put(batch)
        finally:
            await ready.put(None)  # the writer drains what it holds, then stops

    async def _fill(self) -> Batch:
        """The next batch: read until BATCH_SIZE spans, FLUSH_INTERVAL after its first entry, or,
        once it holds something, the moment the database side is free and the stream has
        nothing more to give right now (group commit). Under load the write of one batch is
        the time the next one fills, so batches grow to BATCH_SIZE and cost least per span;
        under light load each batch goes out as soon as it can, so the lag stays a round trip
        instead of FLUSH_INTERVAL."""
        batch = Batch()
        interval = self.settings.flush_interval
        while not self.stopping.is_set() and batch.spans < self.settings.batch_size:
            now = time.monotonic()
            if batch.started is not None and now - batch.started >= interval:
                break
            wait = interval if batch.started is None else min(interval - (now - batch.started), HANDOVER_POLL)
            wanted = self._entries_wanted(batch)
            deliveries = await self._next(max(1, int(wait * 1000)), wanted)
            for delivery in deliveries:
                await self._add(batch, delivery)
            self._learn_entry_size(deliveries)
            if batch.deliveries and batch.started is None:
                batch.started = time.monotonic()
            if batch.deliveries and self._writer_idle.is_set() and len(deliveries) < wanted:
                break
        return batch

    def _entries_wanted(self, batch: Batch) -> int:
        """Entries per stream to read so that the batch about reaches BATCH_SIZE spans; past it
        by at most one read's worth of entries (one per shard when entries are large)."""
        missing = self.settings.batch_size - batch.spans
        entries = math.ceil(missing / self._spans_per_entry)
        # COUNT applies to each stream of a read: share it over the shards.
        return max(1, min(READ_COUNT, math.ceil(entries / self.settings.stream_shards)))

    def _learn_entry_size(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            self._spans_per_entry = max(1.0, sum(d.spans for d in deliveries) / len(deliveries))

    async def _next(self, block_ms: int, count: int) -> list[Delivery]:
        try:
            if not self._own_pending_done:
                pending = await self.consumer.read_own_pending(count)
                self._own_pending_done = not pending
                if pending:
                    return await self._screen_redelivered(pending)
            if time.monotonic() - self._last_claim > CLAIM_EVERY:
                self._last_claim = time.monotonic()
                lost = await self.consumer.reclaim_lost(self._held)
                if lost:
                    log.warning("re-reading entries whose delivery was lost", entries=len(lost))
                    return await self._screen_redelivered(lost)
                claimed = await self.consumer.claim_stale(count)
                if claimed:
                    return await self._screen_redelivered(claimed)
            # Short blocks keep shutdown prompt; the flush deadline bounds them too.
            return await self.consumer.read(count, block_ms=min(block_ms, 1000))
        except Exception as exc:  # Redis down: wait, the client reconnects; keep what we hold
            metrics.REDIS_ERRORS.labels("read").inc()
            log.warning("redis read failed", error=str(exc))
            await asyncio.sleep(1.0)
            return []

    async def _screen_redelivered(self, deliveries: list[Delivery]) -> list[Delivery]:
        counts = await self.consumer.delivery_counts(deliveries)
        keep = []
        for delivery in deliveries:
            times = counts.get(delivery.entry_id, 1)
            if times > self.settings.max_deliveries:
                await self._dead_letter(delivery, f"delivered {times} times without being stored", "max_deliveries")
            else:
                keep.append(delivery)
        return keep

    async def _add(self, batch: Batch, delivery: Delivery) -> None:
        started = time.perf_counter()
        try:
            rows = decode(parse(delivery).body)
        except (ValueError, UndecodableEntry) as exc:
            await self._dead_letter(delivery, str(exc), "undecodable")
            return
        finally:
            metrics.DECODE_SECONDS.observe(time.perf_counter() - started)
        batch.deliveries.append(delivery)
        batch.rows.extend(rows)
        self._held.add((delivery.shard, delivery.entry_id))

    async def _dead_letter(self, delivery: Delivery, error: str, reason: str) -> None:
        log.warning("dead-lettering entry", entry_id=delivery.entry_id.decode(), reason=reason, error=error)
        self._held.discard((delivery.shard, delivery.entry_id))  # if this fails, the lost-entry sweep retries it
        try:
            await self.consumer.dead_letter(delivery, error, reason)
        except Exception as exc:  # Redis down: the entry stays pending and is claimed again later
            metrics.REDIS_ERRORS.labels("dead_letter").inc()
            log.warning("dead-lettering failed; the entry stays pending", error=str(exc))

    # --- writing -------------------------------------------------------------------
    async def _flush(self, batch: Batch) -> None:
        try:
            await self._store(batch.rows, len(batch.deliveries))
        except DataRejected as exc:
            log.warning("batch rejected by the database, writing entries one by one", error=str(exc))
            await self._flush_one_by_one(batch)
            return
        await self._ack(batch.deliveries)

    async def _flush_one_by_one(self, batch: Batch) -> None:
        for delivery in batch.deliveries:
            try:
                await self._store(decode(parse(delivery).body), 1)
            except DataRejected as exc:
                await self._dead_letter(delivery, f"rejected by the database: {exc}", "rejected")
                continue
            await self._ack([delivery])

    async def _store(self, rows: Rows, entries: int) -> None:
        """Write until committed; raises DataRejected when the rows themselves are refused."""
        backoff = BACKOFF_START
        while True:
            try:
                await self._write(rows, entries)
                return
            except DATA_ERRORS as exc:
                metrics.DB_ERRORS.labels("data").inc()
                # The class and SQLSTATE only: the server's message and its DETAIL / CONTEXT
                # quote row values, and dead letters and logs must not echo span content.
                raise DataRejected(f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})") from exc
            except (psycopg.Error, OSError) as exc:
                self.db_error = str(exc).strip() or type(exc).__name__
                metrics.DB_ERRORS.labels("unavailable").inc()
                metrics.WRITE_RETRIES.inc()
                log.warning("database write failed, batch kept for retry", error=self.db_error, retry_in=backoff)
                await self._drop_connection()
                # Keep retrying even while stopping: acknowledged data must not be dropped;
                # the shutdown timeout bounds how long we try.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _write(self, rows: Rows, entries: int) -> None:
        writer = await self._connection()
        started = time.perf_counter()
        inserted = await writer.write(rows)
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SPANS.observe(len(rows.spans))
        metrics.SPANS_WRITTEN.inc(inserted)
        metrics.SPANS_DUPLICATE.inc(len(rows.spans) - inserted)
        self.db_error = None
        log.debug("batch written", spans=len(rows.spans), inserted=inserted, entries=entries)

    async def _ack(self, deliveries: list[Delivery]) -> None:
        if self.settings.ack_delay:
            await asyncio.sleep(self.settings.ack_delay)  # fault injection: a window to kill in
        backoff = BACKOFF_START
        try:
            while True:
                try:
                    await self.consumer.ack(deliveries)
                    return
                except Exception as exc:  # committed but not acked: redelivery is harmless (idempotent)
                    metrics.REDIS_ERRORS.labels("ack").inc()
                    log.warning("ack failed, retrying", error=str(exc))
                    if self.stopping.is_set():
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            self._held.difference_update((d.shard, d.entry_id) for d in deliveries)

    # --- background: maintenance and stream statistics -------------------------------
    async def maintain_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.settings.database_app_url, autocommit=True, connect_timeout=5,
                    application_name="observatory-storage-maintenance",
                ) as conn:
                    summary = await maintain_async(conn, self.settings)
                metrics.MAINTENANCE_RUNS.labels("ok").inc()
                log.info("maintenance done", summary=summary)
                delay = self.settings.maintenance_interval
            except (psycopg.Error, OSError) as exc:
                metrics.MAINTENANCE_RUNS.labels("failed").inc()
                log.warning("maintenance failed; retrying soon", error=str(exc).strip())
                delay = min(60.0, self.settings.maintenance_interval)
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def report_streams_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                for stream, (pending, lag) in (await self.consumer.group_stats()).items():
                    metrics.STREAM_PENDING.labels(stream).set(pending)
                    metrics.STREAM_LAG.labels(stream).set(lag)
                metrics.BACKLOG_SPANS.set(await self.stream.backlog())
            except Exception as exc:  # statistics are best effort; the loop reports Redis errors
                log.debug("stream statistics unavailable", error=str(exc))
            try:
                await asyncio.wait_for(self.stopping.wait(), STATS_EVERY)
            except asyncio.TimeoutError:
                pass

    # --- readiness -----------------------------------------------------------------
    async def check_database(self) -> str | None:
        if self.db_error:
            return f"last write failed: {self.db_error}"
        async with await psycopg.AsyncConnection.connect(self.settings.database_app_url, connect_timeout=2) as conn:
            await conn.execute("SELECT 1")
        return None

    async def check_redis(self) -> str | None:
        await self.redis.ping()
        return None


async def serve(settings: StorageSettings) -> None:
    if settings.run_migrations:
        await asyncio.to_thread(_migrate, settings)
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=settings.redis_timeout + 1.5,
        socket_connect_timeout=settings.redis_timeout, health_check_interval=30,
    )
    writer = StorageWriter(settings, redis)
    ops = await start_site(
        ops_app("storage", {"postgres": writer.check_database, "redis": writer.check_redis}),
        settings.metrics_host, settings.storage_metrics_port,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, writer.stopping.set)
    background = [asyncio.create_task(writer.maintain_forever()), asyncio.create_task(writer.report_streams_forever())]
    run = asyncio.create_task(writer.run())
    try:
        stop = asyncio.create_task(writer.stopping.wait())
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        if run.done():  # the loop ended without being asked to: a bug, so exit non-zero
            stop.cancel()
            run.result()
            raise RuntimeError("the writer loop ended unexpectedly")
        log.info("stopping: flushing the current batch")
        try:
            await asyncio.wait_for(asyncio.shield(run), settings.shutdown_timeout)
        except asyncio.TimeoutError:
            log.error("shutdown timed out; unacknowledged entries will be redelivered", timeout=settings.shutdown_timeout)
            run.cancel()
    finally:
        for task in background:
            task.cancel()
        await ops.cleanup()
        await redis.aclose()


def _migrate(settings: StorageSettings) -> None:
    """The same `migrate up` as the CLI's: database, migrations, role passwords.

    A failure ends the process with the reason in one log line (exit 1): starting to write
    into a schema the migrations could not bring up to date would only fail later.
    """
    try:
        outcome = migrate_up(settings, on_wait=lambda holder: log.info("waiting for the migration lock", holder=holder))
    except (MigrationError, psycopg.Error) as exc:
        log.error("migrations failed; not starting (RUN_MIGRATIONS=true)", error=str(exc).strip())
        raise SystemExit(1) from None
    log.info(
        "migrations applied", created_database=outcome.created_database, count=len(outcome.applied),
        versions=[m.version for m in outcome.applied], passwords_set_for=outcome.roles,
    )


def main() -> None:
    settings = load(StorageSettings)
    configure_logging(settings.log_level, settings.log_format, "storage")
    asyncio.run(serve(settings))
