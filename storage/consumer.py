"""Reading the span streams as one consumer of group `storage`.

A delivery is one stream entry with the stream key it came from. Every stream is read with its
own XREADGROUP (one per shard, in flight concurrently): on a Redis Cluster the shards live in
different slots, often on different masters, and one command may name keys of one slot only.
The consumer group divides the entries among the writers: every writer reads every shard, each
entry goes to one of them, and a writer that joins takes its part at once.

Besides the shards of STREAM_SHARDS, the consumer reads streams left over from another layout
(storage/leftovers.py) until they are drained.

Entries this consumer left pending (it restarted under the same name) are read first; entries
any consumer left pending longer than CLAIM_IDLE are claimed with XAUTOCLAIM. Both kinds are
redeliveries, so the caller checks their failure counts (storage/failures.py) against
MAX_DELIVERIES. Entries this writer holds (read, not yet acknowledged) are touched every few
seconds (XCLAIM … JUSTID to itself, which resets their idle time and counts no delivery), so no
writer, this one included, claims an entry whose batch is only waiting for the database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from common.logging import get_logger
from common.redis_client import AnyRedis
from common.stream import GROUP, SpanStream, StreamEntry
from storage import metrics

log = get_logger("storage")

Held = set[tuple[str, bytes]]  # (stream key, entry id) read and not yet acknowledged


@dataclass(frozen=True)
class Delivery:
    stream: str
    entry_id: bytes
    fields: dict[bytes, bytes]
    count_field: str = "spans"  # the field holding the entry's item count (common/signals.py)

    @property
    def spans(self) -> int:
        """The entry's item count: spans, log records or data points."""
        try:
            return int(self.fields.get(self.count_field.encode(), b"0"))
        except ValueError:
            return 0


LOST_IDLE_MS = 1000
LOST_SCAN = 100  # pending entries looked at beyond those held
READ_BLOCK_MS = 1000  # one stream's read blocks this long at most (under the socket timeout)
RETRY_SHARD_AFTER = 1.0  # seconds before a stream whose read failed is read again


