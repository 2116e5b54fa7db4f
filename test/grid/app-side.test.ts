/**
 * The app side of a live grid: the adapters' and the tracker's `gridIntensity` take a provider
 * and book each call at its `current()` reading when the call ends — with the real provider
 * clients against the loopback model server, and the Electricity Maps provider against its
 * loopback stand-in, timers driven by hand.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { generateText, streamText, wrapLanguageModel } from 'ai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CarbonTracker,
  getCarbonEstimate,
  getCarbonMetrics,
  parseCarbonTrace,
  withGridIntensity,
  type CarbonMetrics,
  type GridIntensityProvider,
  type GridIntensityReading,
} from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { createElectricityMapsProvider, withGridIntensity as withZoneOrGrid } from '../../src/grid/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { createOtelCarbonRecorder } from '../../src/otel/index';
import { manualTimers, startElectricityMapsStandIn, type ElectricityMapsStandIn } from '../fixtures/electricity-maps-server';
import { sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

let server: FixtureServer;
let api: ElectricityMapsStandIn;
beforeAll(async () => {
  server = await startFixtureServer();
  api = await startElectricityMapsStandIn();
});
afterAll(async () => {
  await server.close();
  await api.close();
});

// Every traced answer: 0.4 Wh measured, the server's own 0.1 g.
beforeEach(() => {
  server.reply = () => ({ content: 'traced answer', usage: { prompt_tokens: 12, completion_tokens: 40 }, trace: sampleTrace(1) });
  api.reply = () => ({ carbonIntensity: 56, datetime: '2026-01-15T18:00:00.000Z' });
});

const KWH = 0.0004;
const open: GridIntensityProvider[] = [];
afterEach(() => {
  for (const p of open.splice(0)) p.close();
});

async function liveGrid() {
  const clock = manualTimers();
  const provider = createElectricityMapsProvider({ zone: 'FR', token: 'em-token', apiUrl: api.url, timers: clock.timers, onWarning: false });
  open.push(provider);
  await provider.ready;
  /** The API's figure changes, and the next refresh picks it up. */
  const moveTo = async (carbonIntensity: number, datetime: string) => {
    api.reply = () => ({ carbonIntensity, datetime });
    clock.advance(300_000);
    await clock.settle();
  };
  return { provider, moveTo };
}

function otelRecorder() {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  const recorder = createOtelCarbonRecorder({ meter: meterProvider.getMeter('test') });
  const grams = async () => {
    const { resourceMetrics } = await exporter.collect();
    const emissions = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'codecarbon.emissions');
    return emissions?.dataPoints.reduce((sum, p) => sum + (p.value as number), 0) ?? 0;
  };
  return { recorder, grams, close: () => meterProvider.shutdown() };
}

