"""Reading the span streams as one consumer of group `storage`.

A delivery is one stream entry with the shard it came from. Entries this consumer left
pending (it restarted under the same name) are read first; entries any consumer left
pending longer than CLAIM_IDLE are claimed with XAUTOCLAIM. Both kinds are redeliveries,
so the caller checks their failure counts (storage/failures.py) against MAX_DELIVERIES.
Entries this writer holds (read, not yet acknowledged) are touched every few seconds
(XCLAIM … JUSTID to itself, which resets their idle time and counts no delivery), so no
writer, this one included, claims an entry whose batch is only waiting for the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from common.stream import GROUP, SpanStream, StreamEntry
from storage import metrics


@dataclass(frozen=True)
class Delivery:
    shard: int
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


class StreamConsumer:
    def __init__(self, redis: Redis, stream: SpanStream, consumer: str, claim_idle_ms: int) -> None:
        self.redis = redis
        self.stream = stream
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self._shard_of = {stream.keys.stream(n).encode(): n for n in range(stream.keys.shards)}
        self._pending_cursor: dict[bytes, bytes] | None = None

    async def read_own_pending(self, count: int) -> list[Delivery]:
        """The next entries delivered to this consumer name before and never acknowledged;
        [] once all have been read. A cursor per stream moves past what was returned: those
        entries stay pending until their batch commits, and reading from 0 again would
        return them again (and count another delivery each time)."""
        if self._pending_cursor is None:
            self._pending_cursor = {key: b"0" for key in self._shard_of}
        if not self._pending_cursor:
            return []
        deliveries = await self._read(dict(self._pending_cursor), count, None)
        last: dict[bytes, bytes] = {}
        for delivery in deliveries:
            last[self.stream.keys.stream(delivery.shard).encode()] = delivery.entry_id
        for key in list(self._pending_cursor):
            if key in last:
                self._pending_cursor[key] = last[key]
            else:
                del self._pending_cursor[key]  # this stream's history is exhausted
        metrics.ENTRIES_READ.labels("pending").inc(len(deliveries))
        return deliveries

    async def read(self, count: int, block_ms: int) -> list[Delivery]:
        deliveries = await self._read(dict.fromkeys(self._shard_of, ">"), count, block_ms)
        metrics.ENTRIES_READ.labels("new").inc(len(deliveries))
        return deliveries

    async def _read(self, streams: dict[bytes, str | bytes], count: int, block_ms: int | None) -> list[Delivery]:
        answer = await self.redis.xreadgroup(GROUP, self.consumer, streams, count=count, block=block_ms)  # type: ignore[arg-type]
        deliveries = []
        for key, entries in answer or []:
            shard = self._shard_of[key]
            for entry_id, fields in entries:
                if fields is None:  # trimmed away while pending; nothing left to store
                    continue
                deliveries.append(Delivery(shard, entry_id, fields, self.stream.keys.count_field))
        return deliveries

    async def reclaim_lost(self, held: set[tuple[int, bytes]]) -> list[Delivery]:
        """Entries in this consumer's own pending list that it does not hold in any batch.

        Redis adds an entry to the pending list when it sends the XREADGROUP reply; a reply
        lost on the way (Redis restarted, the connection dropped or timed out after the
        delivery) leaves entries pending under our name that we never saw. XAUTOCLAIM would
        only take them after CLAIM_IDLE; this finds them at once: XPENDING for our name
        (which does not count as a delivery), minus what we hold, then XCLAIM of the rest.
        Entries delivered under a second ago are left for the next look, so an entry whose
        read is still being handled is never taken twice.
        """
        lost = []
        for key, shard in self._shard_of.items():
            pending = await self.redis.xpending_range(
                key, GROUP, min="-", max="+", count=len(held) + LOST_SCAN, consumername=self.consumer, idle=LOST_IDLE_MS,
            )
            missing = [p["message_id"] for p in pending if (shard, p["message_id"]) not in held]
            if not missing:
                continue
            for entry_id, fields in await self.redis.xclaim(key, GROUP, self.consumer, LOST_IDLE_MS, missing):
                if fields:
                    lost.append(Delivery(shard, entry_id, fields, self.stream.keys.count_field))
        metrics.ENTRIES_READ.labels("lost").inc(len(lost))
        return lost

    async def claim_stale(self, count: int, held: set[tuple[int, bytes]]) -> list[Delivery]:
        """Entries idle past claim_idle in any consumer's pending list, now ours; never one
        this writer already holds (its batch may be waiting out a database outage)."""
        claimed = []
        for key, shard in self._shard_of.items():
            _next, entries, _deleted = await self.redis.xautoclaim(
                key, GROUP, self.consumer, self.claim_idle_ms, start_id="0-0", count=count
            )
            for entry_id, fields in entries:
                if fields and (shard, entry_id) not in held:
                    claimed.append(Delivery(shard, entry_id, fields, self.stream.keys.count_field))
        metrics.CLAIMED.inc(len(claimed))
        metrics.ENTRIES_READ.labels("claimed").inc(len(claimed))
        return claimed

    async def ack(self, deliveries: list[Delivery]) -> None:
        by_shard: dict[int, list[tuple[bytes, int]]] = {}
        for delivery in deliveries:
            by_shard.setdefault(delivery.shard, []).append((delivery.entry_id, delivery.spans))
        for shard, entries in by_shard.items():
            await self.stream.ack(shard, entries)
        metrics.ENTRIES_ACKED.inc(len(deliveries))

    async def touch(self, held: set[tuple[int, bytes]]) -> None:
        """Reset the idle time of the entries this writer holds, so none is claimed away."""
        by_key: dict[bytes, list[bytes]] = {}
        for shard, entry_id in held:
            by_key.setdefault(self.stream.keys.stream(shard).encode(), []).append(entry_id)
        for key, ids in by_key.items():
            await self.redis.xclaim(key, GROUP, self.consumer, 0, ids, justid=True)

    async def group_stats(self) -> dict[str, tuple[int, int]]:
        """(pending, lag) of group `storage` on each stream; lag needs Redis 7."""
        stats = {}
        for key in self._shard_of:
            for group in await self.redis.xinfo_groups(key):
                info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in group.items()}
                name = info.get("name")
                if (name.decode() if isinstance(name, bytes) else name) == GROUP:
                    stats[key.decode()] = (int(info.get("pending") or 0), int(info.get("lag") or 0))
        return stats


def parse(delivery: Delivery) -> StreamEntry:
    return StreamEntry.from_fields(delivery.fields, delivery.count_field)
