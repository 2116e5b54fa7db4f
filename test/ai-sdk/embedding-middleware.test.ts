/**
 * carbonTraceMiddleware() as an embedding-model middleware (`wrapEmbeddingModel` of ai@6 and
 * ai@7; ai@5 has none): `embed` and `embedMany` with the real embedding models of
 * @ai-sdk/openai, @ai-sdk/openai-compatible and ollama-ai-provider-v2 against the wire fixture.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ai7 from 'ai';
import * as ai6 from 'ai-v6';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAI as createOpenAIv3 } from 'ai-sdk-openai-v3';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { createOpenAICompatible as createOpenAICompatibleV2 } from 'ai-sdk-openai-compatible-v2';
import { createOllama } from 'ollama-ai-provider-v2';
import { parseCarbonTrace, sumCarbonMetrics, type CarbonMetrics, type CarbonRecordContext } from '../../src/index';
import { carbonTraceMiddleware, getCarbonMetrics, type CarbonTraceCallContext } from '../../src/ai-sdk/index';
import { createEmbeddingGroups } from '../../src/ai-sdk/embedding-sum';
import { startWireServer, type WireServer } from '../fixtures/wire-server';
import { sampleTrace } from '../fixtures/openai-compatible-server';
import type { Loose } from './majors';

(globalThis as Record<string, unknown>).AI_SDK_LOG_WARNINGS = false;

let server: WireServer;
beforeAll(async () => {
  server = await startWireServer();
});
afterAll(() => server.close());

const kg = (grams: number) => grams / 1000;

/** The values of an embeddings request, on either wire (`input` is an array on both). */
function inputsOf(body: Loose): string[] {
  return Array.isArray(body?.input) ? body.input : [String(body?.input)];
}

/** `v<n>` → n: each request's trace is that of its first value, so sums are checkable. */
function firstValueNumber(body: Loose): number {
  return Number(/^v(\d+)$/.exec(inputsOf(body)[0] ?? '')?.[1] ?? 1);
}

// An inner middleware that lowers the provider's per-request limit, as a model with a small
// batch size would have: embedMany then splits the values into several requests.
const splitBy = (maxEmbeddingsPerCall: number, parallel = true) => ({
  specificationVersion: 'v3' as const,
  overrideMaxEmbeddingsPerCall: () => maxEmbeddingsPerCall,
  overrideSupportsParallelCalls: () => parallel,
});

type EmbedCase = { label: string; ai: Loose; model(): Loose; providerPrefix: string };

