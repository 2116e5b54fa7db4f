/**
 * Measured (codecarbon), server-estimated (codecarbon_estimated) and model-estimated (ecologits)
 * figures are summed apart everywhere: tracker, exports, OpenTelemetry, and the helpers.
 */
import { MeterProvider, AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import {
  addCarbonMetrics,
  CarbonTracker,
  emptyCarbonTotals,
  getCarbonEstimate,
  getCarbonMetrics,
  isCarbonEstimate,
  parseCarbonTrace,
  sumCarbonEstimates,
  sumCarbonMetrics,
  type BoAmpsReportOptions,
  type CarbonEstimate,
  type CarbonMetrics,
} from '../../src/index';
import { createOtelCarbonRecorder } from '../../src/otel/index';
import { boampsValidator } from '../fixtures/boamps-validator';

const measured = parseCarbonTrace({ emissions_g_co2: 2, energy_consumed_wh: 8, duration_seconds: 4, prompt_tokens: 100, completion_tokens: 50, measured: true })!;
const serverEstimated = parseCarbonTrace({ emissions_g_co2: 1, energy_consumed_wh: 3, duration_seconds: 2, measured: false })!;
// A hand-written estimate: the helpers and exports must sum it as given, whatever its source.
const estimate: CarbonEstimate = {
  trackingMethod: 'ecologits',
  measured: false,
  energyKwh: 0.005,
  gwpKgco2eq: 0.002,
  embodiedGwpKgco2eq: 0.0001,
  min: { energyKwh: 0.004, gwpKgco2eq: 0.0015, embodiedGwpKgco2eq: 0.0001 },
  max: { energyKwh: 0.006, gwpKgco2eq: 0.0025, embodiedGwpKgco2eq: 0.0001 },
  completionTokens: 30,
  promptTokens: 7,
  inputs: {
    provider: 'openai', modelId: 'gpt-4o-mini', activeParametersBillion: { min: 8, max: 28 }, totalParametersBillion: { min: 8, max: 28 },
    gpuCount: 1, pue: 1.2, outputTokens: 30, generationLatencySeconds: 1, zone: 'USA', gCo2PerKwh: 400, gridSource: 'test',
  },
  method: 'EcoLogits 0.9.3 LLM inference (mlco2/ecologits)',
  warnings: [],
};

function mixedTracker(): CarbonTracker {
  const tracker = new CarbonTracker();
  tracker.record(measured, { modelId: 'llama' });
  tracker.record(serverEstimated, { modelId: 'llama' });
  tracker.record(undefined, { modelId: 'gpt-4o-mini', estimate });
  tracker.record(undefined, { modelId: 'gpt-4o-mini', estimate });
  tracker.record(undefined, { modelId: 'gpt-4o-mini' }); // an unknown model: no estimate
  return tracker;
}

describe('CarbonTracker keeps the kinds apart', () => {
  it('sums each kind on its own, and estimates never reach the traced totals', () => {
    const tracker = mixedTracker();
    const totals = tracker.totals();
    expect(totals).toMatchObject({ calls: 5, tracedCalls: 2, measuredCalls: 1, completionTokens: 50 });
    expect(totals.energyKwh).toBeCloseTo(0.011, 12); // 8 + 3 Wh
    const methods = tracker.byTrackingMethod();
    expect(Object.keys(methods).sort()).toEqual(['codecarbon', 'codecarbon_estimated', 'ecologits']);
    expect(methods.codecarbon?.energyKwh).toBeCloseTo(0.008, 12);
    expect(methods.codecarbon_estimated?.energyKwh).toBeCloseTo(0.003, 12);
    expect(methods.ecologits).toMatchObject({ calls: 2, tracedCalls: 2, measuredCalls: 0, completionTokens: 60, promptTokens: 14 });
    expect(methods.ecologits?.energyKwh).toBeCloseTo(0.01, 12);
    expect(methods.ecologits?.gwpKgco2eq).toBeCloseTo(0.004, 12);
    expect(tracker.byModel()['gpt-4o-mini']).toMatchObject({ calls: 3, tracedCalls: 0 });
    expect(tracker.byModel()['gpt-4o-mini']!.energyKwh).toBeUndefined(); // unknown, not 0
    expect(tracker.estimatesByModel()['gpt-4o-mini']).toMatchObject({ calls: 2, tracedCalls: 2 });
    expect(Object.getPrototypeOf(tracker.estimatesByModel())).toBeNull();
    tracker.reset();
    expect(tracker.byTrackingMethod()).toEqual({});
    expect(tracker.estimatesByModel()).toEqual({});
  });

  it('ignores an estimate beside a trace, and junk that only looks like one', () => {
    const tracker = new CarbonTracker();
    tracker.record(measured, { modelId: 'm', estimate });
    const junk: unknown[] = [
      { ...estimate, energyKwh: Number.NaN },
      { ...estimate, gwpKgco2eq: -1 },
      { ...estimate, trackingMethod: 'codecarbon' },
      JSON.parse('{"__proto__":{"trackingMethod":"ecologits"},"energyKwh":1,"gwpKgco2eq":1}'),
      'ecologits',
      null,
    ];
    for (const value of junk) tracker.record(undefined, { modelId: 'm', estimate: value as CarbonEstimate });
    expect(tracker.byTrackingMethod().ecologits).toBeUndefined();
    expect(tracker.totals()).toMatchObject({ calls: 1 + junk.length, tracedCalls: 1 });
    expect(tracker.totals().energyKwh).toBeCloseTo(0.008, 12);
  });

  it('an estimate passed where metrics go counts as an untraced call, not as a measurement', () => {
    const totals = addCarbonMetrics(emptyCarbonTotals(), estimate as unknown as CarbonMetrics);
    expect(totals).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(totals.energyKwh).toBeUndefined();
    expect(sumCarbonMetrics([estimate as unknown as CarbonMetrics, measured]).tracedCalls).toBe(1);
    const tracker = new CarbonTracker();
    tracker.record(estimate as unknown as CarbonMetrics, { modelId: 'm' });
    expect(tracker.totals()).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(tracker.byTrackingMethod()).toEqual({});
  });
});

describe('reading and summing estimates', () => {
  it('getCarbonEstimate reads the ecologits key; getCarbonMetrics never returns an estimate', () => {
    expect(getCarbonEstimate({ providerMetadata: { ecologits: estimate } })).toBe(estimate);
    expect(getCarbonEstimate({ response_metadata: { ecologits: estimate } })).toBe(estimate);
    expect(getCarbonEstimate({ ecologits: estimate })).toBe(estimate);
    expect(getCarbonMetrics({ providerMetadata: { ecologits: estimate } })).toBeUndefined();
    // Even under the trace's key, an estimate is not a trace.
    expect(getCarbonMetrics({ providerMetadata: { codecarbon: estimate } })).toBeUndefined();
    expect(getCarbonEstimate({ providerMetadata: { ecologits: measured } })).toBeUndefined();
    for (const bad of [null, 'x', 42, {}, { providerMetadata: null }, { providerMetadata: { ecologits: { trackingMethod: 'ecologits' } } }]) {
      expect(getCarbonEstimate(bad)).toBeUndefined();
    }
    expect(isCarbonEstimate({ ...estimate, energyKwh: Number.POSITIVE_INFINITY })).toBe(false);
  });

  it('sumCarbonEstimates counts every item and sums the usable ones', () => {
    const totals = sumCarbonEstimates([estimate, undefined, null, { ...estimate, energyKwh: -1 } as CarbonEstimate, estimate]);
    expect(totals).toMatchObject({ calls: 5, tracedCalls: 2, completionTokens: 60 });
    expect(totals.energyKwh).toBeCloseTo(0.01, 12);
  });
});

describe('exports state which kinds they include', () => {
  const header = (csv: string) => csv.split('\n')[0]!.split(',');
  const rowsOf = (csv: string) => {
    const [head, ...rows] = csv.trim().split('\n').map((line) => line.split(','));
    return rows.map((cells) => Object.fromEntries(head!.map((h, i) => [h, cells[i]])));
  };

  it('the CSV leaves estimates out by default and marks every row with its kinds', () => {
    const tracker = mixedTracker();
    const rows = rowsOf(tracker.toEmissionsCsv());
    expect(header(tracker.toEmissionsCsv())).toContain('tracking_methods');
    expect(rows.map((r) => [r.run_id, r.tracking_methods])).toEqual([
      ['llama', 'codecarbon;codecarbon_estimated'],
      ['gpt-4o-mini', ''],
    ]);
    expect(rows[1]!.energy_consumed).toBe(''); // no traced call: unknown, not 0
  });

  it('with estimates: true, one more row per estimated model, marked ecologits', () => {
    const rows = rowsOf(mixedTracker().toEmissionsCsv({ estimates: true }));
    const estimated = rows.find((r) => r.tracking_methods === 'ecologits')!;
    expect(estimated).toMatchObject({ run_id: 'gpt-4o-mini', calls: '2', traced_calls: '0', measured_calls: '0', pue: '', completion_tokens: '60' });
    expect(Number(estimated.energy_consumed)).toBeCloseTo(0.01, 12);
    expect(Number(estimated.emissions)).toBeCloseTo(0.004, 12);
    expect(rows.filter((r) => r.tracking_methods !== 'ecologits').map((r) => r.run_id)).toEqual(['llama', 'gpt-4o-mini']);
  });

  const validator = boampsValidator;
  const options: BoAmpsReportOptions = { infrastructure: { infraType: 'publicCloud', components: [{ componentType: 'gpu', nbComponent: 1 }] }, reportId: 'r', now: new Date('2026-01-01T00:00:00Z') };

  it('BoAmps: one codecarbon measure by default; with estimates, a separate ecologits measure — valid against the schemas', () => {
    const tracker = mixedTracker();
    const plain = tracker.toBoAmpsReport(options);
    expect(plain.measures.map((m) => m.measurementMethod)).toEqual(['codecarbon']);
    expect(plain.task.nbRequest).toBe(2);

    const withEstimates = tracker.toBoAmpsReport({ ...options, estimates: true });
    const validate = validator();
    expect(validate(withEstimates), JSON.stringify(validate.errors)).toBe(true);
    expect(withEstimates.measures).toEqual([
      expect.objectContaining({ measurementMethod: 'codecarbon', powerConsumption: expect.closeTo(0.011, 12) }),
      { measurementMethod: 'ecologits', version: '0.9.3', powerConsumption: expect.closeTo(0.01, 12) },
    ]);
    expect(withEstimates.task.nbRequest).toBe(4);
    expect(withEstimates.task.dataset[1]!.dataQuantity).toBe(110); // 50 traced + 60 estimated output tokens
    expect(withEstimates.task.taskDescription).toMatch(/2 calls without a trace are estimated from the model's size, not measured \(EcoLogits 0\.9\.3.*never summed with the traced calls\. 1 call has neither a trace nor an estimate/);
  });

  it('BoAmps: estimates alone make a report only when asked for, and then without a traced emissions figure', () => {
    const tracker = new CarbonTracker();
    tracker.record(undefined, { modelId: 'gpt-4o-mini', estimate });
    expect(() => tracker.toBoAmpsReport(options)).toThrow(RangeError);
    const report = tracker.toBoAmpsReport({ ...options, estimates: true });
    expect(report.measures.map((m) => m.measurementMethod)).toEqual(['ecologits']);
    expect(report.task.taskDescription).not.toMatch(/Emissions of the traced calls/);
    expect(validator()(report)).toBe(true);
  });
});

describe('OpenTelemetry: estimates under their own tracking method', () => {
  it('records the estimate with codecarbon.tracking_method=ecologits and traced=false', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const otel = createOtelCarbonRecorder({ meter: provider.getMeter('test') });
    otel.record(measured, { provider: 'garden', modelId: 'llama' });
    otel.record(undefined, { provider: 'openai.chat', modelId: 'gpt-4o-mini', estimate });
    otel.record(undefined, { provider: 'openai.chat', modelId: 'gpt-x' });
    await reader.forceFlush();
    const points = exporter.getMetrics().flatMap((r) => r.scopeMetrics).flatMap((s) => s.metrics)
      .flatMap((m) => m.dataPoints.map((p) => ({ name: m.descriptor.name, value: p.value as number, attributes: p.attributes })));
    const energy = points.filter((p) => p.name === 'codecarbon.energy');
    expect(energy.map((p) => [p.attributes['codecarbon.tracking_method'], p.value])).toEqual([
      ['codecarbon', 8 * 3600],
      ['ecologits', 0.005 * 3_600_000],
    ]);
    const calls = points.filter((p) => p.name === 'codecarbon.calls').map((p) => [p.attributes['codecarbon.tracking_method'], p.attributes['codecarbon.traced'], p.value]);
    expect(calls).toEqual(expect.arrayContaining([['codecarbon', true, 1], ['ecologits', false, 1], [undefined, false, 1]]));
    await provider.shutdown();
  });
});
