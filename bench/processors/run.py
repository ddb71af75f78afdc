"""Spans/s through each collector processor in isolation, and through redaction with each
regex engine candidate (Python re, google-re2, and hyperscan as a prefilter in front of re).

    .venv/bin/python -m bench.processors.run [--spans 20000] [--repeat 5]

Every figure is the best of --repeat runs over the same deterministic corpus
(bench/processors/corpus.py); the ratio column compares with the no-op baseline
(walking the same protobuf messages without changing anything) measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.processors.corpus import request
from collector.pipeline import SpanBatch
from collector.processors import detectors
from collector.processors.cost import CostCalculator
from collector.processors.pricing import load_pricing
from collector.processors.redaction import RedactionConfig, Redactor
from collector.processors.sampling import HeadSampler, HeadSamplingConfig
from collector.processors.validation import Validator

BATCH = 100  # spans per export request, as SDK batch processors send them


class HyperscanPrefilter:
    """hyperscan answers "does anything match?"; re rewrites only the values that do."""

    def __init__(self, pattern: str) -> None:
        import hyperscan

        self._re = re.compile(pattern)
        chosen = detectors.select(detectors.BUILTIN_NAMES, {})
        self._db = hyperscan.Database()
        # Hyperscan has no lazy quantifiers; the prefilter flag lets it approximate safely.
        flags = [hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_DOTALL] * len(chosen)
        self._db.compile(expressions=[d.pattern.encode() for d in chosen], ids=list(range(len(chosen))), flags=flags)
        self.sub = self._re.sub
        self._terminated = hyperscan.ScanTerminated

    def search(self, text: str) -> Any:
        try:
            self._db.scan(text.encode(), match_event_handler=_stop)
        except self._terminated:  # the handler stops the scan at the first candidate
            return self._re.search(text)
        return None


def _stop(*_: Any) -> bool:
    return True


class HyperscanEngine:
    """Stands where the re / re2 module would: its compile() gives the hyperscan prefilter."""

    compile = HyperscanPrefilter


def re2_module() -> Any:
    import re2

    return re2


def engines() -> dict[str, Any]:
    found: dict[str, Any] = {"re": re}
    try:
        import re2

        found["re2"] = re2
    except ImportError:
        print("google-re2 not installed: skipped")
    try:
        import hyperscan  # noqa: F401

        found["hyperscan+re"] = HyperscanEngine
    except ImportError:
        print("hyperscan not installed: skipped")
    return found


def seconds(stage: Any, bodies: list[bytes]) -> float:
    batches = [SpanBatch(ExportTraceServiceRequest.FromString(b), 0, "bench") for b in bodies]
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
        batch = stage.process(SpanBatch(ExportTraceServiceRequest.FromString(body), 0, "bench"))
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
    for name, engine in engines().items():
        stages[f"redaction [{name}]"] = Redactor(RedactionConfig(), engine)
    stages["head sampling 10%"] = HeadSampler(HeadSamplingConfig(percentage=10))
    stages["cost"] = CostCalculator(load_pricing(None))
    rows = list(best_rates(stages, bodies, args.repeat).items())
    baseline = rows[0][1]
    print(f"{'stage':<28}{'spans/s':>12}{'vs walk':>10}")
    for name, rate in rows:
        print(f"{name:<28}{rate:>12,.0f}{rate / baseline:>10.2f}")
    codec_only = Chain(Validator())
    validator = Validator(scan_llm_attributes=False)  # as build_pipeline wires them with cost on
    default = Chain(validator, Redactor(RedactionConfig(), re2_module()), CostCalculator(load_pricing(None), llm_values=validator.llm_values))
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
