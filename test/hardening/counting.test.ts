/**
 * Honest counting through both adapters with the real clients: every model call counts in
 * `calls` — failed, aborted or abandoned ones too — and only calls whose trace gave a figure
 * count in `tracedCalls`, so coverage (`tracedCalls / calls`) is never overstated.
 */
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CarbonTracker } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler, type CarbonLLMRunInfo } from '../../src/langchain/index';
import { sampleTrace, startFixtureServer, type FixtureReply, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS, type Loose } from '../ai-sdk/majors';

let server: FixtureServer;
beforeAll(async () => {
  server = await startFixtureServer();
});
afterAll(() => server.close());

const long = 'one two three four five six seven eight';
// What each call gets back, in order; `abort` aborts the call after its first text.
const SCRIPT: Array<{ reply: FixtureReply; stream: boolean; abort?: boolean }> = [
  { reply: { content: 'fine', trace: sampleTrace(1) }, stream: false },
  { reply: { content: 'fine', trace: sampleTrace(1) }, stream: true },
  { reply: { status: 500 }, stream: false },
  { reply: { status: 500 }, stream: true },
  { reply: { content: long, trace: sampleTrace(), truncateJson: true }, stream: false },
  { reply: { content: long, trace: sampleTrace(), cutAfterEvents: 3 }, stream: true },
  { reply: { content: long, trace: sampleTrace(), delayMs: 15 }, stream: true, abort: true },
  { reply: { content: 'no figure', trace: { measured: true, prompt_tokens: 3 } }, stream: false },
];