const CASES: EmbedCase[] = [
  { label: 'ai@7 + @ai-sdk/openai 4 embedding', ai: ai7, model: () => createOpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' }).embedding('fixture-embed'), providerPrefix: 'openai' },
  { label: 'ai@7 + @ai-sdk/openai-compatible 3', ai: ai7, model: () => createOpenAICompatible({ name: 'garden', baseURL: `${server.baseURL}/v1` }).embeddingModel('fixture-embed'), providerPrefix: 'garden' },
  { label: 'ai@7 + ollama-ai-provider-v2 4', ai: ai7, model: () => createOllama({ baseURL: `${server.baseURL}/api` }).embedding('fixture-embed'), providerPrefix: 'ollama' },
  { label: 'ai@6 + @ai-sdk/openai 3 embedding', ai: ai6, model: () => createOpenAIv3({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' }).embedding('fixture-embed'), providerPrefix: 'openai' },
  { label: 'ai@6 + @ai-sdk/openai-compatible 2', ai: ai6, model: () => createOpenAICompatibleV2({ name: 'garden', baseURL: `${server.baseURL}/v1` }).embeddingModel('fixture-embed'), providerPrefix: 'garden' },
];

describe.each(CASES)('$label', ({ ai, model: makeModel, providerPrefix }) => {
  function wrapped(options: Parameters<typeof carbonTraceMiddleware>[0] = {}, inner: Loose[] = []) {
    return ai.wrapEmbeddingModel({ model: makeModel(), middleware: [carbonTraceMiddleware({ onWarning: false, ...options }), ...inner] });
  }

  it('embed: the trace at providerMetadata.codecarbon; one call of kind embedding', async () => {
    const trace = sampleTrace(2);
    server.reply = () => ({ trace });
    const calls: Array<[CarbonMetrics | undefined, CarbonTraceCallContext]> = [];
    const records: Array<CarbonRecordContext | undefined> = [];
    const result = await ai.embed({
      model: wrapped({ onMetrics: (m, c) => void calls.push([m, c]), tracker: { record: (_m, c) => void records.push(c) } }),
      value: 'hello',
    });
    expect(result.embedding).toHaveLength(3);
    expect(result.providerMetadata.codecarbon).toEqual(parseCarbonTrace(trace));
    expect(getCarbonMetrics(result)?.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    expect(calls).toHaveLength(1);
    expect(calls[0]![1]).toMatchObject({ type: 'embed', kind: 'embedding', outcome: 'completed', modelId: 'fixture-embed' });
    expect(calls[0]![1].provider.startsWith(providerPrefix)).toBe(true);
    expect(records).toEqual([expect.objectContaining({ kind: 'embedding', modelId: 'fixture-embed' })]);
  });

  it('embed: prompt tokens from the provider\'s usage when the trace has none', async () => {
    server.reply = () => ({ trace: { energy_consumed_wh: 0.3 }, usage: { input: 42, output: 0 } });
    const metrics = getCarbonMetrics(await ai.embed({ model: wrapped(), value: 'hello' }));
    expect(metrics?.energyKwh).toBeCloseTo(0.0003, 12);
    expect(metrics?.promptTokens).toBe(42);
    expect(metrics?.completionTokens).toBeUndefined();
  });

  it('embedMany in one request: that request\'s trace, as for embed', async () => {
    server.reply = () => ({ trace: sampleTrace(5) });
    const result = await ai.embedMany({ model: wrapped(), values: ['a', 'b', 'c'] });
    expect(result.embeddings).toHaveLength(3);
    expect(getCarbonMetrics(result)).toEqual(parseCarbonTrace(sampleTrace(5)));
  });

  it.each([
    ['in parallel', true, undefined],
    ['one after another (supportsParallelCalls: false)', false, undefined],
    ['two at a time (maxParallelCalls: 2)', true, 2],
  ])('embedMany split into 3 requests, %s: the sum, the count stated, 3 calls recorded', async (_name, parallel, maxParallelCalls) => {
    server.reply = ({ body }) => ({ trace: sampleTrace(firstValueNumber(body)), usage: { input: inputsOf(body).length * 10, output: 0 } });
    const calls: Array<[CarbonMetrics | undefined, CarbonTraceCallContext]> = [];
    const result = await ai.embedMany({
      model: wrapped({ onMetrics: (m, c) => void calls.push([m, c]) }, [splitBy(2, parallel)]),
      // Requests: [v1, v2], [v3, v4], [v5] → traces ×1, ×3, ×5.
      values: ['v1', 'v2', 'v3', 'v4', 'v5'],
      ...(maxParallelCalls ? { maxParallelCalls } : {}),
    });
    expect(result.embeddings).toHaveLength(5);
    const metrics = getCarbonMetrics(result)!;
    expect(metrics.gwpKgco2eq).toBeCloseTo(kg(0.1 * 9), 12);
    expect(metrics.energyKwh).toBeCloseTo((0.4 * 9) / 1000, 12);
    expect(metrics.gpuEnergyKwh).toBeCloseTo((0.25 * 9) / 1000, 12);
    expect(metrics.durationSeconds).toBeCloseTo(0.5 * 9, 12);
    expect(metrics.promptTokens).toBe(10 * 9);
    expect(metrics.measured).toBe(true);
    expect(metrics.trackingMethod).toBe('codecarbon');
    expect(metrics.warnings).toEqual(['summed over 3 embedding requests (embedMany split the values into 3 calls)']);
    // Each request is a call of its own in onMetrics and the trackers; their sum is the result's.
    expect(calls.map(([, c]) => c.kind)).toEqual(['embedding', 'embedding', 'embedding']);
    const totals = sumCarbonMetrics(calls.map(([m]) => m));
    expect(totals.calls).toBe(3);
    expect(totals.gwpKgco2eq).toBeCloseTo(metrics.gwpKgco2eq!, 12);
  });

  it('embedMany: a field one request lacks is left out of the sum, and said', async () => {
    server.reply = ({ body }) => {
      const n = firstValueNumber(body);
      const { gpu_energy_wh: _, ...withoutGpu } = sampleTrace(n);
      return { trace: n === 3 ? withoutGpu : { ...sampleTrace(n), gpu_power_watts: 100 } };
    };
    const metrics = getCarbonMetrics(await ai.embedMany({ model: wrapped({}, [splitBy(2)]), values: ['v1', 'v2', 'v3', 'v4'] }))!;
    expect(metrics.gwpKgco2eq).toBeCloseTo(kg(0.1 * 4), 12);
    expect('gpuEnergyKwh' in metrics).toBe(false);
    expect('gpuPowerWatts' in metrics).toBe(false);
    expect(metrics.warnings).toEqual([
      'summed over 2 embedding requests (embedMany split the values into 2 calls)',
      'gpuEnergyKwh left out: 1 of 2 requests did not report it',
      'mean powers left out: they do not add up over requests',
    ]);
  });

  it.each([
    ['the first', 1],
    ['a later', 3],
  ])('embedMany: %s request without a trace — no figure for the whole call, never a part sum', async (_name, untraced) => {
    server.reply = ({ body }) => (firstValueNumber(body) === untraced ? {} : { trace: sampleTrace(firstValueNumber(body)) });
    const warnings: string[] = [];
    const result = await ai.embedMany({ model: wrapped({ onWarning: (m) => void warnings.push(m) }, [splitBy(2)]), values: ['v1', 'v2', 'v3', 'v4'] });
    expect(result.embeddings).toHaveLength(4);
    expect(getCarbonMetrics(result)).toBeUndefined();
    expect(sumCarbonMetrics([getCarbonMetrics(result)]).tracedCalls).toBe(0);
    expect(warnings.some((w) => /^no x_carbon_trace in the response of /.test(w))).toBe(true);
  });

  it('two embedMany calls at once never mix their requests', async () => {
    server.reply = ({ body }) => ({ trace: sampleTrace(firstValueNumber(body)) });
    const model = wrapped({}, [splitBy(1)]);
    const [a, b] = await Promise.all([
      ai.embedMany({ model, values: ['v1', 'v2', 'v3'] }),
      ai.embedMany({ model, values: ['v10', 'v20'] }),
    ]);
    expect(getCarbonMetrics(a)?.gwpKgco2eq).toBeCloseTo(kg(0.1 * 6), 12);
    expect(getCarbonMetrics(b)?.gwpKgco2eq).toBeCloseTo(kg(0.1 * 30), 12);
  });

  it('a malformed trace: the embedding comes back, no metrics, a warning', async () => {
    server.reply = () => ({ trace: { emissions_g_co2: 'NaN', energy_consumed_wh: -1 } });
    const warnings: string[] = [];
    const result = await ai.embed({ model: wrapped({ onWarning: (m) => void warnings.push(m) }), value: 'x' });
    expect(result.embedding).toHaveLength(3);
    expect(getCarbonMetrics(result)).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/no usable figure/);
  });

  it('a `__proto__` key in the trace: the SDK refuses the body, and the caller gets its very error', async () => {
    // An own `__proto__` key on the wire, as JSON.parse makes it; the SDK's secure parser rejects it.
    server.reply = () => ({ trace: JSON.parse('{"emissions_g_co2":1,"__proto__":{"energy_consumed_wh":1}}') });
    const rejection = async (model: Loose) => {
      try {
        await ai.embed({ model, value: 'x', maxRetries: 0 });
      } catch (error) {
        const e = error as Loose;
        return [e.constructor, e.name, e.message];
      }
      throw new Error('expected a rejection');
    };
    expect(await rejection(wrapped())).toEqual(await rejection(makeModel()));
    expect(({} as Loose).energy_consumed_wh).toBeUndefined();
  });

  it('an upstream error: the same rejection as without the middleware, one failed call', async () => {
    server.reply = () => ({ status: 500 });
    const rejection = async (model: Loose) => {
      try {
        await ai.embed({ model, value: 'x', maxRetries: 0 });
      } catch (error) {
        const e = error as Loose;
        return [e.constructor, e.name, e.message, e.statusCode];
      }
      throw new Error('expected a rejection');
    };
    const outcomes: Array<[CarbonMetrics | undefined, string]> = [];
    expect(await rejection(wrapped({ onMetrics: (m, c) => void outcomes.push([m, c.outcome]) }))).toEqual(await rejection(makeModel()));
    expect(outcomes).toEqual([[undefined, 'failed']]);
  });

  it('the server gets the same request as from the bare model', async () => {
    server.reply = () => ({ trace: sampleTrace() });
    server.requests.length = 0;
    await ai.embed({ model: makeModel(), value: 'same' });
    await ai.embed({ model: wrapped(), value: 'same' });
    expect(server.requests[1]!.body).toEqual(server.requests[0]!.body);
  });
});

describe('with other embedding middlewares', () => {
  it('carbonTraceMiddleware first, then one that rebuilds the headers (defaultEmbeddingSettingsMiddleware): still the sum', async () => {
    server.reply = ({ body }) => ({ trace: sampleTrace(firstValueNumber(body)) });
    const model = ai7.wrapEmbeddingModel({
      model: createOpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' }).embedding('fixture-embed'),
      middleware: [
        carbonTraceMiddleware({ onWarning: false }),
        ai7.defaultEmbeddingSettingsMiddleware({ settings: { headers: { 'x-team': 'search' } } }),
        splitBy(1),
      ],
    });
    server.requests.length = 0;
    const result = await ai7.embedMany({ model, values: ['v1', 'v2', 'v4'] });
    expect(server.requests.map((r) => r.headers['x-team'])).toEqual(['search', 'search', 'search']);
    expect(getCarbonMetrics(result)?.gwpKgco2eq).toBeCloseTo(kg(0.1 * 7), 12);
    expect(getCarbonMetrics(result)?.warnings[0]).toBe('summed over 3 embedding requests (embedMany split the values into 3 calls)');
  });
});

describe('the embedding middleware\'s groups (unit)', () => {
  const metrics = (n: number) => parseCarbonTrace(sampleTrace(n))!;
  const aiHeaders = () => ({ 'user-agent': 'ai/7.0.0' });

  it('a retried request takes the place of its failed attempt', () => {
    const groups = createEmbeddingGroups();
    const headers = aiHeaders();
    const chunkA = ['a'];
    const chunkB = ['b'];
    const first = groups.join({ headers, values: chunkA });
    const second = groups.join({ headers, values: chunkB });
    expect(first.settle('failed')).toBeUndefined();
    const retry = groups.join({ headers, values: chunkA });
    expect(second.settle({ metrics: metrics(2) })).toBeUndefined();
    const held = retry.settle({ metrics: metrics(1) });
    expect((held as CarbonMetrics).gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect((held as CarbonMetrics).warnings[0]).toBe('summed over 2 embedding requests (embedMany split the values into 2 calls)');
  });

  it('the object the first request carries is brought up to date as the others end', () => {
    const groups = createEmbeddingGroups();
    const headers = aiHeaders();
    const first = groups.join({ headers, values: ['a'] });
    const second = groups.join({ headers, values: ['b'] });
    const held = first.settle({ metrics: metrics(1) }) as CarbonMetrics;
    expect(held.gwpKgco2eq).toBeCloseTo(kg(0.1), 12);
    second.settle({ metrics: metrics(4) });
    expect(held.gwpKgco2eq).toBeCloseTo(kg(0.5), 12);
    const third = groups.join({ headers, values: ['c'] });
    third.settle({ metrics: undefined });
    // Known untraced now: no longer metrics at all, with the reason.
    expect(getCarbonMetrics({ codecarbon: held })).toBeUndefined();
    expect(held).toEqual({ warnings: ['no sum: 1 of 3 embedding requests of this embedMany carried no usable trace'] });
  });

  it('headers a caller built (no ai/ user agent), or none: every request stands alone', () => {
    const groups = createEmbeddingGroups();
    for (const headers of [{ 'x-mine': '1' }, undefined, null, 'text', { 'user-agent': 'mybot/ai' }]) {
      const a = groups.join({ headers, values: ['a'] });
      const b = groups.join({ headers, values: ['b'] });
      expect((a.settle({ metrics: metrics(1) }) as CarbonMetrics).gwpKgco2eq).toBeCloseTo(kg(0.1), 12);
      expect((b.settle({ metrics: metrics(2) }) as CarbonMetrics).gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    }
  });
});

describe('ollama embeddings with the middleware\'s fetch taken', () => {
  it('embed reads the body; the request is unchanged', async () => {
    const carbon = carbonTraceMiddleware({ onWarning: false });
    const model = ai7.wrapEmbeddingModel({ model: createOllama({ baseURL: `${server.baseURL}/api`, fetch: carbon.fetch }).embedding('fixture-embed'), middleware: carbon });
    server.reply = () => ({ trace: sampleTrace(7) });
    server.requests.length = 0;
    const result = await ai7.embed({ model, value: 'x' });
    expect(getCarbonMetrics(result)?.gwpKgco2eq).toBeCloseTo(kg(0.7), 12);
    expect(server.requests[0]!.headers['x-carbon-trace-call']).toBeUndefined();
  });
});
