"""Head sampling: the Collector's hash_seed algorithm, W3C proportional thresholds, priority, per-service rates."""

from __future__ import annotations

import random

import pytest
from prometheus_client import REGISTRY

from collector.processors.sampling import (
    HashSeedDecider,
    HeadSampler,
    HeadSamplingConfig,
    encode_threshold,
    fnv1a_32,
    parse_ot,
    scaled_rate,
    threshold_for,
)
from tests.collector.spans import batch, request, spans_of


@pytest.mark.parametrize(
    ("data", "expected"),
    # Go's hash/fnv golden values for FNV-1a 32, which the Collector's computeHash uses.
    [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"ab", 0x4D2505CA), (b"abc", 0x1A47E90B)],
)
def test_fnv1a_matches_go_golden_values(data: bytes, expected: int) -> None:
    assert fnv1a_32(data) == expected


def test_hash_seed_hashes_the_little_endian_seed_then_the_trace_id() -> None:
    trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    for seed in (0, 1, 4312, 0x3024001, 2**32 - 1):
        expected = fnv1a_32(seed.to_bytes(4, "little") + trace_id) & 0x3FFF
        assert HashSeedDecider(seed).bucket(trace_id) == expected


@pytest.mark.parametrize(
    ("percent", "bound"),
    # uint32(float32(pct) * 163.84): float32 arithmetic, truncated. 65.802 is where float64 would say 10780.
    [(0, 0), (0.01, 1), (1, 163), (10, 1638), (13.33, 2183), (25, 4096), (50, 8192), (65.802, 10781), (99.99, 16382), (100, 16384), (150, 16384)],
)
def test_acceptance_bound_matches_the_collector(percent: float, bound: int) -> None:
    assert scaled_rate(percent) == bound


@pytest.mark.parametrize(
    ("trace_id", "full_hash", "bucket"),
    # Seed 4312 (the Collector tests' default); hashes cross-checked with an independent C
    # implementation of the Collector's computeHash (4 seed bytes little-endian, then the id).
    [
        ("000102030405060708090a0b0c0d0e0f", 0xECB357AD, 6061),
        ("ffffffffffffffffffffffffffffffff", 0x714C84CD, 1229),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 0x72442255, 8789),
    ],
)
def test_known_vectors_decide_as_the_collector(trace_id: str, full_hash: int, bucket: int) -> None:
    raw = bytes.fromhex(trace_id)
    decider = HashSeedDecider(4312)
    assert fnv1a_32((4312).to_bytes(4, "little") + raw) == full_hash
    assert decider.bucket(raw) == bucket
    # Kept exactly when bucket < uint32(pct * 163.84).
    for percent in (1, 10, 25, 37.5, 50, 53.65, 53.66, 75, 99):
        assert decider.keep(raw, percent) == (bucket < scaled_rate(percent)), percent


def test_rate_is_respected_and_lower_rates_keep_a_subset() -> None:
    rng = random.Random(7)
    ids = [rng.randbytes(16) for _ in range(20_000)]
    decider = HashSeedDecider(99)
    at_10 = {t for t in ids if decider.keep(t, 10)}
    at_30 = {t for t in ids if decider.keep(t, 30)}
    assert 0.09 < len(at_10) / len(ids) < 0.11
    assert 0.28 < len(at_30) / len(ids) < 0.32
    assert at_10 <= at_30  # per-service rates never split a trace the lower rate keeps


def test_replicas_with_the_same_seed_agree_and_other_seeds_differ() -> None:
    rng = random.Random(1)
    ids = [rng.randbytes(16) for _ in range(2000)]
    a, b, other = HashSeedDecider(5), HashSeedDecider(5), HashSeedDecider(6)
    assert [a.keep(t, 50) for t in ids] == [b.keep(t, 50) for t in ids]
    assert [a.keep(t, 50) for t in ids] != [other.keep(t, 50) for t in ids]


def _traces(count: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(16) for _ in range(count)]


def test_sampler_keeps_or_drops_whole_traces() -> None:
    ids = _traces(200)
    req = request(*[{"trace_id": t, "span_id": bytes([i % 250 + 1]) * 8} for t in ids for i in range(3)])
    sampler = HeadSampler(HeadSamplingConfig(percentage=50, hash_seed=11))
    kept = spans_of(sampler.process(batch(req)).request)
    expected = {t for t in ids if HashSeedDecider(11).keep(t, 50)}
    assert {s.trace_id for s in kept} == expected
    assert len(kept) == 3 * len(expected)


