"""Reading the span streams as one consumer of group `storage`.

A delivery is one stream entry with the shard it came from. Entries this consumer left
pending (it restarted under the same name) are read first; entries another consumer
left pending longer than CLAIM_IDLE are claimed with XAUTOCLAIM.
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

    @property
    def spans(self) -> int:
        try:
            return int(self.fields.get(b"spans", b"0"))
        except ValueError:
            return 0


class StreamConsumer:
    def __init__(self, redis: Redis, stream: SpanStream, consumer: str, claim_idle_ms: int) -> None:
        self.redis = redis
        self.stream = stream
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self._shard_of = {stream.keys.stream(n).encode(): n for n in range(stream.keys.shards)}
        self._own_pending_done = False

    async def read(self, count: int, block_ms: int) -> list[Delivery]:
        if not self._own_pending_done:
            deliveries = await self._read({k: "0" for k in self._shard_of}, count, None)
            if deliveries:
                return deliveries
            self._own_pending_done = True
        return await self._read({k: ">" for k in self._shard_of}, count, block_ms)

    async def _read(self, streams: dict[bytes, str], count: int, block_ms: int | None) -> list[Delivery]:
        answer = await self.redis.xreadgroup(GROUP, self.consumer, streams, count=count, block=block_ms)  # type: ignore[arg-type]
        deliveries = []
        for key, entries in answer or []:
            shard = self._shard_of[key]
            for entry_id, fields in entries:
                if fields is None:  # trimmed away while pending; nothing left to store
                    continue
                deliveries.append(Delivery(shard, entry_id, fields))
        return deliveries

    async def claim_stale(self, count: int) -> list[Delivery]:
        """Entries idle past claim_idle in any consumer's pending list, now ours."""
        claimed = []
        for key, shard in self._shard_of.items():
            _next, entries, _deleted = await self.redis.xautoclaim(
                key, GROUP, self.consumer, self.claim_idle_ms, start_id="0-0", count=count
            )
            for entry_id, fields in entries:
                if fields:
                    claimed.append(Delivery(shard, entry_id, fields))
        metrics.CLAIMED.inc(len(claimed))
        return claimed

    async def delivery_counts(self, deliveries: list[Delivery]) -> dict[bytes, int]:
        counts: dict[bytes, int] = {}
        for delivery in deliveries:
            info = await self.redis.xpending_range(
                self.stream.keys.stream(delivery.shard), GROUP, min=delivery.entry_id, max=delivery.entry_id, count=1
            )
            if info:
                counts[delivery.entry_id] = int(info[0]["times_delivered"])
        return counts

    async def ack(self, deliveries: list[Delivery]) -> None:
        by_shard: dict[int, list[tuple[bytes, int]]] = {}
        for delivery in deliveries:
            by_shard.setdefault(delivery.shard, []).append((delivery.entry_id, delivery.spans))
        for shard, entries in by_shard.items():
            await self.stream.ack(shard, entries)
        metrics.ENTRIES_ACKED.inc(len(deliveries))

    async def dead_letter(self, delivery: Delivery, error: str, reason: str) -> None:
        """Copy the entry to the dead-letter stream with the error, then acknowledge it."""
        fields = dict(delivery.fields)
        fields[b"error"] = error.encode()
        fields[b"stream"] = self.stream.keys.stream(delivery.shard).encode()
        fields[b"entry_id"] = delivery.entry_id
        await self.redis.xadd(self.stream.keys.dlq, fields)  # type: ignore[arg-type]
        await self.ack([delivery])
        metrics.DEAD_LETTERS.labels(reason).inc()


def parse(delivery: Delivery) -> StreamEntry:
    return StreamEntry.from_fields(delivery.fields)
