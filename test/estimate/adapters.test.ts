/**
 * The `estimate` option of both adapters, with the real provider clients against the loopback
 * fixture: calls without a trace get an EcoLogits estimate under `ecologits`, traced calls only
 * their `codecarbon` metrics, and trackers keep the two kinds apart.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { generateText, streamText, wrapLanguageModel } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CarbonTracker, getCarbonEstimate, getCarbonMetrics, type CarbonEstimate, type CarbonMetrics, type CarbonTotals } from '../../src/index';
import { carbonTraceMiddleware, type CarbonTraceCallContext } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler, type CarbonLLMRunInfo } from '../../src/langchain/index';
import { MAJORS, readAll, type Loose } from '../ai-sdk/majors';
import { sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer();
});
afterAll(() => server.close());

// An API-style model answers without a trace; a self-hosted one with it.
const TRACED_MODEL = 'llama-3.1-8b';
beforeEach(() => {
  server.reply = (req) => {
    const usage = { prompt_tokens: 12, completion_tokens: 40 };
    return req.body.model === TRACED_MODEL ? { content: 'traced answer', usage, trace: sampleTrace(1) } : { content: 'api answer', usage, latencyMs: 30 };
  };
});

function expectOpenAIEstimate(estimate: CarbonEstimate | undefined, elapsedSeconds: number): void {
  expect(estimate).toMatchObject({ trackingMethod: 'ecologits', measured: false, completionTokens: 40, promptTokens: 12 });
  expect(estimate!.inputs).toMatchObject({ provider: 'openai', modelId: 'gpt-4o-mini', zone: 'USA', outputTokens: 40 });
  // Measured by the adapter: at least the fixture's 30 ms, at most the test's own wall time.
  expect(estimate!.inputs.requestLatencySeconds).toBeGreaterThanOrEqual(0.03);
  expect(estimate!.inputs.requestLatencySeconds).toBeLessThanOrEqual(elapsedSeconds);
  expect(estimate!.energyKwh).toBeGreaterThan(0);
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await fn();
  return [value, (performance.now() - started) / 1000];
}

describe('AI SDK middleware, estimate option', () => {
  const openai = () => createOpenAI({ baseURL: server.baseURL, apiKey: 'sk-test' });

  it('generateText with @ai-sdk/openai .chat(): an untraced call gets providerMetadata.ecologits, never codecarbon', async () => {
    const calls: Array<[CarbonMetrics | undefined, CarbonTraceCallContext]> = [];
    const model = wrapLanguageModel({
      model: openai().chat('gpt-4o-mini'),
      middleware: carbonTraceMiddleware({ estimate: true, onWarning: false, onMetrics: (m, ctx) => void calls.push([m, ctx]) }),
    });
    const [result, elapsed] = await timed(() => generateText({ model, prompt: 'hi' }));
    expect(result.text).toBe('api answer');
    expect(result.providerMetadata?.codecarbon).toBeUndefined();
    expect(getCarbonMetrics(result)).toBeUndefined();
    expectOpenAIEstimate(getCarbonEstimate(result), elapsed);
    expect(result.providerMetadata?.ecologits).toEqual(getCarbonEstimate(result));
    // onMetrics: no metrics, the estimate beside them.
    expect(calls).toHaveLength(1);
    expect(calls[0]![0]).toBeUndefined();
    expect(calls[0]![1].estimate).toEqual(getCarbonEstimate(result));
  });

  it('streamText: the estimate rides on the finish part, and the text is unchanged', async () => {
    const model = wrapLanguageModel({ model: openai().chat('gpt-4o-mini'), middleware: carbonTraceMiddleware({ estimate: true, onWarning: false }) });
    const started = performance.now();
    const result = streamText({ model, prompt: 'hi' });
    expect(await result.text).toBe('api answer');
    const metadata = await result.providerMetadata;
    expect(metadata?.codecarbon).toBeUndefined();
    expectOpenAIEstimate(getCarbonEstimate(metadata), (performance.now() - started) / 1000);
  });

  it('a traced call is never estimated', async () => {
    const onMetrics = vi.fn();
    const model = wrapLanguageModel({ model: openai().chat(TRACED_MODEL), middleware: carbonTraceMiddleware({ estimate: true, onWarning: false, onMetrics }) });
    const result = await generateText({ model, prompt: 'hi' });
    expect(getCarbonMetrics(result)?.gwpKgco2eq).toBeCloseTo(0.0001, 12);
    expect(getCarbonEstimate(result)).toBeUndefined();
    expect(result.providerMetadata?.ecologits).toBeUndefined();
    expect(onMetrics.mock.calls[0]![1].estimate).toBeUndefined();
  });

  it('a broken trace or a failed call is not estimated either', async () => {
    const model = wrapLanguageModel({ model: openai().chat('gpt-4o-mini'), middleware: carbonTraceMiddleware({ estimate: true, onWarning: false }) });
    server.reply = () => ({ content: 'x', trace: { energy_consumed_wh: -1 } });
    expect(getCarbonEstimate(await generateText({ model, prompt: 'hi' }))).toBeUndefined();
    server.reply = () => ({ status: 500 });
    await expect(generateText({ model, prompt: 'hi', maxRetries: 0 })).rejects.toThrow();
  });

  it('without the option, nothing is estimated', async () => {
    const model = wrapLanguageModel({ model: openai().chat('gpt-4o-mini'), middleware: carbonTraceMiddleware({ onWarning: false }) });
    const result = await generateText({ model, prompt: 'hi' });
    expect(result.providerMetadata?.ecologits).toBeUndefined();
  });

  it('{ zone } sets the electricity zone; an unknown model gives no estimate and a warning', async () => {
    const warnings: string[] = [];
    const middleware = carbonTraceMiddleware({ estimate: { zone: 'FR' }, onWarning: (m) => warnings.push(m) });
    const fr = await generateText({ model: wrapLanguageModel({ model: openai().chat('gpt-4o-mini'), middleware }), prompt: 'hi' });
    expect(getCarbonEstimate(fr)?.inputs.zone).toBe('FRA');
    const unknown = await generateText({ model: wrapLanguageModel({ model: openai().chat('gpt-unknown'), middleware }), prompt: 'hi' });
    expect(getCarbonEstimate(unknown)).toBeUndefined();
    expect(warnings.some((w) => /no EcoLogits estimate for openai\.chat\/gpt-unknown: EcoLogits 0\.9\.3 has no data/.test(w))).toBe(true);
  });

  it('an estimated call raises no "no x_carbon_trace" warning, generated or streamed; a call it could not estimate still does', async () => {
    const warnings: string[] = [];
    const middleware = carbonTraceMiddleware({ estimate: true, onWarning: (m) => warnings.push(m) });
    const model = wrapLanguageModel({ model: openai().chat('gpt-4o-mini'), middleware });
    const generated = await generateText({ model, prompt: 'hi' });
    expect(getCarbonEstimate(generated)?.inputs.modelId).toBe('gpt-4o-mini');
    const streamed = streamText({ model, prompt: 'hi' });
    expect(getCarbonEstimate(await streamed.providerMetadata)?.completionTokens).toBe(40);
    expect(warnings).toEqual([]);

    // The same server, a model EcoLogits does not know: no estimate, so the missing trace shows.
    const unknown = await generateText({ model: wrapLanguageModel({ model: openai().chat('llama-local'), middleware }), prompt: 'hi' });
    expect(getCarbonEstimate(unknown)).toBeUndefined();
    expect(warnings.filter((w) => w.startsWith('no x_carbon_trace'))).toEqual(['no x_carbon_trace in the response of openai.chat/llama-local: no carbon metrics for this call']);
    expect(warnings.some((w) => w.startsWith('no EcoLogits estimate for openai.chat/llama-local'))).toBe(true);
  });

  it('without the option, the missing trace warns', async () => {
    const warnings: string[] = [];
    const model = wrapLanguageModel({ model: openai().chat('gpt-4o-mini'), middleware: carbonTraceMiddleware({ onWarning: (m) => warnings.push(m) }) });
    await generateText({ model, prompt: 'hi' });
    expect(warnings).toEqual(['no x_carbon_trace in the response of openai.chat/gpt-4o-mini: no carbon metrics for this call']);
  });

  it('@ai-sdk/openai-compatible named "mistral": the provider id maps to EcoLogits\' mistralai', async () => {
    const mistral = createOpenAICompatible({ name: 'mistral', baseURL: server.baseURL, includeUsage: true });
    const model = wrapLanguageModel({ model: mistral('mistral-large-latest'), middleware: carbonTraceMiddleware({ estimate: true, onWarning: false }) });
    const estimate = getCarbonEstimate(await generateText({ model, prompt: 'hi' }));
    expect(estimate?.inputs).toMatchObject({ provider: 'mistralai', modelId: 'mistral-large-latest', zone: 'SWE', pue: 1.16 });
  });

  it.each(MAJORS)('$label: generate and stream through a gateway, with { provider } saying whose model it is', async ({ ai, model: makeModel }) => {
    const tracker = new CarbonTracker();
    const middleware = carbonTraceMiddleware({ estimate: { provider: 'openai' }, tracker, onWarning: false });
    const model = ai.wrapLanguageModel({ model: makeModel(server.baseURL, 'gpt-4o-mini'), middleware });
    const generated = await ai.generateText({ model, prompt: 'hi' });
    expect(getCarbonEstimate(generated)?.inputs.provider).toBe('openai');
    const streamed = ai.streamText({ model, prompt: 'hi' });
    await readAll(streamed.fullStream as Loose);
    expect(getCarbonEstimate(await streamed.providerMetadata)?.completionTokens).toBe(40);
    const traced = ai.wrapLanguageModel({ model: makeModel(server.baseURL, TRACED_MODEL), middleware });
    await ai.generateText({ model: traced, prompt: 'hi' });
    expectKindsApart(tracker, { traced: 1, estimated: 2 });
  });
});

/** Totals keep measurement and estimate apart: the estimated calls count as untraced calls. */
function expectKindsApart(tracker: CarbonTracker, counts: { traced: number; estimated: number }): void {
  const totals = tracker.totals();
  const methods = tracker.byTrackingMethod();
  expect(totals.calls).toBe(counts.traced + counts.estimated);
  expect(totals.tracedCalls).toBe(counts.traced);
  // Only the trace's figures in the totals: sampleTrace(1) is 0.1 g, 0.4 Wh.
  expect(totals.gwpKgco2eq).toBeCloseTo(counts.traced * 0.0001, 12);
  expect(totals.energyKwh).toBeCloseTo(counts.traced * 0.0004, 12);
  expect(methods.codecarbon?.tracedCalls).toBe(counts.traced);
  expect(methods.ecologits?.tracedCalls).toBe(counts.estimated);
  expect(methods.ecologits?.measuredCalls).toBe(0);
  expect(methods.ecologits?.gwpKgco2eq).toBeGreaterThan(0);
  expect(tracker.estimatesByModel()['gpt-4o-mini']?.tracedCalls).toBe(counts.estimated);
  expect(tracker.byModel()['gpt-4o-mini']?.tracedCalls).toBe(0);
}

