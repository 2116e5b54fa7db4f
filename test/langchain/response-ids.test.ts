/**
 * handler.fetch against what real OpenAI-compatible servers send as response `id` (DESIGN.md §3):
 * unique (vLLM, llama.cpp), colliding (Ollama's chatcmpl-<0..999>), empty (TGI), absent
 * (OpenVINO), or new on every chunk (older llama.cpp, some proxies). Every run must get its own
 * trace, or none with a warning — never another run's.
 */
import { HumanMessage } from '@langchain/core/messages';
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCarbonMetrics, type CarbonMetrics } from '../../src/index';
import { CarbonTraceCallbackHandler, type CarbonLLMRunInfo } from '../../src/langchain/index';
import { lastUserText, sampleTrace, startFixtureServer, type FixtureReply, type FixtureServer } from '../fixtures/openai-compatible-server';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer();
});
afterAll(() => server.close());

const ID_BEHAVIOURS: Array<[string, Pick<FixtureReply, 'id' | 'idPerChunk'>]> = [
  ['unique ids (vLLM, llama.cpp)', {}],
  ['one id for every response (Ollama collisions)', { id: 'chatcmpl-7' }],
  ['an empty id (TGI)', { id: '' }],
  ['no id field (OpenVINO)', { id: null }],
  ['a new id on every chunk (older llama.cpp, proxies)', { idPerChunk: true }],
];

const MODES = [
  { label: 'invoke (JSON)', streaming: false, placement: 'finish' as const },
  { label: 'streaming: true, trace on the finish chunk', streaming: true, placement: 'finish' as const },
  { label: 'streaming: true, trace on the usage-only chunk', streaming: true, placement: 'usage' as const },
];

function recording() {
  const events: Array<[CarbonMetrics | undefined, CarbonLLMRunInfo]> = [];
  const warnings: string[] = [];
  const handler = new CarbonTraceCallbackHandler({ onMetrics: (m, run) => void events.push([m, run]), onWarning: (w) => void warnings.push(w) });
  return { handler, events, warnings };
}