class StreamConsumer:
    def __init__(self, redis: AnyRedis, stream: SpanStream, consumer: str, claim_idle_ms: int) -> None:
        self.redis = redis
        self.stream = stream
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.streams: list[str] = stream.keys.streams()  # the shards, then leftovers being drained
        self._pending_cursor: dict[str, bytes] | None = None
        self._reads: dict[str, asyncio.Task[list[Delivery]]] = {}  # one XREADGROUP in flight per stream
        self._retry_at: dict[str, float] = {}

    def add_streams(self, keys: list[str]) -> None:
        """Read these too (leftovers), their own pending entries included."""
        for key in keys:
            if key not in self.streams:
                self.streams.append(key)
                if self._pending_cursor is not None:
                    self._pending_cursor[key] = b"0"

    def remove_stream(self, key: str) -> None:
        if key in self.streams:
            self.streams.remove(key)
        task = self._reads.pop(key, None)
        if task is not None:
            task.cancel()

    async def read_own_pending(self, count: int) -> list[Delivery]:
        """The next entries delivered to this consumer name before and never acknowledged;
        [] once all have been read. A cursor per stream moves past what was returned: those
        entries stay pending until their batch commits, and reading from 0 again would
        return them again (and count another delivery each time)."""
        if self._pending_cursor is None:
            self._pending_cursor = dict.fromkeys(self.streams, b"0")
        if not self._pending_cursor:
            return []
        cursors = dict(self._pending_cursor)
        answers = await asyncio.gather(*(self._read_one(key, cursor, count, None) for key, cursor in cursors.items()))
        deliveries: list[Delivery] = []
        for key, found in zip(cursors, answers):
            if found:
                self._pending_cursor[key] = found[-1].entry_id
                deliveries += found
            else:
                self._pending_cursor.pop(key, None)  # this stream's history is exhausted
        metrics.ENTRIES_READ.labels("pending").inc(len(deliveries))
        return deliveries

    async def read(self, count: int, block_ms: int) -> list[Delivery]:
        """New entries of any stream: waits up to `block_ms` for the first stream to answer.
        Reads still blocked then stay in flight and are collected by a later call, so an entry
        on one shard never waits for an empty shard's block to run out."""
        now = time.monotonic()
        for key in self.streams:
            if key not in self._reads and self._retry_at.get(key, 0.0) <= now:
                self._reads[key] = asyncio.create_task(self._read_one(key, ">", count, READ_BLOCK_MS))
        if not self._reads:  # every stream failed a moment ago
            await asyncio.sleep(block_ms / 1000)
            return []
        await asyncio.wait(list(self._reads.values()), timeout=block_ms / 1000, return_when=asyncio.FIRST_COMPLETED)
        deliveries: list[Delivery] = []
        failures: dict[str, BaseException] = {}
        for key, task in list(self._reads.items()):
            if not task.done():
                continue
            del self._reads[key]
            error = task.exception()
            if error is None:
                deliveries += task.result()
            else:
                self._retry_at[key] = time.monotonic() + RETRY_SHARD_AFTER
                failures[key] = error
        if failures and not deliveries and not self._reads:
            raise next(iter(failures.values()))  # nothing answers: the caller reports it and backs off
        for key, error in failures.items():  # one shard's server is down, the others are read on
            metrics.REDIS_ERRORS.labels("read").inc()
            log.warning("redis read failed", stream=key, error=str(error))
        metrics.ENTRIES_READ.labels("new").inc(len(deliveries))
        return deliveries

    async def close(self) -> None:
        """Stop the reads in flight (what they had delivered stays pending: claimed later)."""
        for task in self._reads.values():
            task.cancel()
        await asyncio.gather(*self._reads.values(), return_exceptions=True)
        self._reads.clear()

    async def _read_one(self, key: str, cursor: str | bytes, count: int, block_ms: int | None) -> list[Delivery]:
        answer = await self.redis.xreadgroup(GROUP, self.consumer, {key: cursor}, count=count, block=block_ms)
        deliveries = []
        for _key, entries in answer or []:
            for entry_id, fields in entries:
                if fields is None:  # deleted while pending; nothing left to store
                    continue
                deliveries.append(Delivery(key, entry_id, fields, self.stream.keys.count_field))
        return deliveries

    async def reclaim_lost(self, held: Held) -> list[Delivery]:
        """Entries in this consumer's own pending list that it does not hold in any batch.

        Redis adds an entry to the pending list when it sends the XREADGROUP reply; a reply
        lost on the way (Redis restarted, the connection dropped or timed out after the
        delivery, a read cancelled at shutdown) leaves entries pending under our name that we
        never saw. XAUTOCLAIM would only take them after CLAIM_IDLE; this finds them at once:
        XPENDING for our name (which does not count as a delivery), minus what we hold, then
        XCLAIM of the rest. Entries delivered under a second ago are left for the next look.
        A read in flight may still bring an entry this returns (its reply waited in the
        socket while the loop was busy): the caller drops deliveries it already holds, and a
        later duplicate is stored once (the write is idempotent, the second XACK counts 0).
        """
        lost = []
        for key in list(self.streams):
            pending = await self.redis.xpending_range(
                key, GROUP, min="-", max="+", count=len(held) + LOST_SCAN, consumername=self.consumer, idle=LOST_IDLE_MS,
            )
            missing = [p["message_id"] for p in pending if (key, p["message_id"]) not in held]
            if not missing:
                continue
            for entry_id, fields in await self.redis.xclaim(key, GROUP, self.consumer, LOST_IDLE_MS, missing):
                if fields:
                    lost.append(Delivery(key, entry_id, fields, self.stream.keys.count_field))
        metrics.ENTRIES_READ.labels("lost").inc(len(lost))
        return lost

    async def claim_stale(self, count: int, held: Held) -> list[Delivery]:
        """Entries idle past claim_idle in any consumer's pending list, now ours; never one
        this writer already holds (its batch may be waiting out a database outage)."""
        claimed = []
        for key in list(self.streams):
            _next, entries, _deleted = await self.redis.xautoclaim(
                key, GROUP, self.consumer, self.claim_idle_ms, start_id="0-0", count=count
            )
            for entry_id, fields in entries:
                if fields and (key, entry_id) not in held:
                    claimed.append(Delivery(key, entry_id, fields, self.stream.keys.count_field))
        metrics.CLAIMED.inc(len(claimed))
        metrics.ENTRIES_READ.labels("claimed").inc(len(claimed))
        return claimed

    async def ack(self, deliveries: list[Delivery]) -> None:
        by_stream: dict[str, list[tuple[bytes, int]]] = {}
        for delivery in deliveries:
            by_stream.setdefault(delivery.stream, []).append((delivery.entry_id, delivery.spans))
        for key, entries in by_stream.items():
            await self.stream.ack_stream(key, entries)
        metrics.ENTRIES_ACKED.inc(len(deliveries))

    async def touch(self, held: Held) -> None:
        """Reset the idle time of the entries this writer holds, so none is claimed away."""
        by_key: dict[str, list[bytes]] = {}
        for key, entry_id in held:
            by_key.setdefault(key, []).append(entry_id)
        for key, ids in by_key.items():
            await self.redis.xclaim(key, GROUP, self.consumer, 0, ids, justid=True)

    async def group_stats(self) -> dict[str, tuple[int, int]]:
        """(pending, lag) of group `storage` on each stream; lag needs Redis 7."""
        stats = {}
        for key in list(self.streams):
            for group in await self.redis.xinfo_groups(key):
                info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in group.items()}
                name = info.get("name")
                if (name.decode() if isinstance(name, bytes) else name) == GROUP:
                    stats[key] = (int(info.get("pending") or 0), int(info.get("lag") or 0))
        return stats


def parse(delivery: Delivery) -> StreamEntry:
    return StreamEntry.from_fields(delivery.fields, delivery.count_field)
