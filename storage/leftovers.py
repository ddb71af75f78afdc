"""Streams left over from another layout, drained so that nothing unwritten is lost.

The stream keys changed when shards got hash tags (`otlp:spans:0` became `otlp:spans:{0}`), and
they change with STREAM_SHARDS. A stream written under an older layout may still hold entries
no writer has stored: after an upgrade, or from a collector not yet upgraded. The writer finds
such streams (SCAN over every master for stream keys of the span signal that are not current
shards), reads them like shards until nothing in them is left to store, then deletes them, in
one script that re-checks under Redis's lock, so an entry added meanwhile keeps its stream.
"""

from __future__ import annotations

from redis.exceptions import ResponseError

from common.logging import get_logger
from common.redis_client import AnyRedis
from common.stream import GROUP, StreamKeys, ensure_group

log = get_logger("storage")

SCAN_COUNT = 1000

# KEYS: stream, backlog counter, failure counts. ARGV: group. Deletes the three when the group
# has read every entry of the stream (nothing after its last-delivered id) and holds none
# pending; entries acknowledged before XDEL-on-ack existed are still in the stream, and are
# not "left to store". Returns 1 when deleted.
_RETIRE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  if info['name'] == ARGV[1] then
    if tonumber(info['pending']) > 0 then return 0 end
    if #redis.call('XRANGE', KEYS[1], '(' .. info['last-delivered-id'], '+', 'COUNT', 1) > 0 then return 0 end
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
    return 1
  end
end
return 0
"""


class Leftovers:
    def __init__(self, redis: AnyRedis, keys: StreamKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._retire = redis.register_script(_RETIRE)

    async def find(self) -> list[str]:
        """Stream keys of this signal and prefix that are not current shards, each with the
        group `storage` (created from the start of the stream when it has none)."""
        current = set(self.keys.streams())
        found = []
        async for raw in self.redis.scan_iter(match=self.keys.scan_pattern, count=SCAN_COUNT, _type="stream"):
            key = raw.decode() if isinstance(raw, bytes) else raw
            if key in current or not self.keys.is_stream_key(key) or key in found:
                continue
            await ensure_group(self.redis, key)
            found.append(key)
        return sorted(found)

    async def retire(self, stream: str) -> bool:
        """Delete `stream` (and its counters) if nothing in it is left to store."""
        try:
            return bool(await self._retire(
                keys=[stream, self.keys.backlog_of(stream), self.keys.failures_of(stream)], args=[GROUP],
            ))
        except ResponseError as exc:
            if "CROSSSLOT" not in str(exc):
                raise
            # An untagged stream on a cluster (its counters in other slots): keep the keys.
            log.warning("drained leftover stream kept: its keys are in different slots", stream=stream)
            return False
