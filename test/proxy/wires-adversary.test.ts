/**
 * What an adversarial review of the wires (issue #27) reproduced, each held to account through the
 * real proxy (and `withCarbonTrace` where it shares the fault), in front of small loopback
 * upstreams written for each case: keep-alives after the event that carries the trace, frames the
 * operator's limit must bound, headers held with a first frame, an upstream's own trace on
 * another event, cut streams in `withCarbonTrace`, cached prompt tokens, llama.cpp's prompt arrays,
 * paths that only look like a wire's, and line-delimited JSON typed otherwise than NDJSON.
 *
 * No wall-clock assertion: an upstream holds its stream open until the test lets it go, so a
 * proxy that holds bytes it should pass on fails by a generous deadline, not by a stopwatch.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCarbonProxy, createEnergyMeter, withCarbonTrace, type BookedRequest, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { UPSTREAM_TRACE_LATE_WARNING, UPSTREAM_TRACE_WARNING } from '../../src/server/wires/json-splice';

const KiB = 1024;
const MiB = 1024 * KiB;
/** How long a test waits for bytes that must come, before it fails: never a measure of speed. */
const DEADLINE_MS = 10_000;

/** A machine drawing a constant 250 W, measured; the meter reads the clock just before the source. */
function constantPower(): { source: EnergySource; clock: () => number } {
  const start = performance.now();
  let now = start;
  const seconds = () => (now - start) / 1000;
  return { clock: () => (now = performance.now()), source: { name: 'constant 250 W', measured: true, read: () => ({ gpuJoules: 200 * seconds(), cpuJoules: 50 * seconds() }) } };
}

