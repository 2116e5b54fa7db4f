/**
 * The fetch behind `carbonTraceMiddleware().fetch`, alone: what it reads from each kind of body,
 * what it leaves untouched, and how it follows the caller's abort signal.
 */
import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { wrapLanguageModel } from 'ai';
import { createOllama } from 'ollama-ai-provider-v2';
import { createCallTraceFetch } from '../../src/ai-sdk/call-trace-fetch';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { sampleTrace } from '../fixtures/openai-compatible-server';
import { startWireServer, type WireServer } from '../fixtures/wire-server';
import { PROVIDER_PROMPT, readAll, type Loose } from './majors';

// A full collection on demand, to see what an unread response leaves behind once it is garbage.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collects garbage, and lets finalizers run, until `done()` or a fixed number of rounds. */
async function collectUntil(done: () => boolean, rounds = 30): Promise<void> {
  for (let i = 0; i < rounds && !done(); i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const abortListeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;

const TRACE = { emissions_g_co2: 1, energy_consumed_wh: 2 };

/** A base fetch answering `body` in chunks of `chunkBytes`, with these headers. */
function answering(body: string, init: ResponseInit = {}, chunkBytes = 5): typeof globalThis.fetch {
  return (async () => {
    const bytes = new TextEncoder().encode(body);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += chunkBytes) controller.enqueue(bytes.slice(i, i + chunkBytes));
        controller.close();
      },
    });
    return new Response(stream, { status: 200, ...init });
  }) as typeof globalThis.fetch;
}

async function read(body: string, init: ResponseInit, chunkBytes?: number) {
  const calls = createCallTraceFetch(answering(body, init, chunkBytes));
  const call = calls.open(undefined);
  const response = await calls.fetch('http://127.0.0.1:1/x', { signal: call.signal });
  const text = await response.text();
  call.close();
  return { text, slot: call.slot, response };
}

