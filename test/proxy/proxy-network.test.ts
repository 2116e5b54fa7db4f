/**
 * The proxy as something that stands on a network: it reaches its upstream and nothing else, bounds
 * what clients send, shows no secret, follows the proxy header rules, and changes no byte it does
 * not own — tested in-process over loopback with raw sockets where a client library would tidy
 * the request up.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync, gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, withCarbonTrace, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { raw } from './raw-http';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

let upstream: FixtureServer;
let origin: string;
// Another host on the network, which the proxy must never reach.
let bystander: Server;
let bystanderHits: string[] = [];
let bystanderPort = 0;

beforeAll(async () => {
  upstream = await startFixtureServer();
  origin = new URL(upstream.baseURL).origin;
  bystander = createServer((req, res) => {
    bystanderHits.push(`${req.method} ${req.url} auth=${req.headers.authorization ?? ''}`);
    res.end('{"secret":"instance metadata"}');
  });
  bystander.listen(0, '127.0.0.1');
  await once(bystander, 'listening');
  bystanderPort = (bystander.address() as AddressInfo).port;
});
afterAll(async () => {
  await upstream?.close();
  bystander?.close();
});

/** A machine at a constant 100 W, measured, on the meter's own clock. */
function constantSource(): { source: EnergySource; clock: () => number } {
  let now = performance.now();
  const start = now;
  return { clock: () => (now = performance.now()), source: { name: '100 W', measured: true, read: () => ({ cpuJoules: (100 * (now - start)) / 1000 }) } };
}

type Running = { proxy: CarbonProxy; meter: EnergyMeter; port: number; url: string };
let running: Running | undefined;
afterEach(async () => {
  await running?.proxy.close();
  await running?.meter.close();
  running = undefined;
  bystanderHits = [];
});

async function start(options: Partial<Parameters<typeof createCarbonProxy>[0]> = {}, idle: 'exclude' | 'share' = 'exclude'): Promise<Running> {
  const { source, clock } = constantSource();
  const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 20, idle, onWarning: false });
  const proxy = createCarbonProxy({ upstream: origin, meter, onWarning: false, ...options });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  const port = (proxy.server.address() as AddressInfo).port;
  running = { proxy, meter, port, url: `http://127.0.0.1:${port}` };
  return running;
}


const chat = (url: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }) });

const settle = async (meter: EnergyMeter) => {
  for (let i = 0; i < 100 && meter.stats().activeRequests > 0; i++) await new Promise((r) => setTimeout(r, 10));
};

