// Sends one LLM trace with the real OpenTelemetry JavaScript SDK and prints its ids as JSON.
// usage: node send_trace.js grpc|proto|json ENDPOINT SERVICE
'use strict';
const { context, trace, SpanKind, SpanStatusCode } = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [protocol, endpoint, service] = process.argv.slice(2);
const exporters = {
  grpc: () => new (require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter)({ url: endpoint }),
  proto: () => new (require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter)({ url: endpoint }),
  json: () => new (require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter)({ url: endpoint }),
};

async function main() {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'telemetry.sdk.language': 'nodejs' }),
    spanProcessors: [new SimpleSpanProcessor(exporters[protocol]())],
  });
  const tracer = provider.getTracer('tests.e2e.node', '1.0.0');
  const root = tracer.startSpan('POST /ask', { kind: SpanKind.SERVER, attributes: { 'http.route': '/ask' } });
  const parent = trace.setSpan(context.active(), root);
  const llm = tracer.startSpan('chat claude-sonnet-4-5', {
    kind: SpanKind.CLIENT,
    attributes: {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': 'claude-sonnet-4-5',
      'gen_ai.usage.input_tokens': 2000,
      'gen_ai.usage.output_tokens': 500,
      'gen_ai.prompt.0.content': 'Call me on +1 415 555 0199 or mail ada.lovelace@example.org',
      'app.tags': ['node', 'e2e'],
    },
  }, parent);
  llm.addEvent('retry', { attempt: 2 });
  llm.setStatus({ code: SpanStatusCode.ERROR, message: 'overloaded' });
  llm.end();
  root.end();
  await provider.forceFlush();
  await provider.shutdown();
  const ids = (span) => ({ span_id: span.spanContext().spanId });
  process.stdout.write(JSON.stringify({
    trace_id: root.spanContext().traceId, root: ids(root), llm: ids(llm),
  }) + '\n');
}

main().catch((error) => { console.error(error); process.exit(1); });
