import { HumanMessage } from '@langchain/core/messages';
import { ChatPromptTemplate } from '@langchain/core/prompts';
import { StringOutputParser } from '@langchain/core/output_parsers';
import { tool } from '@langchain/core/tools';
import { END, MemorySaver, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { createReactAgent } from '@langchain/langgraph/prebuilt';
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { parseCarbonTrace, type CarbonMetrics, type CarbonTotals } from '../../src/index';
import { CarbonTraceCallbackHandler, getCarbonMetrics, type CarbonLLMRunInfo } from '../../src/langchain/index';
import { lastUserText, sampleTrace, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer();
});
afterAll(() => server.close());
beforeEach(() => {
  server.reply = () => ({ content: 'Hello from the fixture.', trace: sampleTrace(1) });
});

const kg = (grams: number) => grams / 1000;

type Recorded = {
  handler: CarbonTraceCallbackHandler;
  metrics: Array<[CarbonMetrics | undefined, CarbonLLMRunInfo]>;
  roots: Array<[CarbonTotals, { rootRunId: string }]>;
  warnings: string[];
};

function recordingHandler(fields: ConstructorParameters<typeof CarbonTraceCallbackHandler>[0] = {}): Recorded {
  const recorded: Omit<Recorded, 'handler'> = { metrics: [], roots: [], warnings: [] };
  const handler = new CarbonTraceCallbackHandler({
    onMetrics: (m, run) => void recorded.metrics.push([m, run]),
    onRootRunEnd: (t, run) => void recorded.roots.push([t, run]),
    onWarning: (w) => void recorded.warnings.push(w),
    ...fields,
  });
  return { handler, ...recorded };
}

/** ChatOpenAI against the fixture; `fetch` picks the capture path. */
function chat(options: { handler?: CarbonTraceCallbackHandler; raw?: boolean; streaming?: boolean; maxRetries?: number } = {}) {
  return new ChatOpenAI({
    model: 'fixture-model',
    apiKey: 'test',
    maxRetries: options.maxRetries ?? 0,
    ...(options.streaming ? { streaming: true } : {}),
    ...(options.raw ? { __includeRawResponse: true } : {}),
    configuration: { baseURL: server.baseURL, ...(options.handler ? { fetch: options.handler.fetch } : {}) },
  });
}

