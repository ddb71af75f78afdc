"""CPU per span of the validation and cost stages together, in process, as build_pipeline
wires them, on bench/collector's workload (512-span requests, 20 attributes a span).

    .venv/bin/python bench/collector/validation_cost.py [ROOT]

ROOT (default: this checkout) is put first on sys.path, so that another checkout's stages
(an export of an older commit) can be measured with the same script and workload. Prints
the best and the median of 5 rounds over 10 requests, in µs of process CPU per span.
"""

from __future__ import annotations

import inspect
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[2]))

from bench.collector.workload import export_request  # noqa: E402
from collector.pipeline import SpanBatch  # noqa: E402
from collector.processors.cost import CostCalculator  # noqa: E402
from collector.processors.pricing import load_pricing  # noqa: E402
from collector.processors.validation import Validator  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

REQUESTS, SPANS, ROUNDS = 10, 512, 5


def stages() -> tuple[Validator, CostCalculator]:
    if "scan_llm_attributes" in inspect.signature(Validator).parameters:  # as build_pipeline wires them
        validator = Validator(scan_llm_attributes=False)
        return validator, CostCalculator(load_pricing(None), llm_values=validator.llm_values)
    return Validator(), CostCalculator(load_pricing(None))  # commits before the two shared a pass


def main() -> None:
    validator, cost = stages()
    bodies = [export_request(random.Random(n), SPANS).SerializeToString() for n in range(REQUESTS)]
    rounds = []
    for _ in range(ROUNDS):
        requests = [ExportTraceServiceRequest.FromString(body) for body in bodies]
        started = time.process_time()
        for request in requests:
            cost.process(validator.process(SpanBatch(request, 0, "bench")))
        rounds.append((time.process_time() - started) / (REQUESTS * SPANS) * 1e6)
    print(f"validation+cost: best {min(rounds):.2f} µs/span, median {statistics.median(rounds):.2f} ({sys.path[0]})")


if __name__ == "__main__":
    main()
