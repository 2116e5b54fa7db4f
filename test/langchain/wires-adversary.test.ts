/**
 * What an adversarial review reproduced against handler.fetch (issue #27), as tests with the real
 * LangChain classes against the loopback wire fixture: a run must never get a figure another
 * run's response carried, a figure is booked at most once, and a Responses stream that ends with
 * `response.incomplete` (max_output_tokens) still carries its trace to the run.
 *
 * Orders that matter are forced by hand (barriers and gates on promises), never by timers.
 */
import { BaseCallbackHandler } from '@langchain/core/callbacks/base';
import { InMemoryCache } from '@langchain/core/caches';
import { AIMessage, HumanMessage } from '@langchain/core/messages';
import type { ChatGeneration } from '@langchain/core/outputs';
import { ChatAnthropic } from '@langchain/anthropic';
import { ChatOllama, OllamaEmbeddings } from '@langchain/ollama';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseCarbonTrace, type CarbonMetrics } from '../../src/index';
import { CarbonTraceCallbackHandler, getCarbonMetrics, type CarbonLLMRunInfo } from '../../src/langchain/index';
import { sampleTrace } from '../fixtures/openai-compatible-server';
import { startWireServer, type WireServer } from '../fixtures/wire-server';

let server: WireServer;
beforeAll(async () => {
  server = await startWireServer();
});
afterAll(() => server.close());
beforeEach(() => {
  server.reply = () => ({ trace: sampleTrace(1) });
});

const EMPTY_STATE = { runs: 0, roots: 0, captures: 0 };

function recordingHandler(fields: ConstructorParameters<typeof CarbonTraceCallbackHandler>[0] = {}) {
  const metrics: Array<[CarbonMetrics | undefined, CarbonLLMRunInfo]> = [];
  const warnings: string[] = [];
  const handler = new CarbonTraceCallbackHandler({
    onMetrics: (m, run) => void metrics.push([m, run]),
    onWarning: (w) => void warnings.push(w),
    ...fields,
  });
  return { handler, metrics, warnings };
}

/** A promise and the function that resolves it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * A handler that holds every chat run at its start until `count` runs have started: then every
 * run is open before any of them sends its request, as when calls start together.
 */
class StartBarrier extends BaseCallbackHandler {
  name = 'start_barrier';
  private started = 0;
  private readonly all = gate();
  constructor(private readonly count: number) {
    super({ _awaitHandler: true });
  }
  override async handleChatModelStart(): Promise<void> {
    if (++this.started >= this.count) this.all.open();
    await this.all.promise;
  }
}

type ChatCase = {
  name: string;
  make: (options: { fetch: CarbonTraceCallbackHandler['fetch']; streaming?: boolean; model?: string }) => ChatOllama | ChatOpenAI | ChatAnthropic;
};

const CHATS: ChatCase[] = [
  {
    name: 'ChatOllama (/api/chat)',
    make: ({ fetch, model }) => new ChatOllama({ model: model ?? 'fixture-model', baseUrl: server.baseURL, fetch }),
  },
  {
    name: 'ChatOpenAI useResponsesApi (/v1/responses)',
    make: ({ fetch, streaming, model }) =>
      new ChatOpenAI({
        model: model ?? 'fixture-model',
        apiKey: 'test',
        maxRetries: 0,
        useResponsesApi: true,
        ...(streaming ? { streaming: true } : {}),
        configuration: { baseURL: `${server.baseURL}/v1`, fetch },
      }),
  },
  {
    name: 'ChatOpenAI (/v1/chat/completions)',
    make: ({ fetch, streaming, model }) =>
      new ChatOpenAI({ model: model ?? 'fixture-model', apiKey: 'test', maxRetries: 0, ...(streaming ? { streaming: true } : {}), configuration: { baseURL: `${server.baseURL}/v1`, fetch } }),
  },
  {
    name: 'ChatAnthropic (/v1/messages)',
    make: ({ fetch, streaming, model }) =>
      new ChatAnthropic({ model: model ?? 'fixture-model', apiKey: 'test', maxRetries: 0, anthropicApiUrl: server.baseURL, ...(streaming ? { streaming: true } : {}), clientOptions: { fetch } }),
  },
];

// Which response a run got, told by the usage its message reports (the content is the same).
const TRACED_USAGE = { input: 7, output: 2 };
const UNTRACED_USAGE = { input: 9, output: 2 };
const inputTokensOf = (generation: ChatGeneration | undefined) => (generation?.message as AIMessage | undefined)?.usage_metadata?.input_tokens;