type Upstream = { url: string; close(): Promise<void> };
type Front = { url: string; booked: BookedRequest[]; warnings: string[]; proxy: CarbonProxy; meter: EnergyMeter };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function upstreamOf(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>): Promise<Upstream> {
  const server: Server = createServer((req, res) => {
    // Only the request under test is answered: the proxy's background look at the model list is not.
    if (req.method !== 'POST') {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const up = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  cleanups.push(up.close);
  return up;
}

async function proxyTo(upstream: string, extra: Partial<Parameters<typeof createCarbonProxy>[0]> = {}): Promise<Front> {
  const { source, clock } = constantPower();
  const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 10, onWarning: false });
  const booked: BookedRequest[] = [];
  const warnings: string[] = [];
  const proxy = createCarbonProxy({ upstream, meter, gridIntensity: { gCo2PerKwh: 100 }, onWarning: (m) => void warnings.push(m), onBooked: (b) => void booked.push(b), ...extra });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  cleanups.push(async () => {
    await proxy.close();
    await meter.close();
  });
  return { url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`, booked, warnings, proxy, meter };
}

/** A promise the test resolves by hand: the upstream waits on it with its stream open. */
function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** Writes `bytes` honouring backpressure. */
async function writeAll(res: ServerResponse, bytes: string | Buffer): Promise<void> {
  if (!res.write(bytes)) await once(res, 'drain');
}

/** Reads a response body into a growing counter and text, in the background. */
function drain(response: Response): { received: () => number; text: () => string; done: Promise<void> } {
  let received = 0;
  const parts: Buffer[] = [];
  const reader = response.body!.getReader();
  const done = (async () => {
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) return;
      received += value.length;
      parts.push(Buffer.from(value));
    }
  })();
  cleanups.push(async () => {
    await reader.cancel().catch(() => undefined);
    await done.catch(() => undefined);
  });
  return { received: () => received, text: () => Buffer.concat(parts).toString('utf8'), done };
}

const post = (url: string, path: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
const bookedCount = (front: { booked: BookedRequest[] }, n: number) => vi.waitFor(() => expect(front.booked.length).toBeGreaterThanOrEqual(n), { timeout: DEADLINE_MS, interval: 5 });
const traces = (text: string) => text.split('"x_carbon_trace"').length - 1;

const ANTHROPIC_HEAD =
  'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"model":"m","usage":{"input_tokens":5,"output_tokens":1}}}\n\n' +
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}\n\n';
const LLAMA_HEAD = 'data: {"content":"hi","stop":false}\n\ndata: {"content":"","stop":true,"tokens_evaluated":3,"tokens_predicted":1}\n\n';

describe('keep-alives after the event that carries the trace (finding 2)', () => {
  it.each([
    ['Anthropic: pings after message_delta', '/v1/messages', ANTHROPIC_HEAD, 'event: ping\ndata: {"type": "ping"}\n\n', 'event: message_stop\ndata: {"type":"message_stop"}\n\n'],
    ['llama.cpp: comments after the "stop": true event', '/completion', LLAMA_HEAD, ': keep-alive\n\n', ''],
    ['chat completions: comments after the finish chunk', '/v1/chat/completions', 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', ': keep-alive\n\n', 'data: [DONE]\n\n'],
  ])('%s: they pass on while the stream stays open (the carrier goes untraced, with a warning); every byte in order', async (_name, path, head, filler, tail) => {
    const hold = gate();
    const FILLER_BYTES = 4 * MiB;
    let sent = head;
    const up = await upstreamOf(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      await writeAll(res, head);
      const block = filler.repeat(Math.ceil((64 * KiB) / filler.length));
      for (let n = 0; n < FILLER_BYTES; n += block.length) {
        await writeAll(res, block);
        sent += block;
      }
      await hold.wait;
      res.end(tail);
      sent += tail;
    });
    const front = await proxyTo(up.url);
    const body = drain(await post(front.url, path, { model: 'm', max_tokens: 5, stream: true, messages: [] }));
    try {
      // While the upstream holds its stream open, nearly all it sent has reached the client.
      await vi.waitFor(() => expect(body.received()).toBeGreaterThan(FILLER_BYTES - 256 * KiB), { timeout: DEADLINE_MS, interval: 10 });
    } finally {
      hold.open();
    }
    await body.done;
    expect(body.text()).toBe(sent);
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ status: 200, traceDelivered: false, trace: undefined });
    expect(front.warnings.some((w) => w.includes('without a trace'))).toBe(true);
  });

  it('a few pings before message_stop still wait with the carrier: it gets the trace', async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${ANTHROPIC_HEAD}${'event: ping\ndata: {"type": "ping"}\n\n'.repeat(20)}event: message_stop\ndata: {"type":"message_stop"}\n\n`);
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, '/v1/messages', { model: 'm', max_tokens: 5, stream: true, messages: [] })).text();
    expect(traces(text)).toBe(1);
    expect(text).toMatch(/"type":"message_delta".*"x_carbon_trace"/);
    await bookedCount(front, 1);
    expect(front.booked[0]!.traceDelivered).toBe(true);
  });
});

