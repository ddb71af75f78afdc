"""The batch stage: bounded batches, large entries in parts, bad spans set apart."""

from __future__ import annotations

import os
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common.otlp import key_value as kv
from common.stream import StreamEntry
from storage.batch import Batch, Entry, OpenEntry
from storage.consumer import Delivery, parse
from storage.decode import span_request

NOW = time.time_ns()


def entry(spans: int, attribute_bytes: int = 10, bad: tuple[int, ...] = ()) -> Entry:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "svc"))
    scope = rs.scope_spans.add()
    for n in range(spans):
        span = scope.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8) if n not in bad else b"\x01",
                               name=f"s{n}", start_time_unix_nano=NOW, end_time_unix_nano=NOW + 1)
        span.attributes.append(kv("payload", "x" * attribute_bytes))
    fields = {k.encode(): str(v).encode() if isinstance(v, int) else v
              for k, v in StreamEntry(req.SerializeToString(), spans, NOW).fields().items()}
    return Entry(Delivery(0, b"1-0", fields))


def take_all(open_entry: OpenEntry, max_spans: int, max_bytes: int) -> list[Batch]:
    batches = []
    while True:
        batch = Batch()
        exhausted = open_entry.fill(batch, max_spans, max_bytes)
        batches.append(batch)
        if exhausted:
            return batches


def test_a_large_entry_is_taken_in_parts_of_at_most_batch_size() -> None:
    big = entry(12_345)
    batches = take_all(OpenEntry(big), 5000, 1 << 30)
    assert [b.spans for b in batches] == [5000, 5000, 2345]
    assert [b.done for b in batches] == [[], [], [big]]  # acknowledged with its last part only
    names = [u.span[5] for b in batches for u in b.units]
    assert names == [f"s{n}" for n in range(12_345)]


def test_the_byte_budget_bounds_a_batch_of_large_spans() -> None:
    batches = take_all(OpenEntry(entry(100, attribute_bytes=100_000)), 5000, 1_000_000)
    assert all(b.size <= 1_000_000 + 101_000 for b in batches)  # past the budget by at most one span
    assert all(b.spans <= 10 for b in batches) and sum(b.spans for b in batches) == 100


def test_a_span_that_cannot_be_decoded_is_set_apart_and_its_neighbours_kept() -> None:
    source = entry(5, bad=(1, 3))
    (batch,) = take_all(OpenEntry(source), 5000, 1 << 30)
    assert [u.span[5] for u in batch.units] == ["s0", "s2", "s4"]
    assert [(e is source, "1-byte span id" in b.reason) for e, b in batch.bad] == [(True, True), (True, True)]
    alone = ExportTraceServiceRequest.FromString(span_request(parse(source.delivery).body, batch.bad[0][1].where))
    assert [s.name for s in alone.resource_spans[0].scope_spans[0].spans] == ["s1"]
    assert alone.resource_spans[0].resource.attributes[0].value.string_value == "svc"
