import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseCarbonTrace, sumCarbonMetrics, type CarbonMetrics } from '../../src/index';
import { carbonTraceMiddleware, getCarbonMetrics, type CarbonTraceCallContext } from '../../src/ai-sdk/index';
import { lastUserText, sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS, PROVIDER_PROMPT, readAll, type Loose } from './majors';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer();
});
afterAll(() => server.close());

const kg = (grams: number) => grams / 1000;

describe.each(MAJORS)('carbonTraceMiddleware on $label (real openai-compatible provider)', ({ ai, model: makeModel }) => {
  function wrapped(options: Parameters<typeof carbonTraceMiddleware>[0] = {}) {
    return ai.wrapLanguageModel({ model: makeModel(server.baseURL), middleware: carbonTraceMiddleware({ onWarning: false, ...options }) });
  }

  it('generateText: puts the metrics at providerMetadata.codecarbon and keeps the provider key', async () => {
    const trace = sampleTrace(3);
    server.reply = () => ({ content: 'Hi there.', trace });
    const calls: Array<[CarbonMetrics | undefined, CarbonTraceCallContext]> = [];
    const result = await ai.generateText({ model: wrapped({ onMetrics: (m, c) => void calls.push([m, c]) }), prompt: 'hello' });

    expect(result.text).toBe('Hi there.');
    expect(result.providerMetadata.codecarbon).toEqual(parseCarbonTrace(trace));
    expect(result.providerMetadata.codecarbon.gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect(result.providerMetadata.codecarbon.gpuEnergyKwh).toBeCloseTo(0.75 / 1000, 12);
    expect(Object.keys(result.providerMetadata)).toContain('garden');
    expect(getCarbonMetrics(result)).toEqual(result.providerMetadata.codecarbon);
    expect(getCarbonMetrics(result.steps[0])).toEqual(result.providerMetadata.codecarbon);
    expect(calls).toHaveLength(1);
    expect(calls[0]![1]).toEqual({ provider: 'garden.chat', modelId: 'fixture-model', type: 'generate', kind: 'chat', attributes: {}, outcome: 'completed' });
    expect(calls[0]![0]).toEqual(result.providerMetadata.codecarbon);
  });

  it('generateText: sends the same request as the bare model', async () => {
    server.reply = () => ({ content: 'x', trace: sampleTrace() });
    server.requests.length = 0;
    await ai.generateText({ model: makeModel(server.baseURL), prompt: 'same' });
    await ai.generateText({ model: wrapped(), prompt: 'same' });
    expect(server.requests[1]!.body).toEqual(server.requests[0]!.body);
  });

  it.each(['finish', 'usage', 'every'] as const)('streamText: reads the trace placed on the %s chunk', async (placement) => {
    const trace = sampleTrace(2);
    server.reply = () => ({ content: 'one two three four', trace, tracePlacement: placement });
    const calls: Array<CarbonMetrics | undefined> = [];
    const result = ai.streamText({ model: wrapped({ onMetrics: (m) => void calls.push(m) }), prompt: 'hello' });
    const parts = await readAll<Loose>(result.fullStream);

    expect(await result.text).toBe('one two three four');
    expect(parts.some((p) => p.type === 'raw')).toBe(false);
    const metadata = await result.providerMetadata;
    expect(metadata.codecarbon).toEqual(parseCarbonTrace(trace));
    expect(metadata.codecarbon.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    const finishStep = parts.find((p) => p.type === 'finish-step');
    expect(getCarbonMetrics(finishStep)).toEqual(metadata.codecarbon);
    expect(calls).toEqual([metadata.codecarbon]);
  });

  it('streamText: the stream the caller reads is the bare model\'s, plus metadata', async () => {
    server.reply = () => ({ id: 'chatcmpl-same', content: 'alpha beta gamma', trace: sampleTrace() });
    const strip = (parts: Loose[]) =>
      parts.map((p) => {
        if (p.providerMetadata?.codecarbon === undefined) return p;
        const { codecarbon: _, ...rest } = p.providerMetadata;
        return { ...p, providerMetadata: rest };
      });
    const bare = await readAll<Loose>(ai.streamText({ model: makeModel(server.baseURL), prompt: 'hi' }).fullStream);
    const ours = await readAll<Loose>(ai.streamText({ model: wrapped(), prompt: 'hi' }).fullStream);
    // Timing fields (and the HTTP date header) differ run to run; everything else must match part for part.
    const normalise = (parts: Loose[]) => JSON.parse(JSON.stringify(parts, (k, v) => (/^(timestamp|date|msToFirstChunk|msToFinish|avgCompletionTokensPerSecond|responseTime|performance)$/.test(k) ? 0 : v)));
    expect(normalise(strip(ours))).toEqual(normalise(bare));
  });

  it('UI message streams: forwarded with messageMetadata from the finish-step part', async () => {
    server.reply = () => ({ content: 'a b', trace: sampleTrace(2) });
    const result = ai.streamText({ model: wrapped(), prompt: 'x' });
    const parts = await readAll<Loose>(
      result.toUIMessageStream({
        messageMetadata: ({ part }: Loose) => (part.type === 'finish-step' ? { codecarbon: getCarbonMetrics(part) } : undefined),
      }),
    );
    const metadata = parts.find((p) => p.type === 'message-metadata');
    expect(metadata.messageMetadata.codecarbon.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
  });

  it('doStream: removes forced raw parts, keeps them when the caller asks', async () => {
    server.reply = () => ({ content: 'a b', trace: sampleTrace() });
    const model = wrapped();
    const plain = await readAll<Loose>((await model.doStream({ prompt: PROVIDER_PROMPT })).stream);
    expect(plain.filter((p) => p.type === 'raw')).toEqual([]);
    expect(plain.find((p) => p.type === 'finish').providerMetadata.codecarbon.gwpKgco2eq).toBeCloseTo(kg(0.1), 12);

    const raw = await readAll<Loose>((await model.doStream({ prompt: PROVIDER_PROMPT, includeRawChunks: true })).stream);
    const rawParts = raw.filter((p) => p.type === 'raw');
    expect(rawParts.length).toBeGreaterThanOrEqual(4);
    expect(rawParts.some((p) => p.rawValue?.x_carbon_trace !== undefined)).toBe(true);
    expect(raw.filter((p) => p.type !== 'raw').map((p) => p.type)).toEqual(plain.map((p) => p.type));
  });

  it('streamText: passes raw parts through when the caller asked for them', async () => {
    server.reply = () => ({ content: 'a b', trace: sampleTrace() });
    const result = ai.streamText({ model: wrapped(), prompt: 'hello', includeRawChunks: true });
    const parts = await readAll<Loose>(result.fullStream);
    expect(parts.filter((p) => p.type === 'raw').length).toBeGreaterThanOrEqual(4);
    expect((await result.providerMetadata).codecarbon).toBeDefined();
  });

  it('generateObject: metrics on the object result', async () => {
    server.reply = () => ({ content: '{"answer":"42"}', trace: sampleTrace(4) });
    const result = await ai.generateObject({
      model: wrapped(),
      schema: ai.jsonSchema({ type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] }),
      prompt: 'answer',
    });
    expect(result.object).toEqual({ answer: '42' });
    expect(getCarbonMetrics(result)?.gwpKgco2eq).toBeCloseTo(kg(0.4), 12);
  });

  it('generateText with Output.object: metrics on the result', async () => {
    server.reply = () => ({ content: '{"answer":"42"}', trace: sampleTrace(6) });
    const schema = ai.jsonSchema({ type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] });
    // ai@5 names the option experimental_output; ai@6 and ai@7 name it output.
    const result = await ai.generateText({ model: wrapped(), prompt: 'answer', output: ai.Output.object({ schema }), experimental_output: ai.Output.object({ schema }) });
    expect(result.output ?? result.experimental_output).toEqual({ answer: '42' });
    expect(getCarbonMetrics(result)?.gwpKgco2eq).toBeCloseTo(kg(0.6), 12);
  });

  it('streamObject: metrics once the stream is done', async () => {
    server.reply = () => ({ content: '{"answer":"42"}', trace: sampleTrace(5) });
    const result = ai.streamObject({
      model: wrapped(),
      schema: ai.jsonSchema({ type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] }),
      prompt: 'answer',
    });
    // streamObject only settles its promises once its stream has been read.
    await readAll(result.partialObjectStream);
    expect(await result.object).toEqual({ answer: '42' });
    expect(getCarbonMetrics(await result.providerMetadata)?.gwpKgco2eq).toBeCloseTo(kg(0.5), 12);
  });

  it.each(['generateText', 'streamText'] as const)('%s tool loop: steps sum to the server\'s per-step traces', async (fn) => {
    // Step 1 calls the tool (trace ×1), step 2 answers (trace ×2).
    server.reply = (req) =>
      req.body.messages?.some((m) => m.role === 'tool')
        ? { content: 'It is sunny in Paris.', trace: sampleTrace(2) }
        : { toolCalls: [{ name: 'weather', arguments: '{"city":"Paris"}' }], trace: sampleTrace(1) };
    const onStepFinish = vi.fn();
    const options = {
      model: wrapped(),
      prompt: 'Weather in Paris?',
      tools: {
        weather: ai.tool({
          description: 'Weather of a city',
          inputSchema: ai.jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
          execute: async () => ({ sky: 'sunny' }),
        }),
      },
      stopWhen: ai.stepCountIs(5),
      onStepFinish,
    };
    const result = fn === 'generateText' ? await ai.generateText(options) : ai.streamText(options);
    const steps = await result.steps;
    expect(steps).toHaveLength(2);
    const totals = sumCarbonMetrics(steps.map(getCarbonMetrics));
    expect(totals.calls).toBe(2);
    expect(totals.tracedCalls).toBe(2);
    expect(totals.gwpKgco2eq).toBeCloseTo(kg(0.1 + 0.2), 12);
    expect(totals.energyKwh).toBeCloseTo((0.4 + 0.8) / 1000, 12);
    // result.providerMetadata is the last step's only.
    expect(getCarbonMetrics(await result.providerMetadata)?.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    expect(onStepFinish.mock.calls.map(([step]) => getCarbonMetrics(step)?.gwpKgco2eq)).toEqual([kg(0.1), kg(0.2)]);
  });

  it('no trace: no codecarbon key, onMetrics(undefined), a warning', async () => {
    server.reply = () => ({ content: 'untraced' });
    const warnings: string[] = [];
    const seen: unknown[] = [];
    const model = wrapped({ onWarning: (m) => void warnings.push(m), onMetrics: (m) => void seen.push(m) });
    const generated = await ai.generateText({ model, prompt: 'x' });
    expect(generated.text).toBe('untraced');
    expect(generated.providerMetadata?.codecarbon).toBeUndefined();
    const streamed = ai.streamText({ model, prompt: 'x' });
    expect(await streamed.text).toBe('untraced');
    expect((await streamed.providerMetadata)?.codecarbon).toBeUndefined();
    expect(seen).toEqual([undefined, undefined]);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/no x_carbon_trace in the response of garden\.chat\/fixture-model/);
  });

  it.each([
    ['a string', 'garbage'],
    ['an array', [1, 2]],
    ['null', null],
  ])('a garbage trace (%s): the call succeeds without metrics, with a warning', async (_name, trace) => {
    server.reply = () => ({ content: 'ok', trace });
    const warnings: string[] = [];
    const result = await ai.generateText({ model: wrapped({ onWarning: (m) => void warnings.push(m) }), prompt: 'x' });
    expect(result.text).toBe('ok');
    expect(result.providerMetadata?.codecarbon).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/not a trace object|no x_carbon_trace/);
  });

  it('a partly broken trace: metrics carry warnings', async () => {
    server.reply = () => ({ content: 'ok', trace: { emissions_g_co2: 'NaN', energy_consumed_wh: -4, gpu_energy_wh: 1, measured: 'yes' } });
    const warnings: string[] = [];
    const result = ai.streamText({ model: wrapped({ onWarning: (m) => void warnings.push(m) }), prompt: 'x' });
    const metrics = getCarbonMetrics(await result.providerMetadata)!;
    expect('gwpKgco2eq' in metrics).toBe(false);
    expect(metrics.energyKwh).toBeCloseTo(0.001, 12);
    expect(metrics.measured).toBe(false);
    expect(metrics.warnings.length).toBeGreaterThanOrEqual(3);
    expect(warnings[0]).toMatch(/had problems/);
  });

  it('a throwing or rejecting onMetrics never fails the call', async () => {
    server.reply = () => ({ content: 'fine', trace: sampleTrace() });
    const warnings: string[] = [];
    const throwing = wrapped({ onWarning: (m) => void warnings.push(m), onMetrics: () => { throw new Error('user bug'); } });
    expect((await ai.generateText({ model: throwing, prompt: 'x' })).text).toBe('fine');
    const rejecting = wrapped({ onWarning: (m) => void warnings.push(m), onMetrics: async () => { throw new Error('async bug'); } });
    expect(await ai.streamText({ model: rejecting, prompt: 'x' }).text).toBe('fine');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(warnings).toEqual(['onMetrics threw: user bug', 'onMetrics threw: async bug']);
  });

  it('HTTP 500 reaches the caller exactly as without the middleware', async () => {
    server.reply = () => ({ status: 500 });
    const capture = async (model: Loose) => {
      try {
        await ai.generateText({ model, prompt: 'x', maxRetries: 0 });
      } catch (error) {
        return error as Loose;
      }
      throw new Error('expected a rejection');
    };
    const onMetrics = vi.fn();
    const bare = await capture(makeModel(server.baseURL));
    const ours = await capture(wrapped({ onMetrics }));
    expect(ours.constructor).toBe(bare.constructor);
    expect(ours.name).toBe(bare.name);
    expect(ours.message).toBe(bare.message);
    expect(ours.statusCode).toBe(500);
    // The failed call still counts: once, without metrics.
    expect(onMetrics.mock.calls).toEqual([[undefined, { provider: 'garden.chat', modelId: 'fixture-model', type: 'generate', kind: 'chat', attributes: {}, outcome: 'failed' }]]);
  });

  it('HTTP 500 on a stream: the same error part as without the middleware', async () => {
    server.reply = () => ({ status: 500 });
    const errorsOf = async (model: Loose) =>
      (await readAll<Loose>(ai.streamText({ model, prompt: 'x', maxRetries: 0 }).fullStream))
        .filter((p) => p.type === 'error')
        .map((p) => [p.error?.name, p.error?.message, p.error?.statusCode]);
    const bare = await errorsOf(makeModel(server.baseURL));
    expect(bare).toHaveLength(1);
    expect(await errorsOf(wrapped())).toEqual(bare);
  });

  it('a socket destroyed mid-stream surfaces as without the middleware, and reports once', async () => {
    server.reply = () => ({ content: 'one two three four five six', trace: sampleTrace(), cutAfterEvents: 3 });
    const shape = async (model: Loose) => {
      const seen: string[] = [];
      try {
        for await (const p of ai.streamText({ model, prompt: 'x', maxRetries: 0 }).fullStream as AsyncIterable<Loose>) {
          seen.push(p.type === 'error' ? `error:${p.error?.name}:${p.error?.message}` : p.type);
        }
      } catch (error) {
        seen.push(`threw:${(error as Error).name}:${(error as Error).message}:${String((error as Error).cause)}`);
      }
      return seen;
    };
    const onMetrics = vi.fn();
    const bare = await shape(makeModel(server.baseURL));
    expect(bare.some((p) => /^(error|threw):/.test(p))).toBe(true);
    expect(await shape(wrapped({ onMetrics }))).toEqual(bare);
    expect(onMetrics).toHaveBeenCalledTimes(1);
    expect(onMetrics.mock.calls[0]![0]).toBeUndefined();
  });

  it('an abort mid-stream surfaces as without the middleware', async () => {
    server.reply = () => ({ content: 'one two three four five six seven eight', trace: sampleTrace(), delayMs: 20 });
    const run = async (model: Loose) => {
      const controller = new AbortController();
      const result = ai.streamText({ model, prompt: 'x', abortSignal: controller.signal, maxRetries: 0 });
      const types: string[] = [];
      try {
        for await (const part of result.fullStream as AsyncIterable<Loose>) {
          types.push(part.type);
          if (part.type === 'text-delta') controller.abort();
        }
      } catch (error) {
        types.push(`threw:${(error as Error).name}`);
      }
      return types.filter((t) => t !== 'text-delta');
    };
    const bare = await run(makeModel(server.baseURL));
    expect(await run(wrapped())).toEqual(bare);
  });

  it('50 concurrent calls each get their own trace', async () => {
    server.reply = (req) => {
      const n = Number(lastUserText(req).replace('call-', ''));
      return { content: `answer ${n}`, trace: sampleTrace(n), delayMs: n % 3 };
    };
    const model = wrapped();
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
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

describe('carbonTraceMiddleware with @ai-sdk/openai .chat() on ai@7', () => {
  it('generateText and streamText', async () => {
    const { createOpenAI } = await import('@ai-sdk/openai');
    const ai = MAJORS[2]!.ai;
    const openai = createOpenAI({ baseURL: server.baseURL, apiKey: 'test' });
    const model = ai.wrapLanguageModel({ model: openai.chat('fixture-model'), middleware: carbonTraceMiddleware({ onWarning: false }) });
    server.reply = () => ({ content: 'from openai chat', trace: sampleTrace(6) });
    const generated = await ai.generateText({ model, prompt: 'x' });
    expect(getCarbonMetrics(generated)?.gwpKgco2eq).toBeCloseTo(kg(0.6), 12);
    expect(Object.keys(generated.providerMetadata)).toContain('openai');
    server.reply = () => ({ content: 'streamed', trace: sampleTrace(7), tracePlacement: 'usage' });
    const streamed = ai.streamText({ model, prompt: 'x' });
    expect(await streamed.text).toBe('streamed');
    expect(getCarbonMetrics(await streamed.providerMetadata)?.gwpKgco2eq).toBeCloseTo(kg(0.7), 12);
  });
});