describe('CarbonTraceCallbackHandler with the real ChatOpenAI', () => {
  it('invoke with __includeRawResponse: metrics in response_metadata, raw response stripped', async () => {
    const r = recordingHandler();
    server.reply = () => ({ content: 'hi', trace: sampleTrace(3) });
    const message = await chat({ raw: true }).invoke('hello', { callbacks: [r.handler] });

    expect(message.content).toBe('hi');
    expect(message.response_metadata.codecarbon).toEqual(parseCarbonTrace(sampleTrace(3)));
    expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect('__raw_response' in message.additional_kwargs).toBe(false);
    expect(r.metrics).toHaveLength(1);
    expect(r.metrics[0]![1].modelName).toBe('fixture-model');
    expect(r.metrics[0]![1].rootRunId).toBe(r.metrics[0]![1].runId);
    expect(r.roots).toHaveLength(1);
    expect(r.roots[0]![0].calls).toBe(1);
    expect(r.roots[0]![0].gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('writes generationInfo.codecarbon on the LLMResult', async () => {
    const r = recordingHandler();
    server.reply = () => ({ content: 'hi', trace: sampleTrace(2) });
    const result = await chat({ handler: r.handler }).generate([[new HumanMessage('hello')]], { callbacks: [r.handler] });
    const generation = result.generations[0]![0]!;
    expect(getCarbonMetrics(generation)?.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    expect(generation.generationInfo?.codecarbon).toEqual(parseCarbonTrace(sampleTrace(2)));
  });

  it('keeps __raw_response with stripRawResponse: false', async () => {
    const r = recordingHandler({ stripRawResponse: false });
    const message = await chat({ raw: true }).invoke('hello', { callbacks: [r.handler] });
    expect(message.additional_kwargs.__raw_response).toBeDefined();
    expect(message.response_metadata.codecarbon).toBeDefined();
  });

  it('without any capture path: no metrics, onMetrics(undefined), a warning that shows the line to add', async () => {
    const r = recordingHandler();
    const message = await chat().invoke('hello', { callbacks: [r.handler] });
    expect(message.response_metadata.codecarbon).toBeUndefined();
    expect(r.metrics.map(([m]) => m)).toEqual([undefined]);
    expect(r.roots[0]![0]).toMatchObject({ calls: 1, tracedCalls: 0 });
    // The server sent a trace: the warning must not blame it, but point to the missing fetch.
    expect(r.warnings).toEqual([expect.stringMatching(/did not see the response of fixture-model.*configuration: \{ fetch: handler\.fetch \}/)]);
  });

  it('a server that really sends no trace: the warning says so', async () => {
    server.reply = () => ({ content: 'plain' });
    for (const options of [{ raw: true }, { fetch: true }]) {
      const r = recordingHandler();
      await chat(options.raw ? { raw: true } : { handler: r.handler }).invoke('hello', { callbacks: [r.handler] });
      expect(r.warnings).toEqual([expect.stringMatching(/^no x_carbon_trace in the response of fixture-model/)]);
    }
  });

  it('handler.fetch: invoke', async () => {
    const r = recordingHandler();
    server.reply = () => ({ content: 'hi', trace: sampleTrace(2) });
    const message = await chat({ handler: r.handler }).invoke('hello', { callbacks: [r.handler] });
    expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it.each(['finish', 'usage', 'every'] as const)('handler.fetch: stream with the trace on the %s chunk', async (placement) => {
    const r = recordingHandler();
    server.reply = () => ({ content: 'one two three', trace: sampleTrace(5), tracePlacement: placement });
    let text = '';
    for await (const chunk of await chat({ handler: r.handler }).stream('hello', { callbacks: [r.handler] })) text += chunk.content;
    expect(text).toBe('one two three');
    expect(r.metrics).toHaveLength(1);
    expect(r.metrics[0]![0]?.gwpKgco2eq).toBeCloseTo(kg(0.5), 12);
    expect(r.metrics[0]![0]?.energyKwh).toBeCloseTo(0.002, 12);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('__includeRawResponse stream: per-chunk traces, never the merged (summed) one', async () => {
    const r = recordingHandler();
    // Every chunk carries a trace; chunk merging would add them up in the final message.
    server.reply = () => ({ content: 'one two three', trace: sampleTrace(5), tracePlacement: 'every' });
    // streamUsage off: the finish chunk is then the last one LangChain hands to handlers (it
    // skips a usage-only last chunk, so a trace there is only seen by handler.fetch).
    const model = new ChatOpenAI({ model: 'fixture-model', apiKey: 'test', maxRetries: 0, streaming: true, streamUsage: false, __includeRawResponse: true, configuration: { baseURL: server.baseURL } });
    const message = await model.invoke('hello', { callbacks: [r.handler] });
    expect(message.content).toBe('one two three');
    expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo(kg(0.5), 12);
    expect(getCarbonMetrics(message)?.energyKwh).toBeCloseTo(0.002, 12);
  });

  it('handler.fetch does not change the bytes the client reads', async () => {
    const r = recordingHandler();
    server.reply = () => ({ id: 'chatcmpl-fixed', content: 'same bytes', trace: sampleTrace(1) });
    // An open run whose messages the requests carry, so that the responses are observed.
    r.handler.handleChatModelStart({ lc: 1, type: 'not_implemented', id: ['fake'] }, [[new HumanMessage('x')]], 'run-bytes');
    for (const stream of [false, true]) {
      const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: 'x' }] }) };
      const direct = await fetch(`${server.baseURL}/chat/completions`, init);
      const observed = await r.handler.fetch(`${server.baseURL}/chat/completions`, init);
      expect(observed.status).toBe(direct.status);
      expect(observed.headers.get('content-type')).toBe(direct.headers.get('content-type'));
      expect(observed.url).toBe(direct.url);
      expect(await observed.text()).toBe(await direct.text());
    }
  });

  it('handler.fetch without the handler in callbacks: the call works, one warning says what to add, nothing is held', async () => {
    const r = recordingHandler();
    const model = chat({ handler: r.handler });
    expect((await model.invoke('hello')).content).toBe('Hello from the fixture.');
    await model.invoke('again');
    expect(r.warnings).toEqual([expect.stringMatching(/handler\.fetch saw a request while none of its LLM runs was open.*callbacks: \[handler\]/)]);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('a chain: one root run with the model call inside', async () => {
    const r = recordingHandler();
    const chain = ChatPromptTemplate.fromTemplate('Say {word}').pipe(chat({ handler: r.handler })).pipe(new StringOutputParser());
    expect(await chain.invoke({ word: 'hi' }, { callbacks: [r.handler] })).toBe('Hello from the fixture.');
    expect(r.metrics).toHaveLength(1);
    expect(r.roots).toHaveLength(1);
    expect(r.metrics[0]![1].rootRunId).toBe(r.roots[0]![1].rootRunId);
    expect(r.metrics[0]![1].rootRunId).not.toBe(r.metrics[0]![1].runId);
    expect(r.roots[0]![0].tracedCalls).toBe(1);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('a StateGraph with two model-calling nodes: one root, two calls, summed emissions', async () => {
    const r = recordingHandler();
    server.reply = (req) => {
      const n = req.body.messages?.length ?? 1; // node 1 sees 1 message, node 2 sees 2
      return { content: `node answer ${n}`, trace: sampleTrace(n) };
    };
    const model = chat({ handler: r.handler });
    const graph = new StateGraph(MessagesAnnotation)
      .addNode('first', async (state) => ({ messages: [await model.invoke(state.messages)] }))
      .addNode('second', async (state) => ({ messages: [await model.invoke(state.messages)] }))
      .addEdge(START, 'first')
      .addEdge('first', 'second')
      .addEdge('second', END)
      .compile({ checkpointer: new MemorySaver() });

    const state = await graph.invoke({ messages: [{ role: 'user', content: 'go' }] }, { callbacks: [r.handler], configurable: { thread_id: 't1' } });
    expect(state.messages).toHaveLength(3);
    expect(r.roots).toHaveLength(1);
    const [totals] = r.roots[0]!;
    expect(totals.calls).toBe(2);
    expect(totals.tracedCalls).toBe(2);
    expect(totals.gwpKgco2eq).toBeCloseTo(kg(0.1 + 0.2), 12);
    expect(new Set(r.metrics.map(([, run]) => run.rootRunId))).toEqual(new Set([r.roots[0]![1].rootRunId]));
    // The metrics travel in graph state; the raw response does not.
    expect(getCarbonMetrics(state.messages[1])?.gwpKgco2eq).toBeCloseTo(kg(0.1), 12);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('LangGraph streamMode "messages" with handler.fetch', async () => {
    const r = recordingHandler();
    server.reply = () => ({ content: 'streamed graph answer', trace: sampleTrace(4), tracePlacement: 'usage' });
    const model = chat({ handler: r.handler });
    const graph = new StateGraph(MessagesAnnotation)
      .addNode('agent', async (state) => ({ messages: [await model.invoke(state.messages)] }))
      .addEdge(START, 'agent')
      .addEdge('agent', END)
      .compile();
    let text = '';
    for await (const [chunk] of await graph.stream({ messages: [{ role: 'user', content: 'go' }] }, { streamMode: 'messages', callbacks: [r.handler] })) {
      text += typeof chunk.content === 'string' ? chunk.content : '';
    }
    expect(text).toContain('streamed graph answer');
    expect(r.roots).toHaveLength(1);
    expect(r.roots[0]![0].gwpKgco2eq).toBeCloseTo(kg(0.4), 12);
  });

  it('a tool-calling agent: every model call of the loop is counted', async () => {
    const r = recordingHandler();
    server.reply = (req) =>
      req.body.messages?.some((m) => m.role === 'tool')
        ? { content: 'It is sunny.', trace: sampleTrace(2) }
        : { toolCalls: [{ name: 'weather', arguments: '{"city":"Paris"}' }], trace: sampleTrace(1) };
    const weather = tool(async () => 'sunny', { name: 'weather', description: 'Weather of a city', schema: z.object({ city: z.string() }) });
    const agent = createReactAgent({ llm: chat({ handler: r.handler }), tools: [weather] });
    const result = await agent.invoke({ messages: [{ role: 'user', content: 'Weather in Paris?' }] }, { callbacks: [r.handler] });
    expect(result.messages.at(-1)!.content).toBe('It is sunny.');
    expect(r.roots).toHaveLength(1);
    expect(r.roots[0]![0].calls).toBe(2);
    expect(r.roots[0]![0].gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect(r.handler.totals().calls).toBe(2);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('30 concurrent invokes with distinct traces: no cross-talk', async () => {
    const r = recordingHandler();
    server.reply = (req) => {
      const n = Number(lastUserText(req).replace('call-', ''));
      return { content: `answer ${n}`, trace: sampleTrace(n), delayMs: n % 4 };
    };
    const model = chat({ handler: r.handler });
    const raw = chat({ raw: true });
    const messages = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const n = i + 1;
        if (n % 3 === 0) {
          let last = '';
          for await (const c of await model.stream(`call-${n}`, { callbacks: [r.handler] })) last += c.content;
          return { n, text: last, metrics: undefined };
        }
        const m = await (n % 3 === 1 ? model : raw).invoke(`call-${n}`, { callbacks: [r.handler] });
        return { n, text: m.content, metrics: getCarbonMetrics(m) };
      }),
    );
    for (const { n, text, metrics } of messages) {
      expect(text).toBe(`answer ${n}`);
      if (metrics) expect(metrics.promptTokens).toBe(10 * n);
    }
    expect(r.metrics).toHaveLength(30);
    expect(r.roots).toHaveLength(30);
    // Each root is one call: its emissions identify which call it was.
    const perRoot = r.roots.map(([t]) => Math.round(t.gwpKgco2eq! * 1e4)).sort((a, b) => a - b);
    expect(perRoot).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(r.handler.totals().gwpKgco2eq).toBeCloseTo(kg(0.1 * (30 * 31) / 2), 10);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('HTTP 500 rejects exactly as without the handler, and leaves no state', async () => {
    server.reply = () => ({ status: 500 });
    const r = recordingHandler();
    const capture = async (promise: Promise<unknown>) => promise.then(() => { throw new Error('expected a rejection'); }, (e) => e as Error & { status?: number });
    const bare = await capture(chat().invoke('x'));
    const ours = await capture(chat({ handler: r.handler }).invoke('x', { callbacks: [r.handler] }));
    expect(ours.constructor).toBe(bare.constructor);
    expect(ours.message).toBe(bare.message);
    expect(ours.status).toBe(500);
    // The failed call counts, without metrics and without blaming the server.
    expect(r.metrics).toEqual([[undefined, expect.objectContaining({ outcome: 'failed', modelName: 'fixture-model' })]]);
    expect(r.roots).toHaveLength(1);
    expect(r.roots[0]![0]).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('a stream cut mid-way rejects as without the handler, and leaves no state', async () => {
    server.reply = () => ({ content: 'one two three four five', trace: sampleTrace(), cutAfterEvents: 3 });
    const r = recordingHandler();
    const consume = async (model: ChatOpenAI, callbacks?: CarbonTraceCallbackHandler[]) => {
      let text = '';
      try {
        for await (const chunk of await model.stream('x', { callbacks })) text += chunk.content;
      } catch (error) {
        return `${text}|threw ${(error as Error).constructor.name}: ${(error as Error).message}`;
      }
      return `${text}|ended`;
    };
    const bare = await consume(chat());
    expect(bare).toMatch(/^one two (three )?\|/); // cut before the end, whichever way the client reports it
    expect(await consume(chat({ handler: r.handler }), [r.handler])).toBe(bare);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('a throwing onMetrics or onRootRunEnd never fails the run', async () => {
    const warnings: string[] = [];
    const handler = new CarbonTraceCallbackHandler({
      onWarning: (w) => void warnings.push(w),
      onMetrics: () => { throw new Error('user bug'); },
      onRootRunEnd: async () => { throw new Error('async user bug'); },
    });
    const message = await chat({ handler }).invoke('x', { callbacks: [handler] });
    expect(message.content).toBe('Hello from the fixture.');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(warnings).toEqual(['onMetrics threw: user bug', 'onRootRunEnd threw: async user bug']);
  });

  it('a garbage trace: the call succeeds, no metrics, a warning', async () => {
    server.reply = () => ({ content: 'ok', trace: 'garbage' });
    const r = recordingHandler();
    const message = await chat({ handler: r.handler }).invoke('x', { callbacks: [r.handler] });
    expect(message.content).toBe('ok');
    expect(message.response_metadata.codecarbon).toBeUndefined();
    expect(r.warnings[0]).toMatch(/not a trace object/);
  });

  it('no per-run state after 1,000 runs', async () => {
    const r = recordingHandler({ onMetrics: undefined, onRootRunEnd: undefined });
    const model = chat({ handler: r.handler });
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 50 }, () => model.invoke('x', { callbacks: [r.handler] })));
    }
    expect(r.handler.totals().calls).toBe(1000);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('constructor callbacks see only the model, each call its own root', async () => {
    const r = recordingHandler();
    const model = new ChatOpenAI({ model: 'fixture-model', apiKey: 'test', maxRetries: 0, callbacks: [r.handler], configuration: { baseURL: server.baseURL, fetch: r.handler.fetch } });
    const chain = ChatPromptTemplate.fromTemplate('Say {word}').pipe(model);
    await chain.invoke({ word: 'a' });
    await chain.invoke({ word: 'b' });
    expect(r.roots).toHaveLength(2);
    expect(r.roots.every(([t]) => t.calls === 1 && t.tracedCalls === 1)).toBe(true);
  });
});

describe('CarbonTraceCallbackHandler run bookkeeping', () => {
  it('treats __proto__ and constructor run ids as plain keys', async () => {
    const r = recordingHandler();
    const llm = { lc: 1, type: 'not_implemented' as const, id: ['fake'] };
    r.handler.handleChainStart(llm, {}, '__proto__');
    r.handler.handleChatModelStart(llm, [], 'constructor', '__proto__');
    await r.handler.handleLLMEnd({ generations: [[{ text: '', generationInfo: { x_carbon_trace: sampleTrace(1) } }]] }, 'constructor', '__proto__');
    await r.handler.handleChainEnd({}, '__proto__');
    expect(r.roots).toHaveLength(1);
    expect(r.roots[0]![1].rootRunId).toBe('__proto__');
    expect(r.roots[0]![0].tracedCalls).toBe(1);
    expect(({} as Record<string, unknown>).rootRunId).toBeUndefined();
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('ends a root on chain error and still reports its totals', async () => {
    const r = recordingHandler();
    const llm = { lc: 1, type: 'not_implemented' as const, id: ['fake'] };
    r.handler.handleChainStart(llm, {}, 'root');
    r.handler.handleChatModelStart(llm, [], 'llm-1', 'root');
    await r.handler.handleLLMEnd({ generations: [[{ text: '', generationInfo: { x_carbon_trace: sampleTrace(2) } }]] }, 'llm-1', 'root');
    r.handler.handleChatModelStart(llm, [], 'llm-2', 'root');
    await r.handler.handleLLMError(new Error('boom'), 'llm-2', 'root');
    await r.handler.handleChainError(new Error('boom'), 'root');
    expect(r.roots).toEqual([[expect.objectContaining({ calls: 2, tracedCalls: 1 }), { rootRunId: 'root', estimates: expect.objectContaining({ calls: 2, tracedCalls: 0 }) }]]);
    expect(r.handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('reports its own internal errors as warnings, never as throws or unhandled rejections', async () => {
    const r = recordingHandler();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const hostile = { get generations(): never { throw new Error('hostile getter'); } };
    r.handler.handleChatModelStart({ lc: 1, type: 'not_implemented', id: ['x'] }, [], 'run-h');
    expect(() => r.handler.handleLLMEnd(hostile as never, 'run-h')).not.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 10));
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
    expect(r.warnings.join('\n')).toMatch(/internal error in handleLLMEnd.*hostile getter/);
  });

  it('drops runs LangChain never ends (a stream the caller stops reading) after runTtlMs', async () => {
    // Only Date is faked: the stream runs on real timers, the handler's clock moves by hand.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const start = Date.now();
      const r = recordingHandler({ runTtlMs: 60_000 });
      server.reply = () => ({ content: 'one two three four', trace: sampleTrace() });
      for await (const _chunk of await chat({ handler: r.handler }).stream('x', { callbacks: [r.handler] })) break;
      vi.setSystemTime(start + 59_000);
      expect(r.handler.pendingState().runs).toBe(1); // LangChain reported no end
      vi.setSystemTime(start + 60_001);
      expect(r.handler.pendingState()).toMatchObject({ runs: 0, roots: 0 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('never throws on malformed callback arguments', async () => {
    const r = recordingHandler();
    expect(() => r.handler.handleLLMEnd(null as never, 'x')).not.toThrow();
    expect(() => r.handler.handleLLMEnd({ generations: 'nope' } as never, 'y')).not.toThrow();
    expect(() => r.handler.handleLLMNewToken('t', { prompt: 0, completion: 0 }, 'z', undefined, undefined, { chunk: null as never })).not.toThrow();
  });
});
