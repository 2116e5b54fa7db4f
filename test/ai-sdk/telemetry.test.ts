import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS } from './majors';

let server: FixtureServer;
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('test');

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  server = await startFixtureServer(() => ({ content: 'traced', trace: sampleTrace(2) }));
});
afterAll(async () => {
  context.disable();
  await server.close();
});
beforeEach(() => exporter.reset());

// ai@7 moved telemetry to @ai-sdk/otel; ai@5 and ai@6 have it built in.
describe.each(MAJORS.slice(0, 2))('span attributes with $label experimental_telemetry', ({ ai, model }) => {
  const wrapped = () => ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ onWarning: false }) });

  it('generateText: on the doGenerate span', async () => {
    await ai.generateText({ model: wrapped(), prompt: 'x', experimental_telemetry: { isEnabled: true, tracer } });
    const span = exporter.getFinishedSpans().find((s) => s.name === 'ai.generateText.doGenerate');
    expect(span?.attributes['codecarbon.traced']).toBe(true);
    expect(span?.attributes['codecarbon.gwp_kgco2eq']).toBeCloseTo(0.0002, 12);
    expect(span?.attributes['codecarbon.energy_kwh']).toBeCloseTo(0.0008, 12);
    expect(span?.attributes['codecarbon.tracking_method']).toBe('codecarbon');
    // The AI SDK records providerMetadata on the span as well.
    expect(String(span?.attributes['ai.response.providerMetadata'])).toContain('codecarbon');
  });

  it('streamText: on the doStream span', async () => {
    const result = ai.streamText({ model: wrapped(), prompt: 'x', experimental_telemetry: { isEnabled: true, tracer } });
    await result.text;
    await provider.forceFlush();
    const span = exporter.getFinishedSpans().find((s) => s.name === 'ai.streamText.doStream');
    expect(span?.attributes['codecarbon.gwp_kgco2eq']).toBeCloseTo(0.0002, 12);
  });
});

describe('span attributes without telemetry', () => {
  it('writes to whatever span is active, and marks untraced calls', async () => {
    server.reply = () => ({ content: 'untraced' });
    const { ai, model } = MAJORS[2]!;
    const wrapped = ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ onWarning: false }) });
    await tracer.startActiveSpan('user-span', async (span) => {
      await ai.generateText({ model: wrapped, prompt: 'x' });
      span.end();
    });
    const span = exporter.getFinishedSpans().find((s) => s.name === 'user-span');
    expect(span?.attributes['codecarbon.traced']).toBe(false);
    expect(trace.getActiveSpan()).toBeUndefined();
  });
});
