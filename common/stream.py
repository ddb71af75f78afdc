"""The Redis stream contract between the collector and the storage writer (version 1).

One entry per processed export request on `otlp:spans:{tag}` (tag: the shard's hash tag, below)
with the fields `v` (format version), `body` (a serialized ExportTraceServiceRequest), `spans`
(its span count) and `received_ns`. Consumer group `storage`. Dead letters go to
`otlp:spans:dlq` with the original fields plus `error` and `stream`.

An acknowledged entry is deleted from its stream in the same script (XDEL), so a stream
holds only entries not yet written. A hash `otlp:spans:{tag}:failures` counts, per
entry, the writes that failed for a reason of the entry's own (not outages or restarts).

Logs and metrics have streams of their own of the same shape (common/signals.py):
`otlp:logs:{tag}` with an ExportLogsServiceRequest body and its count in `records`, and
`otlp:metrics:{tag}` with an ExportMetricsServiceRequest body and its count in `points`;
each with its own backlog counter and dead-letter stream (`otlp:logs:dlq`, ...).

Beside each stream a counter `otlp:spans:{tag}:backlog` holds the spans added and not
yet acknowledged; it is what backpressure (MAX_QUEUE_SIZE) compares against. It changes
only inside the same server-side script as the XADD or XACK it accounts for, so it
cannot drift from the stream when a process dies between two calls.

Every key of one shard carries the same Redis Cluster hash tag, `{tag}`: the stream, its
backlog counter, its failure counts and any other per-shard key (`StreamKeys.shard_key`), so
each script and multi-key command runs inside one slot. The tag of shard n of N is chosen so
that its slot lies in the n-th of N equal slices of the 16,384 slots; a cluster whose slots are
split evenly (what `redis-cli --cluster create` and `--cluster rebalance` do) then puts the
shards evenly on its masters when N is a multiple of the number of masters. Streams written
under another layout (untagged `otlp:spans:N` from before hash tags, or another STREAM_SHARDS)
are found and drained by the writer (storage/leftovers.py).
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import NoScriptError, RedisError, ResponseError

from common.redis_client import AnyRedis, is_cluster, out_of_memory, route_to_key

from common.signals import BY_STREAM, TRACES, Signal

VERSION = 1
GROUP = "storage"


@lru_cache(maxsize=4096)
def shard_tag(shard: int, shards: int) -> str:
    """The hash tag of `shard` of `shards`: stable, and its slot is in the shard's slice of the
    slot space ("0" itself for a single shard; "n" or "n.k" otherwise)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    low = shard * REDIS_CLUSTER_HASH_SLOTS // shards
    high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
    candidate, k = str(shard), 0
    while not low <= key_slot(candidate.encode()) < high:
        k += 1
        candidate = f"{shard}.{k}"
    return candidate