describe('createCallTraceFetch', () => {
  it.each([
    ['NDJSON (Ollama)', 'application/x-ndjson', `{"done":false}\n{"done":true,"x_carbon_trace":${JSON.stringify(TRACE)}}\n`],
    ['NDJSON without a last newline', 'application/x-ndjson', `{"done":false}\n{"done":true,"x_carbon_trace":${JSON.stringify(TRACE)}}`],
    ['server-sent events with data: and event: lines', 'text/event-stream; charset=utf-8', `event: a\ndata: {"x":1}\n\nevent: b\ndata:{"type":"message_delta","x_carbon_trace":${JSON.stringify(TRACE)}}\n\n`],
    ['SSE with CRLF line ends', 'text/event-stream', `data: {"x":1}\r\n\r\ndata: {"x_carbon_trace":${JSON.stringify(TRACE)}}\r\n\r\n`],
    ['a Responses stream (the trace inside response.completed)', 'text/event-stream', `data: {"type":"response.completed","response":{"x_carbon_trace":${JSON.stringify(TRACE)}}}\n\n`],
    ['a pretty-printed JSON body', 'application/json', JSON.stringify({ id: 'x', x_carbon_trace: TRACE }, null, 2)],
  ])('%s: the trace, the bytes unchanged', async (_name, contentType, body) => {
    for (const chunkBytes of [1, 3, 64, 1 << 20]) {
      const { text, slot } = await read(body, { headers: { 'content-type': contentType } }, chunkBytes);
      expect(text).toBe(body);
      expect(slot).toEqual({ seen: true, hasTrace: true, trace: TRACE });
    }
  });

  it('several traced events: the last wins', async () => {
    const body = `data: {"x_carbon_trace":{"emissions_g_co2":1}}\n\ndata: {"x_carbon_trace":{"emissions_g_co2":2}}\n\n`;
    const { slot } = await read(body, { headers: { 'content-type': 'text/event-stream' } });
    expect(slot.trace).toEqual({ emissions_g_co2: 2 });
  });

  it.each([
    ['null', '{"x_carbon_trace":null}', null],
    ['a string', '{"x_carbon_trace":"garbage"}', 'garbage'],
  ])('a trace that is %s is handed on as sent (the middleware judges it)', async (_name, line, trace) => {
    const { slot } = await read(`${line}\n`, { headers: { 'content-type': 'application/x-ndjson' } });
    expect(slot).toEqual({ seen: true, hasTrace: true, trace });
  });

  it('malformed JSON, a multi-byte split, no trace: nothing found, nothing thrown, bytes unchanged', async () => {
    const body = '{"x_carbon_trace": {oops\n{"text":"héllo wörld ✓"}\n';
    for (const chunkBytes of [1, 2, 3]) {
      const { text, slot } = await read(body, { headers: { 'content-type': 'application/x-ndjson' } }, chunkBytes);
      expect(text).toBe(body);
      expect(slot).toEqual({ seen: true, hasTrace: false, trace: undefined });
    }
  });

  it('a line over 16 Mi characters is passed on unread; the next line is read again', async () => {
    const huge = `{"pad":"${'x'.repeat(17 * 1024 * 1024)}","x_carbon_trace":{"emissions_g_co2":9}}`;
    const body = `${huge}\n{"x_carbon_trace":${JSON.stringify(TRACE)}}\n`;
    const { text, slot } = await read(body, { headers: { 'content-type': 'application/x-ndjson' } }, 1 << 20);
    expect(text.length).toBe(body.length);
    expect(slot.trace).toEqual(TRACE);
  });

  it.each([
    ['an error status', { status: 500, headers: { 'content-type': 'application/json' } }],
    ['a content type it does not read', { headers: { 'content-type': 'text/plain' } }],
  ])('%s: the very same Response object, unread', async (_name, init) => {
    const original = new Response(`{"x_carbon_trace":${JSON.stringify(TRACE)}}`, init);
    const calls = createCallTraceFetch((async () => original) as typeof globalThis.fetch);
    const call = calls.open(undefined);
    expect(await calls.fetch('http://127.0.0.1:1/x', { signal: call.signal })).toBe(original);
    expect(call.slot).toEqual({ seen: true, hasTrace: false, trace: undefined });
  });

  it('a request with no signal of an open call goes to the base fetch untouched', async () => {
    const seen: Array<[unknown, unknown]> = [];
    const original = new Response('{}', { headers: { 'content-type': 'application/json' } });
    const calls = createCallTraceFetch((async (input: unknown, init: unknown) => {
      seen.push([input, init]);
      return original;
    }) as typeof globalThis.fetch);
    const init = { method: 'POST', signal: new AbortController().signal };
    expect(await calls.fetch('http://127.0.0.1:1/a', init)).toBe(original);
    expect(await calls.fetch('http://127.0.0.1:1/b')).toBe(original);
    const closed = calls.open(undefined);
    closed.close();
    expect(await calls.fetch('http://127.0.0.1:1/c', { signal: closed.signal })).toBe(original);
    expect(seen).toEqual([['http://127.0.0.1:1/a', init], ['http://127.0.0.1:1/b', undefined], ['http://127.0.0.1:1/c', { signal: closed.signal }]]);
    expect(closed.slot.seen).toBe(false);
  });

  it('the response keeps its status, headers and URL', async () => {
    const calls = createCallTraceFetch(async () => {
      const response = new Response('{"a":1}', { status: 201, statusText: 'Created', headers: { 'content-type': 'application/json', 'x-request-id': 'r1' } });
      Object.defineProperty(response, 'url', { value: 'http://127.0.0.1:1/api/embed' });
      return response;
    });
    const call = calls.open(undefined);
    const response = await calls.fetch('http://127.0.0.1:1/api/embed', { signal: call.signal });
    expect([response.status, response.statusText, response.headers.get('x-request-id'), response.url]).toEqual([201, 'Created', 'r1', 'http://127.0.0.1:1/api/embed']);
  });

  it('the call\'s signal follows the caller\'s: already aborted, aborted later, and no longer once closed', () => {
    const calls = createCallTraceFetch(undefined);
    const early = new AbortController();
    const reason = new Error('early');
    early.abort(reason);
    expect(calls.open(early.signal).signal.reason).toBe(reason);

    const later = new AbortController();
    const call = calls.open(later.signal);
    expect(call.signal.aborted).toBe(false);
    const why = new Error('later');
    later.abort(why);
    expect(call.signal.reason).toBe(why);

    const caller = new AbortController();
    const closed = calls.open(caller.signal);
    closed.close();
    caller.abort();
    expect(closed.signal.aborted).toBe(false);
  });

  it('a cut body errors the reader with the same error, and keeps what came before', async () => {
    const cut = new Error('socket hang up');
    const calls = createCallTraceFetch(async () => {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"done":false}\n'));
          controller.error(cut);
        },
      });
      return new Response(stream, { headers: { 'content-type': 'application/x-ndjson' } });
    });
    const call = calls.open(undefined);
    const response = await calls.fetch('http://127.0.0.1:1/api/chat', { signal: call.signal });
    await expect(response.text()).rejects.toBe(cut);
    expect(call.slot.hasTrace).toBe(false);
  });

  it('a call dropped without close(): once it is garbage, the caller\'s signal no longer holds it', async () => {
    const calls = createCallTraceFetch(undefined);
    const caller = new AbortController();
    // In a function of its own, so that nothing here keeps the call.
    (() => void calls.open(caller.signal))();
    expect(abortListeners(caller.signal)).toBe(1);
    await collectUntil(() => abortListeners(caller.signal) === 0);
    expect(abortListeners(caller.signal)).toBe(0);
    expect(caller.signal.aborted).toBe(false);
  });

  it('a call still held (by its signal alone, as a fetch in flight holds it) keeps following the caller through collections', async () => {
    const calls = createCallTraceFetch(undefined);
    const caller = new AbortController();
    const signal = (() => calls.open(caller.signal).signal)();
    await collectUntil(() => false, 5);
    expect(abortListeners(caller.signal)).toBe(1);
    const reason = new Error('stop');
    caller.abort(reason);
    expect(signal.reason).toBe(reason);
  });

  it('a runtime without WeakRef or FinalizationRegistry (some edge runtimes): the call follows the caller, and close() still lets go', async () => {
    vi.resetModules();
    vi.stubGlobal('WeakRef', undefined);
    vi.stubGlobal('FinalizationRegistry', undefined);
    try {
      const { createCallTraceFetch: create } = await import('../../src/ai-sdk/call-trace-fetch');
      const calls = create(undefined);
      const caller = new AbortController();
      const kept = calls.open(caller.signal);
      const closed = calls.open(caller.signal);
      closed.close();
      expect(abortListeners(caller.signal)).toBe(1);
      caller.abort(new Error('stop'));
      expect([kept.signal.aborted, closed.signal.aborted]).toEqual([true, false]);
    } finally {
      vi.unstubAllGlobals();
      vi.resetModules();
    }
  });

  it('close() twice, and a caller that aborts after close(): nothing thrown, nothing followed', () => {
    const calls = createCallTraceFetch(undefined);
    const caller = new AbortController();
    const call = calls.open(caller.signal);
    call.close();
    call.close();
    expect(abortListeners(caller.signal)).toBe(0);
    caller.abort();
    expect(call.signal.aborted).toBe(false);
  });
});

