"""Requests for the benchmark. TEMPORARY minimal builder until cli.loadgen lands."""

from __future__ import annotations

import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

TEXT = ("The billing service applies to annual customers in the European region. See the help centre "
        "article for the exact steps. ") * 6


def build_requests(spans: int, per_request: int, seed: int, pii_rate: float) -> list[ExportTraceServiceRequest]:
    rng = random.Random(seed)
    out = []
    made = 0
    base = 1_795_000_000_000_000_000
    while made < spans:
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = f"svc-{rng.randrange(4)}"
        ss = rs.scope_spans.add()
        trace_id = rng.randbytes(16)
        for n in range(min(per_request, spans - made)):
            if n % 5 == 0:
                trace_id = rng.randbytes(16)
            span = ss.spans.add(trace_id=trace_id, span_id=rng.randbytes(8), name="chat gpt-4o-mini", kind=3,
                                start_time_unix_nano=base + made * 1000, end_time_unix_nano=base + made * 1000 + 500_000_000)
            for k in range(16):
                span.attributes.add(key=f"app.attr.{k}").value.string_value = f"value-{rng.randrange(1000)}"
            span.attributes.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
            span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = rng.randrange(100, 4000)
            span.attributes.add(key="gen_ai.usage.output_tokens").value.int_value = rng.randrange(10, 800)
            text = TEXT + (" Contact jane.doe@example.com" if rng.random() < pii_rate else "")
            span.attributes.add(key="gen_ai.prompt.0.content").value.string_value = text
            made += 1
        out.append(req)
    return out