@dataclass(frozen=True)
class StreamKeys:
    """Every Redis key name of one signal's streams, in one place.

    `signal` names the data ("spans"; other OTLP signals get their own streams the same way).
    """

    prefix: str = ""
    shards: int = 1
    signal: str = "spans"

    @property
    def base(self) -> str:
        return f"{self.prefix}otlp:{self.signal}:"

    def tag(self, shard: int) -> str:
        return shard_tag(shard, self.shards)

    def stream(self, shard: int) -> str:
        return f"{self.base}{{{self.tag(shard)}}}"

    def shard_key(self, shard: int, name: str) -> str:
        """Another key of this shard (counters, script state): it shares the stream's hash tag."""
        return f"{self.stream(shard)}:{name}"

    @property
    def kind(self) -> Signal:
        """The signal these streams carry (common/signals.py)."""
        return BY_STREAM[self.signal]

    @property
    def count_field(self) -> str:
        """The entry field holding its item count: spans, records or points."""
        return self.kind.count_field

    def backlog(self, shard: int) -> str:
        return self.shard_key(shard, "backlog")

    @staticmethod
    def backlog_of(stream: str) -> str:
        """The backlog counter beside any stream key, current or left over (see `is_stream_key`)."""
        return f"{stream}:backlog"

    def failures(self, shard: int) -> str:
        """Hash: entry id -> times its write failed for a reason of its own."""
        return self.shard_key(shard, "failures")

    @staticmethod
    def failures_of(stream: str) -> str:
        """The failure counts beside any stream key, current or left over."""
        return f"{stream}:failures"

    @property
    def dlq(self) -> str:
        return f"{self.base}dlq"

    def streams(self) -> list[str]:
        return [self.stream(n) for n in range(self.shards)]

    @property
    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern that finds every stream key of this signal, whatever its shard
        count or naming: a superset, filtered by `is_stream_key`."""
        return f"{_glob_escape(self.base)}*"

    def is_stream_key(self, key: str) -> bool:
        """A span stream written by some version of the collector under this prefix: the tagged
        `otlp:spans:{tag}` of any STREAM_SHARDS, or the untagged `otlp:spans:N` written before
        shards had hash tags. Not the dead-letter stream, nor keys beside a stream."""
        if not key.startswith(self.base):
            return False
        rest = key[len(self.base):]
        if rest.startswith("{") and rest.endswith("}"):
            return "}" not in rest[1:-1]
        return rest.isdigit()

    def shard_of(self, trace_id: bytes) -> int:
        """The shard of a trace: stable across processes and restarts."""
        if self.shards == 1:
            return 0
        return zlib.crc32(trace_id) % self.shards


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


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


class NotReplicated(RedisError):
    """The entry reached its master but not REDIS_WAIT_REPLICAS replicas within the timeout.

    The export is refused with a retryable answer; the entry may still be stored, and the
    client's retry is written once (the writer ignores duplicate spans).
    """


class SpanStream:
    """Publishing to and acknowledging from one signal's streams (the span streams unless
    `keys.signal` says otherwise), with the backlog counters.

    With `wait_replicas` > 0 a publish returns only once that many replicas of the shard's
    master hold the entry (WAIT on the connection that ran the XADD), else NotReplicated.
    """

    def __init__(self, redis: AnyRedis, keys: StreamKeys, wait_replicas: int = 0, wait_timeout_ms: int = 1000) -> None:
        self.redis = redis
        self.keys = keys
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._publish = redis.register_script(_PUBLISH)
        self._ack = redis.register_script(_ACK)

    async def publish(self, shard: int, entry: StreamEntry) -> bytes:
        keys = [self.keys.stream(shard), self.keys.backlog(shard)]
        args = [entry.version, entry.body, entry.spans, entry.received_ns, self.keys.count_field]
        if not self.wait_replicas:
            return await self._publish(keys=keys, args=args)
        try:
            return await self._publish_replicated(keys, args)
        except NoScriptError:  # a promoted replica, or a restarted master: its script cache is empty
            await self.redis.script_load(_PUBLISH)
            return await self._publish_replicated(keys, args)

    async def _publish_replicated(self, keys: list[str], args: list) -> bytes:
        """EVALSHA and WAIT in one pipeline: both go on one connection to the shard's master,
        which WAIT needs (it waits for that connection's own writes). On a cluster a redirection
        is not followed inside the pipeline (WAIT would run on another connection and prove
        nothing): it fails, and the client's retry reaches the new master."""
        route = await route_to_key(self.redis, keys[0])
        pipe = self.redis.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", self._publish.sha, len(keys), *keys, *args)  # evalsha() is barred in cluster pipelines
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms, **route)
        if is_cluster(self.redis):
            entry_id, replicas = await pipe.execute(allow_redirections=False)
        else:
            entry_id, replicas = await pipe.execute()
        if int(replicas) < self.wait_replicas:
            raise NotReplicated(
                f"entry {entry_id!r} reached {int(replicas)} of REDIS_WAIT_REPLICAS={self.wait_replicas} replicas "
                f"within {self.wait_timeout_ms} ms"
            )
        return entry_id

    async def ack(self, shard: int, entries: list[tuple[bytes | str, int]]) -> int:
        """XACK (entry id, spans) pairs; returns the spans that left the backlog."""
        return await self.ack_stream(self.keys.stream(shard), entries)

    async def ack_stream(self, stream: str, entries: list[tuple[bytes | str, int]]) -> int:
        """As `ack`, on any stream key (a current shard or one left over from another layout)."""
        if not entries:
            return 0
        args: list[bytes | str | int] = [GROUP]
        for entry_id, spans in entries:
            args += [entry_id, spans]
        keys = [stream, self.keys.backlog_of(stream), self.keys.failures_of(stream)]
        return int(await self._ack(keys=keys, args=args))

    async def backlog(self) -> int:
        """Spans published and not yet acknowledged, over all shards.

        One GET per shard (in one pipeline: one round trip per server), since the counters
        live in different slots."""
        pipe = self.redis.pipeline(transaction=False)
        for n in range(self.keys.shards):
            pipe.get(self.keys.backlog(n))
        values = await pipe.execute()
        return sum(max(int(v), 0) for v in values if v is not None)

    async def shard_problems(self) -> str | None:
        """None when the server of every shard answers and takes writes (not at maxmemory; with
        wait_replicas, that many replicas connected), else which shards cannot and why.

        What /ready reports: on a cluster one master can be down (until its replica is
        promoted) while the others answer; a PING to any one node would say nothing of it."""
        shards = range(self.keys.shards)
        answers = await asyncio.gather(*(self._shard_problem(n) for n in shards), return_exceptions=True)
        failed = [(n, f"{type(a).__name__}: {a}" if isinstance(a, BaseException) else a) for n, a in zip(shards, answers) if a]
        if not failed:
            return None
        names = ", ".join(str(n) for n, _ in failed)
        return f"shard(s) {names} of {self.keys.shards} cannot take entries: {failed[0][1]}"

    async def _shard_problem(self, shard: int) -> str | None:
        """Why the server of `shard` cannot take entries now, or None. A cluster routes INFO to
        whichever node it likes: ask the shard's own master."""
        target = await route_to_key(self.redis, self.keys.stream(shard))
        problem = out_of_memory(await self.redis.info("memory", **target))
        if problem or not self.wait_replicas:
            return problem
        replicas = int((await self.redis.info("replication", **target)).get("connected_slaves", 0))
        if replicas < self.wait_replicas:
            return f"{replicas} replica(s) connected, REDIS_WAIT_REPLICAS={self.wait_replicas}"
        return None

    async def ensure_group(self) -> None:
        for stream in self.keys.streams():
            await ensure_group(self.redis, stream)


async def ensure_group(redis: AnyRedis, stream: str) -> None:
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:  # BUSYGROUP: it exists, which is what we want
        if "BUSYGROUP" not in str(exc):
            raise