describe("the operator's limit bounds what a stream holds, and headers never wait for a frame (finding 3)", () => {
  it.each([
    ['Ollama NDJSON', '/api/chat', 'application/x-ndjson', '{"model":"m","message":{"role":"assistant","content":"'],
    ['Anthropic SSE', '/v1/messages', 'text/event-stream', 'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":3},"pad":"'],
    ['chat SSE', '/v1/chat/completions', 'text/event-stream', 'data: {"choices":[{"delta":{"content":"'],
  ])('%s: a line without its end passes once over maxTracedResponseBytes, while the upstream holds it open', async (_name, path, type, prefix) => {
    const hold = gate();
    const LINE_BYTES = 2 * MiB;
    const up = await upstreamOf(async (_req, res) => {
      res.writeHead(200, { 'content-type': type });
      await writeAll(res, prefix + 'x'.repeat(LINE_BYTES));
      await hold.wait;
      res.end('"}}\n\n');
    });
    const front = await proxyTo(up.url, { maxTracedResponseBytes: 256 * KiB });
    const body = drain(await post(front.url, path, { model: 'm', messages: [], stream: true }));
    try {
      await vi.waitFor(() => expect(body.received()).toBeGreaterThanOrEqual(LINE_BYTES), { timeout: DEADLINE_MS, interval: 10 });
    } finally {
      hold.open();
    }
    await body.done;
    expect(front.warnings.some((w) => w.includes('without an event boundary'))).toBe(true);
  });

  it.each([
    ['/api/chat', 'application/x-ndjson', '{"model":"m","message":{"content":"a"}'],
    ['/v1/messages', 'text/event-stream', 'event: message_start\ndata: {"type":"message_start"'],
    ['/v1/chat/completions', 'text/event-stream', 'data: {"choices":[{"delta":{"content":"a"}}]}'],
  ])('%s: the status and headers of a stream reach the client before its first frame is whole', async (path, type, partial) => {
    const hold = gate();
    const up = await upstreamOf(async (_req, res) => {
      res.writeHead(200, { 'content-type': type, 'x-upstream': 'yes' });
      await writeAll(res, partial);
      await hold.wait;
      res.end();
    });
    const front = await proxyTo(up.url);
    let settled = false;
    const answer = post(front.url, path, { model: 'm', messages: [], stream: true }).finally(() => (settled = true));
    try {
      await vi.waitFor(() => expect(settled).toBe(true), { timeout: DEADLINE_MS, interval: 10 });
      const response = await answer;
      expect(response.status).toBe(200);
      expect(response.headers.get('x-upstream')).toBe('yes');
    } finally {
      hold.open();
      await (await answer).text();
    }
  });

  it('streamTracer follows the limit it is given: the smaller of it and the per-frame cap', async () => {
    const { wireFor } = await import('../../src/server/wires/index');
    const hooks = { tokens: () => undefined, usage: () => undefined };
    expect(wireFor('POST', '/api/chat')!.streamTracer('ndjson', hooks, { maxFrameBytes: 1000 })!.maxFrameBytes).toBe(1000);
    expect(wireFor('POST', '/v1/chat/completions')!.streamTracer('sse', hooks, { maxFrameBytes: 1000 })!.maxFrameBytes).toBe(1000);
    expect(wireFor('POST', '/api/chat')!.streamTracer('ndjson', hooks, { maxFrameBytes: 1024 * MiB })!.maxFrameBytes).toBe(16 * MiB);
    expect(wireFor('POST', '/v1/chat/completions')!.streamTracer('sse', hooks, { maxFrameBytes: 1024 * MiB })!.maxFrameBytes).toBe(64 * KiB);
    for (const bad of [Number.NaN, -1, 0, Number.POSITIVE_INFINITY]) expect(wireFor('POST', '/api/chat')!.streamTracer('ndjson', hooks, { maxFrameBytes: bad })!.maxFrameBytes).toBe(16 * MiB);
  });
});

