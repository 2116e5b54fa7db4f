/**
 * Carbon per feature, user or tenant, through both adapters with the real clients: attributes
 * travel from the call to onMetrics, the tracker's byAttribute totals and the OpenTelemetry
 * counters (allowed keys only); one provider name can serve both adapters.
 */
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CarbonTracker, UNATTRIBUTED, type CarbonAttributes } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { createOtelCarbonRecorder } from '../../src/otel/index';
import { sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS } from '../ai-sdk/majors';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer(() => ({ content: 'ok', trace: sampleTrace(1) }));
});
afterAll(() => server.close());

const kg = (grams: number) => grams / 1000;

describe('attributes', () => {
  it('AI SDK: middleware defaults (object or function) and per-call providerOptions, merged', async () => {
    const { ai, model } = MAJORS[2]!;
    const tracker = new CarbonTracker();
    const seen: CarbonAttributes[] = [];
    const wrapped = ai.wrapLanguageModel({
      model: model(server.baseURL),
      middleware: carbonTraceMiddleware({
        tracker,
        onWarning: false,
        attributes: (call) => ({ service: 'support-bot', mode: call.type }),
        onMetrics: (_m, context) => void seen.push(context.attributes),
      }),
    });
    await ai.generateText({ model: wrapped, prompt: 'x', providerOptions: { carbonTrace: { attributes: { feature: 'chat', tenant: 'acme' } } } });
    await ai.generateText({ model: wrapped, prompt: 'x', providerOptions: { carbonTrace: { attributes: { feature: 'search', mode: 'override', bad: { nested: 1 } } } } });
    await ai.streamText({ model: wrapped, prompt: 'x', providerOptions: { carbonTrace: { attributes: { feature: 'chat' } } } }).consumeStream();
    await ai.generateText({ model: wrapped, prompt: 'x' });
    expect(seen).toEqual([
      { service: 'support-bot', mode: 'generate', feature: 'chat', tenant: 'acme' },
      { service: 'support-bot', mode: 'override', feature: 'search' },
      { service: 'support-bot', mode: 'stream', feature: 'chat' },
      { service: 'support-bot', mode: 'generate' },
    ]);
    const byFeature = tracker.byAttribute('feature');
    expect(Object.keys(byFeature).sort()).toEqual(['(none)', 'chat', 'search']);
    expect(byFeature.chat).toMatchObject({ calls: 2, tracedCalls: 2 });
    expect(byFeature.chat!.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    expect(byFeature[UNATTRIBUTED]!.calls).toBe(1);
    // The values of one key always add up to every call.
    expect(Object.values(tracker.byAttribute('tenant')).reduce((n, t) => n + t.calls, 0)).toBe(4);
    expect(tracker.byAttribute('tenant')[UNATTRIBUTED]!.calls).toBe(3);
  });

  it('AI SDK: a throwing attributes function costs the call its defaults, not its result', async () => {
    const { ai, model } = MAJORS[2]!;
    const warnings: string[] = [];
    const wrapped = ai.wrapLanguageModel({
      model: model(server.baseURL),
      middleware: carbonTraceMiddleware({ onWarning: (w) => void warnings.push(w), attributes: () => { throw new Error('bug'); } }),
    });
    expect((await ai.generateText({ model: wrapped, prompt: 'x' })).text).toBe('ok');
    expect(warnings).toEqual(['the attributes option threw: bug']);
  });

  it('LangChain: attributeKeys pick invoke-time metadata, inherited by the model calls of a chain', async () => {
    const tracker = new CarbonTracker();
    const seen: CarbonAttributes[] = [];
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false, attributeKeys: ['feature', 'userId', '__proto__'], onMetrics: (_m, run) => void seen.push(run.attributes) });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    const chain = ChatPromptTemplate.fromTemplate('Say {word}').pipe(chat);
    await chain.invoke({ word: 'hi' }, { callbacks: [handler], metadata: { feature: 'greeting', userId: 'u-1', secret: 'not picked' } });
    await chat.invoke('x', { callbacks: [handler], metadata: { feature: 'chat', userId: 42 } });
    await chat.invoke('x', { callbacks: [handler], metadata: JSON.parse('{"__proto__": "p", "feature": "chat"}') });
    expect(seen[0]).toEqual({ feature: 'greeting', userId: 'u-1' });
    expect(seen[1]).toEqual({ feature: 'chat', userId: 42 });
    expect(Object.getPrototypeOf(seen[2])).toBe(Object.prototype);
    expect(seen[2]).toEqual(JSON.parse('{"__proto__": "p", "feature": "chat"}'));
    expect(tracker.byAttribute('feature').chat).toMatchObject({ calls: 2, tracedCalls: 2 });
    expect(tracker.byAttribute('userId')['42']).toMatchObject({ calls: 1 });
  });

  it('OpenTelemetry: only the allowed keys become metric attributes', async () => {
    const exporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({ readers: [exporter] });
    const otel = createOtelCarbonRecorder({ meter: provider.getMeter('t'), attributeKeys: ['feature'] });
    const handler = new CarbonTraceCallbackHandler({ tracker: otel, onWarning: false, attributeKeys: ['feature', 'userId'] });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    await chat.invoke('x', { callbacks: [handler], metadata: { feature: 'chat', userId: 'u-1' } });
    const { resourceMetrics } = await exporter.collect();
    const points = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).flatMap((m) => m.dataPoints.map((p) => p.attributes));
    expect(points.length).toBeGreaterThan(0);
    for (const attributes of points) {
      expect(attributes.feature).toBe('chat');
      expect(attributes).not.toHaveProperty('userId');
    }
    await provider.shutdown();
  });

  it('one provider name for one server across both adapters', async () => {
    const tracker = new CarbonTracker();
    const { ai, model } = MAJORS[2]!;
    const wrapped = ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ tracker, onWarning: false, provider: 'gpu-box' }) });
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false, provider: 'gpu-box' });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    await ai.generateText({ model: wrapped, prompt: 'x' });
    await chat.invoke('x', { callbacks: [handler] });
    expect(tracker.providersOf('fixture-model')).toEqual(['gpu-box']);
  });
});

