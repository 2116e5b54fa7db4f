/**
 * What an adversarial review of the proxy found, each held to account: a broken reason phrase,
 * routes that used the GPU off the books, slow bodies taking energy, unframed streams, loops,
 * foreign or shared ledgers, damaged snapshots, interim responses, transfer codings, spoofed
 * client addresses, and the admin token that keeps the books to their readers.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { createProxyBooks } from '../../src/server/books';
import { freePort } from './free-port';
import { raw } from './raw-http';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

let upstream: FixtureServer;
let origin: string;
const dirs: string[] = [];
beforeAll(async () => {
  upstream = await startFixtureServer();
  origin = new URL(upstream.baseURL).origin;
});
afterAll(async () => {
  await upstream?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'carbon-trace-adversary-'));
  dirs.push(d);
  return d;
};

/** A machine at a constant 100 W that the meter and the source read at one instant. */
function machine(): { source: EnergySource; clock: () => number } {
  let now = performance.now();
  const start = now;
  return { clock: () => (now = performance.now()), source: { name: '100 W', measured: true, read: () => ({ cpuJoules: (100 * (now - start)) / 1000 }) } };
}

type Running = { proxy: CarbonProxy; meter: EnergyMeter; url: string; port: number; warnings: string[] };
const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.proxy.close();
    await r.meter.close();
  }
});
async function start(options: Partial<Parameters<typeof createCarbonProxy>[0]> = {}): Promise<Running> {
  const { source, clock } = machine();
  const warnings: string[] = [];
  const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 20, onWarning: false });
  const proxy = createCarbonProxy({ upstream: origin, meter, onWarning: (w) => void warnings.push(w), shutdownGraceMs: 2_000, ...options });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  const port = (proxy.server.address() as AddressInfo).port;
  const r = { proxy, meter, port, url: `http://127.0.0.1:${port}`, warnings };
  running.push(r);
  return r;
}


