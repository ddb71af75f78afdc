"""An application instrumented with opentelemetry-instrumentation-openai-v2, as a user runs it:
`python -m tests.e2e.apps.openai_chat OPENAI_BASE_URL OTLP_HTTP_BASE [legacy]` makes one chat
call and prints its trace id. Content capture and the conventions are chosen with the
instrumentation's own environment variables (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
OTEL_SEMCONV_STABILITY_OPT_IN), so the test runs it in a process of its own.

`legacy`: the older per-message events (gen_ai.system.message, gen_ai.user.message,
gen_ai.choice), which the instrumentation's pre-1.1 conventions path emitted and which
opentelemetry-util-genai 1.1 no longer reaches: built by the instrumentation's own
message_to_event / choice_to_event from the call's messages and the parsed response, and
emitted as log records inside the application's span, as that path did.
"""

from __future__ import annotations

import sys

from openai import OpenAI
from opentelemetry import _logs, metrics, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

SYSTEM = "You are a support agent. Escalations go to ops 203.0.113.7."
PROMPT = "My email is jane.doe@example.com and my card is 4111 1111 1111 1111. Why was I charged twice?"


def main(openai_base: str, otlp_base: str, legacy: bool = False) -> None:
    resource = Resource.create({"service.name": "support-bot"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_base}/v1/traces")))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp_base}/v1/logs")))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{otlp_base}/v1/metrics"), export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    _logs.set_logger_provider(logger_provider)
    metrics.set_meter_provider(meter_provider)
    OpenAIInstrumentor().instrument()

    client = OpenAI(base_url=openai_base, api_key="sk-test-not-a-real-key")
    tracer = trace.get_tracer("support-bot")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    with tracer.start_as_current_span("answer ticket") as root:
        response = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        if legacy:
            from opentelemetry.instrumentation.openai_v2.utils import choice_to_event, message_to_event  # noqa: PLC0415

            logger = _logs.get_logger("opentelemetry.instrumentation.openai_v2")
            for message in messages:
                logger.emit(message_to_event(message, True))
            for choice in response.choices:
                logger.emit(choice_to_event(choice, True))
        trace_id = format(root.get_span_context().trace_id, "032x")
    for provider in (tracer_provider, logger_provider, meter_provider):
        provider.force_flush()
    print(trace_id, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], legacy=sys.argv[3:] == ["legacy"])
