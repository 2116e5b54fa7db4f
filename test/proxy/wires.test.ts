/**
 * Every wire through the real proxy, and through withCarbonTrace, in front of the loopback
 * server that speaks them all (test/fixtures/wire-server.ts), over raw HTTP (fetch): the trace
 * where DESIGN.md §8 puts it, parseable, every other byte as the upstream sent it; tokens, kind
 * and stream booked; a cut stream, an upstream error and an upstream's own trace on each wire;
 * TEI's bare arrays booked without a trace; and, across a mix of every wire at once,
 * Σ traces' energy + the untraced requests' = what the meter attributed.
 *
 * Where the stand-in differs from the real servers, the fixture says so.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequestListener } from '@remix-run/node-fetch-server';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCarbonProxy, createEnergyMeter, withCarbonTrace, type BookedRequest, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { UPSTREAM_TRACE_WARNING } from '../../src/server/wires/json-splice';
import { startWireServer, type WireServer } from '../fixtures/wire-server';

const TEXT = 'Bonjour, ça va ? 👋 fin';
const USAGE = { input: 21, output: 4 };
const OWN_TRACE = { energy_consumed_wh: 5, emissions_g_co2: 2, measured: true };

type Case = {
  name: string;
  path: string;
  body: Record<string, unknown>;
  wire: string;
  kind: 'chat' | 'embedding' | 'rerank';
  /** How the answer streams; absent for JSON. */
  framing?: 'sse' | 'ndjson';
  /** The frame that must carry the trace (streams). */
  carrier?: RegExp;
  /** The member of the carrier's data that holds the trace (the Responses API's `response`). */
  inside?: string;
  usage: { promptTokens?: number; completionTokens?: number };
  expectsUsage: boolean;
  /** A bare JSON array: no place for a trace. */
  bare?: boolean;
};

