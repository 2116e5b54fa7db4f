/**
 * Faults through both adapters with the real clients: each must surface to the caller exactly as
 * it does without carbon-trace, with no unhandled rejection and no state left behind.
 */
import { ChatOpenAI } from '@langchain/openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { CarbonTraceCallbackHandler } from '../../src/langchain/index';
import { sampleTrace, startFixtureServer, type FixtureReply, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS, type Loose } from '../ai-sdk/majors';

let server: FixtureServer;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);
beforeAll(async () => {
  server = await startFixtureServer();
  process.on('unhandledRejection', onUnhandled);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await server.close();
});
afterEach(async () => {
  // Let any stray rejection surface before judging.
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(unhandled).toEqual([]);
});

const long = 'one two three four five six seven eight nine ten';
const FAULTS: Array<[string, FixtureReply]> = [
  ['HTTP 500', { status: 500 }],
  ['a malformed SSE line', { content: long, trace: sampleTrace(), malformedLine: true }],
  ['a socket destroyed mid-stream', { content: long, trace: sampleTrace(), cutAfterEvents: 4 }],
  ['a server that never answers', { hang: true }],
];

/** What a caller observes: the text it got, and how it ended. */
type Outcome = string;

function describeError(error: unknown): string {
  const e = error as { name?: string; message?: string; constructor?: { name?: string } };
  return `${e?.constructor?.name}/${e?.name}: ${e?.message}`;
}

describe('AI SDK (ai@7, real openai-compatible provider)', () => {
  const { ai, model } = MAJORS[2]!;

  async function streamOutcome(m: Loose, abortAfterFirstText = false): Promise<Outcome> {
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(new DOMException('client timeout', 'TimeoutError')), 300);
    const seen: string[] = [];
    try {
      const result = ai.streamText({ model: m, prompt: 'x', maxRetries: 0, abortSignal: controller.signal });
      for await (const part of result.fullStream as AsyncIterable<Loose>) {
        if (part.type === 'text-delta') {
          seen.push(part.text ?? part.delta);
          if (abortAfterFirstText) controller.abort();
        } else if (part.type === 'error') seen.push(`error part ${describeError(part.error)}`);
        else if (part.type === 'abort' || part.type === 'finish') seen.push(part.type);
      }
    } catch (error) {
      seen.push(`threw ${describeError(error)}`);
    } finally {
      clearTimeout(timeout);
    }
    return seen.join('|');
  }

  async function generateOutcome(m: Loose): Promise<Outcome> {
    try {
      const result = await ai.generateText({ model: m, prompt: 'x', maxRetries: 0, abortSignal: AbortSignal.timeout(300) });
      return `ok ${result.text}`;
    } catch (error) {
      return `threw ${describeError(error)}`;
    }
  }

  it.each(FAULTS)('%s: stream and generate end as without the middleware', async (_name, reply) => {
    server.reply = () => reply;
    const calls: unknown[] = [];
    const wrapped = ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ onWarning: false, onMetrics: (m) => void calls.push(m) }) });
    const bareStream = await streamOutcome(model(server.baseURL));
    expect(await streamOutcome(wrapped)).toBe(bareStream);
    const bareGenerate = await generateOutcome(model(server.baseURL));
    expect(await generateOutcome(wrapped)).toBe(bareGenerate);
    expect(calls.length).toBeLessThanOrEqual(2); // at most once per call that returned
  });

  it('an abort mid-stream ends as without the middleware', async () => {
    server.reply = () => ({ content: long, trace: sampleTrace(), delayMs: 15 });
    const wrapped = ai.wrapLanguageModel({ model: model(server.baseURL), middleware: carbonTraceMiddleware({ onWarning: false }) });
    const bare = await streamOutcome(model(server.baseURL), true);
    expect(bare).toMatch(/^one \|/);
    expect(await streamOutcome(wrapped, true)).toBe(bare);
  });
});

describe('LangChain (real ChatOpenAI), both capture paths', () => {
  const make = (handler?: CarbonTraceCallbackHandler, raw = false) =>
    new ChatOpenAI({
      model: 'fixture-model',
      apiKey: 'x',
      maxRetries: 0,
      timeout: 300,
      ...(raw ? { __includeRawResponse: true } : {}),
      configuration: { baseURL: server.baseURL, ...(handler ? { fetch: handler.fetch } : {}) },
    });

  async function streamOutcome(m: ChatOpenAI, handler?: CarbonTraceCallbackHandler, abortAfterFirstText = false): Promise<Outcome> {
    const controller = new AbortController();
    let text = '';
    try {
      for await (const chunk of await m.stream('x', { callbacks: handler ? [handler] : [], signal: controller.signal })) {
        text += chunk.content;
        if (abortAfterFirstText && text) controller.abort();
      }
      return `${text}|ended`;
    } catch (error) {
      return `${text}|threw ${describeError(error)}`;
    }
  }

  async function invokeOutcome(m: ChatOpenAI, handler?: CarbonTraceCallbackHandler): Promise<Outcome> {
    try {
      return `ok ${(await m.invoke('x', { callbacks: handler ? [handler] : [] })).content}`;
    } catch (error) {
      return `threw ${describeError(error)}`;
    }
  }

  it.each(FAULTS)('%s: stream and invoke end as without the handler, no state left', async (_name, reply) => {
    server.reply = () => reply;
    for (const raw of [false, true]) {
      const handler = new CarbonTraceCallbackHandler({ onWarning: false });
      const bareStream = await streamOutcome(make(undefined, raw));
      expect(await streamOutcome(make(raw ? undefined : handler, raw), handler)).toBe(bareStream);
      const bareInvoke = await invokeOutcome(make(undefined, raw));
      expect(await invokeOutcome(make(raw ? undefined : handler, raw), handler)).toBe(bareInvoke);
      expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
    }
  });

  it('an abort mid-stream ends as without the handler, no state left', async () => {
    server.reply = () => ({ content: long, trace: sampleTrace(), delayMs: 15 });
    const handler = new CarbonTraceCallbackHandler({ onWarning: false });
    const bare = await streamOutcome(make(), undefined, true);
    expect(bare).toMatch(/^one /);
    expect(await streamOutcome(make(handler), handler, true)).toBe(bare);
    expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
  });
});
