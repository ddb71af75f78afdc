"""The storage writer, in the order of the picture: consume → decode → batch → write → ack.

    consume   storage/consumer.py   XREADGROUP, one per shard in flight (new entries; own pending
                                    after a restart; entries lost in transit; stale entries of
                                    dead writers)
              storage/leftovers.py  streams of an older layout, drained, then deleted
              storage/failures.py   redelivered entries that failed MAX_DELIVERIES times → dead letters
    decode    storage/decode.py     protobuf → COPY rows, one span at a time
    batch     storage/batch.py      at most BATCH_SIZE spans and BATCH_MAX_BYTES; large entries in parts
    write     storage/store.py      one transaction; outages retried; refused spans isolated
              storage/isolation.py  (bisection down to the span)
              storage/deadletter.py refused and undecodable spans → the dead-letter stream
    ack       common/stream.py      XACK + XDEL + backlog, in one script, after the commit

One writer process stores all three signals: a StorageWriter per signal (traces, logs,
metrics: storage/signals.py says what differs), each on its own streams with its own
database connection, all sharing the delivery policies above and one shutdown.

`StorageWriter._fill` is the consume → decode → batch half, `StorageWriter._flush` the
write → ack half. They overlap (a queue of one batch between them), so the database never
waits for Python and Python never waits for the database. An entry is acknowledged only
after the transaction holding its last span has committed.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections import deque

import psycopg

from common.logging import configure_logging, get_logger
from common.ops import ops_app, start_site
from common.redis_client import AnyRedis, connect, describe
from common.settings import load
from common.stream import SpanStream, StreamKeys
from storage import metrics
from storage.batch import Batch, Entry, OpenEntry
from storage.consumer import Delivery, Held, StreamConsumer, parse
from storage.decode import Where
from storage.deadletter import DeadLetters
from storage.failures import FailureCounts
from storage.leftovers import Leftovers
from storage.maintenance import maintain_async
from storage.migrations import MigrationError, migrate_up
from storage.settings import StorageSettings
from storage.signals import STORAGES, TRACE_STORAGE, SignalStorage
from storage.store import BACKOFF_MAX, BACKOFF_START, Store, Unexpected

log = get_logger("storage")

CLAIM_EVERY = 5.0
LEFTOVERS_EVERY = 30.0  # seconds between looks for streams of an older layout
READ_COUNT = 100  # entries per stream and read, at most
FIRST_SPANS_PER_ENTRY = 50.0  # a guess until entries have been seen
STATS_EVERY = 5.0
# While a batch has spans and the database writer waits for it, reads block at most this long
# before the batch is handed over (a writer that is free should not wait for FLUSH_INTERVAL).
HANDOVER_POLL = 0.05


class StorageWriter:
    def __init__(self, settings: StorageSettings, redis: AnyRedis, storage: SignalStorage = TRACE_STORAGE,
                 stopping: asyncio.Event | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.storage = storage
        self.stream = SpanStream(redis, StreamKeys(settings.redis_key_prefix, settings.stream_shards, storage.signal.stream))
        self.consumer = StreamConsumer(redis, self.stream, settings.consumer, int(settings.claim_idle * 1000))
        self.failures = FailureCounts(redis, self.stream.keys, settings.max_deliveries)
        self.dead_letters = DeadLetters(redis, self.stream, self.consumer)
        self.leftovers = Leftovers(redis, self.stream.keys)
        self.stopping = stopping if stopping is not None else asyncio.Event()
        self.store = Store(self._connect, rows_of=storage.rows_of, signal=storage.signal.name)
        self._last_claim = 0.0
        self._last_leftover_scan = 0.0
        self._draining: list[str] = []  # leftover streams being read until empty
        self._own_pending_done = False
        self._spans_per_entry = FIRST_SPANS_PER_ENTRY
        self._writer_idle = asyncio.Event()  # set while the database side waits for a batch
        self._held: Held = set()
        self._queue: deque[Delivery] = deque()  # read, not yet opened
        self._open: OpenEntry | None = None  # the entry being taken into batches
        self._last_read_short = False

    @property
    def db_error(self) -> str | None:
        return self.store.db_error

    async def _connect(self) -> object:
        conn = await psycopg.AsyncConnection.connect(
            self.settings.database_app_url, autocommit=True, connect_timeout=5,
            application_name=f"observatory-storage-{self.storage.signal.name}", options="-c TimeZone=UTC",
        )
        return self.storage.writer(conn, self.settings.retention_days)

    # --- the loop ------------------------------------------------------------------
    async def run(self) -> None:
        await self._ensure_group()
        log.info(
            "writer started", consumer=self.settings.consumer, streams=self.stream.keys.streams(),
            redis=describe(self.settings.redis_url),
        )
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
            await self.consumer.close()
            await self.store.close()
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
                if batch:
                    await ready.put(batch)
        finally:
            await ready.put(None)  # the writer drains what it holds, then stops

    # --- consume → decode → batch ----------------------------------------------------
    async def _fill(self) -> Batch:
        """The next batch: read until BATCH_SIZE spans or BATCH_MAX_BYTES, FLUSH_INTERVAL
        after its first span, or, once it holds something, the moment the database side is
        free and the stream has nothing more to give right now (group commit). Under load
        the write of one batch is the time the next one fills, so batches grow to BATCH_SIZE
        and cost least per span; under light load each batch goes out as soon as it can, so
        the lag stays a round trip instead of FLUSH_INTERVAL."""
        batch = Batch()
        max_spans, max_bytes, interval = self.settings.batch_size, self.settings.batch_max_bytes, self.settings.flush_interval
        while not self.stopping.is_set():
            while (self._open is not None or self._queue) and batch.spans < max_spans and batch.size < max_bytes:
                if self._open is None:
                    self._open = await self._open_next()
                    continue
                if self._open.fill(batch, max_spans, max_bytes):
                    self._open = None
                if batch.started is None:
                    batch.started = time.monotonic()
            if batch.spans >= max_spans or batch.size >= max_bytes:
                break
            now = time.monotonic()
            if batch and self._writer_idle.is_set() and self._last_read_short:
                break
            if batch.started is not None and now - batch.started >= interval:
                break
            wait = interval if batch.started is None else min(interval - (now - batch.started), HANDOVER_POLL)
            wanted = self._entries_wanted(batch)
            deliveries = await self._next(max(1, int(wait * 1000)), wanted)
            self._queue.extend(deliveries)
            self._learn_entry_size(deliveries)
            self._last_read_short = len(deliveries) < wanted
        return batch

    async def _open_next(self) -> OpenEntry | None:
        delivery = self._queue.popleft()
        try:
            return OpenEntry(Entry(delivery), self.storage)
        except ValueError as exc:  # UndecodableEntry or a malformed entry: the whole entry
            await self._dead_letter_entry(delivery, str(exc), "undecodable")
        except Exception as exc:  # anything else its content raises: never the process
            await self._dead_letter_entry(delivery, f"entry cannot be decoded ({type(exc).__name__})", "undecodable")
        return None

    def _entries_wanted(self, batch: Batch) -> int:
        """Entries per stream to read so that the batch about reaches BATCH_SIZE spans; past it
        by at most one read's worth of entries (one per shard when entries are large)."""
        missing = max(1, self.settings.batch_size - batch.spans)
        entries = math.ceil(missing / self._spans_per_entry)
        # COUNT applies to each stream of a read: share it over the shards.
        return max(1, min(READ_COUNT, math.ceil(entries / self.settings.stream_shards)))

    def _learn_entry_size(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            self._spans_per_entry = max(1.0, sum(d.spans for d in deliveries) / len(deliveries))

    async def _next(self, block_ms: int, count: int) -> list[Delivery]:
        try:
            deliveries = await self._read(block_ms, count)
        except Exception as exc:  # Redis down: wait, the client reconnects; keep what we hold
            metrics.REDIS_ERRORS.labels("read").inc()
            log.warning("redis read failed", error=str(exc))
            await asyncio.sleep(1.0)
            return []
        # One entry can come both from a read in flight and from the lost-entry sweep: once.
        deliveries = [d for d in deliveries if (d.stream, d.entry_id) not in self._held]
        self._held.update((d.stream, d.entry_id) for d in deliveries)
        return deliveries

    async def _read(self, block_ms: int, count: int) -> list[Delivery]:
        if not self._own_pending_done:
            pending = await self.consumer.read_own_pending(count)
            self._own_pending_done = not pending
            if pending:
                return await self._screen_redelivered(pending)
        if time.monotonic() - self._last_claim > CLAIM_EVERY:
            self._last_claim = time.monotonic()
            await self._mind_leftovers()
            lost = await self.consumer.reclaim_lost(self._held)
            if lost:
                log.warning("re-reading entries whose delivery was lost", entries=len(lost))
                return await self._screen_redelivered(lost)
            claimed = await self.consumer.claim_stale(count, self._held)
            if claimed:
                return await self._screen_redelivered(claimed)
        # Short blocks keep shutdown prompt; the flush deadline bounds them too.
        return await self.consumer.read(count, block_ms=min(block_ms, 1000))

    async def _mind_leftovers(self) -> None:
        """Delete leftover streams that are drained; now and then look for new ones (a
        collector of an older version may still be writing them)."""
        for key in list(self._draining):
            if key not in {k for k, _ in self._held} and await self.leftovers.retire(key):
                self._draining.remove(key)
                self.consumer.remove_stream(key)
                log.info("leftover stream drained and deleted", stream=key)
        if time.monotonic() - self._last_leftover_scan < LEFTOVERS_EVERY:
            return
        self._last_leftover_scan = time.monotonic()
        new = [key for key in await self.leftovers.find() if key not in self._draining]
        if new:
            log.warning("reading streams of an older layout until they are drained", streams=new)
            self._draining += new
            self.consumer.add_streams(new)
            self._own_pending_done = False  # entries this name left pending there come first

    async def _screen_redelivered(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Redelivered entries that already failed MAX_DELIVERIES times go to the dead letters."""
        keep = []
        for delivery, failures in zip(deliveries, await self.failures.of(deliveries)):
            if self.failures.exhausted(failures):
                await self._dead_letter_entry(delivery, f"failed to be written {failures} times", "max_deliveries")
            else:
                keep.append(delivery)
        return keep

    async def _dead_letter_entry(self, delivery: Delivery, error: str, reason: str) -> None:
        self._held.discard((delivery.stream, delivery.entry_id))  # if this fails, the lost-entry sweep retries it
        try:
            await self.dead_letters.entry(delivery, error, reason)
        except Exception as exc:  # Redis down: the entry stays pending and is read again later
            metrics.REDIS_ERRORS.labels("dead_letter").inc()
            log.warning("dead-lettering failed; the entry stays pending", error=str(exc))

    # --- write → ack -----------------------------------------------------------------
    async def _flush(self, batch: Batch) -> None:
        """Store the batch; dead-letter the spans the database refused or that could not be
        decoded; acknowledge the entries completed in it. An entry with a span that failed
        for an unexpected reason is not acknowledged: its failure count goes up and it is
        read again (its stored spans are then skipped as duplicates)."""
        refused = await self.store.write(batch.units) if batch.units else []
        if refused:
            owner = {id(unit): entry for unit, entry in zip(batch.units, batch.owners)}
            for unit, error in refused:
                entry = owner[id(unit)]
                if isinstance(error, Unexpected) and not await self._exhausted(entry):
                    entry.failed = True
                    continue
                await self._dead_letter_span(entry, unit.where, str(error), "rejected")
        for entry, bad in batch.bad:
            await self._dead_letter_span(entry, bad.where, bad.reason, "undecodable")
        if batch.done:
            done = [e.delivery for e in batch.done if not e.failed]
            released = [e.delivery for e in batch.done if e.failed]
            self._held.difference_update((d.stream, d.entry_id) for d in released)  # read again by the lost-entry sweep
            await self._ack(done)

    async def _exhausted(self, entry: Entry) -> bool:
        try:
            count = await self.failures.record(entry.delivery)
        except Exception as exc:  # Redis down: not counted this time; the entry is read again
            metrics.REDIS_ERRORS.labels("failures").inc()
            log.warning("cannot count a failure", error=str(exc))
            return False
        log.warning("entry failed to be written", entry_id=entry.delivery.entry_id.decode(), failures=count)
        return self.failures.exhausted(count)

    async def _dead_letter_span(self, entry: Entry, where: Where, error: str, reason: str) -> None:
        try:
            body = self.storage.item_request(parse(entry.delivery).body, where)
            await self.dead_letters.span(entry.delivery, body, error, reason)
        except Exception as exc:  # Redis down: keep the entry unacknowledged; it is read again
            metrics.REDIS_ERRORS.labels("dead_letter").inc()
            log.warning("dead-lettering a span failed; its entry stays pending", error=str(exc))
            entry.failed = True

    async def _ack(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
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
            self._held.difference_update((d.stream, d.entry_id) for d in deliveries)

    async def touch_held_forever(self) -> None:
        """Keep the entries this writer holds from looking idle, so that no writer claims
        them while their batch waits (a database outage longer than CLAIM_IDLE)."""
        every = max(0.5, min(self.settings.claim_idle / 3, 10.0))
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), every)
            except asyncio.TimeoutError:
                pass
            try:
                if self._held:
                    await self.consumer.touch(set(self._held))
            except Exception as exc:  # Redis down: the read loop reports it
                log.debug("cannot touch held entries", error=str(exc))

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
                if self.storage is TRACE_STORAGE:
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
        return await self.stream.shard_problems()


async def serve(settings: StorageSettings) -> None:
    if settings.run_migrations:
        await asyncio.to_thread(_migrate, settings)
    # Reads block up to a second (XREADGROUP BLOCK): the read timeout must outlast that.
    redis = connect(settings.redis_url, settings.redis_timeout, read_timeout=settings.redis_timeout + 1.5, health_check_interval=30)
    stopping = asyncio.Event()
    writers = [StorageWriter(settings, redis, storage, stopping) for storage in STORAGES]
    writer = writers[0]  # traces: runs maintenance (for every table) and answers readiness's Redis check

    async def check_database() -> str | None:
        for each in writers:
            if each.db_error:
                return f"last {each.storage.signal.name} write failed: {each.db_error}"
        return await writer.check_database()

    ops = await start_site(
        ops_app("storage", {"postgres": check_database, "redis": writer.check_redis}),
        settings.metrics_host, settings.storage_metrics_port,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    background = [asyncio.create_task(writer.maintain_forever())]
    for each in writers:
        background += [asyncio.create_task(each.report_streams_forever()), asyncio.create_task(each.touch_held_forever())]
    runs = [asyncio.create_task(each.run()) for each in writers]
    try:
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({*runs, stop}, return_when=asyncio.FIRST_COMPLETED)
        ended = [run for run in runs if run.done()]
        if ended:  # a loop ended without being asked to: a bug, so exit non-zero
            stop.cancel()
            stopping.set()
            ended[0].result()
            raise RuntimeError("a writer loop ended unexpectedly")
        log.info("stopping: flushing the current batches")
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*runs)), settings.shutdown_timeout)
        except asyncio.TimeoutError:
            log.error("shutdown timed out; unacknowledged entries will be redelivered", timeout=settings.shutdown_timeout)
            for run in runs:
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
