/**
 * The fetch behind `carbonTraceMiddleware().fetch`, alone: what it reads from each kind of body,
 * what it leaves untouched, and how it follows the caller's abort signal.
 */
import { describe, expect, it } from 'vitest';
import { createCallTraceFetch } from '../../src/ai-sdk/call-trace-fetch';

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
});