describe('it only ever reaches its upstream', () => {
  it.each([
    ['//127.0.0.1:BYSTANDER/latest/meta-data'],
    ['//127.0.0.1:BYSTANDER'],
    ['/%2F%2F127.0.0.1:BYSTANDER/x'],
  ])('the target %s goes to the upstream as a path, never to another host', async (target) => {
    const { port } = await start();
    upstream.requests.length = 0;
    const path = target.replace('BYSTANDER', String(bystanderPort));
    const answer = await raw(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer sk-secret\r\nConnection: close\r\n\r\n`);
    expect(answer).not.toContain('instance metadata');
    expect(bystanderHits).toEqual([]);
    expect(upstream.requests.map((r) => r.path)).toEqual([path]);
  });

  it.each([
    [`GET /.//127.0.0.1:BYSTANDER/latest/meta-data HTTP/1.1\r\nHost: localhost\r\n`],
    [`GET /base/../admin HTTP/1.1\r\nHost: localhost\r\n`],
    [`GET /v1/%2e%2e/admin HTTP/1.1\r\nHost: localhost\r\n`],
    [`GET /v1/%zz HTTP/1.1\r\nHost: localhost\r\n`],
    [`GET http://127.0.0.1:BYSTANDER/latest/meta-data HTTP/1.1\r\nHost: 127.0.0.1:BYSTANDER\r\n`],
    [`OPTIONS * HTTP/1.1\r\nHost: localhost\r\n`],
    [`CONNECT 127.0.0.1:BYSTANDER HTTP/1.1\r\nHost: 127.0.0.1:BYSTANDER\r\n`],
  ])('a target that is not a plain path (not origin-form, dot segments, broken escapes) is refused: %j', async (head) => {
    const { port } = await start();
    upstream.requests.length = 0;
    const answer = await raw(port, `${head.replaceAll('BYSTANDER', String(bystanderPort))}Connection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(bystanderHits).toEqual([]);
    expect(upstream.requests).toEqual([]);
  });

  it('a base path is kept, joined as a string', async () => {
    const { source, clock } = constantSource();
    const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 20, onWarning: false });
    const proxy = createCarbonProxy({ upstream: `${origin}/base/`, meter, onWarning: false });
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    running = { proxy, meter, port: (proxy.server.address() as AddressInfo).port, url: '' };
    upstream.requests.length = 0;
    await raw(running.port, `GET //127.0.0.1:${bystanderPort}/x?y=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    expect(upstream.requests.map((r) => r.path)).toEqual([`/base//127.0.0.1:${bystanderPort}/x?y=1`]);
    expect(bystanderHits).toEqual([]);
  });
});

describe('bounded bodies', () => {
  it('a declared body over the limit gets 413 before a byte of it is read; the upstream sees nothing', async () => {
    const { port, meter } = await start({ maxBodyBytes: 1024 * 1024 });
    upstream.requests.length = 0;
    // Headers only: the proxy must answer without waiting for the 100 MB it was promised.
    const answer = await raw(port, `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('larger than the limit of 1048576 bytes');
    expect(upstream.requests).toEqual([]);
    expect(meter.stats().requests).toBe(0);
  });

  it('a chunked body that grows past the limit is cut at the limit, with 413, and the proxy keeps serving', async () => {
    const { url, port, meter } = await start({ maxBodyBytes: 64 * 1024 });
    const chunk = 'x'.repeat(16 * 1024);
    const chunks = Array.from({ length: 10 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
    const answer = await raw(port, `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    await settle(meter);
    upstream.reply = () => ({ content: 'still serving' });
    expect((await (await chat(url)).json()).choices[0].message.content).toBe('still serving');
  });

  it('a body under the limit is forwarded whole, and its model and user are read on the way', async () => {
    const { url, proxy } = await start({ maxBodyBytes: 4 * 1024 * 1024 });
    upstream.reply = (req) => ({ content: `got ${String(req.body.messages?.[0]?.content).length}` });
    const image = 'A'.repeat(3 * 1024 * 1024);
    const body = await (await chat(url, { messages: [{ role: 'user', content: image }], model: 'llava "7b"', user: 'u-1' })).json();
    expect(body.choices[0].message.content).toBe(`got ${image.length}`);
    expect(body.x_carbon_trace.energy_consumed_wh).toBeGreaterThan(0);
    expect(Object.keys((await proxy.stats()).byModel)).toEqual(['llava "7b"']);
  });
});

describe('no secret shown', () => {
  it('credentials in the upstream URL are refused, and appear in no message', () => {
    const meter = createEnergyMeter({ sources: [], sampleIntervalMs: 0 });
    expect(() => createCarbonProxy({ upstream: 'http://admin:s3cret@127.0.0.1:1', meter })).toThrow(/must not carry credentials/);
    try {
      createCarbonProxy({ upstream: 'http://admin:s3cret@127.0.0.1:1', meter });
    } catch (error) {
      expect(String(error)).not.toContain('s3cret');
    }
    void meter.close();
  });
});

describe('headers, as a proxy must treat them', () => {
  it('hop-by-hop headers and those Connection names stop here; X-Forwarded-* are set; a changed body has a weak ETag', async () => {
    const { port } = await start({ allowedHosts: ['gpu-box'] });
    upstream.requests.length = 0;
    const body = JSON.stringify({ model: 'm', messages: [] });
    upstream.reply = () => ({
      raw: {
        headers: { 'content-type': 'application/json', etag: '"v1"', connection: 'X-Up-Hop', 'x-up-hop': 'secret', 'x-kept': 'yes', 'content-md5': 'abc' },
        chunks: ['{"id":"c1","choices":[]}'],
      },
    });
    const answer = await raw(
      port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: gpu-box:8787\r\nConnection: close, X-Client-Hop\r\nX-Client-Hop: secret\r\nX-Forwarded-For: 203.0.113.9\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    const seen = upstream.requests.at(-1)!.headers;
    expect(seen['x-client-hop']).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('gpu-box:8787');
    expect(seen.host).toBe(new URL(origin).host);
    const [head, payload] = answer.split('\r\n\r\n');
    expect(head).not.toMatch(/x-up-hop/i);
    expect(head).toMatch(/^x-kept: yes$/im);
    expect(head).toMatch(/^etag: W\/"v1"$/im);
    expect(head).not.toMatch(/content-md5/i);
    expect(JSON.parse(payload!).x_carbon_trace).toBeDefined();
    expect(Number(/content-length: (\d+)/i.exec(head!)?.[1])).toBe(Buffer.byteLength(payload!, 'latin1'));
  });

  it('other routes pass compressed bodies through untouched; completions are asked for uncompressed', async () => {
    const { url } = await start();
    upstream.requests.length = 0;
    await chat(url);
    expect(upstream.requests.at(-1)!.headers['accept-encoding']).toBe('identity');
  });
});

describe('bytes the client gets are the upstream\'s, plus the trace', () => {
  const rawJson = (bytes: Buffer | string, type: string) => () => ({ raw: { headers: { 'content-type': type }, chunks: [bytes] } });

  it.each([
    ['ISO-8859-1 body', Buffer.from('{"id":"café","choices":[]}', 'latin1'), 'application/json; charset=iso-8859-1'],
    ['UTF-8 body with a BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"id":"né","choices":[]}\n')]), 'application/json'],
    ['empty object, spaces around', Buffer.from('  { }  '), 'application/json'],
  ])('%s: every byte kept, the trace spliced in as ASCII', async (_name, bytes, type) => {
    const { url } = await start({ gridIntensity: { gCo2PerKwh: 56, source: 'Électricité (test)' } });
    upstream.reply = rawJson(bytes, type);
    const response = await chat(url);
    expect(response.headers.get('content-type')).toBe(type);
    const out = Buffer.from(await response.arrayBuffer());
    const at = out.indexOf('"x_carbon_trace":');
    expect(at).toBeGreaterThan(0);
    const close = bytes.lastIndexOf('}');
    const separatorLength = bytes.subarray(bytes.indexOf('{') + 1, close).toString().trim() === '' ? 0 : 1;
    // Before the member: the upstream's bytes up to its last brace; after it: the same brace and what followed.
    expect(out.subarray(0, at - separatorLength).equals(bytes.subarray(0, close))).toBe(true);
    expect(out.subarray(out.length - (bytes.length - close)).equals(bytes.subarray(close))).toBe(true);
    const member = out.subarray(at, out.length - (bytes.length - close)).toString('latin1');
    expect(member).toMatch(/^[\x20-\x7e]+$/); // ASCII: the same bytes in any ASCII-compatible charset
    expect(JSON.parse(`{${member}}`).x_carbon_trace.grid_intensity_source).toBe('Électricité (test)');
  });

  it('an array body, an error page and a UTF-16 body pass untouched, with a length that is right', async () => {
    const { url } = await start();
    for (const [bytes, type] of [
      [Buffer.from('[{"id":"c1"}]'), 'application/json'],
      [Buffer.from('<html>oops</html>'), 'text/html'],
      [Buffer.from('{"id":"x"}', 'utf16le'), 'application/json; charset=utf-16le'],
    ] as const) {
      upstream.reply = rawJson(bytes, type);
      const response = await chat(url);
      const out = Buffer.from(await response.arrayBuffer());
      expect(out.equals(bytes)).toBe(true);
    }
  });

  it('an upstream that measures itself keeps its trace, on JSON and on streams alike (one trace, theirs)', async () => {
    const { url } = await start();
    const theirs = { emissions_g_co2: 1.5, energy_consumed_wh: 3, measured: true };
    upstream.reply = () => ({ content: 'a b', trace: theirs });
    const json = await (await chat(url)).text();
    expect(json.split('"x_carbon_trace"').length - 1).toBe(1);
    expect(JSON.parse(json).x_carbon_trace).toEqual(theirs);
    const stream = await (await chat(url, { stream: true })).text();
    expect(stream.split('"x_carbon_trace"').length - 1).toBe(1);
    const event = stream.split('\n\n').find((e) => e.includes('x_carbon_trace'))!;
    expect(JSON.parse(event.slice(6)).x_carbon_trace).toEqual(theirs);
  });

  it('a keep-alive comment between the finish chunk and [DONE] keeps its place, and the trace still lands', async () => {
    const { url } = await start();
    const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
    const events = [
      chunk({ id: 'c', choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] }),
      chunk({ id: 'c', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
      ': keep-alive\n\n',
      'data: [DONE]\n\n',
    ];
    upstream.reply = () => ({ raw: { headers: { 'content-type': 'text/event-stream' }, chunks: events }, delayMs: 5 });
    const out = (await (await chat(url, { stream: true })).text()).split(/(?<=\n\n)/);
    expect(out).toHaveLength(4);
    expect(out[0]).toBe(events[0]);
    expect(JSON.parse(out[1]!.slice(6)).x_carbon_trace.energy_consumed_wh).toBeGreaterThan(0);
    expect(out.slice(2)).toEqual(events.slice(2));
  });

  it('library mode (withCarbonTrace over fetch) in front of a gzip upstream: the client reads the body', async () => {
    const gz = createServer((req, res) => {
      req.resume();
      const body = gzipSync(JSON.stringify({ id: 'c1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'zipped' }, finish_reason: 'stop' }] }));
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
      res.end(body);
    });
    gz.listen(0, '127.0.0.1');
    await once(gz, 'listening');
    const gzOrigin = `http://127.0.0.1:${(gz.address() as AddressInfo).port}`;
    const { source, clock } = constantSource();
    const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 20, onWarning: false });
    // The README's own example: a handler that forwards with fetch.
    const handler = withCarbonTrace((request) => fetch(new URL(new URL(request.url).pathname, gzOrigin), request), { meter, onWarning: false });
    const response = await handler(new Request('http://proxy/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' }, body: '{"model":"m"}' }));
    expect(response.headers.get('content-encoding')).toBeNull();
    const body = await response.json();
    expect(body.choices[0].message.content).toBe('zipped');
    expect(body.x_carbon_trace.energy_consumed_wh).toBeGreaterThan(0);
    expect(gunzipSync(gzipSync('ok')).toString()).toBe('ok');
    gz.close();
    await meter.close();
  });
});
