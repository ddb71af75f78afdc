"""The last stage: XADD the batch to its signal's stream(s), or refuse it with a retryable error.

With STREAM_SHARDS > 1 the request is split so that each trace's spans go to the shard
of its trace id; log records follow their trace id the same way (so a trace's spans and
records share a shard number), and a metrics request goes whole to the next shard in turn.
Before a batch is processed (`admit`), the backlog of the signal's items not yet written is
compared with MAX_QUEUE_SIZE: over it, the batch is refused (Overloaded) instead of growing
Redis, and before the pipeline spends CPU on it. Each signal has its own backlog, so a
flood of one signal cannot refuse the others.
"""

from __future__ import annotations

import asyncio
import time

from typing import Any

from redis.exceptions import RedisError

from collector.pipeline import Batch
from common.signals import LOGS, METRICS, TRACES
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
        self._turn = 0  # the next shard of a metrics request
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
                f"backlog of {self._backlog} {self.stream.keys.kind.item}s not yet stored has reached MAX_QUEUE_SIZE={self.max_queue_size}",
                self.retry_after,
            )

    async def admit(self) -> None:
        """Refuse now (Overloaded / Unavailable) if the stream cannot take more items."""
        try:
            await self._check_backlog()
        except RedisError as exc:
            raise Unavailable(f"{self.stream.keys.kind.item} stream unavailable: {exc}", self.retry_after) from exc

    async def export(self, batch: Batch) -> None:
        try:
            # Checked again (from the 50 ms cache) for callers that publish without
            # admit(), such as tail sampling releasing spans it held.
            await self._check_backlog()
            signal = self.stream.keys.kind
            entries = {
                shard: StreamEntry(body=request.SerializeToString(), received_ns=batch.received_ns, spans=signal.count(request))
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
            raise Unavailable(f"{self.stream.keys.kind.item} stream unavailable: {exc}", self.retry_after) from exc

    def _by_shard(self, request: Any) -> dict[int, Any]:
        keys = self.stream.keys
        if keys.shards == 1:
            return {0: request}
        if keys.kind is METRICS:
            self._turn = (self._turn + 1) % keys.shards
            return {self._turn: request}
        resources, scopes, items = _LAYOUT[keys.kind.name]
        parts: dict[int, Any] = {}
        for resource_group in getattr(request, resources):
            for scope_group in getattr(resource_group, scopes):
                by_shard: dict[int, list] = {}
                for item in getattr(scope_group, items):
                    by_shard.setdefault(keys.shard_of(item.trace_id), []).append(item)
                for shard, chosen in by_shard.items():
                    part = parts.setdefault(shard, keys.kind.request_type())
                    target_resource = getattr(part, resources).add(schema_url=resource_group.schema_url)
                    target_resource.resource.CopyFrom(resource_group.resource)
                    target_scope = getattr(target_resource, scopes).add(schema_url=scope_group.schema_url)
                    target_scope.scope.CopyFrom(scope_group.scope)
                    getattr(target_scope, items).extend(chosen)
        return parts


# Where each trace-keyed signal keeps its items: request → resources → scopes → items.
_LAYOUT = {
    TRACES.name: ("resource_spans", "scope_spans", "spans"),
    LOGS.name: ("resource_logs", "scope_logs", "log_records"),
}