describe('token counts the trace does not carry', () => {
  const noTokens = { emissions_g_co2: 0.2, energy_consumed_wh: 0.5, duration_seconds: 1, measured: true };

  it('AI SDK: taken from the call\'s usage, generate and stream', async () => {
    server.reply = () => ({ content: 'five words in this answer', trace: noTokens, usage: { prompt_tokens: 17, completion_tokens: 6 } });
    const { ai, model } = MAJORS[1]!; // ai@6, what Node 20 users get
    const tracker = new CarbonTracker();
    const wrapped = ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ tracker, onWarning: false }) });
    await ai.generateText({ model: wrapped, prompt: 'x' });
    await ai.streamText({ model: wrapped, prompt: 'x' }).consumeStream();
    expect(tracker.totals()).toMatchObject({ tracedCalls: 2, promptTokens: 34, completionTokens: 12 });
  });

  it('LangChain: taken from usage_metadata, invoke and stream', async () => {
    server.reply = () => ({ content: 'five words in this answer', trace: noTokens, usage: { prompt_tokens: 17, completion_tokens: 6 } });
    const tracker = new CarbonTracker();
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    await chat.invoke('x', { callbacks: [handler] });
    for await (const _chunk of await chat.stream('y', { callbacks: [handler] })) {
      // drain
    }
    expect(tracker.totals()).toMatchObject({ tracedCalls: 2, promptTokens: 34, completionTokens: 12 });
  });

  it('the trace\'s own counts win over the usage', async () => {
    server.reply = () => ({ content: 'x', trace: sampleTrace(2), usage: { prompt_tokens: 999, completion_tokens: 999 } });
    const tracker = new CarbonTracker();
    const { ai, model } = MAJORS[2]!;
    await ai.generateText({ model: ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ tracker, onWarning: false }) }), prompt: 'x' });
    expect(tracker.totals()).toMatchObject({ promptTokens: 20, completionTokens: 10 });
  });
});
