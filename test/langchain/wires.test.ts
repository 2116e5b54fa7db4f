/**
 * The LangChain handler on every wire a LangChain.js class speaks to a self-hosted server: the
 * real ChatOllama, ChatOpenAI with the Responses API, ChatAnthropic, OpenAIEmbeddings and
 * OllamaEmbeddings, against the shared loopback wire server (test/fixtures/wire-server.ts),
 * through `handler.fetch`.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AIMessage, HumanMessage, SystemMessage } from '@langchain/core/messages';
import type { ChatGeneration } from '@langchain/core/outputs';
import { RunnableLambda } from '@langchain/core/runnables';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';
import { ChatAnthropic } from '@langchain/anthropic';
import { ChatOllama, OllamaEmbeddings } from '@langchain/ollama';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseCarbonTrace, type CarbonMetrics, type CarbonRecordContext, type CarbonTotals } from '../../src/index';
import { CarbonTraceCallbackHandler, getCarbonMetrics, type CarbonLLMRunInfo } from '../../src/langchain/index';
import { sampleTrace } from '../fixtures/openai-compatible-server';
import { startProxyInFront, startWireServer, type WireServer } from '../fixtures/wire-server';

let server: WireServer;
beforeAll(async () => {
  server = await startWireServer();
});
afterAll(() => server.close());
beforeEach(() => {
  server.reply = () => ({ trace: sampleTrace(1) });
});

const kg = (grams: number) => grams / 1000;

type Recorded = {
  handler: CarbonTraceCallbackHandler;
  metrics: Array<[CarbonMetrics | undefined, CarbonLLMRunInfo]>;
  roots: Array<[CarbonTotals, { rootRunId: string }]>;
  records: Array<[CarbonMetrics | undefined, CarbonRecordContext | undefined]>;
  warnings: string[];
};

function recordingHandler(fields: ConstructorParameters<typeof CarbonTraceCallbackHandler>[0] = {}): Recorded {
  const recorded: Omit<Recorded, 'handler'> = { metrics: [], roots: [], records: [], warnings: [] };
  const handler = new CarbonTraceCallbackHandler({
    onMetrics: (m, run) => void recorded.metrics.push([m, run]),
    onRootRunEnd: (t, run) => void recorded.roots.push([t, run]),
    onWarning: (w) => void recorded.warnings.push(w),
    tracker: { record: (m, context) => void recorded.records.push([m, context]) },
    ...fields,
  });
  return { handler, ...recorded };
}

const EMPTY_STATE = { runs: 0, roots: 0, captures: 0 };

/** Reads a stream to its end; a rejection becomes part of the result, so runs can be compared. */
async function consume(stream: Promise<AsyncIterable<{ text: string }>>): Promise<string> {
  let text = '';
  try {
    for await (const chunk of await stream) text += chunk.text;
  } catch (error) {
    return `${text}|threw ${(error as Error).constructor.name}: ${(error as Error).message}`;
  }
  return `${text}|ended`;
}

async function settle(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (error: Error & { status?: number }) => `${error.constructor.name}: ${error.message} (${String(error.status)})`,
  );
}

// ---- the chat classes -------------------------------------------------------------------------

type ChatCase = {
  name: string;
  /** The class name the warning must show. */
  fix: RegExp;
  make: (options: { fetch?: CarbonTraceCallbackHandler['fetch']; streaming?: boolean; model?: string }) => ChatOllama | ChatOpenAI | ChatAnthropic;
};