describe('a look-alike response without a trace (a replica not behind the proxy)', () => {
  it('ChatOllama, one run invoked and one streamed at once (the reviewer\'s repro): the untraced run gets no figure and a warning, the totals count the figure once', async () => {
    server.reply = ({ body }) =>
      body.model === 'traced-replica' ? { text: 'same answer', usage: TRACED_USAGE, trace: sampleTrace(7) } : { text: 'same answer', usage: UNTRACED_USAGE };
    // The traced response comes whole, in one piece, and is read before the untraced one is even
    // sent; the app takes its time with the streamed chunks, so that run ends after the invoked one.
    const tracedRead = gate();
    const invokedDone = gate();
    const r = recordingHandler({
      fetch: async (input, init) => {
        const untraced = typeof init?.body === 'string' && init.body.includes('untraced-replica');
        if (untraced) await tracedRead.promise;
        const response = await globalThis.fetch(input, init);
        return untraced ? response : new Response(await response.text(), { status: response.status, headers: response.headers });
      },
    });
    const handler = r.handler;
    const callbacks = [new StartBarrier(2), handler];
    const untraced = new ChatOllama({ model: 'untraced-replica', baseUrl: server.baseURL, fetch: handler.fetch });
    const traced = new ChatOllama({ model: 'traced-replica', baseUrl: server.baseURL, fetch: handler.fetch });
    const streamed = (async () => {
      let text = '';
      for await (const chunk of await traced.stream('same prompt', { callbacks })) {
        // The first chunk came from the whole body, which handler.fetch has seen to its end.
        if (text === '') {
          tracedRead.open();
          await invokedDone.promise;
        }
        text += chunk.text;
      }
      return text;
    })();
    const invoked = untraced.invoke('same prompt', { callbacks }).finally(() => invokedDone.open());
    const [message, text] = await Promise.all([invoked, streamed]);
    expect([message.text, text]).toEqual(['same answer', 'same answer']);

    const byModel = Object.fromEntries(r.metrics.map(([m, run]) => [run.modelName, m]));
    expect(byModel['untraced-replica']).toBeUndefined();
    expect(getCarbonMetrics(message)).toBeUndefined();
    // ChatOllama keeps its own final object in response_metadata: the traced run still has its figure.
    expect(byModel['traced-replica']?.energyKwh).toBeCloseTo(0.0028, 12);
    expect(handler.totals()).toMatchObject({ calls: 2, tracedCalls: 1 });
    expect(handler.totals().energyKwh).toBeCloseTo(0.0028, 12);
    expect(r.warnings).toEqual([expect.stringMatching(/^handler\.fetch saw 2 responses that could each be the one of this call to untraced-replica/)]);
    expect(handler.pendingState()).toEqual(EMPTY_STATE);
  });

  describe.each(CHATS)('$name', ({ make }) => {
    it.each([
      [false, 1],
      [false, 2],
      [true, 1],
      [true, 2],
    ])('generate() of one prompt twice (streaming: %s), answer %i traced, the other not: no run gets a figure its own response did not carry', async (streaming, tracedAnswer) => {
      let served = 0;
      // Runs end in the order they started: the first or the last to end had the traced answer.
      server.reply = () => (++served === tracedAnswer ? { text: 'same answer', usage: TRACED_USAGE, trace: sampleTrace(3) } : { text: 'same answer', usage: UNTRACED_USAGE });
      const r = recordingHandler();
      const prompt = [new HumanMessage('same prompt')];
      const result = await make({ fetch: r.handler.fetch, streaming }).generate([prompt, prompt], { callbacks: [r.handler] });
      const generations = result.generations.map(([g]) => g as ChatGeneration);
      expect(generations.map(inputTokensOf).sort()).toEqual([7, 9]);
      for (const generation of generations) {
        if (inputTokensOf(generation) === UNTRACED_USAGE.input) expect(getCarbonMetrics(generation)).toBeUndefined();
        else if (getCarbonMetrics(generation) !== undefined) expect(getCarbonMetrics(generation)).toMatchObject({ energyKwh: parseCarbonTrace(sampleTrace(3))!.energyKwh });
      }
      expect(r.handler.totals().tracedCalls).toBeLessThanOrEqual(1);
      expect(r.handler.totals().energyKwh ?? 0).toBeLessThanOrEqual(parseCarbonTrace(sampleTrace(3))!.energyKwh! + 1e-15);
      // The untraced run is told why it has no figure.
      expect(r.warnings.join('\n')).toMatch(/responses that could each be the one of this call to fixture-model/);
      expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
    });
  });

  it('a response claimed without a trace is claimed once: the run whose traced look-alike came later still gets its figure', async () => {
    const r = recordingHandler();
    const ollama = { lc: 1 as const, type: 'not_implemented' as const, id: ['langchain', 'chat_models', 'ollama', 'ChatOllama'] };
    r.handler.handleChatModelStart(ollama, [[new HumanMessage('same prompt')]], 'run-a');
    r.handler.handleChatModelStart(ollama, [[new HumanMessage('same prompt')]], 'run-b');
    const send = (model: string) =>
      r.handler.fetch(`${server.baseURL}/api/chat`, { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'same prompt' }], stream: true }) });
    server.reply = ({ body }) => (body.model === 'b' ? { text: 'same answer', trace: sampleTrace(4) } : { text: 'same answer' });
    const responseA = await send('a');
    const responseB = await send('b');
    await responseA.text();
    // Run a ends while b's response is still unread: only a's own response is finished.
    const output = (text: string) => ({ generations: [[{ text, message: new AIMessage(text) } as ChatGeneration]] });
    await r.handler.handleLLMEnd(output('same answer'), 'run-a');
    await responseB.text();
    await r.handler.handleLLMEnd(output('same answer'), 'run-b');
    expect(r.metrics.map(([m, run]) => [run.runId, m?.promptTokens])).toEqual([
      ['run-a', undefined],
      ['run-b', 40],
    ]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it.each([
    ['OpenAIEmbeddings', (fetch: CarbonTraceCallbackHandler['fetch'], model: string) => new OpenAIEmbeddings({ model, apiKey: 'test', maxRetries: 0, configuration: { baseURL: `${server.baseURL}/v1`, fetch } })],
    ['OllamaEmbeddings', (fetch: CarbonTraceCallbackHandler['fetch'], model: string) => new OllamaEmbeddings({ model, baseUrl: server.baseURL, maxRetries: 0, fetch })],
  ])('%s: the same input at once, one answer traced, one not: each call booked with its own response only', async (_name, make) => {
    server.reply = ({ body }) => (body.model === 'traced' ? { trace: sampleTrace(2) } : {});
    const r = recordingHandler();
    await Promise.all([make(r.handler.fetch, 'traced').embedQuery('same input'), make(r.handler.fetch, 'untraced').embedQuery('same input')]);
    const byModel = Object.fromEntries(r.metrics.map(([m, run]) => [run.modelName, m]));
    expect(byModel.untraced).toBeUndefined();
    expect(byModel.traced?.energyKwh).toBeCloseTo(0.0008, 12);
    expect(r.handler.totals()).toMatchObject({ calls: 2, tracedCalls: 1 });
    expect(r.handler.totals().energyKwh).toBeCloseTo(0.0008, 12);
  });
});