describe('every model call counts', () => {
  it('AI SDK: failed, cut and aborted calls count in calls, untraced ones not in tracedCalls', async () => {
    const { ai, model } = MAJORS[2]!;
    const tracker = new CarbonTracker();
    const outcomes: string[] = [];
    const wrapped = ai.wrapLanguageModel({
      model: model(server.baseURL),
      middleware: carbonTraceMiddleware({ tracker, onWarning: false, onMetrics: (_m, c) => void outcomes.push(c.outcome) }),
    });
    for (const { reply, stream, abort } of SCRIPT) {
      server.reply = () => reply;
      const controller = new AbortController();
      try {
        if (stream) {
          for await (const part of ai.streamText({ model: wrapped, prompt: 'x', maxRetries: 0, abortSignal: controller.signal }).fullStream as AsyncIterable<Loose>) {
            if (abort && part.type === 'text-delta') controller.abort();
          }
        } else {
          await ai.generateText({ model: wrapped, prompt: 'x', maxRetries: 0 });
        }
      } catch {
        // Failures are the point here; their surfacing is tested in faults.test.ts.
      }
    }
    expect(tracker.totals()).toMatchObject({ calls: SCRIPT.length, tracedCalls: 2 });
    expect(outcomes).toEqual(['completed', 'completed', 'failed', 'failed', 'failed', 'failed', 'aborted', 'completed']);
  });

  it('LangChain: failed, cut and aborted runs count in calls, untraced ones not in tracedCalls', async () => {
    const tracker = new CarbonTracker();
    const outcomes: string[] = [];
    const handler = new CarbonTraceCallbackHandler({ tracker, onWarning: false, onMetrics: (_m, run) => void outcomes.push(run.outcome) });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
    for (const { reply, stream, abort } of SCRIPT) {
      server.reply = () => reply;
      const controller = new AbortController();
      try {
        if (stream) {
          for await (const chunk of await chat.stream('x', { callbacks: [handler], signal: controller.signal })) {
            if (abort && chunk.content) controller.abort();
          }
        } else {
          await chat.invoke('x', { callbacks: [handler] });
        }
      } catch {
        // As above.
      }
    }
    expect(tracker.totals()).toMatchObject({ calls: SCRIPT.length, tracedCalls: 2 });
    expect(handler.totals()).toMatchObject({ calls: SCRIPT.length, tracedCalls: 2 });
    expect(outcomes).toEqual(['completed', 'completed', 'failed', 'failed', 'failed', 'failed', 'aborted', 'completed']);
    expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('LangChain: a run never ended (a stream the caller stopped reading) counts as aborted once dropped', async () => {
    // Only Date is faked: the stream runs on real timers, the handler's clock moves by hand.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const tracker = new CarbonTracker();
      const events: CarbonLLMRunInfo[] = [];
      const handler = new CarbonTraceCallbackHandler({ tracker, runTtlMs: 60_000, onWarning: false, onMetrics: (_m, run) => void events.push(run) });
      const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, fetch: handler.fetch } });
      server.reply = () => ({ content: long, trace: sampleTrace() });
      for await (const _chunk of await chat.stream('x', { callbacks: [handler] })) break;
      vi.setSystemTime(Date.now() + 60_001);
      expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
      expect(tracker.totals()).toMatchObject({ calls: 1, tracedCalls: 0 });
      expect(events.map((e) => e.outcome)).toEqual(['aborted']);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('LangChain runs', () => {
  const llm = { lc: 1, type: 'not_implemented' as const, id: ['fake'] };
  const traced = (n: number) => ({ generations: [[{ text: '', generationInfo: { x_carbon_trace: sampleTrace(n) } }]] });

  it('runTtlMs counts from the last activity in the tree, not from the root\'s start', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const roots: Array<{ calls: number }> = [];
      const handler = new CarbonTraceCallbackHandler({ runTtlMs: 30 * 60_000, onWarning: false, onRootRunEnd: (t) => void roots.push(t) });
      const start = Date.now();
      handler.handleChainStart(llm, {}, 'agent');
      // A 45-minute agent: a model call every 10 minutes.
      for (let i = 0; i < 5; i++) {
        vi.setSystemTime(start + (i + 1) * 10 * 60_000);
        handler.handleChatModelStart(llm, [], `llm-${i}`, 'agent');
        await handler.handleLLMEnd(traced(1), `llm-${i}`, 'agent');
        expect(handler.pendingState(), `after ${(i + 1) * 10} minutes`).toMatchObject({ runs: 1, roots: 1 });
      }
      handler.handleChainEnd({}, 'agent');
      expect(roots).toEqual([expect.objectContaining({ calls: 5, tracedCalls: 5 })]);
      // An idle tree is still dropped after the TTL.
      handler.handleChainStart(llm, {}, 'idle-agent');
      vi.setSystemTime(Date.now() + 31 * 60_000);
      expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
    } finally {
      vi.useRealTimers();
    }
  });

  it('a JSON body cut mid-way reaches the caller as the same error as without handler.fetch', async () => {
    server.reply = () => ({ content: long, trace: sampleTrace(), truncateJson: true });
    const outcome = async (handler?: CarbonTraceCallbackHandler) => {
      const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, configuration: { baseURL: server.baseURL, ...(handler ? { fetch: handler.fetch } : {}) } });
      try {
        await chat.invoke('x', { callbacks: handler ? [handler] : [] });
        return 'resolved';
      } catch (error) {
        return `${(error as Error).constructor.name}: ${(error as Error).message}`;
      }
    };
    const bare = await outcome();
    expect(bare).toMatch(/terminated/);
    const handler = new CarbonTraceCallbackHandler({ onWarning: false });
    expect(await outcome(handler)).toBe(bare);
    expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });

  it('streaming without handler.fetch: one warning that a usage-only trace would be missed, pointing to handler.fetch', async () => {
    server.reply = () => ({ content: 'a b c', trace: sampleTrace(2), tracePlacement: 'finish' });
    const warnings: string[] = [];
    const handler = new CarbonTraceCallbackHandler({ onWarning: (w) => void warnings.push(w) });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, streaming: true, __includeRawResponse: true, configuration: { baseURL: server.baseURL } });
    for (let i = 0; i < 3; i++) await chat.invoke('x', { callbacks: [handler] });
    expect(handler.totals()).toMatchObject({ calls: 3, tracedCalls: 3 });
    expect(warnings).toEqual([expect.stringMatching(/usage-only last chunk never reaches them.*handler\.fetch/)]);
  });
});

describe('LangChain warnings that point to the fix', () => {
  it('streaming with __includeRawResponse and the trace on the usage-only chunk: says where the trace went, not that the server sent none', async () => {
    server.reply = () => ({ content: 'a b c', trace: sampleTrace(2), tracePlacement: 'usage' });
    const warnings: string[] = [];
    const handler = new CarbonTraceCallbackHandler({ onWarning: (w) => void warnings.push(w) });
    const chat = new ChatOpenAI({ model: 'fixture-model', apiKey: 'x', maxRetries: 0, streaming: true, __includeRawResponse: true, configuration: { baseURL: server.baseURL } });
    await chat.invoke('x', { callbacks: [handler] });
    expect(handler.totals()).toMatchObject({ calls: 1, tracedCalls: 0 });
    expect(warnings).toEqual([expect.stringMatching(/no x_carbon_trace on the streamed chunks .* usage-only last chunk is seen only through handler\.fetch/)]);
  });
});