describe('carbonTraceMiddleware().fetch and a long-lived caller signal (real ollama-ai-provider-v2, loopback wire fixture)', () => {
  let server: WireServer;
  beforeAll(async () => {
    server = await startWireServer();
  });
  afterAll(() => server.close());

  function wrapped() {
    const carbon = carbonTraceMiddleware({ onWarning: false });
    const model = wrapLanguageModel({ model: createOllama({ baseURL: `${server.baseURL}/api`, fetch: carbon.fetch })('fixture-model'), middleware: carbon });
    return model as Loose;
  }

  it('a stream read to its end, cancelled, or cut by the server: the caller\'s signal holds nothing of the call', async () => {
    const caller = new AbortController();
    const model = wrapped();

    server.reply = () => ({ text: 'one two three', trace: sampleTrace(1) });
    const { stream } = await model.doStream({ prompt: PROVIDER_PROMPT, abortSignal: caller.signal });
    expect(abortListeners(caller.signal)).toBe(1);
    const parts = await readAll(stream as ReadableStream<Loose>);
    expect(parts.find((p: Loose) => p.type === 'finish')?.providerMetadata?.codecarbon?.promptTokens).toBe(10);
    expect(abortListeners(caller.signal)).toBe(0);

    const cancelled = await model.doStream({ prompt: PROVIDER_PROMPT, abortSignal: caller.signal });
    const reader = (cancelled.stream as ReadableStream<Loose>).getReader();
    await reader.read();
    await reader.cancel();
    expect(abortListeners(caller.signal)).toBe(0);

    server.reply = () => ({ text: 'one two three four five', trace: sampleTrace(1), cutAfterEvents: 2 });
    const cut = await model.doStream({ prompt: PROVIDER_PROMPT, abortSignal: caller.signal });
    await readAll(cut.stream as ReadableStream<Loose>).catch(() => undefined);
    expect(abortListeners(caller.signal)).toBe(0);
    expect(caller.signal.aborted).toBe(false);
  });

  it('streams never read nor cancelled: once they are garbage, the caller\'s signal holds nothing of them', async () => {
    server.reply = () => ({ text: 'one two three', trace: sampleTrace(1) });
    const caller = new AbortController();
    const model = wrapped();
    for (let i = 0; i < 5; i++) await model.doStream({ prompt: PROVIDER_PROMPT, abortSignal: caller.signal });
    expect(abortListeners(caller.signal)).toBe(5);
    await collectUntil(() => abortListeners(caller.signal) === 0);
    expect(abortListeners(caller.signal)).toBe(0);
  });

  it('a stream being read keeps following the caller\'s signal through collections: an abort still reaches the request', async () => {
    server.reply = () => ({ text: 'one two three four five six seven eight', trace: sampleTrace(1) });
    // Weakly, so that the test itself keeps nothing of the call alive.
    let sent: WeakRef<AbortSignal> | undefined;
    const carbon = carbonTraceMiddleware({
      onWarning: false,
      fetch: (input, init) => {
        if (init?.signal) sent = new WeakRef(init.signal);
        return globalThis.fetch(input, init);
      },
    });
    const model = wrapLanguageModel({ model: createOllama({ baseURL: `${server.baseURL}/api`, fetch: carbon.fetch })('fixture-model'), middleware: carbon }) as Loose;
    const caller = new AbortController();
    const { stream } = await model.doStream({ prompt: PROVIDER_PROMPT, abortSignal: caller.signal });
    const reader = (stream as ReadableStream<Loose>).getReader();
    await reader.read();
    await collectUntil(() => false, 5);
    expect(abortListeners(caller.signal)).toBe(1);
    const reason = new Error('stop now');
    caller.abort(reason);
    expect(sent?.deref()?.reason).toBe(reason);
    await reader.cancel();
    expect(abortListeners(caller.signal)).toBe(0);
  });
});
