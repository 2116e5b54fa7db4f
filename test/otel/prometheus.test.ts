import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarbonTracker } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { CARBON_INSTRUMENTS, createOtelCarbonRecorder } from '../../src/otel/index';
import { sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS } from '../ai-sdk/majors';

let fixture: FixtureServer;
let metricsServer: Server;
let scrapeUrl: string;
const exporter = new PrometheusExporter({ preventServerStart: true });
const meterProvider = new MeterProvider({ readers: [exporter] });

beforeAll(async () => {
  fixture = await startFixtureServer();
  // The exporter's own handler, served on a loopback port of our choosing: a real scrape.
  metricsServer = createServer((req, res) => exporter.getMetricsRequestHandler(req, res));
  metricsServer.listen(0, '127.0.0.1');
  await once(metricsServer, 'listening');
  scrapeUrl = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}/metrics`;
});
afterAll(async () => {
  metricsServer.close();
  await meterProvider.shutdown();
  await fixture.close();
});

/** Prometheus text → { 'name{labels}': value }. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const sumOf = (samples: Map<string, number>, name: string, labels: string[] = []) =>
  [...samples].filter(([k]) => (k === name || k.startsWith(`${name}{`)) && labels.every((l) => k.includes(l))).reduce((a, [, v]) => a + v, 0);

describe('OpenTelemetry counters, scraped by Prometheus', () => {
  it('counts energy, emissions and calls from both adapters', async () => {
    const tracker = new CarbonTracker();
    const otel = createOtelCarbonRecorder({ meter: meterProvider.getMeter('test') });
    const recorders = [tracker, otel];

    // AI SDK: two traced calls (×1, ×2) and one untraced.
    const { ai, model } = MAJORS[2]!;
    const wrapped = ai.wrapLanguageModel({ model: model(fixture.baseURL, 'model-a'), middleware: carbonTraceMiddleware({ tracker: recorders, onWarning: false }) });
    fixture.reply = () => ({ content: 'x', trace: sampleTrace(1) });
    await ai.generateText({ model: wrapped, prompt: 'x' });
    fixture.reply = () => ({ content: 'x', trace: sampleTrace(2) });
    await ai.streamText({ model: wrapped, prompt: 'x' }).consumeStream();
    fixture.reply = () => ({ content: 'x' });
    await ai.generateText({ model: wrapped, prompt: 'x' });

    // LangChain: one traced call (×4, estimated).
    const handler = new CarbonTraceCallbackHandler({ tracker: recorders, onWarning: false });
    const chat = new ChatOpenAI({ model: 'model-b', apiKey: 'x', maxRetries: 0, configuration: { baseURL: fixture.baseURL, fetch: handler.fetch } });
    fixture.reply = () => ({ content: 'y', trace: sampleTrace(4, { measured: false }) });
    await chat.invoke('y', { callbacks: [handler] });

    const text = await (await fetch(scrapeUrl)).text();
    const samples = parseExposition(text);
    expect(text).toContain(`# HELP codecarbon_energy_total ${CARBON_INSTRUMENTS.energy.description}`);
    expect(text).toContain('# UNIT codecarbon_energy_total J');
    expect(text).toContain('# UNIT codecarbon_emissions_total g');
    expect(text).toContain('# TYPE codecarbon_calls_total counter');

    // Hand-computed: sampleTrace(n) is 0.4n Wh and 0.1n g; 1 Wh = 3600 J. model-a: 0.4 + 0.8 Wh; model-b: 1.6 Wh.
    expect(sumOf(samples, 'codecarbon_energy_total', ['gen_ai_request_model="model-a"'])).toBeCloseTo(1.2 * 3600, 6);
    expect(sumOf(samples, 'codecarbon_energy_total', ['gen_ai_request_model="model-b"'])).toBeCloseTo(1.6 * 3600, 6);
    expect(sumOf(samples, 'codecarbon_emissions_total')).toBeCloseTo(0.7, 9);
    expect(sumOf(samples, 'codecarbon_calls_total')).toBe(4);
    expect(sumOf(samples, 'codecarbon_calls_total', ['codecarbon_traced="false"'])).toBe(1);
    expect(sumOf(samples, 'codecarbon_calls_total', ['codecarbon_tracking_method="codecarbon_estimated"'])).toBe(1);
    expect(sumOf(samples, 'codecarbon_calls_total', ['gen_ai_provider_name="garden.chat"'])).toBe(3);
    expect(sumOf(samples, 'codecarbon_calls_total', ['gen_ai_provider_name="openai"'])).toBe(1);

    // Every call of a language model is a generation; an embedding recorded as such is apart.
    expect(sumOf(samples, 'codecarbon_calls_total', ['codecarbon_call_kind="chat"'])).toBe(4);
    otel.record({ trackingMethod: 'codecarbon', measured: true, energyKwh: 0.001, warnings: [] }, { modelId: 'bge', kind: 'embedding' });
    const after = parseExposition(await (await fetch(scrapeUrl)).text());
    expect(sumOf(after, 'codecarbon_calls_total', ['codecarbon_call_kind="embedding"'])).toBe(1);
    expect(sumOf(after, 'codecarbon_energy_total', ['codecarbon_call_kind="embedding"'])).toBeCloseTo(3600, 6);

    // The in-process tracker agrees with what Prometheus scraped.
    expect(tracker.totals().energyKwh! * 3.6e6).toBeCloseTo(sumOf(samples, 'codecarbon_energy_total'), 6);
    expect(tracker.totals()).toMatchObject({ calls: 4, tracedCalls: 3 });
    expect(tracker.byModel()['model-a']).toMatchObject({ calls: 3, tracedCalls: 2 });
  });

  it('a recorder that throws does not stop the others or the call', async () => {
    const tracker = new CarbonTracker();
    const warnings: string[] = [];
    const { ai, model } = MAJORS[2]!;
    const broken = { record: () => { throw new Error('exporter down'); } };
    const wrapped = ai.wrapLanguageModel({ model: model(fixture.baseURL), middleware: carbonTraceMiddleware({ tracker: [broken, tracker], onWarning: (w) => void warnings.push(w) }) });
    fixture.reply = () => ({ content: 'fine', trace: sampleTrace(1) });
    expect((await ai.generateText({ model: wrapped, prompt: 'x' })).text).toBe('fine');
    expect(tracker.totals().tracedCalls).toBe(1);
    expect(warnings).toEqual(['tracker.record threw: exporter down']);
  });
});
