// Sends two log records and three metrics with the real OpenTelemetry JavaScript SDK and
// prints what it sent as JSON (the oracle of tests/e2e/test_node_sdk.py).
// usage: node send_signals.js grpc|proto|json BASE SERVICE
//   BASE: http://host:port of the OTLP receiver (gRPC, or HTTP without /v1/...)
'use strict';
const { SeverityNumber } = require('@opentelemetry/api-logs');
const { LoggerProvider, SimpleLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [protocol, base, service] = process.argv.slice(2);
const packages = {
  grpc: ['@opentelemetry/exporter-logs-otlp-grpc', '@opentelemetry/exporter-metrics-otlp-grpc'],
  proto: ['@opentelemetry/exporter-logs-otlp-proto', '@opentelemetry/exporter-metrics-otlp-proto'],
  json: ['@opentelemetry/exporter-logs-otlp-http', '@opentelemetry/exporter-metrics-otlp-http'],
};
const [logsPackage, metricsPackage] = packages[protocol];
const url = (path) => (protocol === 'grpc' ? base : `${base}${path}`);

async function main() {
  const resource = resourceFromAttributes({ 'service.name': service, 'deployment.environment': 'node-test' });
  const logExporter = new (require(logsPackage).OTLPLogExporter)({ url: url('/v1/logs') });
  const loggerProvider = new LoggerProvider({ resource, processors: [new SimpleLogRecordProcessor({ exporter: logExporter })] });
  const logger = loggerProvider.getLogger('tests.e2e.node.logs', '2.1.0');
  const now = Date.now();
  const records = [
    { timestamp: now - 2000, severityNumber: SeverityNumber.INFO, severityText: 'INFO', body: 'request accepted',
      attributes: { 'http.route': '/chat', retry: 2, ratio: 0.25, flags: [true, false] } },
    { timestamp: now - 1000, severityNumber: SeverityNumber.ERROR, severityText: 'ERROR', eventName: 'app.failure',
      body: { reason: 'timeout', attempts: [1, 2, 3], nested: { ok: false } }, attributes: { 'error.type': 'TimeoutError' } },
  ];
  for (const record of records) logger.emit(record);
  await loggerProvider.forceFlush();
  await loggerProvider.shutdown();

  const metricExporter = new (require(metricsPackage).OTLPMetricExporter)({ url: url('/v1/metrics') });
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ resource, readers: [reader] });
  const meter = meterProvider.getMeter('tests.e2e.node.metrics', '3.1.0');
  const calls = meter.createCounter('app.calls', { unit: '1', description: 'calls made' });
  const depth = meter.createGauge('app.queue.depth', { unit: '1' });
  const tokens = meter.createHistogram('gen_ai.client.token.usage', { unit: '{token}', description: 'tokens per call' });
  calls.add(3, { route: '/chat' });
  calls.add(4, { route: '/chat' });
  depth.record(11, { queue: 'jobs' });
  for (const value of [120, 480, 15]) tokens.record(value, { 'gen_ai.token.type': 'input' });
  await meterProvider.forceFlush();
  await meterProvider.shutdown();

  process.stdout.write(JSON.stringify({
    logs: records.map((r) => ({ ...r, time_unix_nano: String(BigInt(r.timestamp) * 1000000n) })),
    metrics: { calls: 7, depth: 11, tokens: { count: 3, sum: 615, min: 15, max: 480 } },
  }) + '\n');
}

main().catch((error) => { console.error(error); process.exit(1); });
