/**
 * carbonTraceMiddleware on every wire an AI SDK chat provider speaks to a self-hosted server:
 * the Responses API (`openai('m')` of @ai-sdk/openai 4 on ai@7, and of @ai-sdk/openai 3 on ai@6),
 * Anthropic Messages (@ai-sdk/anthropic 4) and Ollama's own API (ollama-ai-provider-v2, whose
 * streams need the middleware's fetch). Real clients against the loopback wire fixture.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ai7 from 'ai';
import * as ai6 from 'ai-v6';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAI as createOpenAIv3 } from 'ai-sdk-openai-v3';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createOllama } from 'ollama-ai-provider-v2';
import { parseCarbonTrace, type CarbonMetrics, type CarbonRecordContext } from '../../src/index';
import { carbonTraceMiddleware, getCarbonMetrics, type CarbonTraceCallContext, type CarbonTraceMiddleware } from '../../src/ai-sdk/index';
import { startProxyInFront, startWireServer, type WireServer } from '../fixtures/wire-server';
import { sampleTrace } from '../fixtures/openai-compatible-server';
import { PROVIDER_PROMPT, readAll, type Loose } from './majors';

(globalThis as Record<string, unknown>).AI_SDK_LOG_WARNINGS = false;

let server: WireServer;
beforeAll(async () => {
  server = await startWireServer();
});
afterAll(() => server.close());

const kg = (grams: number) => grams / 1000;

/** The n of `call-<n>` in a request body, wherever the wire puts the prompt; 1 when absent. */
function callNumber(body: unknown): number {
  return Number(/call-(\d+)/.exec(JSON.stringify(body))?.[1] ?? 1);
}

type WireCase = {
  label: string;
  ai: Loose;
  /** The provider's key in `providerMetadata`, kept beside ours. */
  providerKey: string | undefined;
  /** A model of the provider; `carbon` is given when the provider needs the middleware's fetch. */
  model(carbon?: CarbonTraceMiddleware): Loose;
  usesFetch: boolean;
  /** The path the provider speaks to (the wire under test). */
  wirePath: string;
};

