"""The cost stage alone: microseconds of CPU per span, over bench/collector's workload.

    .venv/bin/python -m bench.collector.cost_stage [--spans 51200] [--rounds 5]

Each round copies fresh export requests (the stage writes into them), then times only
`CostCalculator.process` over them with the process's CPU clock; the best round is
reported, with a no-op walk over the same spans in the same run as the floor. To compare
two commits in one run window, run this file from each checkout alternately
(`PYTHONPATH=<checkout>`), as bench/RESULTS.md records.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from bench.collector.workload import export_request  # noqa: E402
from collector.pipeline import SpanBatch  # noqa: E402
from collector.processors.cost import CostCalculator  # noqa: E402
try:  # the price book (genai-prices + PRICING_FILE); before it, the shipped JSON table
    from collector.processors.pricing import load_price_book as load_prices  # noqa: E402
except ImportError:  # a checkout from before 69c1cd0, measured for the ratio
    from collector.processors.pricing import load_pricing as load_prices  # noqa: E402

SPANS_PER_REQUEST = 512


def _walk(batch: SpanBatch) -> SpanBatch:
    for resource_spans in batch.request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.attributes  # noqa: B018 - the floor: reach every span's attributes
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=51_200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    bodies = [export_request(rng, SPANS_PER_REQUEST).SerializeToString()
              for _ in range(max(1, args.spans // SPANS_PER_REQUEST))]
    spans = len(bodies) * SPANS_PER_REQUEST
    started = time.process_time()
    stage = CostCalculator(load_prices(None))
    setup_s = time.process_time() - started
    results: dict[str, float] = {}
    for name, process in (("noop walk", _walk), ("cost", stage.process)):
        best = float("inf")
        for _ in range(args.rounds):
            batches = []
            for body in bodies:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                batches.append(SpanBatch(request=request, received_ns=0, protocol="bench"))
            started = time.process_time()
            for batch in batches:
                process(batch)
            best = min(best, time.process_time() - started)
        results[name] = best / spans * 1e6
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(json.dumps({"commit": commit, "root": str(ROOT), "spans": spans, "rounds": args.rounds,
                      "pricing_load_s": round(setup_s, 3),
                      "us_per_span": {k: round(v, 3) for k, v in results.items()},
                      "cost_minus_walk_us": round(results["cost"] - results["noop walk"], 3)}))


if __name__ == "__main__":
    main()