describe("an upstream's own trace anywhere in the response wins (finding 5)", () => {
  it('Anthropic, the upstream\'s trace on message_stop: one trace in the stream, theirs; ours booked apart, with the warning', async () => {
    const stream =
      'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}\n\n' +
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}\n\n' +
      'event: message_stop\ndata: {"type":"message_stop","x_carbon_trace":{"energy_consumed_wh":9,"measured":true}}\n\n';
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(stream);
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, '/v1/messages', { model: 'm', max_tokens: 5, stream: true, messages: [] })).text();
    expect(text).toBe(stream);
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ status: 200, traceDelivered: false, trace: undefined });
    expect(front.warnings).toContain(UPSTREAM_TRACE_WARNING);
  });

  it.each([
    ['chat, on a content chunk', '/v1/chat/completions', 'data: {"choices":[{"index":0,"delta":{"content":"a"}}],"x_carbon_trace":{"energy_consumed_wh":9}}\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'],
    ['Ollama, on a line before the last', '/api/chat', '{"message":{"content":"a"},"done":false,"x_carbon_trace":{"energy_consumed_wh":9}}\n{"message":{"content":""},"done":true,"eval_count":1}\n'],
    ['Responses, in response.created', '/v1/responses', 'event: response.created\ndata: {"type":"response.created","response":{"id":"r","x_carbon_trace":{"energy_consumed_wh":9}}}\n\nevent: response.completed\ndata: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":1,"output_tokens":1}}}\n\n'],
  ])('%s: no second trace', async (_name, path, stream) => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': path === '/api/chat' ? 'application/x-ndjson' : 'text/event-stream' });
      res.end(stream);
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, path, { model: 'm', messages: [], stream: true })).text();
    expect(text).toBe(stream);
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ traceDelivered: false, trace: undefined });
    expect(front.warnings).toContain(UPSTREAM_TRACE_WARNING);
  });

  const COMPLETED = 'event: response.completed\ndata: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":1,"output_tokens":1}}}\n\n';
  const LATE = 'event: carbon\ndata: {"type":"carbon","x_carbon_trace":{"energy_consumed_wh":9}}\n\n';

  it("Responses, the upstream's trace after response.completed in the same breath: theirs only", async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(COMPLETED + LATE);
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, '/v1/responses', { model: 'm', input: 'hi', stream: true })).text();
    expect(text).toBe(COMPLETED + LATE);
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ traceDelivered: false, trace: undefined });
  });

  it("Responses, the upstream's trace after ours was sent and the books closed: both reach the client, booked delivered, and the warning says so", async () => {
    const sentOurs = gate();
    const up = await upstreamOf(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      await writeAll(res, COMPLETED);
      await sentOurs.wait;
      res.end(LATE);
    });
    const front = await proxyTo(up.url);
    const body = drain(await post(front.url, '/v1/responses', { model: 'm', input: 'hi', stream: true }));
    try {
      await vi.waitFor(() => expect(traces(body.text())).toBe(1), { timeout: DEADLINE_MS, interval: 5 });
    } finally {
      sentOurs.open();
    }
    await body.done;
    expect(traces(body.text())).toBe(2);
    expect(body.text().endsWith(LATE)).toBe(true);
    await bookedCount(front, 1);
    expect(front.booked[0]!.traceDelivered).toBe(true);
    await vi.waitFor(() => expect(front.warnings).toContain(UPSTREAM_TRACE_LATE_WARNING), { timeout: DEADLINE_MS, interval: 5 });
  });

  it('content that merely mentions x_carbon_trace (escaped, inside a string) is not a trace: ours goes on', async () => {
    const stream = 'data: {"choices":[{"index":0,"delta":{"content":"say \\"x_carbon_trace\\": {}"}}]}\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(stream);
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, '/v1/chat/completions', { model: 'm', messages: [], stream: true })).text();
    expect(traces(text)).toBe(1);
    await bookedCount(front, 1);
    expect(front.booked[0]!.traceDelivered).toBe(true);
  });
});

describe('withCarbonTrace books cut streams as the proxy does (finding 6)', () => {
  it.each([
    ['the upstream cuts it', 502],
    ['the client cancels it', 499],
  ] as const)('Ollama NDJSON, %s: booked %i, no trace', async (how, status) => {
    const { source, clock } = constantPower();
    const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 10, onWarning: false });
    cleanups.push(() => meter.close());
    const booked: BookedRequest[] = [];
    const first = new TextEncoder().encode('{"model":"m","message":{"role":"assistant","content":"one"},"done":false}\n');
    const handler = async () => {
      let n = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          n++;
          if (n === 1) controller.enqueue(first);
          // The upstream's socket closes mid-answer; a client that cancels never gets this far.
          else if (how === 'the upstream cuts it') controller.error(new Error('upstream socket closed'));
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'application/x-ndjson' } });
    };
    const wrapped = withCarbonTrace(handler, { meter, gridIntensity: { gCo2PerKwh: 100 }, onWarning: false, onBooked: (b) => void booked.push(b) });
    const response = await wrapped(new Request('http://x/api/chat', { method: 'POST', body: '{"model":"m","messages":[]}' }));
    const reader = response.body!.getReader();
    expect(Buffer.from((await reader.read()).value!)).toEqual(Buffer.from(first));
    if (how === 'the upstream cuts it') await expect(reader.read()).rejects.toThrow('upstream socket closed');
    else await reader.cancel();
    await bookedCount({ booked }, 1);
    expect(booked).toHaveLength(1);
    expect(booked[0]).toMatchObject({ status, streamed: true, traceDelivered: false, trace: undefined });
  });
});