describe('AI SDK middleware, gridIntensity: a live provider', () => {
  it('books each call at the figure of its time, in providerMetadata, onMetrics, the tracker and OpenTelemetry', async () => {
    const { provider, moveTo } = await liveGrid();
    const tracker = new CarbonTracker();
    const otel = otelRecorder();
    const seen: Array<CarbonMetrics | undefined> = [];
    const garden = createOpenAICompatible({ name: 'garden', baseURL: server.baseURL });
    const model = wrapLanguageModel({
      model: garden('llama-3.1-8b'),
      middleware: carbonTraceMiddleware({ gridIntensity: provider, tracker: [tracker, otel.recorder], onMetrics: (m) => void seen.push(m), onWarning: false }),
    });

    const first = await generateText({ model, prompt: 'hi' });
    await moveTo(120, '2026-01-15T19:00:00.000Z');
    const streamed = streamText({ model, prompt: 'hi' });
    await streamed.text;

    const firstMetrics = getCarbonMetrics(first)!;
    const secondMetrics = getCarbonMetrics(await streamed.providerMetadata)!;
    expect(firstMetrics.gwpKgco2eq).toBeCloseTo((KWH * 56) / 1000, 15);
    expect(secondMetrics.gwpKgco2eq).toBeCloseTo((KWH * 120) / 1000, 15);
    expect(firstMetrics.energyKwh).toBeCloseTo(KWH, 15);
    // Where the gram was booked: the intensity, its source, its hour, and what it replaced.
    expect(firstMetrics.warnings.at(-1)).toBe(
      "gwpKgco2eq derived from energyKwh × 56 gCO2eq/kWh (Electricity Maps live figure, zone FR, for 2026-01-15T18:00:00.000Z; replaces the server's 0.0001 kgCO2eq)",
    );
    expect(secondMetrics.warnings.at(-1)).toMatch(/× 120 gCO2eq\/kWh \(Electricity Maps live figure, zone FR, for 2026-01-15T19:00:00\.000Z/);
    expect(seen.map((m) => m?.gwpKgco2eq)).toEqual([firstMetrics.gwpKgco2eq, secondMetrics.gwpKgco2eq]);
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo((KWH * 176) / 1000, 15);
    // OpenTelemetry counts grams: 0.4 Wh × (56 + 120) g/kWh.
    expect(await otel.grams()).toBeCloseTo((KWH * 176), 12);
    await otel.close();
  });

  it('leaves untraced calls untraced, and estimates on their own grid unless given one', async () => {
    const { provider, moveTo } = await liveGrid();
    server.reply = () => ({ content: 'api answer', usage: { prompt_tokens: 12, completion_tokens: 40 } });
    const garden = createOpenAICompatible({ name: 'openai', baseURL: server.baseURL });
    const run = async (options: Parameters<typeof carbonTraceMiddleware>[0]) =>
      getCarbonEstimate(await generateText({ model: wrapLanguageModel({ model: garden('gpt-4o-mini'), middleware: carbonTraceMiddleware({ ...options, onWarning: false }) }), prompt: 'hi' }));

    // The server's grid is not OpenAI's datacenter's: the estimate keeps EcoLogits' USA mix.
    const own = await run({ gridIntensity: provider, estimate: true });
    expect(own?.inputs).toMatchObject({ zone: 'USA', gCo2PerKwh: 383.55 });
    // Given to the estimate, the provider wins, read at each call.
    const live = await run({ estimate: { gridIntensity: provider } });
    expect(live?.inputs).toMatchObject({ zone: 'FR', gCo2PerKwh: 56, gridSource: expect.stringMatching(/^Electricity Maps live figure/) });
    await moveTo(90, '2026-01-15T20:00:00.000Z');
    const later = await run({ estimate: { gridIntensity: provider } });
    expect(later?.inputs.gCo2PerKwh).toBe(90);
    expect(later!.gwpKgco2eq).toBeCloseTo(later!.energyKwh * 0.09, 15);
  });
});

describe('LangChain handler, gridIntensity: a live provider', () => {
  it('books each run at the figure of its time, in response_metadata, totals and trackers', async () => {
    const { provider, moveTo } = await liveGrid();
    const tracker = new CarbonTracker();
    const handler = new CarbonTraceCallbackHandler({ gridIntensity: provider, tracker, onWarning: false });
    const chat = new ChatOpenAI({ model: 'llama-3.1-8b', apiKey: 'sk-test', configuration: { baseURL: server.baseURL, fetch: handler.fetch } });

    const first = await chat.invoke('hi', { callbacks: [handler] });
    await moveTo(200, '2026-01-15T21:00:00.000Z');
    const second = await chat.invoke('hi again', { callbacks: [handler] });

    expect(getCarbonMetrics(first)?.gwpKgco2eq).toBeCloseTo((KWH * 56) / 1000, 15);
    expect(getCarbonMetrics(second)?.gwpKgco2eq).toBeCloseTo((KWH * 200) / 1000, 15);
    expect(getCarbonMetrics(second)?.warnings.at(-1)).toMatch(/× 200 gCO2eq\/kWh \(Electricity Maps live figure, zone FR, for 2026-01-15T21:00:00\.000Z/);
    expect(handler.totals().gwpKgco2eq).toBeCloseTo((KWH * 256) / 1000, 15);
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo((KWH * 256) / 1000, 15);
  });
});

describe('CarbonTracker, gridIntensity', () => {
  const metrics = parseCarbonTrace(sampleTrace(1))!;

  it('books each record at the reading of its time; emissions.csv and BoAmps follow', () => {
    let reading: GridIntensityReading = { gCo2PerKwh: 100, source: 'stand-in', zone: 'FR', live: true };
    const provider: GridIntensityProvider = { current: () => reading, ready: Promise.resolve(), close: () => {} };
    const tracker = new CarbonTracker({ gridIntensity: provider, onWarning: false });
    tracker.record(metrics, { modelId: 'm' });
    reading = { ...reading, gCo2PerKwh: 300 };
    tracker.record(metrics, { modelId: 'm' });
    tracker.record(undefined, { modelId: 'm' }); // no trace: nothing to recompute
    const expectedKg = (KWH * 400) / 1000;
    expect(tracker.totals()).toMatchObject({ calls: 3, tracedCalls: 2 });
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo(expectedKg, 15);
    const [header, row] = tracker.toEmissionsCsv().trim().split('\n');
    const cell = (name: string) => Number(row!.split(',')[header!.split(',').indexOf(name)]);
    expect(cell('emissions')).toBeCloseTo(expectedKg, 15);
    // Two 0.5 s traces.
    expect(cell('emissions_rate')).toBeCloseTo(expectedKg / 1, 15);
    const report = tracker.toBoAmpsReport({ infrastructure: { infraType: 'onPremise', components: [{ componentType: 'gpu', nbComponent: 1 }] } });
    expect(report.task.taskDescription).toContain(`Emissions of the traced calls: ${tracker.totals().gwpKgco2eq} kgCO2eq`);
  });

  it('takes a fixed intensity too, and books a trace without energy as it came, with a warning', () => {
    const warnings: string[] = [];
    const tracker = new CarbonTracker({ gridIntensity: { gCo2PerKwh: 56, source: 'our supplier' }, onWarning: (m) => warnings.push(m) });
    tracker.record(metrics);
    tracker.record(parseCarbonTrace({ emissions_g_co2: 2 }));
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo((KWH * 56) / 1000 + 0.002, 15);
    expect(warnings).toEqual([expect.stringMatching(/gwpKgco2eq not recomputed: the trace has no energy \(our supplier\)/)]);
  });
});

describe('withGridIntensity and a provider', () => {
  const metrics = parseCarbonTrace(sampleTrace(1))!;

  it('reads current() at the call (core and carbon-trace/grid alike)', () => {
    let g = 10;
    const provider: GridIntensityProvider = { current: () => ({ gCo2PerKwh: g, source: 'stand-in', zone: 'FR', live: true }), ready: Promise.resolve(), close: () => {} };
    expect(withGridIntensity(metrics, provider, { onWarning: false }).gwpKgco2eq).toBeCloseTo((KWH * 10) / 1000, 15);
    g = 20;
    expect(withZoneOrGrid(metrics, provider, { onWarning: false }).gwpKgco2eq).toBeCloseTo((KWH * 20) / 1000, 15);
  });

  it.each([
    ['throws', () => { throw new Error('offline'); }, /the grid intensity provider failed \(offline\)/],
    ['gives NaN', () => ({ gCo2PerKwh: Number.NaN }), /grid intensity NaN is not a number/],
    ['gives null', () => null, /no grid intensity \(null\)/],
  ])('a provider of your own that %s: the server’s figure stays, with a warning, never a throw', (_name, current, reason) => {
    const provider = { current, ready: Promise.resolve(), close: () => {} } as unknown as GridIntensityProvider;
    const out = withGridIntensity(metrics, provider, { onWarning: false });
    expect(out.gwpKgco2eq).toBe(metrics.gwpKgco2eq);
    expect(out.warnings.at(-1)).toMatch(reason);
  });
});