const post = (url: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const settle = async (meter: EnergyMeter) => {
  for (let i = 0; i < 200 && meter.stats().activeRequests > 0; i++) await new Promise((r) => setTimeout(r, 10));
};

describe('the upstream speaks oddly', () => {
  it('a reason phrase Node cannot write (non-ASCII) does not kill the proxy: the client gets the answer', async () => {
    // A Latin-1 reason phrase, legal as obs-text, on every answer of a keep-alive connection.
    const answer = Buffer.from('HTTP/1.1 200 Caf\xe9\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\r\n{"id":"c1","choices":[]}\n', 'latin1');
    const odd = createNetServer((socket) => {
      let seen = '';
      socket.on('data', (d) => {
        seen += d.toString('latin1');
        // One answer per request: a request ends with its body after the blank line.
        for (let end = seen.indexOf('\r\n\r\n'); end >= 0; end = seen.indexOf('\r\n\r\n')) {
          const length = Number(/content-length:\s*(\d+)/i.exec(seen.slice(0, end))?.[1] ?? 0);
          if (seen.length < end + 4 + length) break;
          seen = seen.slice(end + 4 + length);
          socket.write(answer);
        }
      });
    });
    odd.listen(0, '127.0.0.1');
    await once(odd, 'listening');
    const r = await start({ upstream: `http://127.0.0.1:${(odd.address() as AddressInfo).port}` });
    for (let i = 0; i < 3; i++) {
      const response = await post(r.url, '/v1/chat/completions', { model: 'm' });
      expect(response.status).toBe(200);
      expect((await response.json()).x_carbon_trace).toBeDefined();
    }
    expect((await fetch(`${r.url}/carbon/stats`)).status).toBe(200);
    odd.close();
  });

  it('an unframed stream (no blank lines) passes as it comes, not held whole', async () => {
    const line = `data: ${JSON.stringify({ choices: [{ delta: { content: 'x'.repeat(100) } }] })}\n`;
    upstream.reply = () => ({ raw: { headers: { 'content-type': 'text/event-stream' }, chunks: Array.from({ length: 1500 }, () => line) } });
    const r = await start();
    const text = await (await post(r.url, '/v1/chat/completions', { model: 'm', stream: true })).text();
    expect(text).toBe(line.repeat(1500));
    expect(r.warnings.some((w) => w.includes('without an event boundary'))).toBe(true);
  });
});

describe('every request that makes the upstream work is on the books', () => {
  it('embeddings and an encoded completion path are metered and booked per key; a traced request beside them gets its share, not theirs', async () => {
    upstream.reply = () => ({ content: 'slow answer', latencyMs: 150 });
    const r = await start({ keyIdSecret: 's' });
    const traced = post(r.url, '/v1/chat/completions', { model: 'honest' }, { authorization: 'Bearer sk-honest' }).then((x) => x.json());
    await new Promise((resolve) => setTimeout(resolve, 20));
    const sneaky = post(r.url, '/v1/chat/%63ompletions', { model: 'sneaky' }, { authorization: 'Bearer sk-mallory' }).then((x) => x.json());
    const embeddings = post(r.url, '/v1/embeddings', { model: 'embedder', input: 'x' }, { authorization: 'Bearer sk-mallory' }).then((x) => x.text());
    const [honest, encoded] = await Promise.all([traced, sneaky, embeddings]);
    await settle(r.meter);
    // The decoded path is a completion: it is traced like one.
    expect(encoded.x_carbon_trace.energy_consumed_wh).toBeGreaterThan(0);
    // Sharing the machine with two others for most of its time, the honest one shows well under the machine's 100 W.
    expect(honest.x_carbon_trace.cpu_power_watts).toBeLessThan(90);
    const stats = await r.proxy.stats();
    expect(stats.requests).toBe(3);
    expect(stats.byModel.embedder?.requests).toBe(1);
    const mallory = Object.entries(stats.byApiKey).find(([, row]) => row.requests === 2);
    expect(mallory).toBeDefined();
    expect(Object.values(stats.byModel).reduce((s, row) => s + row.joules, 0)).toBeCloseTo(stats.attributedJoules, 9);
  });

  it('a request is in flight from when its body has arrived: a client holding its body takes no energy', async () => {
    upstream.reply = () => ({ content: 'fast', latencyMs: 100 });
    const r = await start();
    // Twenty clients that send headers and half a body, and hold.
    const holders = Array.from({ length: 20 }, () => {
      const socket = connect(r.port, '127.0.0.1');
      socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":"held"');
      return socket;
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const honest = (await (await post(r.url, '/v1/chat/completions', { model: 'honest' })).json()).x_carbon_trace;
      // Alone in flight, it gets the whole machine: 100 W over its own span.
      expect(honest.cpu_power_watts).toBeCloseTo(100, 6);
    } finally {
      for (const s of holders) s.destroy();
    }
  });
});

describe('the own routes and the network', () => {
  it('with an admin token, the books answer only requests that bring it; the dashboard page itself loads', async () => {
    const r = await start({ adminToken: 'let-me-read' });
    for (const path of ['/carbon/stats', '/metrics', '/api/v1/carbon/inference/stats']) {
      expect((await fetch(`${r.url}${path}`)).status).toBe(401);
      expect((await fetch(`${r.url}${path}`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${r.url}${path}`, { headers: { authorization: 'Bearer let-me-read' } })).status).toBe(200);
    }
    expect((await fetch(`${r.url}/carbon/stats?token=let-me-read`)).status).toBe(200);
    expect((await fetch(`${r.url}/carbon`)).status).toBe(200);
  });

  it('an upstream that sends requests back to this proxy is a loop: 508, once', async () => {
    const { source, clock } = machine();
    const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 20, onWarning: false });
    const port = await freePort();
    const proxy = createCarbonProxy({ upstream: `http://127.0.0.1:${port}`, meter, onWarning: false });
    proxy.server.listen(port, '127.0.0.1');
    await once(proxy.server, 'listening');
    running.push({ proxy, meter, port, url: '', warnings: [] });
    const response = await post(`http://127.0.0.1:${port}`, '/v1/chat/completions', { model: 'm' });
    expect(response.status).toBe(508);
    await settle(meter);
    expect((await proxy.stats()).requests).toBeLessThanOrEqual(2);
  });

  it('Expect: 100-continue over the limit gets 413 without 100 Continue; a transfer coding other than chunked gets 501', async () => {
    const r = await start({ maxBodyBytes: 1000 });
    const big = await raw(r.port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n');
    expect(big).toMatch(/^HTTP\/1\.1 413 /);
    expect(big).not.toContain('100 Continue');
    const small = await raw(r.port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{"model":"m"}');
    expect(small).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    upstream.requests.length = 0;
    const gz = await raw(r.port, 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    expect(gz).toMatch(/^HTTP\/1\.1 501 /);
    expect(upstream.requests).toEqual([]);
  });

  it('the client cannot claim another address: X-Real-IP is set, Forwarded gets the real hop', async () => {
    const r = await start();
    upstream.requests.length = 0;
    await post(r.url, '/v1/chat/completions', { model: 'm' }, { 'x-real-ip': '10.0.0.1', forwarded: 'for=10.0.0.1' });
    const seen = upstream.requests.at(-1)!.headers;
    expect(seen['x-real-ip']).toBe('127.0.0.1');
    expect(seen.forwarded).toBe('for=10.0.0.1, for=127.0.0.1;proto=http;host="' + new URL(r.url).host + '"');
  });
});

describe('ledgers and snapshots', () => {
  it('a file that is not a ledger is left alone; two proxies never share one; a damaged snapshot only costs a full read', async () => {
    const dir = tempDir();
    const notes = join(dir, 'notes.txt');
    writeFileSync(notes, 'my notes\nno newline at the end');
    const { source, clock } = machine();
    const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 20, onWarning: false });
    expect(() => createCarbonProxy({ upstream: origin, meter, ledger: notes, onWarning: false })).toThrow(/: not a carbon-trace ledger/);
    expect(readFileSync(notes, 'utf8')).toBe('my notes\nno newline at the end');

    const ledger = join(dir, 'ledger.csv');
    const first = await start({ ledger });
    expect(() => createCarbonProxy({ upstream: origin, meter, ledger, onWarning: false })).toThrow(new RegExp(`in use by another carbon-trace \\(pid ${process.pid}\\)|in use`));
    await post(first.url, '/v1/chat/completions', { model: 'm' });
    await settle(first.meter);
    const before = await first.proxy.stats();
    await first.proxy.close();
    await first.meter.close();
    running.splice(running.indexOf(first), 1);
    writeFileSync(`${ledger}.snapshot.json`, JSON.stringify({ version: 1, ledgerBytes: 10, carried: { requests: '12', total: { cpu: 'lots' } } }));
    const second = await start({ ledger });
    const after = await second.proxy.stats();
    expect(second.warnings.some((w) => w.includes('snapshot does not match'))).toBe(true);
    expect(after.requests).toBe(before.requests);
    expect(after.attributedJoules).toBeCloseTo(before.attributedJoules, 9);
    await meter.close();
  });

  it('idle emissions accrue at the grid of their time, not of the next look', () => {
    vi.useFakeTimers();
    try {
      let idleJoules = 0;
      let g = { gCo2PerKwh: 100, source: 'hour 1' };
      const stats = () => ({ idleJoules, unattributedJoules: 0 }) as never;
      const books = createProxyBooks({ warn: () => {}, meterStats: stats, gridNow: () => g });
      idleJoules = 3.6e6; // 1 kWh while the grid is at 100 g/kWh
      vi.advanceTimersByTime(1_000);
      g = { gCo2PerKwh: 1000, source: 'hour 2' };
      idleJoules = 2 * 3.6e6; // another kWh at 1000
      vi.advanceTimersByTime(1_000);
      const c = books.combine({ ...(stats() as object), byComponent: {}, totalJoules: 0, attributedJoules: 0, inFlightJoules: 0, requests: 0, requestsWithoutFigure: 0 } as never, g);
      expect(books.views(c).idleGrams).toBeCloseTo(100 + 1000, 9);
      books.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