describe('tokens (findings 7, 8)', () => {
  const CACHED_USAGE = { input_tokens: 3, cache_creation_input_tokens: 20, cache_read_input_tokens: 4000, output_tokens: 5 };

  it('Anthropic JSON: prompt tokens are input + cache read + cache creation', async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'msg_1', type: 'message', role: 'assistant', model: 'm', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', usage: CACHED_USAGE }));
    });
    const front = await proxyTo(up.url);
    const body = await (await post(front.url, '/v1/messages', { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })).json();
    expect(body.x_carbon_trace).toMatchObject({ prompt_tokens: 4023, completion_tokens: 5 });
    await bookedCount(front, 1);
    expect(front.booked[0]!.usage).toEqual({ promptTokens: 4023, completionTokens: 5 });
  });

  it('Anthropic stream: the same, from message_start (and a message_delta that repeats the counts)', async () => {
    const { input_tokens, cache_creation_input_tokens, cache_read_input_tokens } = CACHED_USAGE;
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { usage: { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens: 1 } } })}\n\n` +
          `event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 5 } })}\n\n` +
          'event: message_stop\ndata: {"type":"message_stop"}\n\n',
      );
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, '/v1/messages', { model: 'm', max_tokens: 5, stream: true, messages: [] })).text();
    const delta = text.split('\n\n').find((e) => e.includes('x_carbon_trace'))!;
    expect(JSON.parse(delta.split('\n')[1]!.slice(6)).x_carbon_trace).toMatchObject({ prompt_tokens: 4023, completion_tokens: 5 });
    await bookedCount(front, 1);
    expect(front.booked[0]!.usage).toEqual({ promptTokens: 4023, completionTokens: 5 });
  });

  it('llama.cpp, a stream of several prompts: the trace on the last "stop": true event, with the sums of every prompt', async () => {
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        'data: {"index":0,"content":"a","stop":false}\n\n' +
          'data: {"index":1,"content":"b","stop":false}\n\n' +
          'data: {"index":0,"content":"","stop":true,"tokens_evaluated":100,"tokens_predicted":50}\n\n' +
          'data: {"index":1,"content":"","stop":true,"tokens_evaluated":7,"tokens_predicted":3}\n\n',
      );
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, '/completion', { prompt: ['long prompt', 'short'], stream: true })).text();
    const events = text.trim().split('\n\n');
    expect(events.filter((e) => e.includes('x_carbon_trace'))).toHaveLength(1);
    const last = JSON.parse(events.at(-1)!.slice(6));
    expect(last.index).toBe(1);
    expect(last.x_carbon_trace).toMatchObject({ prompt_tokens: 107, completion_tokens: 53 });
    await bookedCount(front, 1);
    expect(front.booked[0]!.usage).toEqual({ promptTokens: 107, completionTokens: 53 });
  });
});

describe('paths that only look like a wire\'s (finding 9)', () => {
  it.each([
    ['OpenAI Assistants: POST /v1/threads/thread_1/messages', '/v1/threads/thread_1/messages'],
    ["KoboldCpp's /api/v1/generate", '/api/v1/generate'],
    ['a /responses under another resource', '/v1/evals/e_1/responses'],
  ])('%s: metered and booked, untraced, body untouched', async (_name, path) => {
    const answer = JSON.stringify({ id: 'x', object: 'thing', usage: { input_tokens: 1, output_tokens: 1 }, details: { generated_tokens: 1 } });
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer);
    });
    const front = await proxyTo(up.url);
    expect(await (await post(front.url, path, { role: 'user', content: 'hi' })).text()).toBe(answer);
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ status: 200, traceDelivered: false });
    expect(front.booked[0]!.wire).toBeUndefined();
    expect(front.booked[0]!.energy.totalJoules).toBeGreaterThanOrEqual(0);
  });

  it('the documented path after the upstream\'s base path is the wire\'s (an upstream at /anthropic serves /v1/messages)', async () => {
    let seenPath = '';
    const up = await upstreamOf((req, res) => {
      seenPath = req.url ?? '';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'msg', type: 'message', content: [], usage: { input_tokens: 2, output_tokens: 1 } }));
    });
    const front = await proxyTo(`${up.url}/anthropic`);
    const body = await (await post(front.url, '/v1/messages/', { model: 'm', max_tokens: 5, messages: [] })).json();
    expect(seenPath).toBe('/anthropic/v1/messages/');
    expect(body.x_carbon_trace).toMatchObject({ prompt_tokens: 2, completion_tokens: 1 });
    await bookedCount(front, 1);
    expect(front.booked[0]!.wire).toBe('anthropic');
  });
});

describe('line-delimited JSON under other names (finding 10)', () => {
  it.each(['application/jsonl', 'application/x-jsonlines', 'application/x-ndjson; charset=utf-8'])('%s on /api/chat: each line reaches the client as it comes, and the last gets the trace', async (type) => {
    const firstRead = gate();
    const up = await upstreamOf(async (_req, res) => {
      res.writeHead(200, { 'content-type': type });
      await writeAll(res, '{"message":{"content":"first"},"done":false}\n');
      await firstRead.wait;
      res.end('{"message":{"content":""},"done":true,"eval_count":1}\n');
    });
    const front = await proxyTo(up.url);
    const response = await post(front.url, '/api/chat', { model: 'm', messages: [] });
    const reader = response.body!.getReader();
    try {
      const first = await Promise.race([reader.read(), new Promise<'held'>((resolve) => setTimeout(() => resolve('held'), DEADLINE_MS))]);
      expect(first).not.toBe('held');
      expect(Buffer.from((first as ReadableStreamReadResult<Uint8Array>).value!).toString()).toBe('{"message":{"content":"first"},"done":false}\n');
    } finally {
      firstRead.open();
    }
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    expect(JSON.parse(rest).x_carbon_trace).toBeDefined();
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ streamed: true, traceDelivered: true });
  });

  it('application/json-seq (RS-prefixed records): passed on as it comes, untraced, with a warning', async () => {
    const firstRead = gate();
    const RS = '\u001e';
    const up = await upstreamOf(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json-seq' });
      await writeAll(res, `${RS}{"message":{"content":"first"},"done":false}\n`);
      await firstRead.wait;
      res.end(`${RS}{"message":{"content":""},"done":true,"eval_count":1}\n`);
    });
    const front = await proxyTo(up.url);
    const response = await post(front.url, '/api/chat', { model: 'm', messages: [] });
    const reader = response.body!.getReader();
    try {
      const first = await Promise.race([reader.read(), new Promise<'held'>((resolve) => setTimeout(() => resolve('held'), DEADLINE_MS))]);
      expect(first).not.toBe('held');
    } finally {
      firstRead.open();
    }
    while (!(await reader.read()).done);
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ streamed: true, traceDelivered: false });
    expect(front.warnings.some((w) => w.includes('application/json-seq') && w.includes('without a trace'))).toBe(true);
  });
});

describe('the Responses API cut short (finding 4, the producer side)', () => {
  it('a response.incomplete stream carries the trace in that event\'s response, booked delivered', async () => {
    const stream = [
      'event: response.created\ndata: {"type":"response.created","response":{"id":"r","status":"in_progress","output":[]},"sequence_number":0}\n\n',
      'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"i","output_index":0,"content_index":0,"delta":"one two","sequence_number":1}\n\n',
      'event: response.incomplete\ndata: {"type":"response.incomplete","response":{"id":"r","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":5,"output_tokens":3}},"sequence_number":2}\n\n',
    ].join('');
    const up = await upstreamOf((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(stream);
    });
    const front = await proxyTo(up.url);
    const text = await (await post(front.url, '/v1/responses', { model: 'm', input: 'hi', stream: true, max_output_tokens: 3 })).text();
    const last = text.trim().split('\n\n').at(-1)!;
    expect(last.startsWith('event: response.incomplete\n')).toBe(true);
    const data = JSON.parse(last.split('\n')[1]!.slice(6));
    expect(data.response.x_carbon_trace).toMatchObject({ prompt_tokens: 5, completion_tokens: 3 });
    expect(traces(text)).toBe(1);
    await bookedCount(front, 1);
    expect(front.booked[0]).toMatchObject({ traceDelivered: true });
    expect(front.booked[0]!.trace).toEqual(data.response.x_carbon_trace);
  });
});
