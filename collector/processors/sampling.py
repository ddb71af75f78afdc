"""Consistent head sampling by trace id: every replica makes the same choice for a trace.

Two modes, both as the OpenTelemetry Collector's probabilistic sampler computes them:
- `hash_seed`: FNV-1a 32 over the 4-byte little-endian seed then the 16 trace-id bytes;
  keep when `hash & 0x3FFF < uint32(float32(percent) × 163.84)`. Replicas (and Collectors)
  with the same seed and rate keep the same traces; a lower rate keeps a subset of a higher
  one, so per-service rates never split a trace that the lower rate keeps.
- `proportional`: W3C trace-context level 2 randomness (the low 56 bits of the trace id, or
  `ot=rv:` in tracestate); keep when randomness ≥ threshold, and write the threshold into
  tracestate as `ot=th:<hex>` so that later stages can count what a kept span stands for.

`sampling.priority` on a span overrides the rate: > 0 keeps it, 0 drops it.
Sampled-out spans are not rejections: they are counted in /metrics, not in partial_success.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from collector import metrics
from collector.pipeline import SpanBatch

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
HASH_BUCKETS = 0x4000  # 14 bits, as the Collector
MAX_THRESHOLD = 1 << 56
THRESHOLD_DIGITS = 4  # hex digits of precision written to ot=th (the Collector's default)
MODES = ("hash_seed", "proportional")
PRIORITY_KEY = "sampling.priority"


def fnv1a_32(data: bytes, state: int = FNV_OFFSET) -> int:
    for byte in data:
        state = ((state ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return state


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def scaled_rate(percent: float) -> int:
    """The Collector's acceptance bound: uint32(pct * 163.84) carried out in float32, truncated."""
    percent = min(max(percent, 0.0), 100.0)
    return int(_float32(_float32(percent) * _float32(HASH_BUCKETS / 100.0)))


class HashSeedDecider:
    def __init__(self, seed: int) -> None:
        self._state = fnv1a_32(struct.pack("<I", seed & 0xFFFFFFFF))  # the seed prefix, hashed once

    def bucket(self, trace_id: bytes) -> int:
        return fnv1a_32(trace_id, self._state) & (HASH_BUCKETS - 1)

    def keep(self, trace_id: bytes, percent: float) -> bool:
        return self.bucket(trace_id) < scaled_rate(percent)


def threshold_for(percent: float) -> int:
    """The rejection threshold T (keep when randomness ≥ T), as OpenTelemetry rounds it.

    4 significant hex digits, plus one per leading "f" so that small probabilities keep
    their precision (1 % → fd70a, 0.1 % → ffbe77), rounded to nearest.
    """
    probability = min(max(percent, 0.0), 100.0) / 100
    exact = round((1 - probability) * MAX_THRESHOLD)
    if exact >= MAX_THRESHOLD:
        return MAX_THRESHOLD
    digits = f"{exact:014x}"
    precision = min(14, THRESHOLD_DIGITS + len(digits) - len(digits.lstrip("f")))
    unit = 1 << (4 * (14 - precision))
    rounded = (exact + unit // 2) // unit * unit
    return rounded if rounded < MAX_THRESHOLD else exact // unit * unit


def encode_threshold(threshold: int) -> str:
    return f"{threshold:014x}".rstrip("0") or "0"


def parse_ot(tracestate: str) -> tuple[dict[str, str], list[str]]:
    """The `ot` member's sub-keys, and the other tracestate members untouched."""
    ot: dict[str, str] = {}
    others: list[str] = []
    for member in filter(None, (m.strip() for m in tracestate.split(","))):
        if member.startswith("ot="):
            for part in member[3:].split(";"):
                name, _, value = part.partition(":")
                if name:
                    ot[name] = value
        else:
            others.append(member)
    return ot, others


def format_tracestate(ot: dict[str, str], others: list[str]) -> str:
    member = "ot=" + ";".join(f"{k}:{v}" for k, v in ot.items())
    return ",".join([member, *others])  # a member we changed moves to the front (W3C)


def priority(span: Any) -> float | None:
    for kv in span.attributes:
        if kv.key == PRIORITY_KEY:
            kind = kv.value.WhichOneof("value")
            if kind == "int_value":
                return float(kv.value.int_value)
            if kind == "double_value":
                return kv.value.double_value
            if kind == "string_value":
                try:
                    return float(kv.value.string_value)
                except ValueError:
                    return None
            return None
    return None


@dataclass(frozen=True)
class HeadSamplingConfig:
    percentage: float = 100.0
    mode: str = "hash_seed"
    hash_seed: int = 0
    service_percentages: dict[str, float] = field(default_factory=dict)


class HeadSampler:
    name = "head_sampling"

    def __init__(self, config: HeadSamplingConfig) -> None:
        if config.mode not in MODES:
            raise ValueError(f"SAMPLING_MODE must be one of {', '.join(MODES)}, got {config.mode!r}")
        for service, percent in {"default": config.percentage, **config.service_percentages}.items():
            if not 0 <= percent <= 100:
                raise ValueError(f"sampling percentage for {service!r} must be between 0 and 100, got {percent}")
        self.config = config
        self.decider = HashSeedDecider(config.hash_seed)

    def process(self, batch: SpanBatch) -> SpanBatch:
        counts: dict[tuple[str, str], int] = {}
        for resource_spans in batch.request.resource_spans:
            percent = self._percent(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                spans = scope_spans.spans
                decisions: dict[bytes, bool] = {}  # spans of a trace arrive together: hash once
                for index in range(len(spans) - 1, -1, -1):
                    keep, policy = self._decide(spans[index], percent, decisions)
                    key = ("kept" if keep else "dropped", policy)
                    counts[key] = counts.get(key, 0) + 1
                    if not keep:
                        del spans[index]
        for (decision, policy), count in counts.items():
            metrics.SAMPLED_SPANS.labels("head", decision, policy).inc(count)
        return batch

    def _decide(self, span: Any, percent: float, decisions: dict[bytes, bool]) -> tuple[bool, str]:
        rank = priority(span)
        if rank is not None:
            return rank > 0, "priority"
        if self.config.mode == "proportional":
            return self._keep_proportional(span, percent), "proportional"  # per span: each has its tracestate
        keep = decisions.get(span.trace_id)
        if keep is None:
            keep = decisions[span.trace_id] = self.decider.keep(span.trace_id, percent)
        return keep, "hash_seed"

    def _percent(self, attributes: Any) -> float:
        if self.config.service_percentages:
            for kv in attributes:
                if kv.key == "service.name":
                    return self.config.service_percentages.get(kv.value.string_value, self.config.percentage)
        return self.config.percentage

    def _keep_proportional(self, span: Any, percent: float) -> bool:
        ot, others = parse_ot(span.trace_state)
        try:
            randomness = int(ot["rv"], 16) if "rv" in ot else int.from_bytes(span.trace_id[9:16], "big")
            incoming = int(ot["th"].ljust(14, "0"), 16) if "th" in ot else 0
        except ValueError:
            randomness, incoming = int.from_bytes(span.trace_id[9:16], "big"), 0
        # Proportional: this stage's probability multiplies the one the span already had.
        probability = (1 - incoming / MAX_THRESHOLD) * percent
        threshold = threshold_for(probability)
        if randomness < threshold or threshold >= MAX_THRESHOLD:
            return False
        ot["th"] = encode_threshold(threshold)
        span.trace_state = format_tracestate(ot, others)
        return True