describe('LangChain handler, estimate option', () => {
  function chat(handler: CarbonTraceCallbackHandler, model = 'gpt-4o-mini', streaming = false) {
    return new ChatOpenAI({ model, apiKey: 'sk-test', streaming, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
  }

  it('invoke: an untraced run gets response_metadata.ecologits, never codecarbon', async () => {
    const runs: Array<[CarbonMetrics | undefined, CarbonLLMRunInfo]> = [];
    const handler = new CarbonTraceCallbackHandler({ estimate: true, onWarning: false, onMetrics: (m, run) => void runs.push([m, run]) });
    const [message, elapsed] = await timed(() => chat(handler).invoke('hi', { callbacks: [handler] }));
    expect(message.content).toBe('api answer');
    expect(message.response_metadata.codecarbon).toBeUndefined();
    expect(getCarbonMetrics(message)).toBeUndefined();
    expectOpenAIEstimate(getCarbonEstimate(message), elapsed);
    expect(runs[0]![0]).toBeUndefined();
    expect(runs[0]![1].estimate).toEqual(getCarbonEstimate(message));
    expect(handler.totals()).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(handler.estimateTotals()).toMatchObject({ calls: 1, tracedCalls: 1, completionTokens: 40 });
    expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('stream: the run is estimated from the streamed usage', async () => {
    const handler = new CarbonTraceCallbackHandler({ estimate: true, onWarning: false });
    let text = '';
    for await (const chunk of await chat(handler, 'gpt-4o-mini', true).stream('hi', { callbacks: [handler] })) text += chunk.content;
    expect(text).toBe('api answer');
    expect(handler.estimateTotals()).toMatchObject({ tracedCalls: 1, completionTokens: 40 });
    expect(handler.totals().tracedCalls).toBe(0);
  });

  it('an estimated run raises no "no x_carbon_trace" warning, invoked or streamed; a run it could not estimate still does', async () => {
    const warnings: string[] = [];
    const handler = new CarbonTraceCallbackHandler({ estimate: true, onWarning: (m) => warnings.push(m) });
    const message = await chat(handler).invoke('hi', { callbacks: [handler] });
    expect(getCarbonEstimate(message)?.inputs.modelId).toBe('gpt-4o-mini');
    for await (const _chunk of await chat(handler, 'gpt-4o-mini', true).stream('hi', { callbacks: [handler] })) {
      // drain
    }
    expect(handler.estimateTotals().tracedCalls).toBe(2);
    expect(warnings).toEqual([]);

    const unknown = await chat(handler, 'llama-local').invoke('hi', { callbacks: [handler] });
    expect(getCarbonEstimate(unknown)).toBeUndefined();
    expect(warnings.filter((w) => w.startsWith('no x_carbon_trace'))).toEqual(['no x_carbon_trace in the response of llama-local: no carbon metrics for this call']);
    expect(warnings.some((w) => w.startsWith('no EcoLogits estimate for openai/llama-local'))).toBe(true);
  });

  it('a traced run is never estimated', async () => {
    const handler = new CarbonTraceCallbackHandler({ estimate: true, onWarning: false });
    const message = await chat(handler, TRACED_MODEL).invoke('hi', { callbacks: [handler] });
    expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo(0.0001, 12);
    expect(message.response_metadata.ecologits).toBeUndefined();
    expect(handler.estimateTotals().tracedCalls).toBe(0);
  });

  it('a LangGraph graph with an API model and a self-hosted one: the root totals keep the kinds apart', async () => {
    const tracker = new CarbonTracker();
    const roots: Array<[CarbonTotals, CarbonTotals]> = [];
    const handler = new CarbonTraceCallbackHandler({ estimate: true, tracker, onWarning: false, onRootRunEnd: (totals, run) => void roots.push([totals, run.estimates]) });
    const api = chat(handler);
    const local = chat(handler, TRACED_MODEL);
    const graph = new StateGraph(MessagesAnnotation)
      .addNode('plan', async (state) => ({ messages: [await api.invoke(state.messages)] }))
      .addNode('answer', async (state) => ({ messages: [await local.invoke(state.messages)] }))
      .addEdge(START, 'plan')
      .addEdge('plan', 'answer')
      .addEdge('answer', END)
      .compile();
    const state = await graph.invoke({ messages: [{ role: 'user', content: 'go' }] }, { callbacks: [handler] });
    expect(getCarbonEstimate(state.messages[1])?.inputs.modelId).toBe('gpt-4o-mini');
    expect(getCarbonMetrics(state.messages[2])).toBeDefined();
    expect(roots).toHaveLength(1);
    const [traced, estimated] = roots[0]!;
    expect(traced).toMatchObject({ calls: 2, tracedCalls: 1 });
    expect(traced.gwpKgco2eq).toBeCloseTo(0.0001, 12);
    expect(estimated).toMatchObject({ calls: 2, tracedCalls: 1, measuredCalls: 0 });
    expectKindsApart(tracker, { traced: 1, estimated: 1 });
  });
});
