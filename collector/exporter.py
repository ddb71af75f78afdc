"""The last stage: XADD the batch to the span stream(s), or refuse it with a retryable error.

With STREAM_SHARDS > 1 the request is split so that each trace's spans go to the shard
of its trace id. Before a batch is processed (`admit`), the backlog of spans not yet
written is compared with MAX_QUEUE_SIZE: over it, the batch is refused (Overloaded)
instead of growing Redis, and before the pipeline spends CPU on it.
"""

from __future__ import annotations

import asyncio
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from redis.exceptions import RedisError

from collector.pipeline import SpanBatch
from common.stream import SpanStream, StreamEntry

BACKLOG_CACHE_SECONDS = 0.05
# How long a refusal for lack of memory keeps /ready at 503 without a successful publish
# since; long enough for exporters' retries to show whether Redis has room again.
OOM_REPORT_SECONDS = 15.0


class Refused(Exception):
    """The batch was not published; the client should retry after `retry_after` seconds."""

    reason = "refused"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Refused):
    reason = "overloaded"


class Unavailable(Refused):
    reason = "unavailable"


class StreamExporter:
    def __init__(self, stream: SpanStream, max_queue_size: int, retry_after: int) -> None:
        self.stream = stream
        self.max_queue_size = max_queue_size
        self.retry_after = retry_after
        self._backlog = 0
        self._backlog_at = 0.0
        self._oom: str | None = None  # Redis refused the last publish for lack of memory
        self._oom_at = 0.0

    def refusing(self) -> str | None:
        """Why Redis refuses publishes right now, or None (for /ready)."""
        if self._oom is not None and time.monotonic() - self._oom_at < OOM_REPORT_SECONDS:
            return self._oom
        return None

    async def _check_backlog(self) -> None:
        now = time.monotonic()
        if now - self._backlog_at > BACKLOG_CACHE_SECONDS:
            self._backlog = await self.stream.backlog()
            self._backlog_at = now
        if self._backlog >= self.max_queue_size:
            raise Overloaded(
                f"backlog of {self._backlog} spans not yet stored has reached MAX_QUEUE_SIZE={self.max_queue_size}",
                self.retry_after,
            )

    async def admit(self) -> None:
        """Refuse now (Overloaded / Unavailable) if the stream cannot take more spans."""
        try:
            await self._check_backlog()
        except RedisError as exc:
            raise Unavailable(f"span stream unavailable: {exc}", self.retry_after) from exc

    async def export(self, batch: SpanBatch) -> None:
        try:
            # Checked again (from the 50 ms cache) for callers that publish without
            # admit(), such as tail sampling releasing spans it held.
            await self._check_backlog()
            entries = {
                shard: StreamEntry(body=request.SerializeToString(), received_ns=batch.received_ns,
                                   spans=sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans))
                for shard, request in self._by_shard(batch.request).items()
            }
            # The shards' entries go out at once: on a cluster they are on different masters,
            # and with REDIS_WAIT_REPLICAS each waits for its own replica.
            outcomes = await asyncio.gather(*(self.stream.publish(shard, entry) for shard, entry in entries.items()),
                                            return_exceptions=True)
            for entry, outcome in zip(entries.values(), outcomes):
                if not isinstance(outcome, BaseException):
                    self._backlog += entry.spans  # counted per entry: a failure part-way leaves the rest out
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            self._oom = None
        except RedisError as exc:
            if "maxmemory" in str(exc) or "OOM" in str(exc):
                self._oom, self._oom_at = f"redis refuses writes: out of memory ({exc})", time.monotonic()
            raise Unavailable(f"span stream unavailable: {exc}", self.retry_after) from exc

    def _by_shard(self, request: ExportTraceServiceRequest) -> dict[int, ExportTraceServiceRequest]:
        keys = self.stream.keys
        if keys.shards == 1:
            return {0: request}
        parts: dict[int, ExportTraceServiceRequest] = {}
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                by_shard: dict[int, list] = {}
                for span in scope_spans.spans:
                    by_shard.setdefault(keys.shard_of(span.trace_id), []).append(span)
                for shard, spans in by_shard.items():
                    part = parts.setdefault(shard, ExportTraceServiceRequest())
                    target_rs = part.resource_spans.add(schema_url=resource_spans.schema_url)
                    target_rs.resource.CopyFrom(resource_spans.resource)
                    target_ss = target_rs.scope_spans.add(schema_url=scope_spans.schema_url)
                    target_ss.scope.CopyFrom(scope_spans.scope)
                    target_ss.spans.extend(spans)
        return parts
