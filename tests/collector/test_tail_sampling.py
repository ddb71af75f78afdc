"""Tail sampling: each policy, late spans, bounded memory, and publishing through the real stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from collector.exporter import Overloaded, StreamExporter
from collector.processors.tail_sampling import TailSampler, TailSamplingConfig
from common.stream import SpanStream, StreamEntry, StreamKeys
from tests.collector.spans import batch, request, spans_of
from tests.conftest import REDIS_URL
from tests.support import async_wait_for

ERROR = 2


@pytest.fixture
async def stream(redis_prefix: str) -> AsyncIterator[SpanStream]:
    redis = Redis.from_url(REDIS_URL)
    yield SpanStream(redis, StreamKeys(redis_prefix))
    await redis.aclose()


def sampler(stream: SpanStream, **config: object) -> TailSampler:
    defaults: dict[str, object] = {"decision_wait": 60.0, "percentage": 0.0, "latency_ms": 1000.0, "cost_usd": 1.0}
    return TailSampler(TailSamplingConfig(**{**defaults, **config}), StreamExporter(stream, 1_000_000, 1))  # type: ignore[arg-type]


def trace(n: int, spans: int = 2, **root: object) -> list[dict]:
    trace_id = n.to_bytes(16, "big")
    first = {"trace_id": trace_id, "span_id": (n * 100 + 1).to_bytes(8, "big"), **root}
    rest = [{"trace_id": trace_id, "span_id": (n * 100 + i).to_bytes(8, "big"), "parent_span_id": (n * 100 + 1).to_bytes(8, "big")}
            for i in range(2, spans + 1)]
    return [first, *rest]


async def published(stream: SpanStream) -> list[bytes]:
    """Trace ids (first byte order) of every span on the stream."""
    entries = await stream.redis.xrange(stream.keys.stream(0))
    ids = []
    for _, fields in entries:
        req = ExportTraceServiceRequest.FromString(StreamEntry.from_fields(fields).body)
        ids.extend(s.trace_id for s in spans_of(req))
    return ids


async def test_held_spans_leave_the_request_and_reach_the_stream_after_the_window(stream: SpanStream) -> None:
    tail = sampler(stream, decision_wait=0.05, percentage=100.0)
    result = tail.process(batch(request(*trace(1, spans=3), *trace(2))))
    assert result.span_count() == 0 and tail.held_bytes > 0
    ids = await async_wait_for(lambda: _count(stream, 5), what="tail-kept spans on the stream")
    assert sorted(ids) == [(1).to_bytes(16, "big")] * 3 + [(2).to_bytes(16, "big")] * 2
    await tail.aclose()


async def _count(stream: SpanStream, wanted: int) -> list[bytes] | None:
    ids = await published(stream)
    return ids if len(ids) >= wanted else None


@pytest.mark.parametrize(
    ("root", "attributes", "service", "policy"),
    [
        ({"status": (ERROR, "boom")}, {}, "svc", "error"),
        ({"start": 0, "end": 2_000_000_000}, {}, "svc", "latency"),
        ({}, {"llm.cost.total": 1.5}, "svc", "cost"),
        ({}, {}, "checkout", "service"),
        ({"name": "payment.authorize"}, {}, "svc", "span_name"),
        ({}, {"tenant.tier": "gold"}, "svc", "attribute"),
        ({}, {"sampling.priority": 1}, "svc", "priority"),
    ],
)
async def test_each_policy_keeps_its_traces(stream: SpanStream, root: dict, attributes: dict, service: str, policy: str) -> None:
    tail = sampler(stream, keep_services=("check.*",), keep_span_names=("payment\\..*",), keep_attributes=("tenant.tier=gold",))
    tail.process(batch(request(*trace(1, **root, attributes=attributes), *trace(2), service=service)))
    kept = tail.policy((1).to_bytes(16, "big"), tail.held[(1).to_bytes(16, "big")])
    other = tail.policy((2).to_bytes(16, "big"), tail.held[(2).to_bytes(16, "big")])
    assert kept == (True, policy)
    assert other == ((True, policy) if policy == "service" else (False, "probabilistic"))
    await tail.aclose()


async def test_cost_and_latency_add_up_over_the_whole_trace(stream: SpanStream) -> None:
    tail = sampler(stream)
    spans = trace(1, spans=3)
    spans[1]["attributes"] = {"llm.cost.total": 0.6}
    spans[2]["attributes"] = {"llm.cost.total": 0.6}
    spans[2].update(start=500_000_000, end=1_600_000_000)  # the trace spans 1.6 s, no single span does
    tail.process(batch(request(*spans)))
    held = tail.held[(1).to_bytes(16, "big")]
    assert held.cost == pytest.approx(1.2)
    assert tail.policy((1).to_bytes(16, "big"), held) == (True, "latency")
    await tail.aclose()


async def test_probabilistic_rate_is_the_consistent_hash(stream: SpanStream) -> None:
    tail = sampler(stream, percentage=30.0, hash_seed=7)
    ids = [trace(n, spans=1)[0] for n in range(1, 401)]
    tail.process(batch(request(*ids)))
    kept = sum(tail.policy(s["trace_id"], tail.held[s["trace_id"]])[0] for s in ids)
    assert 90 <= kept <= 150
    await tail.aclose()


async def test_late_spans_follow_the_decision(stream: SpanStream) -> None:
    tail = sampler(stream)
    tail.process(batch(request(*trace(1, status=(ERROR, "x")), *trace(2))))
    tail.decide_due(float("inf"))
    late = tail.process(batch(request({"trace_id": (1).to_bytes(16, "big"), "span_id": b"\x09" * 8},
                                      {"trace_id": (2).to_bytes(16, "big"), "span_id": b"\x08" * 8})))
    assert [s.trace_id for s in spans_of(late.request)] == [(1).to_bytes(16, "big")]  # kept trace's late span goes straight on
    assert not tail.held
    await tail.aclose()


def _decided(trigger: str) -> float:
    return sum(REGISTRY.get_sample_value("observatory_collector_tail_traces_total", {"decision": d, "policy": "probabilistic", "trigger": trigger}) or 0
               for d in ("kept", "dropped"))


async def test_when_full_the_oldest_traces_are_decided_early_and_counted(stream: SpanStream) -> None:
    before = _decided("memory")
    tail = sampler(stream, max_traces=3)
    for n in range(1, 6):
        tail.process(batch(request(*trace(n))))
    assert list(tail.held) == [n.to_bytes(16, "big") for n in (3, 4, 5)]
    assert _decided("memory") - before == 2
    by_bytes = sampler(stream, max_bytes=1500)
    for n in range(1, 30):
        by_bytes.process(batch(request(*trace(n))))
    assert by_bytes.held_bytes <= 1500 and len(by_bytes.held) < 29
    await tail.aclose()
    await by_bytes.aclose()


async def test_a_refusing_stream_keeps_kept_spans_and_then_refuses_new_data(stream: SpanStream, redis_client) -> None:
    redis_client.set(stream.keys.backlog(0), 10)  # the stream looks full: the exporter refuses
    tail = TailSampler(TailSamplingConfig(decision_wait=60, percentage=100.0, max_bytes=2000), StreamExporter(stream, 5, 1))
    for n in range(1, 10):
        tail.process(batch(request(*trace(n))))
    tail.decide_due(float("inf"))
    assert await tail.publish() == 1.0  # told to wait; nothing lost
    assert tail.outbox and await published(stream) == []
    while tail.outbox_bytes < 2000:  # kept spans alone fill the budget while the stream refuses
        tail.outbox.append(tail.outbox[0])
        tail.outbox_bytes += len(tail.outbox[0].encoded)
    with pytest.raises(Overloaded):
        tail.process(batch(request(*trace(50))))
    redis_client.set(stream.keys.backlog(0), 0)  # the writer caught up

    async def drained() -> bool:
        return await tail.publish() == 0.0  # the exporter re-reads the backlog within 50 ms

    await async_wait_for(drained, what="the outbox to drain")
    assert not tail.outbox and tail.outbox_bytes == 0
    assert len(await published(stream)) >= 18
    await tail.aclose()


async def test_shutdown_decides_everything_and_publishes_what_is_kept(stream: SpanStream) -> None:
    tail = sampler(stream, percentage=100.0)
    tail.process(batch(request(*trace(1), *trace(2))))
    await tail.aclose()
    assert not tail.held and not tail.outbox
    assert len(await published(stream)) == 4


async def test_bad_attribute_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="must be key=value"):
        TailSampler(TailSamplingConfig(keep_attributes=("nokey",)), None)  # type: ignore[arg-type]
