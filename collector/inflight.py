"""A per-process budget of request bytes in flight: the collector's memory limiter.

Every request holds its decompressed body size from just after it is read until it is
answered; decode, the stages and the wait for XADD all happen inside that window, and the
decoded messages take about three times the body. A request that would take the total over
COLLECTOR_MAX_INFLIGHT_BYTES is refused at once with the retryable overload answer (429 or
RESOURCE_EXHAUSTED with RetryInfo), before it is decoded, so a burst of large requests
cannot grow the process without bound the way unbounded concurrency would. A request is
always let through when nothing else is in flight, so one body up to the size limits is
never refused for its size alone. The OpenTelemetry Collector's memory_limiter answers the
same way but measures the heap after the fact; counting bytes on the way in refuses
before the memory is spent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from collector import metrics
from collector.exporter import Overloaded


class MemoryLimited(Overloaded):
    reason = "memory_limit"


class InflightBudget:
    def __init__(self, limit: int | None, retry_after: int = 1) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.used = 0

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Hold `size` bytes until the block ends; raises MemoryLimited when they do not fit."""
        if self.limit is not None and self.used and self.used + size > self.limit:
            raise MemoryLimited(
                f"collector busy: {self.used} bytes of requests in flight, {size} more would pass "
                f"COLLECTOR_MAX_INFLIGHT_BYTES ({self.limit}); retry later", self.retry_after)
        self.used += size
        metrics.INFLIGHT_BYTES.inc(size)
        try:
            yield
        finally:
            self.used -= size
            metrics.INFLIGHT_BYTES.dec(size)
