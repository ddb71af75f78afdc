"""The dead-letter stream: whole entries that cannot be decoded, and single spans the
database refuses.

A dead letter keeps what is needed to replay it (`observatory dlq replay`): the fields of a
stream entry (`v`, `body`, `spans`, `received_ns`), plus `error`, `stream` and `entry_id`.
A span's dead letter has a body holding only that span, with its resource and scope. The
error names what is wrong (an SQLSTATE, a field, an exception type), never the content.
"""

from __future__ import annotations

from common.logging import get_logger
from common.redis_client import AnyRedis
from common.stream import VERSION, SpanStream
from storage import metrics
from storage.consumer import Delivery, StreamConsumer

log = get_logger("storage")


class DeadLetters:
    def __init__(self, redis: AnyRedis, stream: SpanStream, consumer: StreamConsumer) -> None:
        self.redis = redis
        self.stream = stream
        self.consumer = consumer

    async def entry(self, delivery: Delivery, error: str, reason: str) -> None:
        """Copy the whole entry with the error, then acknowledge it (a crash between the
        two leaves it pending: dead-lettered again later, never lost)."""
        log.warning("dead-lettering entry", entry_id=delivery.entry_id.decode(), reason=reason, error=error)
        await self.redis.xadd(self.stream.keys.dlq, self._fields(delivery, dict(delivery.fields), error))  # type: ignore[arg-type]
        await self.consumer.ack([delivery])
        metrics.DEAD_LETTERS.labels(reason).inc()

    async def span(self, delivery: Delivery, body: bytes, error: str, reason: str) -> None:
        """One span of an entry; the entry itself is acknowledged with the rest of its spans."""
        log.warning("dead-lettering span", entry_id=delivery.entry_id.decode(), reason=reason, error=error)
        fields: dict[bytes, bytes] = {b"v": str(VERSION).encode(), b"body": body, delivery.count_field.encode(): b"1",
                                      b"received_ns": delivery.fields.get(b"received_ns", b"0")}
        await self.redis.xadd(self.stream.keys.dlq, self._fields(delivery, fields, error))  # type: ignore[arg-type]
        metrics.DEAD_LETTERS.labels(reason).inc()

    def _fields(self, delivery: Delivery, fields: dict[bytes, bytes], error: str) -> dict[bytes, bytes]:
        fields[b"error"] = error.encode()
        fields[b"stream"] = delivery.stream.encode()
        fields[b"entry_id"] = delivery.entry_id
        return fields