def test_sampling_priority_overrides_the_rate() -> None:
    keep_me, drop_me = {"sampling.priority": 1}, {"sampling.priority": 0}
    req = request(
        {"trace_id": b"\x01" * 16, "attributes": keep_me},
        {"trace_id": b"\x02" * 16, "attributes": {"sampling.priority": "2.5"}},
        {"trace_id": b"\x03" * 16, "attributes": drop_me},
    )
    kept = spans_of(HeadSampler(HeadSamplingConfig(percentage=0)).process(batch(req)).request)
    assert [s.trace_id[0] for s in kept] == [1, 2]
    everything = HeadSampler(HeadSamplingConfig(percentage=100)).process(batch(request({"attributes": drop_me}))).request
    assert spans_of(everything) == []


def test_per_service_rates() -> None:
    ids = _traces(400)
    sampler = HeadSampler(HeadSamplingConfig(percentage=100, service_percentages={"noisy": 0.0, "sampled": 25.0}))
    for service, low, high in (("noisy", 0, 0), ("sampled", 60, 140), ("other", 400, 400)):
        kept = spans_of(sampler.process(batch(request(*[{"trace_id": t} for t in ids], service=service))).request)
        assert low <= len(kept) <= high, (service, len(kept))


def test_sampled_out_spans_are_not_rejections() -> None:
    result = HeadSampler(HeadSamplingConfig(percentage=0)).process(batch(request({}, {})))
    assert (result.span_count(), result.rejected, result.messages) == (0, 0, [])


@pytest.mark.parametrize(
    ("percent", "encoded"),
    # The OpenTelemetry Go SDK's TraceIDRatioBased test vectors (probability × 100 here).
    [
        (100, "0"), (50, "8"), (25, "c"), (100 / 3, "aaab"), (200 / 3, "5555"), (10, "e666"),
        (100 / 256, "ff"), (100 / 65536, "ffff"), (100 / 1048576, "fffff"),
        (1, "fd70a"), (0.1, "ffbe77"), (0.01, "fff9724"), (0.001, "ffff583a"), (0.0001, "ffffef39"), (1e-5, "fffffe528"), (1e-6, "ffffffd50d"),
    ],
)
def test_proportional_thresholds_are_written_as_the_collector_does(percent: float, encoded: str) -> None:
    assert encode_threshold(threshold_for(percent)) == encoded


def test_proportional_mode_uses_trace_randomness_and_writes_tracestate() -> None:
    low = bytes(9) + bytes.fromhex("10000000000000")  # randomness 0x10…: below the 50% threshold 0x80…
    high = bytes(9) + bytes.fromhex("f0000000000000")
    req = request({"trace_id": b"\x01" + low[1:]}, {"trace_id": b"\x01" + high[1:], "trace_state": "vendor=x"})
    kept = spans_of(HeadSampler(HeadSamplingConfig(percentage=50, mode="proportional")).process(batch(req)).request)
    assert len(kept) == 1 and kept[0].trace_id[9:] == high[9:]
    assert kept[0].trace_state == "ot=th:8,vendor=x"


def test_proportional_mode_multiplies_an_incoming_threshold_and_honours_rv() -> None:
    # Already sampled at 50% (th:8); sampling 50% more gives 25% (th:c). rv overrides the id's bits.
    span = {"trace_id": bytes(16), "trace_state": "ot=th:8;rv:d0000000000000"}
    kept = spans_of(HeadSampler(HeadSamplingConfig(percentage=50, mode="proportional")).process(batch(request(span))).request)
    assert len(kept) == 1
    assert parse_ot(kept[0].trace_state)[0] == {"th": "c", "rv": "d0000000000000"}
    span["trace_state"] = "ot=th:8;rv:b0000000000000"
    assert spans_of(HeadSampler(HeadSamplingConfig(percentage=50, mode="proportional")).process(batch(request(span))).request) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (HeadSamplingConfig(mode="random"), "SAMPLING_MODE must be one of hash_seed, proportional"),
        (HeadSamplingConfig(percentage=101), "between 0 and 100"),
        (HeadSamplingConfig(service_percentages={"a": -1}), "'a' must be between 0 and 100"),
    ],
)
def test_bad_configuration_is_refused_with_a_message(config: HeadSamplingConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HeadSampler(config)


def _sampled(decision: str, policy: str) -> float:
    labels = {"stage": "head", "decision": decision, "policy": policy}
    return REGISTRY.get_sample_value("observatory_collector_sampled_spans_total", labels) or 0.0


def test_metrics_count_kept_and_dropped_spans_by_policy() -> None:
    before = {key: _sampled(*key) for key in (("kept", "hash_seed"), ("dropped", "hash_seed"), ("dropped", "priority"))}
    ids = _traces(100, seed=9)
    req = request(*[{"trace_id": t} for t in ids], {"attributes": {"sampling.priority": 0}})
    kept = len(spans_of(HeadSampler(HeadSamplingConfig(percentage=50, hash_seed=3)).process(batch(req)).request))
    delta = {key: _sampled(*key) - value for key, value in before.items()}
    assert delta == {("kept", "hash_seed"): kept, ("dropped", "hash_seed"): 100 - kept, ("dropped", "priority"): 1}