function chat(handler: CarbonTraceCallbackHandler, streaming: boolean): ChatOpenAI {
  return new ChatOpenAI({ model: 'fixture-model', apiKey: 'test', maxRetries: 0, streaming, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
}

describe.each(ID_BEHAVIOURS)('handler.fetch with %s', (_label, ids) => {
  it.each(MODES)('$label: 14 concurrent calls, interleaved chunk by chunk, each get their own trace', async ({ streaming, placement }) => {
    const N = 14;
    server.reply = (req) => {
      const n = Number(lastUserText(req).replace('call-', ''));
      // Different latencies and chunk pacing, so responses interleave chunk by chunk.
      return { ...ids, content: `answer number ${n} with several words`, trace: sampleTrace(n), tracePlacement: placement, latencyMs: (N - n) % 5, delayMs: n % 3 };
    };
    const r = recording();
    const model = chat(r.handler, streaming);
    const messages = await Promise.all(Array.from({ length: N }, (_, i) => model.invoke(`call-${i + 1}`, { callbacks: [r.handler] })));

    messages.forEach((message, i) => {
      const n = i + 1;
      expect(message.content).toBe(`answer number ${n} with several words`);
      // sampleTrace(n) is identified by its prompt_tokens (10n) and emissions (0.1n g).
      expect(getCarbonMetrics(message)?.promptTokens).toBe(10 * n);
      expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo((0.1 * n) / 1000, 12);
    });
    expect(r.events.map(([m]) => m?.promptTokens).sort((a, b) => a! - b!)).toEqual(Array.from({ length: N }, (_, i) => 10 * (i + 1)));
    expect(r.handler.totals().gwpKgco2eq).toBeCloseTo((0.1 * (N * (N + 1)) / 2) / 1000, 10);
    expect(r.warnings).toEqual([]);
    // No capture outlives its run.
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('.stream() callers: 12 concurrent streams, each run reports its own trace', async () => {
    const N = 12;
    server.reply = (req) => {
      const n = Number(lastUserText(req).replace('call-', ''));
      return { ...ids, content: `streamed ${n}`, trace: sampleTrace(n), tracePlacement: n % 2 ? 'usage' : 'finish', delayMs: n % 4 };
    };
    const r = recording();
    const model = chat(r.handler, false);
    const texts = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        let text = '';
        for await (const chunk of await model.stream(`call-${i + 1}`, { callbacks: [r.handler] })) text += chunk.content;
        return text;
      }),
    );
    expect(texts).toEqual(Array.from({ length: N }, (_, i) => `streamed ${i + 1}`));
    expect(r.events.map(([m]) => m?.promptTokens).sort((a, b) => a! - b!)).toEqual(Array.from({ length: N }, (_, i) => 10 * (i + 1)));
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });
});

describe('handler.fetch when concurrent requests carry the same prompt', () => {
  it('tells the responses apart by what the model generated', async () => {
    const N = 12;
    let served = 0;
    server.reply = () => {
      const k = ++served;
      return { id: 'same', content: `distinct answer ${k}`, trace: sampleTrace(k), delayMs: (k * 7) % 4 };
    };
    for (const streaming of [false, true]) {
      served = 0;
      const r = recording();
      const model = chat(r.handler, streaming);
      const messages = await Promise.all(Array.from({ length: N }, () => model.invoke('the same prompt', { callbacks: [r.handler] })));
      for (const message of messages) {
        const k = Number(String(message.content).replace('distinct answer ', ''));
        expect(getCarbonMetrics(message)?.promptTokens).toBe(10 * k);
      }
      expect(r.warnings).toEqual([]);
      expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
    }
  });

  it('tells tool calls apart by their arguments', async () => {
    const cities = ['Paris', 'Lyon', 'Nice', 'Lille', 'Brest', 'Dijon'];
    let served = 0;
    server.reply = () => {
      const k = served++;
      return { id: '', toolCalls: [{ name: 'weather', arguments: JSON.stringify({ city: cities[k] }) }], trace: sampleTrace(k + 1), delayMs: k % 3 };
    };
    const r = recording();
    const model = chat(r.handler, true).bindTools([{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]);
    const messages = await Promise.all(cities.map(() => model.invoke('weather?', { callbacks: [r.handler] })));
    for (const message of messages) {
      const k = cities.indexOf(message.tool_calls![0]!.args.city as string);
      expect(getCarbonMetrics(message)?.promptTokens).toBe(10 * (k + 1));
    }
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('same prompt, same answer, different traces: no trace and a warning that says why, never another call\'s', async () => {
    let served = 0;
    server.reply = () => {
      const k = ++served;
      return { id: 'chatcmpl-1', content: 'identical answer', trace: sampleTrace(k), delayMs: k % 2 };
    };
    const r = recording();
    // generate() ends its runs only once every response is in: all four are read before any
    // run ends, so neither timing nor content can tell them apart.
    const prompt = [new HumanMessage('identical prompt')];
    const result = await chat(r.handler, false).generate([prompt, prompt, prompt, prompt], { callbacks: [r.handler] });
    for (const [generation] of result.generations) expect(getCarbonMetrics(generation)).toBeUndefined();
    expect(r.events.map(([m]) => m)).toEqual([undefined, undefined, undefined, undefined]);
    expect(r.handler.totals()).toMatchObject({ calls: 4, tracedCalls: 0 });
    expect(r.warnings[0]).toMatch(/4 responses that could each be the one of this call to fixture-model .* do not all carry the same trace \(one may carry none\): no carbon metrics for this call rather than another call's/);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('same prompt, all responses in before any run ends: the generated content decides', async () => {
    let served = 0;
    server.reply = () => {
      const k = ++served;
      return { id: '', content: `answer ${k}`, trace: sampleTrace(k), delayMs: (5 - k) % 3 };
    };
    const r = recording();
    const prompt = [new HumanMessage('identical prompt')];
    for (const streaming of [false, true]) {
      served = 0;
      const result = await chat(r.handler, streaming).generate([prompt, prompt, prompt, prompt, prompt], { callbacks: [r.handler] });
      for (const [generation] of result.generations) {
        const k = Number(generation!.text.replace('answer ', ''));
        expect(getCarbonMetrics(generation)?.promptTokens).toBe(10 * k);
      }
    }
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('same prompt, same answer, same trace: the figure is every one\'s', async () => {
    server.reply = () => ({ id: '', content: 'identical answer', trace: sampleTrace(3) });
    const r = recording();
    const model = chat(r.handler, true);
    const messages = await Promise.all(Array.from({ length: 6 }, () => model.invoke('identical prompt', { callbacks: [r.handler] })));
    for (const message of messages) expect(getCarbonMetrics(message)?.promptTokens).toBe(30);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });
});
