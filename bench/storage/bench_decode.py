"""Decode throughput (CPU seconds of storage.decode.decode) on writer-benchmark bodies, with
and without three double attributes on each LLM span, against the decode.py of a baseline
commit loaded from git in the same process, runs interleaved (the machine is shared: CPU
time, medians).

    .venv/bin/python -m bench.storage.bench_decode --baseline e6d38ff
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.storage.bench_writer import _kv, make_bodies
from storage import decode as current

ROOT = Path(__file__).resolve().parents[2]


def baseline(commit: str) -> ModuleType:
    text = subprocess.run(["git", "show", f"{commit}:storage/decode.py"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "decode_baseline.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("decode_baseline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def with_costs(bodies: list[bytes]) -> list[bytes]:
    out = []
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for span in request.resource_spans[0].scope_spans[0].spans:
            if any(a.key == "gen_ai.request.model" for a in span.attributes):
                span.attributes.extend([_kv("llm.cost.prompt", 0.000075), _kv("llm.cost.completion", 0.000048), _kv("llm.cost.total", 0.000123)])
        out.append(request.SerializeToString())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="commit whose storage/decode.py is the baseline")
    parser.add_argument("--spans", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    old = baseline(args.baseline)
    plain = make_bodies(args.spans, 100)
    for label, bodies in (("loadgen bodies", plain), ("loadgen + 3 doubles per LLM span", with_costs(plain))):
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        for _ in range(args.runs):
            for name, module in (("baseline", old), ("current", current)):
                started = time.process_time()
                for body in bodies:
                    module.decode(body)
                times[name].append(time.process_time() - started)
        b, c = statistics.median(times["baseline"]), statistics.median(times["current"])
        print(f"{label}: baseline {args.spans / b:,.0f} spans/s, current {args.spans / c:,.0f} spans/s, current/baseline CPU {c / b:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