const messages = [{ role: 'user', content: 'hi' }];
const CASES: Case[] = [
  { name: 'chat completions', path: '/v1/chat/completions', body: { model: 'm-chat', messages }, wire: 'chat', kind: 'chat', usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  // With usage asked for, the last chunk before [DONE] is the usage-only one: the trace goes there.
  { name: 'chat completions, streamed', path: '/v1/chat/completions', body: { model: 'm-chat', messages, stream: true, stream_options: { include_usage: true } }, wire: 'chat', kind: 'chat', framing: 'sse', carrier: /"choices":\[\],"usage"/, usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'Responses API', path: '/v1/responses', body: { model: 'm-resp', input: 'hi' }, wire: 'responses', kind: 'chat', usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'Responses API, streamed', path: '/v1/responses', body: { model: 'm-resp', input: 'hi', stream: true }, wire: 'responses', kind: 'chat', framing: 'sse', carrier: /^event: response\.completed\n/, inside: 'response', usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'embeddings', path: '/v1/embeddings', body: { model: 'm-emb', input: ['a', 'b'] }, wire: 'embeddings', kind: 'embedding', usage: { promptTokens: 21 }, expectsUsage: true },
  { name: 'embeddings, base64', path: '/v1/embeddings', body: { model: 'm-emb', input: 'a', encoding_format: 'base64' }, wire: 'embeddings', kind: 'embedding', usage: { promptTokens: 21 }, expectsUsage: true },
  { name: 'rerank (vLLM, Jina)', path: '/v1/rerank', body: { model: 'm-rr', query: 'q', documents: ['a', 'b'] }, wire: 'embeddings', kind: 'rerank', usage: { promptTokens: 21 }, expectsUsage: true },
  { name: 'score (vLLM)', path: '/v1/score', body: { model: 'm-rr', text_1: 'q', text_2: ['a', 'b'] }, wire: 'embeddings', kind: 'rerank', usage: { promptTokens: 21 }, expectsUsage: true },
  { name: 'TEI /embed (bare array)', path: '/embed', body: { inputs: ['a', 'b'] }, wire: 'embeddings', kind: 'embedding', usage: {}, expectsUsage: false, bare: true },
  { name: 'TEI /rerank (bare array)', path: '/rerank', body: { query: 'q', texts: ['a', 'b'] }, wire: 'embeddings', kind: 'rerank', usage: {}, expectsUsage: false, bare: true },
  { name: 'Ollama /api/chat', path: '/api/chat', body: { model: 'm-ollama', messages, stream: false }, wire: 'ollama', kind: 'chat', usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  // Ollama streams unless told not to: no `stream` member at all.
  { name: 'Ollama /api/chat, streamed (NDJSON)', path: '/api/chat', body: { model: 'm-ollama', messages }, wire: 'ollama', kind: 'chat', framing: 'ndjson', carrier: /"done":true/, usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'Ollama /api/generate', path: '/api/generate', body: { model: 'm-ollama', prompt: 'hi', stream: false }, wire: 'ollama', kind: 'chat', usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'Ollama /api/generate, streamed (NDJSON)', path: '/api/generate', body: { model: 'm-ollama', prompt: 'hi', stream: true }, wire: 'ollama', kind: 'chat', framing: 'ndjson', carrier: /"done":true/, usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'Ollama /api/embed', path: '/api/embed', body: { model: 'm-ollama', input: ['a'] }, wire: 'ollama', kind: 'embedding', usage: { promptTokens: 21 }, expectsUsage: true },
  { name: 'TGI /generate', path: '/generate', body: { inputs: 'hi', parameters: { details: true } }, wire: 'tgi', kind: 'chat', usage: { completionTokens: 4 }, expectsUsage: false },
  { name: 'TGI /generate_stream', path: '/generate_stream', body: { inputs: 'hi', parameters: { details: true } }, wire: 'tgi', kind: 'chat', framing: 'sse', carrier: /"generated_text":"/, usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: false },
  { name: 'llama.cpp /completion', path: '/completion', body: { prompt: 'hi' }, wire: 'llamacpp', kind: 'chat', usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'llama.cpp /completion, streamed', path: '/completion', body: { prompt: 'hi', stream: true }, wire: 'llamacpp', kind: 'chat', framing: 'sse', carrier: /"stop":true/, usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: "llama.cpp's /completions alias, streamed", path: '/completions', body: { prompt: 'hi', stream: true }, wire: 'llamacpp', kind: 'chat', framing: 'sse', carrier: /"stop":true/, usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'Anthropic Messages', path: '/v1/messages', body: { model: 'm-claude', max_tokens: 16, messages }, wire: 'anthropic', kind: 'chat', usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
  { name: 'Anthropic Messages, streamed', path: '/v1/messages', body: { model: 'm-claude', max_tokens: 16, messages, stream: true }, wire: 'anthropic', kind: 'chat', framing: 'sse', carrier: /^event: message_delta\n/, usage: { promptTokens: 21, completionTokens: 4 }, expectsUsage: true },
];
const STREAMED = CASES.filter((c) => c.framing !== undefined);

/** A machine drawing a constant 250 W, measured; the meter reads the clock just before the source. */
function constantPower(): { source: EnergySource; clock: () => number } {
  const start = performance.now();
  let now = start;
  const seconds = () => (now - start) / 1000;
  return { clock: () => (now = performance.now()), source: { name: 'constant 250 W', measured: true, read: () => ({ gpuJoules: 200 * seconds(), cpuJoules: 50 * seconds() }) } };
}

type Front = { url: string; meter: EnergyMeter; booked: BookedRequest[]; warnings: string[]; proxy?: CarbonProxy; close(): Promise<void> };

let upstream: WireServer;
beforeAll(async () => {
  upstream = await startWireServer();
  upstream.modelName = 'served-model';
});
afterAll(() => upstream.close());

async function startProxy(): Promise<Front> {
  const { source, clock } = constantPower();
  const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 10, onWarning: false });
  const booked: BookedRequest[] = [];
  const warnings: string[] = [];
  const proxy = createCarbonProxy({ upstream: upstream.baseURL, meter, gridIntensity: { gCo2PerKwh: 100 }, onWarning: (m) => void warnings.push(m), onBooked: (b) => void booked.push(b) });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  return {
    url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`,
    meter,
    booked,
    warnings,
    proxy,
    close: async () => {
      await proxy.close();
      await meter.close();
    },
  };
}

async function startHandler(): Promise<Front> {
  const { source, clock } = constantPower();
  const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 10, onWarning: false });
  const booked: BookedRequest[] = [];
  const warnings: string[] = [];
  const forward = (request: Request) => {
    const url = new URL(request.url);
    return fetch(new URL(url.pathname + url.search, upstream.baseURL), { method: request.method, headers: request.headers, body: request.body, signal: request.signal, duplex: 'half' } as RequestInit);
  };
  const handler = withCarbonTrace(forward, { meter, gridIntensity: { gCo2PerKwh: 100 }, onWarning: (m) => void warnings.push(m), onBooked: (b) => void booked.push(b) });
  const server: Server = createServer(createRequestListener(handler, { onError: () => undefined }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    meter,
    booked,
    warnings,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await meter.close();
    },
  };
}

const post = (base: string, c: Pick<Case, 'path' | 'body'>) => fetch(`${base}${c.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(c.body) });

/** Ids the fixture numbers per response: two answers to the same request differ only there. */
const sameIds = (text: string) => text.replace(/(resp|msg|chatcmpl|rerank|score)([-_])\d+/g, '$1$2N');
const framesOf = (text: string, framing: 'sse' | 'ndjson') => (framing === 'sse' ? text.split(/(?<=\n\n)/) : text.split(/(?<=\n)/));
const dataOf = (frame: string, framing: 'sse' | 'ndjson') => JSON.parse(framing === 'sse' ? frame.split('\n').find((l) => l.startsWith('data:'))!.replace(/^data: ?/, '') : frame);
/** The text without the trace the proxy spliced in (written as JSON.stringify writes it: its values are ASCII). */
const withoutTrace = (text: string, trace: unknown) => text.replace(`,"x_carbon_trace":${JSON.stringify(trace)}`, '');
/** Waits until the books of `n` requests are closed. */
const bookedCount = (front: Front, n: number) => vi.waitFor(() => expect(front.booked.length).toBeGreaterThanOrEqual(n), { timeout: 5_000, interval: 5 });

/** The one trace of an answer (where its case says it goes), and the answer without it. */
function traceIn(c: Case, text: string, where: 'carrier' | 'anywhere' = 'carrier'): { trace: Record<string, unknown> | undefined; rest: string; count: number } {
  if (c.framing === undefined) {
    const body = JSON.parse(text);
    const trace = Array.isArray(body) ? undefined : body.x_carbon_trace;
    return { trace, rest: trace === undefined ? text : withoutTrace(text, trace), count: trace === undefined ? 0 : 1 };
  }
  const frames = framesOf(text, c.framing).filter((f) => f.includes('x_carbon_trace'));
  if (frames.length !== 1) return { trace: undefined, rest: text, count: frames.length };
  if (where === 'carrier') expect(frames[0]).toMatch(c.carrier!);
  const data = dataOf(frames[0]!, c.framing);
  const trace = (c.inside ? data[c.inside] : data).x_carbon_trace;
  return { trace, rest: withoutTrace(text, trace), count: 1 };
}

describe.each([
  ['the proxy', startProxy],
  ['withCarbonTrace', startHandler],
] as const)('every wire through %s', (frontName, start) => {
  let front: Front;
  beforeAll(async () => {
    front = await start();
  });
  afterAll(() => front.close());
  afterEach(() => {
    upstream.reply = () => ({});
  });

  it.each(CASES)('$name: the trace where its wire puts it, every other byte as it came; booked with its wire, kind and tokens', async (c) => {
    upstream.reply = () => ({ text: TEXT, usage: USAGE });
    const direct = await (await post(upstream.baseURL, c)).text();
    const before = front.booked.length;
    const response = await post(front.url, c);
    const text = await response.text();
    expect(response.status).toBe(200);
    const { trace, rest, count } = traceIn(c, text);
    expect(sameIds(rest)).toBe(sameIds(direct));
    await bookedCount(front, before + 1);
    const booked = front.booked.at(-1)!;
    expect(booked).toMatchObject({ status: 200, wire: c.wire, kind: c.kind, streamed: c.framing !== undefined, usage: c.usage, expectsUsage: c.expectsUsage });
    if (c.bare) {
      expect(count).toBe(0);
      expect(booked.traceDelivered).toBe(false);
      expect(booked.trace).toBeUndefined();
      expect(booked.energy.totalJoules).toBeGreaterThanOrEqual(0);
      return;
    }
    expect(count).toBe(1);
    expect(booked.traceDelivered).toBe(true);
    // The trace the client got is the one booked: its energy is the meter's figure for the request.
    expect(trace).toEqual(booked.trace);
    expect(trace!.energy_consumed_wh as number).toBeCloseTo(booked.energy.totalJoules! / 3600, 12);
    expect(trace).toMatchObject({ measured: true, tracking_active: true, grid_intensity_g_co2_per_kwh: 100 });
    if (c.usage.promptTokens !== undefined) expect(trace!.prompt_tokens).toBe(c.usage.promptTokens);
    if (c.usage.completionTokens !== undefined) expect(trace!.completion_tokens).toBe(c.usage.completionTokens);
  });

  it.each(CASES)('$name: an upstream error passes as it came (that wire\'s error body), booked, no trace', async (c) => {
    upstream.reply = () => ({ status: 503 });
    const direct = await (await post(upstream.baseURL, c)).text();
    const before = front.booked.length;
    const response = await post(front.url, c);
    expect(response.status).toBe(503);
    expect(await response.text()).toBe(direct);
    await bookedCount(front, before + 1);
    expect(front.booked.at(-1)).toMatchObject({ status: 503, wire: c.wire, kind: c.kind, trace: undefined, traceDelivered: false, expectsUsage: false });
  });

  it.each(CASES.filter((c) => !c.bare))("$name: the upstream's own trace wins, unchanged, with the warning; ours is booked only", async (c) => {
    upstream.reply = () => ({ text: TEXT, usage: USAGE, trace: OWN_TRACE });
    const direct = await (await post(upstream.baseURL, c)).text();
    const before = front.booked.length;
    front.warnings.length = 0;
    const text = await (await post(front.url, c)).text();
    expect(sameIds(text)).toBe(sameIds(direct));
    // The fixture puts its own where the wire's servers would (chat: on the finish chunk, before the usage chunk).
    expect(traceIn(c, text, 'anywhere').trace).toEqual(OWN_TRACE);
    await bookedCount(front, before + 1);
    expect(front.booked.at(-1)).toMatchObject({ status: 200, traceDelivered: false, trace: undefined });
    expect(front.warnings).toContain(UPSTREAM_TRACE_WARNING);
  });

  it.each(STREAMED)('$name: a stream the upstream cuts reaches the client cut, without a trace, and is booked', async (c) => {
    upstream.reply = () => ({ text: TEXT, usage: USAGE, cutAfterEvents: 3 });
    const before = front.booked.length;
    const response = await post(front.url, c);
    expect(response.status).toBe(200);
    let received = '';
    const reader = response.body!.getReader();
    const error = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return undefined;
          received += Buffer.from(value).toString('utf8');
        }
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeDefined();
    expect(received).not.toContain('x_carbon_trace');
    await bookedCount(front, before + 1);
    const booked = front.booked.at(-1)!;
    // An upstream's cut is booked as 502 by both (an alert on 502s must see it), whatever status went before it.
    expect(booked).toMatchObject({ status: 502, trace: undefined, traceDelivered: false, wire: c.wire });
  });

  it('TGI and llama.cpp requests name no model: the books take the one the upstream lists (GET /info, /v1/models), fetched off the request path', async () => {
    upstream.reply = () => ({ text: TEXT, usage: USAGE });
    for (const c of CASES.filter((x) => x.wire === 'tgi' || x.wire === 'llamacpp')) {
      await vi.waitFor(
        async () => {
          const before = front.booked.length;
          await (await post(front.url, c)).text();
          await bookedCount(front, before + 1);
          // withCarbonTrace has no upstream to ask: the model stays unknown there.
          expect(front.booked.at(-1)!.model).toBe(frontName === 'the proxy' ? 'served-model' : undefined);
        },
        { timeout: 5_000, interval: 20 },
      );
    }
  });
});

describe('the proxy: books and conservation across every wire at once', () => {
  let front: Front;
  beforeAll(async () => {
    front = await startProxy();
  });
  afterAll(() => front.close());

  it("/carbon/stats books each wire's tokens per model, and each kind of call", async () => {
    upstream.reply = () => ({ text: TEXT, usage: USAGE });
    const ollama = CASES.filter((c) => c.wire === 'ollama' && c.kind === 'chat').map((c) => ({ ...c, body: { ...c.body, model: 'stats-ollama' } }));
    const anthropic = CASES.filter((c) => c.wire === 'anthropic').map((c) => ({ ...c, body: { ...c.body, model: 'stats-claude' } }));
    const embeddings = CASES.filter((c) => c.kind === 'embedding' && !c.bare);
    for (const c of [...ollama, ...anthropic, ...embeddings]) await (await post(front.url, c)).text();
    await bookedCount(front, ollama.length + anthropic.length + embeddings.length);
    const stats = await (await fetch(`${front.url}/carbon/stats`)).json();
    expect(stats.byModel['stats-ollama']).toMatchObject({ requests: 4, promptTokens: 4 * 21, completionTokens: 4 * 4 });
    expect(stats.byModel['stats-claude']).toMatchObject({ requests: 2, promptTokens: 2 * 21, completionTokens: 2 * 4 });
    expect(stats.byKind.embedding.requests).toBe(embeddings.length);
    expect(stats.byKind.chat.requests).toBe(ollama.length + anthropic.length);
  });

  it('Σ traces the clients got + the untraced requests\' energy = what the meter attributed, with every wire in flight at once', async () => {
    upstream.reply = () => ({ text: TEXT, usage: USAGE });
    const mix = [...CASES, ...CASES, ...CASES];
    const before = front.booked.length;
    const attributedBefore = front.meter.stats().attributedJoules;
    const answers = await Promise.all(mix.map(async (c) => ({ c, text: await (await post(front.url, c)).text() })));
    await bookedCount(front, before + mix.length);
    let tracedJoules = 0;
    let traced = 0;
    for (const { c, text } of answers) {
      const { trace, count } = traceIn(c, text);
      expect(count, c.name).toBe(c.bare ? 0 : 1);
      if (trace !== undefined) {
        tracedJoules += (trace.energy_consumed_wh as number) * 3600;
        traced++;
      }
    }
    const mine = front.booked.slice(before);
    const untracedJoules = mine.filter((b) => !b.traceDelivered).reduce((sum, b) => sum + b.energy.totalJoules!, 0);
    expect(traced).toBe(mix.filter((c) => !c.bare).length);
    expect(mine.filter((b) => b.traceDelivered).length).toBe(traced);
    const attributed = front.meter.stats().attributedJoules - attributedBefore;
    expect(attributed).toBeGreaterThan(0);
    expect(Math.abs(tracedJoules + untracedJoules - attributed)).toBeLessThan(1e-6 * Math.max(1, attributed));
    const stats = await (await fetch(`${front.url}/carbon/stats`)).json();
    expect(Math.abs(stats.attributedJoules + stats.inFlightJoules + stats.idleJoules + (stats.unattributedJoules ?? 0) - stats.totalJoules)).toBeLessThan(1e-6 * stats.totalJoules);
  });
});
