"""Spans/s through each collector processor in isolation.

The regex engine comparison this script once ran (Python re, google-re2, hyperscan as a
prefilter) is recorded in RESULTS.md here; it chose RE2, and the redaction stage now uses
RE2's binding directly (byte triggers, bounded patterns), so it is measured with RE2 only.

    .venv/bin/python -m bench.processors.run [--spans 20000] [--repeat 5]

Every figure is the best of --repeat runs over the same deterministic corpus
(bench/processors/corpus.py); the ratio column compares with the no-op baseline
(walking the same protobuf messages without changing anything) measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.processors.corpus import request
from collector.pipeline import SpanBatch
from collector.processors.cost import CostCalculator
from collector.processors.pricing import load_pricing
from collector.processors.redaction import RedactionConfig, Redactor
from collector.processors.sampling import HeadSampler, HeadSamplingConfig
from collector.processors.validation import Validator

BATCH = 100  # spans per export request, as SDK batch processors send them


def seconds(stage: Any, bodies: list[bytes]) -> float:
    batches = [SpanBatch(ExportTraceServiceRequest.FromString(b), 0, "bench", wire=b) for b in bodies]  # the body, as the receivers hand it on
    started = time.perf_counter()
    for batch in batches:
        stage.process(batch)
    return time.perf_counter() - started


def best_rates(stages: dict[str, Any], bodies: list[bytes], repeat: int) -> dict[str, float]:
    """Best of `repeat` rounds; each round runs every stage once, so a change in the machine's
    load (it is shared) hits all stages alike instead of skewing the ratios."""
    best = dict.fromkeys(stages, float("inf"))
    for _ in range(repeat):
        for name, stage in stages.items():
            best[name] = min(best[name], seconds(stage, bodies))
    return {name: len(bodies) * BATCH / elapsed for name, elapsed in best.items()}


class Chain:
    """Several stages in a row, as build_pipeline orders them."""

    def __init__(self, *stages: Any) -> None:
        self.stages = stages

    def process(self, batch: SpanBatch) -> SpanBatch:
        for stage in self.stages:
            batch = stage.process(batch)
        return batch


def with_codec(stage: Any, bodies: list[bytes]) -> float:
    """Seconds for decode → stage → encode: what the collector does per request around XADD."""
    started = time.perf_counter()
    for body in bodies:
        batch = stage.process(SpanBatch(ExportTraceServiceRequest.FromString(body), 0, "bench", wire=body))
        batch.request.SerializeToString()
    return time.perf_counter() - started


class Walk:
    """The baseline: visit every attribute value the redactor would visit, change nothing."""

    name = "walk"

    def process(self, batch: SpanBatch) -> SpanBatch:
        for rs in batch.request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    for kv in span.attributes:
                        kv.value.WhichOneof("value")
        return batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bodies = [request(BATCH, seed).SerializeToString() for seed in range(args.spans // BATCH)]
    print(f"{args.spans} spans, {len(bodies[0]) // BATCH} bytes/span, python {platform.python_version()}, {platform.machine()}")
    stages: dict[str, Any] = {"walk (baseline)": Walk()}
    stages["redaction [re2]"] = Redactor(RedactionConfig())
    stages["head sampling 10%"] = HeadSampler(HeadSamplingConfig(percentage=10))
    stages["cost"] = CostCalculator(load_pricing(None))
    rows = list(best_rates(stages, bodies, args.repeat).items())
    baseline = rows[0][1]
    print(f"{'stage':<28}{'spans/s':>12}{'vs walk':>10}")
    for name, rate in rows:
        print(f"{name:<28}{rate:>12,.0f}{rate / baseline:>10.2f}")
    codec_only = Chain(Validator())
    validator = Validator(scan_llm_attributes=False)  # as build_pipeline wires them with cost on
    default = Chain(validator, Redactor(RedactionConfig()), CostCalculator(load_pricing(None), llm_values=validator.llm_values))
    best = {"decode → validate → encode": float("inf"), "decode → validate → redact → cost → encode": float("inf")}
    for _ in range(args.repeat):
        for name, chain in zip(best, (codec_only, default)):
            best[name] = min(best[name], with_codec(chain, bodies))
    codec_rate = len(bodies) * BATCH / best["decode → validate → encode"]
    print(f"\n{'with protobuf decode/encode':<44}{'spans/s':>12}{'ratio':>8}")
    for name, elapsed in best.items():
        rate = len(bodies) * BATCH / elapsed
        print(f"{name:<44}{rate:>12,.0f}{rate / codec_rate:>8.2f}")


if __name__ == "__main__":
    main()