const CASES: WireCase[] = [
  {
    label: 'Responses API: openai("m") of @ai-sdk/openai 4 on ai@7',
    ai: ai7,
    providerKey: 'openai',
    model: () => createOpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' })('fixture-model'),
    usesFetch: false,
    wirePath: '/v1/responses',
  },
  {
    label: 'Responses API: openai("m") of @ai-sdk/openai 3 on ai@6',
    ai: ai6,
    providerKey: 'openai',
    model: () => createOpenAIv3({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' })('fixture-model'),
    usesFetch: false,
    wirePath: '/v1/responses',
  },
  {
    label: 'Anthropic Messages: @ai-sdk/anthropic 4 on ai@7',
    ai: ai7,
    providerKey: 'anthropic',
    model: () => createAnthropic({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' })('claude-fixture'),
    usesFetch: false,
    wirePath: '/v1/messages',
  },
  {
    label: 'Ollama: ollama-ai-provider-v2 4 on ai@7, with the middleware\'s fetch',
    ai: ai7,
    providerKey: undefined,
    model: (carbon) => createOllama({ baseURL: `${server.baseURL}/api`, ...(carbon ? { fetch: carbon.fetch } : {}) })('fixture-model'),
    usesFetch: true,
    wirePath: '/api/chat',
  },
];

describe.each(CASES)('$label', ({ ai, providerKey, model: makeModel, usesFetch, wirePath }) => {
  function wrapped(options: Parameters<typeof carbonTraceMiddleware>[0] = {}) {
    const carbon = carbonTraceMiddleware({ onWarning: false, ...options });
    return ai.wrapLanguageModel({ model: makeModel(usesFetch ? carbon : undefined), middleware: carbon });
  }

  it('generateText: the trace at providerMetadata.codecarbon, the provider\'s key kept, kind chat', async () => {
    const trace = sampleTrace(3);
    server.reply = () => ({ text: 'Hi there.', trace });
    const calls: Array<[CarbonMetrics | undefined, CarbonTraceCallContext]> = [];
    const records: Array<CarbonRecordContext | undefined> = [];
    const result = await ai.generateText({
      model: wrapped({ onMetrics: (m, c) => void calls.push([m, c]), tracker: { record: (_m, c) => void records.push(c) } }),
      prompt: 'hello',
    });
    expect(result.text).toBe('Hi there.');
    expect(result.providerMetadata.codecarbon).toEqual(parseCarbonTrace(trace));
    expect(getCarbonMetrics(result)?.gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect(getCarbonMetrics(result.steps[0])).toEqual(result.providerMetadata.codecarbon);
    if (providerKey) expect(Object.keys(result.providerMetadata)).toContain(providerKey);
    expect(calls).toHaveLength(1);
    expect(calls[0]![1]).toMatchObject({ type: 'generate', kind: 'chat', outcome: 'completed' });
    expect(records).toEqual([expect.objectContaining({ kind: 'chat' })]);
  });

  it('speaks its wire, generating and streaming', async () => {
    server.reply = () => ({ trace: sampleTrace() });
    server.requests.length = 0;
    await ai.generateText({ model: wrapped(), prompt: 'x' });
    await ai.streamText({ model: wrapped(), prompt: 'x' }).consumeStream();
    expect(server.requests.map((r) => r.path.replace(/\?.*$/, ''))).toEqual([wirePath, wirePath]);
  });

  it('streamText: the trace on the result and the finish-step part, no raw parts leak', async () => {
    const trace = sampleTrace(2);
    server.reply = () => ({ text: 'one two three four', trace });
    const calls: Array<CarbonMetrics | undefined> = [];
    const result = ai.streamText({ model: wrapped({ onMetrics: (m) => void calls.push(m) }), prompt: 'hello' });
    const parts = await readAll<Loose>(result.fullStream);
    expect(await result.text).toBe('one two three four');
    expect(parts.some((p) => p.type === 'raw')).toBe(false);
    const metadata = await result.providerMetadata;
    expect(metadata.codecarbon).toEqual(parseCarbonTrace(trace));
    expect(getCarbonMetrics(parts.find((p) => p.type === 'finish-step'))).toEqual(metadata.codecarbon);
    expect(getCarbonMetrics((await result.steps)[0])).toEqual(metadata.codecarbon);
    expect(calls).toEqual([metadata.codecarbon]);
  });

  it('tokens: from the provider\'s usage when the trace has none', async () => {
    server.reply = () => ({ trace: { energy_consumed_wh: 0.5, emissions_g_co2: 0.2 }, usage: { input: 31, output: 7 } });
    const generated = getCarbonMetrics(await ai.generateText({ model: wrapped(), prompt: 'x' }));
    const streamed = getCarbonMetrics(await ai.streamText({ model: wrapped(), prompt: 'x' }).providerMetadata);
    for (const metrics of [generated, streamed]) {
      expect(metrics?.energyKwh).toBeCloseTo(0.0005, 12);
      expect(metrics?.promptTokens).toBe(31);
      expect(metrics?.completionTokens).toBe(7);
    }
  });

  it('the server gets the same request as from the bare model (body and headers)', async () => {
    server.reply = () => ({ trace: sampleTrace() });
    for (const fn of ['generateText', 'streamText'] as const) {
      server.requests.length = 0;
      const run = async (model: Loose) => (fn === 'generateText' ? (await ai.generateText({ model, prompt: 'same' })).text : await ai.streamText({ model, prompt: 'same' }).text);
      await run(makeModel());
      await run(wrapped());
      const [bare, ours] = server.requests;
      expect(ours!.body).toEqual(bare!.body);
      const { 'content-length': _a, ...bareHeaders } = bare!.headers;
      const { 'content-length': _b, ...ourHeaders } = ours!.headers;
      expect(ourHeaders).toEqual(bareHeaders);
    }
  });

  it('doStream: the stream is the bare model\'s part for part, plus metadata on finish', async () => {
    server.reply = () => ({ text: 'alpha beta gamma', trace: sampleTrace() });
    const strip = (parts: Loose[]) =>
      parts.map((p) => {
        if (p.providerMetadata?.codecarbon === undefined) return p;
        const { codecarbon: _, ...rest } = p.providerMetadata;
        return { ...p, providerMetadata: rest };
      });
    // Ids and timestamps of the provider's own making differ call to call.
    const normalise = (parts: Loose[]) => JSON.parse(JSON.stringify(parts, (k, v) => (/^(id|itemId|responseId|timestamp|date)$/.test(k) ? 0 : v)));
    const bare = await readAll<Loose>((await makeModel().doStream({ prompt: PROVIDER_PROMPT })).stream);
    const ours = await readAll<Loose>((await wrapped().doStream({ prompt: PROVIDER_PROMPT })).stream);
    expect(ours.find((p) => p.type === 'finish').providerMetadata.codecarbon.gwpKgco2eq).toBeCloseTo(kg(0.1), 12);
    expect(normalise(strip(ours))).toEqual(normalise(bare));
  });

  it('a cut stream: the same parts as without the middleware, one failed call without metrics', async () => {
    server.reply = () => ({ text: 'one two three four five six', trace: sampleTrace(), cutAfterEvents: 3 });
    const shape = async (model: Loose) => {
      const seen: string[] = [];
      try {
        for await (const p of ai.streamText({ model, prompt: 'x', maxRetries: 0 }).fullStream as AsyncIterable<Loose>) {
          seen.push(p.type === 'error' ? `error:${p.error?.name}:${p.error?.message}` : p.type);
        }
      } catch (error) {
        seen.push(`threw:${(error as Error).name}:${(error as Error).message}`);
      }
      return seen;
    };
    const calls: Array<[CarbonMetrics | undefined, CarbonTraceCallContext]> = [];
    const bare = await shape(makeModel());
    expect(bare.some((p) => /^(error|threw):/.test(p))).toBe(true);
    expect(await shape(wrapped({ onMetrics: (m, c) => void calls.push([m, c]) }))).toEqual(bare);
    expect(calls).toHaveLength(1);
    expect(calls[0]![0]).toBeUndefined();
    expect(calls[0]![1].outcome).toBe('failed');
  });

  it('an upstream error: the same rejection (generate) and the same error part (stream)', async () => {
    server.reply = () => ({ status: 500 });
    const rejection = async (model: Loose) => {
      try {
        await ai.generateText({ model, prompt: 'x', maxRetries: 0 });
      } catch (error) {
        const e = error as Loose;
        return [e.constructor, e.name, e.message, e.statusCode];
      }
      throw new Error('expected a rejection');
    };
    const errorParts = async (model: Loose) =>
      (await readAll<Loose>(ai.streamText({ model, prompt: 'x', maxRetries: 0 }).fullStream))
        .filter((p) => p.type === 'error')
        .map((p) => [p.error?.name, p.error?.message, p.error?.statusCode]);
    const outcomes: string[] = [];
    const model = wrapped({ onMetrics: (_m, c) => void outcomes.push(c.outcome) });
    expect(await rejection(model)).toEqual(await rejection(makeModel()));
    const bareParts = await errorParts(makeModel());
    expect(bareParts).toHaveLength(1);
    expect(await errorParts(model)).toEqual(bareParts);
    expect(outcomes).toEqual(['failed', 'failed']);
  });

  it.each([
    ['a string', 'garbage', /not a trace object|no usable figure/],
    ['null', null, /not a trace object|no usable figure/],
    ['NaN and negatives only', { emissions_g_co2: 'NaN', energy_consumed_wh: -1 }, /no usable figure/],
  ])('a malformed trace (%s): the call succeeds without metrics, with a warning', async (_name, trace, warning) => {
    server.reply = () => ({ text: 'ok', trace: trace as Loose });
    const warnings: string[] = [];
    const model = wrapped({ onWarning: (m) => void warnings.push(m) });
    const generated = await ai.generateText({ model, prompt: 'x' });
    expect(generated.text).toBe('ok');
    expect(getCarbonMetrics(generated)).toBeUndefined();
    const streamed = ai.streamText({ model, prompt: 'x' });
    expect(await streamed.text).toBe('ok');
    expect(getCarbonMetrics(await streamed.providerMetadata)).toBeUndefined();
    expect(warnings).toHaveLength(2);
    for (const w of warnings) expect(w).toMatch(warning);
  });

  it('no trace: no codecarbon key, the plain missing-trace warning', async () => {
    server.reply = () => ({ text: 'untraced' });
    const warnings: string[] = [];
    const model = wrapped({ onWarning: (m) => void warnings.push(m) });
    expect(getCarbonMetrics(await ai.generateText({ model, prompt: 'x' }))).toBeUndefined();
    expect(getCarbonMetrics(await ai.streamText({ model, prompt: 'x' }).providerMetadata)).toBeUndefined();
    expect(warnings).toHaveLength(2);
    for (const w of warnings) expect(w).toMatch(/^no x_carbon_trace in the response of /);
  });

  it('30 concurrent calls, streamed and not, one middleware: each gets its own trace', async () => {
    server.reply = ({ body }) => {
      const n = callNumber(body);
      return { text: `answer ${n}`, trace: sampleTrace(n), usage: { input: n, output: 1 } };
    };
    const model = wrapped();
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const n = i + 1;
        if (n % 2 === 0) {
          const r = await ai.generateText({ model, prompt: `call-${n}` });
          return { n, text: r.text, metrics: getCarbonMetrics(r) };
        }
        const r = ai.streamText({ model, prompt: `call-${n}` });
        return { n, text: await r.text, metrics: getCarbonMetrics(await r.providerMetadata) };
      }),
    );
    for (const { n, text, metrics } of results) {
      expect(text).toBe(`answer ${n}`);
      expect(metrics?.gwpKgco2eq).toBeCloseTo(kg(0.1 * n), 12);
      expect(metrics?.promptTokens).toBe(10 * n);
    }
  });
});

describe('ollama-ai-provider-v2 and the middleware\'s fetch', () => {
  const ollamaModel = (fetch?: typeof globalThis.fetch) => createOllama({ baseURL: `${server.baseURL}/api`, ...(fetch ? { fetch } : {}) })('fixture-model');

  it('without it: generate still reads the body; a stream gets no number and a warning that names the fix', async () => {
    server.reply = () => ({ trace: sampleTrace(4) });
    const warnings: string[] = [];
    const model = ai7.wrapLanguageModel({ model: ollamaModel(), middleware: carbonTraceMiddleware({ onWarning: (m) => void warnings.push(m) }) });
    expect(getCarbonMetrics(await ai7.generateText({ model, prompt: 'x' }))?.gwpKgco2eq).toBeCloseTo(kg(0.4), 12);
    expect(getCarbonMetrics(await ai7.streamText({ model, prompt: 'x' }).providerMetadata)).toBeUndefined();
    expect(warnings).toEqual([
      "ollama-ai-provider-v2 drops x_carbon_trace from the streamed responses of ollama.responses/fixture-model before any middleware sees them: pass the middleware's fetch to the provider — const carbon = carbonTraceMiddleware(); createOllama({ fetch: carbon.fetch }); wrapLanguageModel({ model, middleware: carbon })",
    ]);
  });

  it('the fetch of another middleware: the warning says the fetch did not see the response', async () => {
    server.reply = () => ({ trace: sampleTrace(4) });
    const warnings: string[] = [];
    const other = carbonTraceMiddleware({ onWarning: false });
    const carbon = carbonTraceMiddleware({ onWarning: (m) => void warnings.push(m) });
    void carbon.fetch; // handed out, but to nothing
    const model = ai7.wrapLanguageModel({ model: ollamaModel(other.fetch), middleware: carbon });
    expect(getCarbonMetrics(await ai7.streamText({ model, prompt: 'x' }).providerMetadata)).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^the middleware's fetch did not see the streamed response of ollama\.responses\/fixture-model: give the provider the fetch of the same middleware/);
  });

  it('an abort signal of the caller still aborts the request, with the same error', async () => {
    server.reply = () => ({ trace: sampleTrace() });
    const carbon = carbonTraceMiddleware({ onWarning: false });
    const wrappedModel = ai7.wrapLanguageModel({ model: ollamaModel(carbon.fetch), middleware: carbon });
    const reason = new Error('stop now');
    const rejection = async (model: Loose) => {
      const controller = new AbortController();
      controller.abort(reason);
      try {
        await model.doGenerate({ prompt: PROVIDER_PROMPT, abortSignal: controller.signal });
      } catch (error) {
        return error;
      }
      throw new Error('expected a rejection');
    };
    expect(await rejection(ollamaModel())).toBe(reason);
    expect(await rejection(wrappedModel)).toBe(reason);

    // Aborted mid-stream: the same parts as the bare model's.
    server.reply = () => ({ text: 'one two three four five six seven eight', trace: sampleTrace() });
    const run = async (model: Loose) => {
      const controller = new AbortController();
      const types: string[] = [];
      try {
        for await (const part of ai7.streamText({ model, prompt: 'x', abortSignal: controller.signal, maxRetries: 0 }).fullStream as AsyncIterable<Loose>) {
          types.push(part.type);
          if (part.type === 'text-delta') controller.abort(reason);
        }
      } catch (error) {
        types.push(`threw:${(error as Error).message}`);
      }
      return types.filter((t) => t !== 'text-delta');
    };
    expect(await run(wrappedModel)).toEqual(await run(ollamaModel()));
  });

  it('a `__proto__` key in a streamed trace: read as data by the fetch, nothing reaches a prototype', async () => {
    // An own `__proto__` key on the wire, as JSON.parse makes it. Ollama's stream parser accepts it.
    server.reply = () => ({ trace: JSON.parse('{"emissions_g_co2":0.2,"__proto__":{"energy_consumed_wh":9}}') });
    const carbon = carbonTraceMiddleware({ onWarning: false });
    const model = ai7.wrapLanguageModel({ model: ollamaModel(carbon.fetch), middleware: carbon });
    const metrics = getCarbonMetrics(await ai7.streamText({ model, prompt: 'x' }).providerMetadata);
    expect(metrics?.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    expect(metrics?.energyKwh).toBeUndefined();
    expect(({} as Loose).energy_consumed_wh).toBeUndefined();
  });

  it('a request that is not a model call of this middleware passes through the fetch untouched', async () => {
    const carbon = carbonTraceMiddleware({ onWarning: false });
    const response = await carbon.fetch(`${server.baseURL}/api/tags`);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(((await response.json()) as Loose).models[0].name).toBe('fixture-model');
  });

  it('the fetch the middleware is given is the one its fetch sends with', async () => {
    const sent: string[] = [];
    const carbon = carbonTraceMiddleware({
      onWarning: false,
      fetch: (input, init) => {
        sent.push(String(input));
        return globalThis.fetch(input, init);
      },
    });
    server.reply = () => ({ trace: sampleTrace(2) });
    const model = ai7.wrapLanguageModel({ model: ollamaModel(carbon.fetch), middleware: carbon });
    expect(getCarbonMetrics(await ai7.streamText({ model, prompt: 'x' }).providerMetadata)?.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    expect(sent).toEqual([`${server.baseURL}/api/chat`]);
  });
});

// ---- end to end through the proxy -------------------------------------------------------------


describe('end to end through createCarbonProxy in front of a server that sends no trace', () => {
  let proxyUrl = '';
  let stop: () => Promise<void> = async () => {};
  beforeAll(async () => {
    // The proxy books what it meters; these tests assert only that a figure arrives and where.
    const proxy = await startProxyInFront(server.baseURL);
    proxyUrl = proxy.url;
    stop = proxy.stop;
  });
  afterAll(() => stop());

  /** generateText and streamText through the middleware; both must carry the proxy's measured trace. */
  async function bothCarryTheTrace(ai: Loose, makeModel: (carbon: CarbonTraceMiddleware) => Loose) {
    server.reply = () => ({ text: 'metered answer' });
    const warnings: string[] = [];
    const kinds: string[] = [];
    const carbon = carbonTraceMiddleware({ onWarning: (m) => void warnings.push(m), onMetrics: (_m, c) => void kinds.push(c.kind) });
    const model = ai.wrapLanguageModel({ model: makeModel(carbon), middleware: carbon });
    const generated = await ai.generateText({ model, prompt: 'hello' });
    expect(generated.text).toBe('metered answer');
    expect(getCarbonMetrics(generated)?.measured).toBe(true);
    const streamed = ai.streamText({ model, prompt: 'hello' });
    expect(await streamed.text).toBe('metered answer');
    expect(getCarbonMetrics(await streamed.providerMetadata)?.measured).toBe(true);
    expect(kinds).toEqual(['chat', 'chat']);
    expect(warnings).toEqual([]);
  }

  it('openai-compatible on chat completions (the first wire): generate and stream get the proxy\'s trace', async () => {
    const { createOpenAICompatible } = await import('@ai-sdk/openai-compatible');
    await bothCarryTheTrace(ai7, () => createOpenAICompatible({ name: 'garden', baseURL: `${proxyUrl}/v1`, includeUsage: true })('fixture-model'));
  });

  it('Responses API (openai("m")): generate and stream get the proxy\'s trace', async () => {
    await bothCarryTheTrace(ai7, () => createOpenAI({ baseURL: `${proxyUrl}/v1`, apiKey: 'test' })('fixture-model'));
  });

  it('Anthropic Messages: generate and stream get the proxy\'s trace', async () => {
    await bothCarryTheTrace(ai7, () => createAnthropic({ baseURL: `${proxyUrl}/v1`, apiKey: 'test' })('claude-fixture'));
  });

  it('Ollama with the middleware\'s fetch: generate and stream get the proxy\'s trace', async () => {
    await bothCarryTheTrace(ai7, (carbon) => createOllama({ baseURL: `${proxyUrl}/api`, fetch: carbon.fetch })('fixture-model'));
  });

  it.each([
    ['@ai-sdk/openai embedding', () => createOpenAI({ baseURL: `${proxyUrl}/v1`, apiKey: 'test' }).embedding('fixture-embed')],
    ['ollama-ai-provider-v2 embedding', () => createOllama({ baseURL: `${proxyUrl}/api` }).embedding('fixture-embed')],
  ] as const)('%s: embed and embedMany get the proxy\'s trace, as embedding calls', async (_name, makeModel) => {
    server.reply = () => ({});
    const kinds: string[] = [];
    const model = ai7.wrapEmbeddingModel({ model: makeModel(), middleware: carbonTraceMiddleware({ onWarning: false, onMetrics: (_m, c) => void kinds.push(c.kind) }) });
    expect(getCarbonMetrics(await ai7.embed({ model, value: 'hello' }))?.measured).toBe(true);
    expect(getCarbonMetrics(await ai7.embedMany({ model, values: ['a', 'b'] }))?.measured).toBe(true);
    expect(kinds).toEqual(['embedding', 'embedding']);
  });
});

describe('Responses API: a response cut at max_output_tokens (status incomplete)', () => {
  it.each([
    ['ai@7 + @ai-sdk/openai 4', ai7, () => createOpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' })('fixture-model')],
    ['ai@6 + @ai-sdk/openai 3', ai6, () => createOpenAIv3({ baseURL: `${server.baseURL}/v1`, apiKey: 'test' })('fixture-model')],
  ] as const)('%s: generate and stream carry the trace of the response.incomplete event', async (_label, ai: Loose, make) => {
    server.reply = () => ({ text: 'cut short here', trace: sampleTrace(4), incomplete: true });
    const warnings: string[] = [];
    const model = ai.wrapLanguageModel({ model: make(), middleware: carbonTraceMiddleware({ onWarning: (w) => void warnings.push(w) }) });
    const generated = await ai.generateText({ model, prompt: 'x', maxOutputTokens: 3 });
    expect(generated.finishReason).toBe('length');
    expect(getCarbonMetrics(generated)?.gwpKgco2eq).toBeCloseTo(kg(0.4), 12);
    const streamed = ai.streamText({ model, prompt: 'x', maxOutputTokens: 3 });
    await streamed.consumeStream();
    expect(await streamed.finishReason).toBe('length');
    expect(getCarbonMetrics(await streamed.providerMetadata)?.gwpKgco2eq).toBeCloseTo(kg(0.4), 12);
    expect(warnings).toEqual([]);
  });
});