const CHATS: ChatCase[] = [
  {
    name: 'ChatOllama (/api/chat, NDJSON)',
    fix: /new ChatOllama\(\{ fetch: handler\.fetch \}\)/,
    make: ({ fetch, model }) => new ChatOllama({ model: model ?? 'fixture-model', baseUrl: server.baseURL, ...(fetch ? { fetch } : {}) }),
  },
  {
    name: 'ChatOpenAI useResponsesApi (/v1/responses)',
    fix: /new ChatOpenAI\(\{ configuration: \{ fetch: handler\.fetch \} \}\)/,
    make: ({ fetch, streaming, model }) =>
      new ChatOpenAI({
        model: model ?? 'fixture-model',
        apiKey: 'test',
        maxRetries: 0,
        useResponsesApi: true,
        ...(streaming ? { streaming: true } : {}),
        configuration: { baseURL: `${server.baseURL}/v1`, ...(fetch ? { fetch } : {}) },
      }),
  },
  {
    name: 'ChatAnthropic (/v1/messages)',
    fix: /new ChatAnthropic\(\{ clientOptions: \{ fetch: handler\.fetch \} \}\)/,
    make: ({ fetch, streaming, model }) =>
      new ChatAnthropic({
        model: model ?? 'fixture-model',
        apiKey: 'test',
        maxRetries: 0,
        anthropicApiUrl: server.baseURL,
        ...(streaming ? { streaming: true } : {}),
        ...(fetch ? { clientOptions: { fetch } } : {}),
      }),
  },
];

