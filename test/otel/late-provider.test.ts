/**
 * A recorder created at import time, before the app registers its MeterProvider (the usual order
 * when modules are imported before an instrumentation file runs), must still export.
 */
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCarbonTrace } from '../../src/index';
import { createOtelCarbonRecorder } from '../../src/otel/index';
import { sampleTrace } from '../fixtures/openai-compatible-server';

const otel = createOtelCarbonRecorder(); // no MeterProvider yet: the global API is a no-op

const exporter = new PrometheusExporter({ preventServerStart: true });
const provider = new MeterProvider({ readers: [exporter] });
afterAll(() => provider.shutdown());

describe('createOtelCarbonRecorder before the MeterProvider', () => {
  it('records into the provider registered afterwards', async () => {
    otel.record(parseCarbonTrace(sampleTrace(2)), { provider: 'garden.chat', modelId: 'm' }); // before: goes nowhere, throws nothing
    metrics.setGlobalMeterProvider(provider);
    otel.record(parseCarbonTrace(sampleTrace(1)), { provider: 'garden.chat', modelId: 'm' });
    otel.record(undefined, { provider: 'garden.chat', modelId: 'm' });
    const { resourceMetrics } = await exporter.collect();
    const points = Object.fromEntries(
      resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).map((metric) => [metric.descriptor.name, metric.dataPoints.reduce((sum, p) => sum + (p.value as number), 0)]),
    );
    // 0.4 Wh = 1,440 J and 0.1 g from the call recorded after registration; two calls counted.
    expect(points['codecarbon.energy']).toBeCloseTo(1440, 9);
    expect(points['codecarbon.emissions']).toBeCloseTo(0.1, 12);
    expect(points['codecarbon.calls']).toBe(2);
  });
});
