"""The Redis stream contract between the collector and the storage writer (version 1).

One entry per processed export request on `otlp:spans:{shard}` with the fields
`v` (format version), `body` (a serialized ExportTraceServiceRequest), `spans` (its span
count) and `received_ns`. Consumer group `storage`. Dead letters go to `otlp:spans:dlq`
with the original fields plus `error` and `stream`.

An acknowledged entry is deleted from its stream in the same script (XDEL), so a stream
holds only entries not yet written. A hash `otlp:spans:{shard}:failures` counts, per
entry, the writes that failed for a reason of the entry's own (not outages or restarts).

Logs and metrics have streams of their own of the same shape (common/signals.py):
`otlp:logs:{shard}` with an ExportLogsServiceRequest body and its count in `records`, and
`otlp:metrics:{shard}` with an ExportMetricsServiceRequest body and its count in `points`;
each with its own backlog counter and dead-letter stream (`otlp:logs:dlq`, ...).

Beside each stream a counter `otlp:spans:{shard}:backlog` holds the spans added and not
yet acknowledged; it is what backpressure (MAX_QUEUE_SIZE) compares against. It changes
only inside the same server-side script as the XADD or XACK it accounts for, so it
cannot drift from the stream when a process dies between two calls.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from redis.asyncio import Redis

from common.signals import TRACES, Signal

VERSION = 1
GROUP = "storage"


@dataclass(frozen=True)
class StreamKeys:
    prefix: str = ""
    shards: int = 1
    signal: Signal = TRACES

    def stream(self, shard: int) -> str:
        return f"{self.prefix}otlp:{self.signal.stream}:{shard}"

    @property
    def count_field(self) -> str:
        """The entry field holding its item count: spans, records or points."""
        return self.signal.count_field

    def backlog(self, shard: int) -> str:
        return f"{self.stream(shard)}:backlog"

    def failures(self, shard: int) -> str:
        """Hash: entry id -> times its write failed for a reason of its own."""
        return f"{self.stream(shard)}:failures"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}otlp:{self.signal.stream}:dlq"

    def streams(self) -> list[str]:
        return [self.stream(n) for n in range(self.shards)]

    def shard_of(self, trace_id: bytes) -> int:
        """The shard of a trace: stable across processes and restarts."""
        if self.shards == 1:
            return 0
        return zlib.crc32(trace_id) % self.shards


@dataclass(frozen=True)
class StreamEntry:
    body: bytes
    spans: int
    received_ns: int
    version: int = VERSION

    def fields(self, count_field: str = TRACES.count_field) -> dict[str, bytes | int]:
        return {"v": self.version, "body": self.body, count_field: self.spans, "received_ns": self.received_ns}

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes], count_field: str = TRACES.count_field) -> "StreamEntry":
        """Parse an entry read with decode_responses=False; ValueError names what is wrong.

        `spans` holds the entry's item count whatever the signal (its field is `count_field`).
        """
        try:
            version = int(fields[b"v"])
            body = fields[b"body"]
            spans = int(fields[count_field.encode()])
            received_ns = int(fields.get(b"received_ns", b"0"))
        except KeyError as exc:
            raise ValueError(f"stream entry lacks field {exc.args[0].decode()!r}") from None
        except ValueError:
            raise ValueError(f"stream entry has a non-integer v, {count_field} or received_ns") from None
        if version != VERSION:
            raise ValueError(f"stream entry version {version} is not supported (this writer reads {VERSION})")
        return cls(body=body, spans=spans, received_ns=received_ns, version=version)


_PUBLISH = """
local id = redis.call('XADD', KEYS[1], '*', 'v', ARGV[1], 'body', ARGV[2], ARGV[5], ARGV[3], 'received_ns', ARGV[4])
redis.call('INCRBY', KEYS[2], ARGV[3])
return id
"""

# ARGV: group, then (entry id, span count) pairs. Only entries this call really
# acknowledged leave the backlog, so two writers racing on one entry count it once.
# An acknowledged entry is written (or dead-lettered): it leaves the stream at once (XDEL),
# so Redis holds only what is not yet written. XDEL, not XTRIM: entries are acknowledged
# out of order (shards, several writers, retries), and a trim below the oldest pending
# entry would keep everything behind one slow entry; XDEL removes exactly what is done and
# can never touch an entry not yet delivered. `allow-oom`: this script frees memory, so it
# must run when Redis refuses writes for lack of it (all of it runs, or none).
_ACK = """#!lua flags=allow-oom
local done = 0
for i = 2, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    done = done + tonumber(ARGV[i + 1])
  end
  redis.call('XDEL', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
if done > 0 then redis.call('DECRBY', KEYS[2], done) end
return done
"""


class SpanStream:
    """Publishing to and acknowledging from one signal's streams, with the backlog counters
    (the span streams unless `keys.signal` says otherwise)."""

    def __init__(self, redis: Redis, keys: StreamKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._publish = redis.register_script(_PUBLISH)
        self._ack = redis.register_script(_ACK)

    async def publish(self, shard: int, entry: StreamEntry) -> bytes:
        return await self._publish(
            keys=[self.keys.stream(shard), self.keys.backlog(shard)],
            args=[entry.version, entry.body, entry.spans, entry.received_ns, self.keys.count_field],
        )

    async def ack(self, shard: int, entries: list[tuple[bytes | str, int]]) -> int:
        """XACK (entry id, spans) pairs; returns the spans that left the backlog."""
        if not entries:
            return 0
        args: list[bytes | str | int] = [GROUP]
        for entry_id, spans in entries:
            args += [entry_id, spans]
        keys = [self.keys.stream(shard), self.keys.backlog(shard), self.keys.failures(shard)]
        return int(await self._ack(keys=keys, args=args))

    async def backlog(self) -> int:
        """Spans published and not yet acknowledged, over all shards."""
        values = await self.redis.mget([self.keys.backlog(n) for n in range(self.keys.shards)])
        return sum(max(int(v), 0) for v in values if v is not None)

    async def ensure_group(self) -> None:
        for stream in self.keys.streams():
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except Exception as exc:  # BUSYGROUP: it exists, which is what we want
                if "BUSYGROUP" not in str(exc):
                    raise