describe.each(CHATS)('$name with handler.fetch', ({ make, fix }) => {
  it('invoke: response_metadata.codecarbon, onMetrics (kind chat), totals, tracker', async () => {
    server.reply = () => ({ text: 'hi there', trace: sampleTrace(3) });
    const r = recordingHandler();
    const message = await make({ fetch: r.handler.fetch }).invoke('hello', { callbacks: [r.handler] });
    // Responses API messages hold content blocks; `.text` reads every class alike.
    expect(message.text).toBe('hi there');
    expect(message.response_metadata.codecarbon).toEqual(parseCarbonTrace(sampleTrace(3)));
    expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect(r.metrics).toHaveLength(1);
    expect(r.metrics[0]![1]).toMatchObject({ kind: 'chat', modelName: 'fixture-model', outcome: 'completed' });
    expect(r.records.map(([m, c]) => [m?.promptTokens, c?.kind])).toEqual([[30, 'chat']]);
    expect(r.handler.totals()).toMatchObject({ calls: 1, tracedCalls: 1 });
    expect(r.handler.totals().gwpKgco2eq).toBeCloseTo(kg(0.3), 12);
    expect(r.roots[0]![0]).toMatchObject({ calls: 1, tracedCalls: 1 });
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('stream: the metrics reach onMetrics and the totals, the text is unchanged', async () => {
    server.reply = () => ({ text: 'one two three', trace: sampleTrace(5) });
    const r = recordingHandler();
    expect(await consume(make({ fetch: r.handler.fetch, streaming: true }).stream('hello', { callbacks: [r.handler] }))).toBe('one two three|ended');
    expect(r.metrics).toHaveLength(1);
    expect(r.metrics[0]![0]?.gwpKgco2eq).toBeCloseTo(kg(0.5), 12);
    expect(r.metrics[0]![0]?.energyKwh).toBeCloseTo(0.002, 12);
    expect(r.metrics[0]![1].kind).toBe('chat');
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('a server that sends no trace: no metrics, counted as untraced, the warning says the server sent none', async () => {
    server.reply = () => ({ text: 'plain' });
    const r = recordingHandler();
    await make({ fetch: r.handler.fetch }).invoke('hello', { callbacks: [r.handler] });
    expect(r.metrics.map(([m]) => m)).toEqual([undefined]);
    expect(r.handler.totals()).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(r.warnings).toEqual([expect.stringMatching(/^no x_carbon_trace in the response of fixture-model/)]);
  });

  it('a malformed trace: the call succeeds, no metrics, a warning naming the fields', async () => {
    // Parsed, so that `__proto__` is an own key on the wire, as a hostile server would send it.
    server.reply = () => ({ text: 'ok', trace: JSON.parse('{"emissions_g_co2":"lots","energy_consumed_wh":null,"__proto__":{"polluted":true}}') });
    const r = recordingHandler();
    const message = await make({ fetch: r.handler.fetch }).invoke('x', { callbacks: [r.handler] });
    expect(message.text).toBe('ok');
    expect(message.response_metadata.codecarbon).toBeUndefined();
    expect(r.metrics.map(([m]) => m)).toEqual([undefined]);
    expect(r.warnings.join('\n')).toMatch(/has no usable figure/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('an upstream error rejects exactly as without the handler, is counted as failed, and leaves no state', async () => {
    server.reply = () => ({ status: 500 });
    const r = recordingHandler();
    const bare = await settle(make({}).invoke('x'));
    expect(bare).not.toBe('resolved');
    expect(await settle(make({ fetch: r.handler.fetch }).invoke('x', { callbacks: [r.handler] }))).toBe(bare);
    expect(r.metrics).toEqual([[undefined, expect.objectContaining({ kind: 'chat', outcome: 'failed' })]]);
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('a stream cut mid-way ends as without the handler, and leaves no state', async () => {
    server.reply = () => ({ text: 'one two three four five six', trace: sampleTrace(), cutAfterEvents: 3 });
    const r = recordingHandler();
    const bare = await consume(make({ streaming: true }).stream('x'));
    expect(bare).not.toMatch(/six/);
    expect(await consume(make({ fetch: r.handler.fetch, streaming: true }).stream('x', { callbacks: [r.handler] }))).toBe(bare);
    // The cut response carried no trace: nothing may be booked from it.
    expect(r.metrics.every(([m]) => m === undefined)).toBe(true);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it.each([false, true])('16 concurrent calls with different prompts (streaming: %s), each gets its own trace', async (streaming) => {
    server.reply = ({ body }) => {
      const n = Number(/call-(\d+)/.exec(JSON.stringify(body))?.[1]);
      return { text: `answer ${n}`, trace: sampleTrace(n) };
    };
    const r = recordingHandler();
    const model = make({ fetch: r.handler.fetch, streaming });
    const messages = await Promise.all(Array.from({ length: 16 }, (_, i) => model.invoke(`call-${i + 1}`, { callbacks: [r.handler] })));
    messages.forEach((message, i) => {
      expect(message.text).toBe(`answer ${i + 1}`);
      expect(getCarbonMetrics(message)?.promptTokens).toBe(10 * (i + 1));
    });
    expect(r.handler.totals().tracedCalls).toBe(16);
    expect(r.handler.totals().gwpKgco2eq).toBeCloseTo(kg((0.1 * 16 * 17) / 2), 10);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('concurrent calls with the same prompt and different answers: each gets the trace of its own answer', async () => {
    let n = 0;
    server.reply = () => {
      n++;
      return { text: `answer ${n}`, trace: sampleTrace(n) };
    };
    const r = recordingHandler();
    const model = make({ fetch: r.handler.fetch });
    const messages = await Promise.all(Array.from({ length: 8 }, () => model.invoke('same prompt', { callbacks: [r.handler] })));
    for (const message of messages) {
      const k = Number(message.text.replace('answer ', ''));
      expect(getCarbonMetrics(message)?.promptTokens).toBe(10 * k);
    }
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('without handler.fetch on a server that sends no trace: the warning names the fix for this class', async () => {
    server.reply = () => ({ text: 'plain' });
    const r = recordingHandler();
    await make({}).invoke('hello', { callbacks: [r.handler] });
    expect(r.warnings).toEqual([expect.stringMatching(/did not see the response of fixture-model/)]);
    expect(r.warnings[0]).toMatch(fix);
  });
});

describe('the chat classes, one by one', () => {
  it('ChatOllama: same prompt, same answer, different traces: each run still gets its own (ChatOllama keeps the final object in response_metadata)', async () => {
    let n = 0;
    server.reply = () => ({ text: 'same answer', trace: sampleTrace(++n) });
    const r = recordingHandler();
    const model = CHATS[0]!.make({ fetch: r.handler.fetch });
    await Promise.all(Array.from({ length: 6 }, () => model.invoke('same prompt', { callbacks: [r.handler] })));
    expect(r.metrics.map(([m]) => m?.promptTokens).sort((a, b) => a! - b!)).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it('ChatAnthropic streaming, same prompt, same answer, different traces: no metrics rather than another call\'s', async () => {
    let n = 0;
    server.reply = () => ({ text: 'same answer', trace: sampleTrace(++n) });
    const r = recordingHandler();
    const model = CHATS[2]!.make({ fetch: r.handler.fetch, streaming: true });
    await Promise.all(Array.from({ length: 4 }, () => model.invoke('same prompt', { callbacks: [r.handler] })));
    const traced = r.metrics.filter(([m]) => m !== undefined);
    // Whatever a run got must be a trace no other run got.
    expect(new Set(traced.map(([m]) => m!.promptTokens)).size).toBe(traced.length);
    if (traced.length < 4) expect(r.warnings.join('\n')).toMatch(/could each be the one of this call/);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('ChatAnthropic: a system prompt (sent apart as `system`) still ties the request to its run', async () => {
    server.reply = () => ({ text: 'ok', trace: sampleTrace(2) });
    const r = recordingHandler();
    const model = CHATS[2]!.make({ fetch: r.handler.fetch, streaming: true });
    const message = await model.invoke([new SystemMessage('Be brief.'), new HumanMessage('hello')], { callbacks: [r.handler] });
    expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo(kg(0.2), 12);
    const body = server.requests.at(-1)!.body as { system?: unknown };
    expect(body.system).toBeDefined();
  });

  it('ChatOllama streamed NDJSON: handler.fetch hands the client the same bytes', async () => {
    server.reply = () => ({ text: 'same bytes here', trace: sampleTrace(1) });
    const r = recordingHandler();
    r.handler.handleChatModelStart({ lc: 1, type: 'not_implemented', id: ['langchain', 'chat_models', 'ollama', 'ChatOllama'] }, [[new HumanMessage('x')]], 'run-bytes');
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }) };
    const direct = await fetch(`${server.baseURL}/api/chat`, init);
    const observed = await r.handler.fetch(`${server.baseURL}/api/chat`, init);
    expect(observed.headers.get('content-type')).toBe('application/x-ndjson');
    expect(observed.url).toBe(direct.url);
    expect(await observed.text()).toBe(await direct.text());
    await r.handler.handleLLMError(new Error('done'), 'run-bytes');
  });

  it('Ollama NDJSON through handler.fetch alone: the trace of the done:true line reaches the run (no response_metadata fallback)', async () => {
    server.reply = () => ({ text: 'from the fetch', trace: sampleTrace(7) });
    const r = recordingHandler();
    const ollama = ['langchain', 'chat_models', 'ollama', 'ChatOllama'];
    r.handler.handleChatModelStart({ lc: 1, type: 'not_implemented', id: ollama }, [[new HumanMessage('x')]], 'run-ndjson');
    const init = { method: 'POST', body: JSON.stringify({ model: 'fixture-model', messages: [{ role: 'user', content: 'x' }], stream: true }) };
    await (await r.handler.fetch(`${server.baseURL}/api/chat`, init)).text();
    // The run's own output, without the trace ChatOllama would copy into response_metadata.
    const generation: ChatGeneration = { text: 'from the fetch', message: new AIMessage('from the fetch') };
    await r.handler.handleLLMEnd({ generations: [[generation]] }, 'run-ndjson');
    expect(r.metrics.map(([m]) => m?.promptTokens)).toEqual([70]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('a class carbon-trace does not know: the warning lists how each known class takes the fetch', async () => {
    const r = recordingHandler();
    for (const id of [['langchain', 'chat_models', 'mistralai', 'ChatMistralAI'], ['__proto__'], []]) {
      r.handler.handleChatModelStart({ lc: 1, type: 'not_implemented', id }, [[new HumanMessage('x')]], 'run-other');
      await r.handler.handleLLMEnd({ generations: [[{ text: 'x' }]] }, 'run-other');
    }
    expect(r.warnings).toHaveLength(3);
    for (const warning of r.warnings) {
      expect(warning).toMatch(/pass handler\.fetch as the fetch of the model's HTTP client \(ChatOpenAI: configuration: \{ fetch \}, ChatOllama: fetch, ChatAnthropic: clientOptions: \{ fetch \}\)/);
    }
  });

  it('a chat history with an AI message keeps the exclusive match (Ollama and Anthropic messages)', async () => {
    for (const c of [CHATS[0]!, CHATS[2]!]) {
      server.reply = () => ({ text: 'second', trace: sampleTrace(4) });
      const r = recordingHandler();
      const message = await c.make({ fetch: r.handler.fetch }).invoke([new HumanMessage('first'), new AIMessage('reply'), new HumanMessage('again')], { callbacks: [r.handler] });
      expect(getCarbonMetrics(message)?.gwpKgco2eq).toBeCloseTo(kg(0.4), 12);
    }
  });
});

// ---- embeddings -------------------------------------------------------------------------------

type EmbeddingCase = {
  name: string;
  path: string;
  make: (options: { fetch?: CarbonTraceCallbackHandler['fetch']; model?: string }) => OpenAIEmbeddings | OllamaEmbeddings;
  provider: string;
};

const EMBEDDINGS: EmbeddingCase[] = [
  {
    name: 'OpenAIEmbeddings (/v1/embeddings)',
    path: '/v1/embeddings',
    provider: 'openai',
    make: ({ fetch, model }) =>
      new OpenAIEmbeddings({ model: model ?? 'embed-model', apiKey: 'test', maxRetries: 0, configuration: { baseURL: `${server.baseURL}/v1`, ...(fetch ? { fetch } : {}) } }),
  },
  {
    name: 'OllamaEmbeddings (/api/embed)',
    path: '/api/embed',
    provider: 'ollama',
    make: ({ fetch, model }) => new OllamaEmbeddings({ model: model ?? 'embed-model', baseUrl: server.baseURL, maxRetries: 0, ...(fetch ? { fetch } : {}) }),
  },
];

describe.each(EMBEDDINGS)('$name with handler.fetch', ({ make, path, provider }) => {
  it('embedQuery and embedDocuments: each request booked as an embedding call, in totals, tracker and onMetrics', async () => {
    server.reply = (request) => (request.path === path ? { trace: sampleTrace(2), usage: { input: 7, output: 0 } } : {});
    const r = recordingHandler();
    const embeddings = make({ fetch: r.handler.fetch });
    expect(await embeddings.embedQuery('hello')).toHaveLength(3);
    expect(await embeddings.embedDocuments(['a', 'b'])).toHaveLength(2);
    expect(r.metrics).toHaveLength(2);
    for (const [metrics, info] of r.metrics) {
      expect(metrics).toEqual(parseCarbonTrace(sampleTrace(2)));
      expect(info).toMatchObject({ kind: 'embedding', modelName: 'embed-model', provider, outcome: 'completed' });
      expect(info.runId).toMatch(/^embedding:/);
      expect(info.rootRunId).toBe(info.runId);
    }
    expect(r.records.map(([m, c]) => [m?.promptTokens, c])).toEqual([
      [20, { kind: 'embedding', provider, modelId: 'embed-model', attributes: {} }],
      [20, { kind: 'embedding', provider, modelId: 'embed-model', attributes: {} }],
    ]);
    expect(r.handler.totals()).toMatchObject({ calls: 2, tracedCalls: 2 });
    expect(r.handler.totals().energyKwh).toBeCloseTo(0.0008 * 2, 12);
    // No LangChain run: no root ended, and no warning about runs.
    expect(r.roots).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });

  it('the token count comes from the response when the trace has none', async () => {
    const { prompt_tokens: _p, completion_tokens: _c, ...trace } = sampleTrace(1);
    server.reply = () => ({ trace, usage: { input: 9, output: 0 } });
    const r = recordingHandler();
    await make({ fetch: r.handler.fetch }).embedQuery('hello');
    expect(r.metrics[0]![0]?.promptTokens).toBe(9);
  });

  it('a server that sends no trace: counted, untraced, one warning', async () => {
    server.reply = () => ({});
    const r = recordingHandler();
    await make({ fetch: r.handler.fetch }).embedQuery('hello');
    expect(r.metrics).toEqual([[undefined, expect.objectContaining({ kind: 'embedding', outcome: 'completed' })]]);
    expect(r.handler.totals()).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(r.handler.totals().energyKwh).toBeUndefined();
    expect(r.warnings).toEqual([expect.stringMatching(/^no x_carbon_trace in the response of embed-model/)]);
  });

  it('a malformed trace: counted, untraced, a warning', async () => {
    server.reply = () => ({ trace: { energy_consumed_wh: -1, emissions_g_co2: Number.NaN } });
    const r = recordingHandler();
    await make({ fetch: r.handler.fetch }).embedQuery('hello');
    expect(r.metrics.map(([m]) => m)).toEqual([undefined]);
    expect(r.warnings.join('\n')).toMatch(/has no usable figure/);
  });

  it('an upstream error rejects as without the handler, counted as a failed embedding call, no warning', async () => {
    server.reply = () => ({ status: 500 });
    const r = recordingHandler();
    const bare = await settle(make({}).embedQuery('x'));
    expect(bare).not.toBe('resolved');
    expect(await settle(make({ fetch: r.handler.fetch }).embedQuery('x'))).toBe(bare);
    expect(r.metrics).toEqual([[undefined, expect.objectContaining({ kind: 'embedding', outcome: 'failed' })]]);
    expect(r.handler.totals()).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(r.warnings).toEqual([]);
  });

  it('20 concurrent requests of different models and traces: each booked with its own', async () => {
    server.reply = ({ body }) => ({ trace: sampleTrace(Number(String(body.model).replace('embed-', ''))) });
    const r = recordingHandler();
    await Promise.all(Array.from({ length: 20 }, (_, i) => make({ fetch: r.handler.fetch, model: `embed-${i + 1}` }).embedQuery(`q${i}`)));
    expect(r.metrics).toHaveLength(20);
    for (const [metrics, info] of r.metrics) expect(metrics?.promptTokens).toBe(10 * Number(info.modelName!.replace('embed-', '')));
    expect(r.handler.totals().gwpKgco2eq).toBeCloseTo(kg((0.1 * 20 * 21) / 2), 10);
  });

  it('sent from a LangGraph node and a RunnableLambda: counted in that root run too, with its metadata as attributes', async () => {
    server.reply = ({ path: p }) => (p === path ? { trace: sampleTrace(2) } : { text: 'answer', trace: sampleTrace(3) });
    const r = recordingHandler({ attributeKeys: ['feature'] });
    const embeddings = make({ fetch: r.handler.fetch });
    const chat = new ChatOllama({ model: 'fixture-model', baseUrl: server.baseURL, fetch: r.handler.fetch });
    const graph = new StateGraph(MessagesAnnotation)
      .addNode('retrieve', async (state) => {
        await embeddings.embedQuery(String(state.messages.at(-1)!.content));
        return {};
      })
      .addNode('answer', async (state) => ({ messages: [await chat.invoke(state.messages)] }))
      .addEdge(START, 'retrieve')
      .addEdge('retrieve', 'answer')
      .addEdge('answer', END)
      .compile();
    await graph.invoke({ messages: [{ role: 'user', content: 'go' }] }, { callbacks: [r.handler], metadata: { feature: 'rag' } });
    expect(r.roots).toHaveLength(1);
    expect(r.roots[0]![0]).toMatchObject({ calls: 2, tracedCalls: 2 });
    expect(r.roots[0]![0].gwpKgco2eq).toBeCloseTo(kg(0.5), 12);
    const embedding = r.metrics.find(([, info]) => info.kind === 'embedding')!;
    expect(embedding[1].rootRunId).toBe(r.roots[0]![1].rootRunId);
    expect(embedding[1].attributes).toEqual({ feature: 'rag' });

    const lambda = RunnableLambda.from(async (text: string) => embeddings.embedQuery(text));
    await lambda.invoke('hello', { callbacks: [r.handler] });
    expect(r.roots).toHaveLength(2);
    expect(r.roots[1]![0]).toMatchObject({ calls: 1, tracedCalls: 1 });
    expect(r.handler.totals()).toMatchObject({ calls: 3, tracedCalls: 3 });
    expect(r.handler.pendingState()).toEqual(EMPTY_STATE);
  });
});

describe('embedding calls, whatever the client', () => {
  it('a TEI /embed bare-array body: booked, no metrics, a warning that says the wire has no place for a trace', async () => {
    const r = recordingHandler();
    const response = await r.handler.fetch(`${server.baseURL}/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: ['a'] }) });
    expect(await response.json()).toHaveLength(1);
    expect(r.metrics).toEqual([[undefined, expect.objectContaining({ kind: 'embedding', outcome: 'completed' })]]);
    expect(r.warnings).toEqual([expect.stringMatching(/bare JSON array \(TEI's \/embed\), which has no place for x_carbon_trace/)]);
  });

  it('booked however the client reads the body (arrayBuffer, the stream), and only once it has read it; a cancelled body is an aborted call', async () => {
    const r = recordingHandler();
    server.reply = () => ({ trace: sampleTrace(1) });
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', input: 'a' }) };
    const unread = await r.handler.fetch(`${server.baseURL}/v1/embeddings`, init);
    expect(r.metrics).toEqual([]);
    const direct = await (await fetch(`${server.baseURL}/v1/embeddings`, init)).arrayBuffer();
    expect(Buffer.from(await unread.arrayBuffer())).toEqual(Buffer.from(direct));
    const streamed = await r.handler.fetch(`${server.baseURL}/v1/embeddings`, init);
    const reader = streamed.body!.getReader();
    while (!(await reader.read()).done);
    expect(r.metrics.map(([m, info]) => [m?.promptTokens, info.outcome])).toEqual([
      [10, 'completed'],
      [10, 'completed'],
    ]);
    const cancelled = await r.handler.fetch(`${server.baseURL}/v1/embeddings`, init);
    await cancelled.body!.cancel();
    expect(r.metrics[2]).toEqual([undefined, expect.objectContaining({ kind: 'embedding', outcome: 'aborted' })]);
    expect(r.handler.totals()).toMatchObject({ calls: 3, tracedCalls: 2 });
  });

  it('a body cut mid-way: the client gets the same error, the call counts as failed', async () => {
    // A local stand-in: the wire fixture cuts streams only. It announces a whole body and sends half.
    const body = JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], x_carbon_trace: sampleTrace(1) });
    const cutter = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.write(body.slice(0, 40), () => res.socket?.destroy());
    });
    cutter.listen(0, '127.0.0.1');
    await once(cutter, 'listening');
    try {
      const url = `http://127.0.0.1:${(cutter.address() as AddressInfo).port}/v1/embeddings`;
      const init = { method: 'POST', body: '{"model":"m","input":"a"}' };
      const read = async (f: typeof fetch) => settle((await f(url, init)).json());
      const bare = await read(fetch);
      expect(bare).not.toBe('resolved');
      const r = recordingHandler();
      expect(await read(r.handler.fetch)).toBe(bare);
      expect(r.metrics).toEqual([[undefined, expect.objectContaining({ kind: 'embedding', outcome: 'failed' })]]);
      expect(r.warnings).toEqual([]);
    } finally {
      cutter.closeAllConnections();
      cutter.close();
      await once(cutter, 'close');
    }
  });

  it('a request that never reaches the server: a failed embedding call, the caller gets the same error', async () => {
    const r = recordingHandler();
    const closed = await startWireServer();
    const url = `${closed.baseURL}/v1/embeddings`;
    await closed.close();
    const init = { method: 'POST', body: '{"model":"m","input":"a"}' };
    const bare = await settle(fetch(url, init));
    expect(await settle(r.handler.fetch(url, init))).toBe(bare);
    expect(r.metrics).toEqual([[undefined, expect.objectContaining({ kind: 'embedding', outcome: 'failed' })]]);
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

  const throughProxy = <T>(fn: () => T): T => {
    const original = server.baseURL;
    // The clients read server.baseURL when they are made: point them at the proxy instead.
    (server as { baseURL: string }).baseURL = proxyUrl;
    try {
      return fn();
    } finally {
      (server as { baseURL: string }).baseURL = original;
    }
  };

  it('ChatOpenAI on chat completions (the first wire): invoke and stream get the proxy\'s trace', async () => {
    server.reply = () => ({ text: 'metered answer' });
    const r = recordingHandler();
    const make = (streaming: boolean) =>
      new ChatOpenAI({ model: 'fixture-model', apiKey: 'test', maxRetries: 0, streaming, configuration: { baseURL: `${proxyUrl}/v1`, fetch: r.handler.fetch } });
    expect((await make(false).invoke('hello', { callbacks: [r.handler] })).text).toBe('metered answer');
    expect(await consume(make(true).stream('hello', { callbacks: [r.handler] }))).toBe('metered answer|ended');
    expect(r.metrics.map(([m]) => [m?.measured, typeof m?.energyKwh])).toEqual([
      [true, 'number'],
      [true, 'number'],
    ]);
    expect(r.warnings).toEqual([]);
  });

  it.each(CHATS.map((c) => [c.name, c] as const))('%s: invoke and stream get the proxy\'s trace', async (_name, c) => {
    server.reply = () => ({ text: 'metered answer' });
    const r = recordingHandler();
    const [plain, streaming] = throughProxy(() => [c.make({ fetch: r.handler.fetch }), c.make({ fetch: r.handler.fetch, streaming: true })]);
    const message = await plain.invoke('hello', { callbacks: [r.handler] });
    expect(message.text).toBe('metered answer');
    expect(getCarbonMetrics(message)?.measured).toBe(true);
    expect(await consume(streaming.stream('hello', { callbacks: [r.handler] }))).toBe('metered answer|ended');
    // The proxy's meter reads a measured source: a measured figure, in kWh, on both calls.
    expect(r.metrics.map(([m, info]) => [m?.measured, typeof m?.energyKwh, info.kind])).toEqual([
      [true, 'number', 'chat'],
      [true, 'number', 'chat'],
    ]);
    expect(r.warnings).toEqual([]);
  });

  it.each(EMBEDDINGS.map((c) => [c.name, c] as const))('%s: each request gets the proxy\'s trace', async (_name, c) => {
    server.reply = () => ({});
    const r = recordingHandler();
    const embeddings = throughProxy(() => c.make({ fetch: r.handler.fetch }));
    await embeddings.embedQuery('hello');
    expect(r.metrics.map(([m, info]) => [m?.measured, typeof m?.energyKwh, info.kind])).toEqual([[true, 'number', 'embedding']]);
    expect(r.warnings).toEqual([]);
  });
});
