"""`observatory dlq list|show|replay|purge`: the dead-letter stream, inspected and replayed.

Dead letters sit on `{REDIS_KEY_PREFIX}otlp:spans:dlq` (with `--signal logs` or `metrics`,
`otlp:logs:dlq` / `otlp:metrics:dlq`) with the original entry's fields plus `error`,
`stream` and `entry_id`. Replay publishes an entry back through
SpanStream.publish (so the backlog counter counts it, as for any entry the collector adds)
and only then deletes the dead letter: a crash between the two replays it twice, which
the writer's idempotent insert makes harmless. An entry whose body cannot be decoded
would only come back, so replay skips it and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cli.args import positive_int
from cli.errors import Failure, UsageError
from cli.settings import CliSettings
from common.redis_client import AnyRedis, connect
from common.signals import BY_NAME, TRACES
from common.stream import SpanStream, StreamEntry, StreamKeys
from storage.decode import UndecodableEntry, decode
from storage.signals import STORAGES

ENTRY_ID = re.compile(r"^\d+-\d+$")
REPLAY_PAGE = 100


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dlq", help="list, show, replay or purge dead-lettered stream entries",
        description="Inspect the dead-letter stream (entries the storage writer could not store) and replay "
        "entries back onto their span stream once the cause is fixed.",
        epilog="examples:\n  observatory dlq list\n  observatory dlq show 1732340000000-0\n"
        "  observatory dlq replay --all\n  observatory dlq purge --confirm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--signal", choices=tuple(BY_NAME), default="traces",
                        help="whose dead letters: traces (otlp:spans:dlq, the default), logs or metrics")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the oldest dead letters, one a line",
                                 description="List dead letters, oldest first: id, when, source stream, spans, error.",
                                 epilog="example:\n  observatory dlq list --limit 20", formatter_class=argparse.RawDescriptionHelpFormatter)
    listing.add_argument("--limit", type=positive_int, default=50, metavar="N", help="show at most N (default 50)")
    show = actions.add_parser("show", help="one dead letter in full, with a summary of its spans",
                              description="Show one dead letter: its error, source entry, and the services, span names and traces in its body.",
                              epilog="example:\n  observatory dlq show 1732340000000-0", formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("entry_id", metavar="ID", help="the dead letter's id, as `dlq list` shows it")
    replay = actions.add_parser("replay", help="put dead letters back on their span stream",
                                description="Publish dead letters back onto the span stream they came from (counted in the "
                                "backlog like any new entry), then delete them from the dead-letter stream. Entries whose body "
                                "cannot be decoded are skipped (exit 1).",
                                epilog="examples:\n  observatory dlq replay 1732340000000-0 1732340000001-0\n"
                                "  observatory dlq replay --all", formatter_class=argparse.RawDescriptionHelpFormatter)
    replay.add_argument("entry_ids", nargs="*", metavar="ID", help="dead letters to replay")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    purge = actions.add_parser("purge", help="delete dead letters for good (needs --confirm)",
                               description="Delete dead letters for good: all of them, or the IDs given. Without --confirm, "
                               "only says how many it would delete (exit 2).",
                               epilog="examples:\n  observatory dlq purge --confirm\n  observatory dlq purge --confirm 1732340000000-0",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    purge.add_argument("entry_ids", nargs="*", metavar="ID", help="only these (default: all)")
    purge.add_argument("--confirm", action="store_true", help="really delete")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    for entry_id in getattr(args, "entry_ids", None) or ([args.entry_id] if args.action == "show" else []):
        if not ENTRY_ID.match(entry_id):
            raise UsageError(f"{entry_id!r} is not a stream entry id (they look like 1732340000000-0)")
    if args.action == "replay" and bool(args.all) == bool(args.entry_ids):
        raise UsageError("say which dead letters to replay: one or more IDs, or --all")
    return asyncio.run(_dispatch(args, settings))


async def _dispatch(args: argparse.Namespace, settings: CliSettings) -> int:
    redis = connect(settings.redis_url, settings.redis_timeout, read_timeout=settings.redis_timeout + settings.redis_wait_timeout_ms / 1000)
    keys = StreamKeys(settings.redis_key_prefix, settings.stream_shards, BY_NAME[getattr(args, "signal", "traces")].stream)
    try:
        if args.action == "list":
            return await dlq_list(redis, keys, args.limit)
        if args.action == "show":
            return await dlq_show(redis, keys, args.entry_id)
        if args.action == "replay":
            stream = SpanStream(redis, keys, settings.redis_wait_replicas, settings.redis_wait_timeout_ms)
            return await dlq_replay(redis, keys, None if args.all else args.entry_ids, stream)
        return await dlq_purge(redis, keys, args.entry_ids, args.confirm)
    finally:
        await redis.aclose()


def _when(entry_id: bytes | str) -> str:
    millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
    return datetime.fromtimestamp(millis / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _field(fields: dict[bytes, bytes], name: str, default: str = "?") -> str:
    value = fields.get(name.encode())
    return value.decode(errors="replace") if value is not None else default


async def dlq_list(redis: AnyRedis, keys: StreamKeys, limit: int) -> int:
    total = await redis.xlen(keys.dlq)
    entries = await redis.xrange(keys.dlq, count=limit)
    if not entries:
        print(f"no dead letters on {keys.dlq}")
        return 0
    print(f"{'id':<17} {'dead-lettered (UTC)':<20} {'stream':<16} {keys.count_field:>6}  error")
    for entry_id, fields in entries:
        error = _field(fields, "error").replace("\n", " ")
        stream = _field(fields, "stream").removeprefix(keys.prefix)
        print(f"{entry_id.decode():<17} {_when(entry_id):<20} {stream:<16} {_field(fields, keys.count_field):>6}  "
              f"{error[:100] + ('…' if len(error) > 100 else '')}")
    shown = f"the oldest {len(entries)} of " if total > len(entries) else ""
    print(f"{shown}{total} dead letter(s) on {keys.dlq}")
    return 0


async def dlq_show(redis: AnyRedis, keys: StreamKeys, entry_id: str) -> int:
    entries = await redis.xrange(keys.dlq, min=entry_id, max=entry_id)
    if not entries:
        raise Failure(f"no dead letter {entry_id} on {keys.dlq}; `observatory dlq list` shows the ids there")
    _id, fields = entries[0]
    print(f"id:            {entry_id} (dead-lettered {_when(entry_id)} UTC)")
    print(f"from:          {_field(fields, 'stream')} entry {_field(fields, 'entry_id')}")
    print(f"error:         {_field(fields, 'error')}")
    received = _field(fields, "received_ns", "0")
    if received.isdigit() and int(received):
        print(f"received:      {datetime.fromtimestamp(int(received) / 1e9, timezone.utc):%Y-%m-%d %H:%M:%S.%f} UTC")
    body = fields.get(b"body", b"")
    print(f"format:        v{_field(fields, 'v')}, {_field(fields, keys.count_field)} {keys.count_field}, body {len(body):,} bytes")
    if keys.kind is not TRACES:
        return 0
    for line in _summary(body):
        print(line)
    return 0


def _summary(body: bytes) -> list[str]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # DecodeError; the error line above usually says the same
        return [f"body:          not an ExportTraceServiceRequest ({exc})"]
    services: Counter = Counter()
    names: Counter = Counter()
    traces: list[str] = []
    for resource_spans in request.resource_spans:
        service = next((kv.value.string_value for kv in resource_spans.resource.attributes if kv.key == "service.name"), "?")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                services[service] += 1
                names[span.name] += 1
                trace = span.trace_id.hex()
                if trace not in traces:
                    traces.append(trace)
    return [
        "services:      " + ", ".join(f"{name} ({n})" for name, n in services.most_common()),
        "span names:    " + ", ".join(f"{name} ({n})" for name, n in names.most_common(8)),
        f"traces:        {len(traces)}: " + ", ".join(traces[:5]) + (" …" if len(traces) > 5 else ""),
    ]


def _shard(keys: StreamKeys, fields: dict[bytes, bytes], entry: StreamEntry) -> int:
    """The shard the entry came from, or the one its first trace maps to now (shard count changed)."""
    stream = _field(fields, "stream", "")
    for shard in range(keys.shards):
        if keys.stream(shard) == stream:
            return shard
    if keys.kind is not TRACES:
        return 0
    request = ExportTraceServiceRequest.FromString(entry.body)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                return keys.shard_of(span.trace_id)
    return 0


async def _selected(redis: AnyRedis, keys: StreamKeys, entry_ids: list[str] | None) -> AsyncIterator[tuple[bytes, dict]]:
    """The named dead letters, or all of them a page at a time (a large DLQ never sits in memory)."""
    if entry_ids is not None:
        for entry_id in entry_ids:
            for found in await redis.xrange(keys.dlq, min=entry_id, max=entry_id):
                yield found
        return
    start = "-"
    while page := await redis.xrange(keys.dlq, min=start, count=REPLAY_PAGE):
        for found in page:
            yield found
        start = "(" + page[-1][0].decode()


async def dlq_replay(redis: AnyRedis, keys: StreamKeys, entry_ids: list[str] | None, stream: SpanStream | None = None) -> int:
    stream = stream or SpanStream(redis, keys)
    if entry_ids is not None:
        for entry_id in entry_ids:  # all named ones exist, or nothing moves
            if not await redis.xrange(keys.dlq, min=entry_id, max=entry_id):
                raise Failure(f"no dead letter {entry_id} on {keys.dlq}; nothing was replayed")
    replayed, skipped = 0, []
    async for entry_id, fields in _selected(redis, keys, entry_ids):
        try:
            entry = StreamEntry.from_fields(fields, keys.count_field)
            if keys.kind is TRACES:
                decode(entry.body)
            else:
                storage = next(s for s in STORAGES if s.signal is keys.kind)
                for unit in storage.units(storage.parse_request(entry.body)):
                    reason = getattr(unit, "reason", None)
                    if reason is not None:
                        raise UndecodableEntry(reason)
        except (ValueError, UndecodableEntry) as exc:
            skipped.append(f"{entry_id.decode()}: {exc}")
            continue
        shard = _shard(keys, fields, entry)
        new_id = await stream.publish(shard, entry)
        await redis.xdel(keys.dlq, entry_id)
        replayed += 1
        print(f"replayed {entry_id.decode()} ({entry.spans} {keys.count_field}) as {keys.stream(shard)} {new_id.decode()}")
    print(f"replayed {replayed} dead letter(s)" + (f", skipped {len(skipped)} that would fail again:" if skipped else ""))
    for line in skipped:
        print(f"  {line}")
    if skipped:
        raise Failure(f"{len(skipped)} dead letter(s) hold bodies the writer cannot decode; inspect them with "
                      "`observatory dlq show ID` and remove them with `observatory dlq purge --confirm ID`")
    return 0


async def dlq_purge(redis: AnyRedis, keys: StreamKeys, entry_ids: list[str], confirm: bool) -> int:
    count = len(entry_ids) if entry_ids else await redis.xlen(keys.dlq)
    if not confirm:
        raise UsageError(f"this would delete {count} dead letter(s) from {keys.dlq} for good; "
                         "rerun with --confirm (`observatory dlq list` shows them first)")
    if entry_ids:
        deleted = await redis.xdel(keys.dlq, *entry_ids)
    else:  # XTRIM counts exactly what it removed, including entries added since XLEN
        deleted = await redis.xtrim(keys.dlq, maxlen=0, approximate=False)
    print(f"deleted {deleted} dead letter(s) from {keys.dlq}")
    return 0