describe('a figure is booked once', () => {
  it('a cached answer (LangChain\'s cache) made no model call: the totals do not count its trace again, and a warning says why', async () => {
    server.reply = () => ({ text: 'cached answer', trace: sampleTrace(5) });
    const r = recordingHandler();
    const model = new ChatOllama({ model: 'fixture-model', baseUrl: server.baseURL, fetch: r.handler.fetch, cache: new InMemoryCache() });
    const first = await model.invoke('cache me', { callbacks: [r.handler] });
    const requests = server.requests.length;
    const second = await model.invoke('cache me', { callbacks: [r.handler] });
    expect(server.requests.length).toBe(requests);
    expect([first.text, second.text]).toEqual(['cached answer', 'cached answer']);
    expect(r.metrics.map(([m]) => m?.promptTokens)).toEqual([50, undefined]);
    expect(r.handler.totals()).toMatchObject({ calls: 2, tracedCalls: 1 });
    expect(r.handler.totals().gwpKgco2eq).toBeCloseTo(0.0005, 12);
    expect(r.warnings).toEqual([expect.stringMatching(/came from LangChain's cache/)]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('one trace object handed to two runs (a class that shares its output between the runs of one call): booked for the first only', async () => {
    const r = recordingHandler();
    const shared = { x_carbon_trace: sampleTrace(6) };
    const llm = { lc: 1 as const, type: 'not_implemented' as const, id: ['langchain', 'llms', 'fake', 'FakeLLM'] };
    r.handler.handleLLMStart(llm, ['p'], 'run-1');
    r.handler.handleLLMStart(llm, ['p'], 'run-2');
    // What BaseLLM._flattenLLMResult does: each run gets { ...llmOutput, tokenUsage: {} }.
    await r.handler.handleLLMEnd({ generations: [[{ text: 'a' }]], llmOutput: shared }, 'run-1');
    await r.handler.handleLLMEnd({ generations: [[{ text: 'b' }]], llmOutput: { ...shared, tokenUsage: {} } }, 'run-2');
    expect(r.metrics.map(([m]) => m?.promptTokens)).toEqual([60, undefined]);
    expect(r.handler.totals().tracedCalls).toBe(1);
    expect(r.warnings.join('\n')).toMatch(/already booked for another call/);
  });
});

describe('a Responses stream that ends with response.incomplete (max_output_tokens)', () => {
  it.each([
    ['invoke, streaming: true', true],
    ['invoke, a JSON body', false],
  ])('ChatOpenAI useResponsesApi, %s: the trace reaches the run', async (_name, streaming) => {
    server.reply = () => ({ text: 'cut short', trace: sampleTrace(3), incomplete: true });
    const r = recordingHandler();
    const message = await CHATS[1]!.make({ fetch: r.handler.fetch, streaming }).invoke('hello', { callbacks: [r.handler] });
    expect(message.text).toBe('cut short');
    expect(getCarbonMetrics(message)).toEqual(parseCarbonTrace(sampleTrace(3)));
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('.stream(): the trace reaches onMetrics and the totals', async () => {
    server.reply = () => ({ text: 'one two three', trace: sampleTrace(2), incomplete: true });
    const r = recordingHandler();
    let text = '';
    for await (const chunk of await CHATS[1]!.make({ fetch: r.handler.fetch }).stream('hello', { callbacks: [r.handler] })) text += chunk.text;
    expect(text).toBe('one two three');
    expect(r.metrics.map(([m]) => m?.promptTokens)).toEqual([20]);
    expect(r.handler.totals().tracedCalls).toBe(1);
  });

  it('tool calls cut at max_output_tokens: the whole output of response.incomplete ties each look-alike response to its run', async () => {
    // The Responses API streams a tool call's arguments as deltas and repeats the whole call in
    // the event that ends the stream; the capture matches on that.
    const stream = (city: string, n: number) =>
      [
        { type: 'response.created', response: { id: `resp_${n}`, status: 'in_progress', output: [] } },
        { type: 'response.output_item.added', output_index: 0, item: { type: 'function_call', id: `fc_${n}`, call_id: `call_${n}`, name: 'weather', arguments: '' } },
        { type: 'response.function_call_arguments.delta', output_index: 0, item_id: `fc_${n}`, delta: JSON.stringify({ city }) },
        {
          type: 'response.incomplete',
          response: { id: `resp_${n}`, status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [{ type: 'function_call', id: `fc_${n}`, call_id: `call_${n}`, name: 'weather', arguments: JSON.stringify({ city }) }], x_carbon_trace: sampleTrace(n) },
        },
      ]
        .map((event) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`)
        .join('');
    const cities = ['Paris', 'Lyon'];
    let sent = 0;
    const r = recordingHandler({
      fetch: async () => {
        const n = ++sent;
        return new Response(stream(cities[n - 1]!, n), { headers: { 'content-type': 'text/event-stream' } });
      },
    });
    const openai = { lc: 1 as const, type: 'not_implemented' as const, id: ['langchain', 'chat_models', 'openai', 'ChatOpenAI'] };
    for (const runId of ['run-1', 'run-2']) r.handler.handleChatModelStart(openai, [[new HumanMessage('weather?')]], runId);
    const body = JSON.stringify({ model: 'm', input: 'weather?', stream: true });
    const responses = [await r.handler.fetch('http://127.0.0.1:9/v1/responses', { method: 'POST', body }), await r.handler.fetch('http://127.0.0.1:9/v1/responses', { method: 'POST', body })];
    for (const response of responses) await response.text();
    // Run 2 got Lyon, run 1 Paris: they end in the other order.
    for (const [runId, city] of [['run-2', 'Lyon'], ['run-1', 'Paris']] as const) {
      const message = new AIMessage({ content: '', tool_calls: [{ name: 'weather', args: { city }, id: 'x', type: 'tool_call' }] });
      await r.handler.handleLLMEnd({ generations: [[{ text: '', message } as ChatGeneration]] }, runId);
    }
    expect(r.metrics.map(([m, run]) => [run.runId, m?.promptTokens])).toEqual([
      ['run-2', 20],
      ['run-1', 10],
    ]);
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('concurrent incomplete streams, same prompt, different answers: each run gets its own trace', async () => {
    let n = 0;
    server.reply = () => {
      n++;
      return { text: `answer ${n}`, trace: sampleTrace(n), incomplete: true };
    };
    const r = recordingHandler();
    const model = CHATS[1]!.make({ fetch: r.handler.fetch, streaming: true });
    const messages = await Promise.all(Array.from({ length: 6 }, () => model.invoke('same prompt', { callbacks: [r.handler] })));
    for (const message of messages) expect(getCarbonMetrics(message)?.promptTokens).toBe(10 * Number(message.text.replace('answer ', '')));
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });
});
