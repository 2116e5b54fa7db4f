/**
 * The proxy on a network, as issue #26's review found it: slow clients held 30 s, an admin token
 * that failed open, a name rebound to 127.0.0.1, two proxies forwarding to each other, and
 * `/metrics/` passed to the model server. Each case fails on the code before.
 */
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { packedProject, runPacked, startPackedProxy } from './packed-cli';
import { freePort } from './free-port';
import { raw } from './raw-http';

let upstream: FixtureServer;
let origin: string;
beforeAll(async () => {
  upstream = await startFixtureServer();
  origin = new URL(upstream.baseURL).origin;
});
afterAll(() => upstream?.close());

// Packed once per file, before the tests (a build when dist is older than src can take a while).
let project: string;
beforeAll(() => {
  project = packedProject('guards');
}, 120_000);


function machine(): { source: EnergySource; clock: () => number } {
  let now = performance.now();
  const start = now;
  return { clock: () => (now = performance.now()), source: { name: '100 W', measured: true, read: () => ({ cpuJoules: (100 * (now - start)) / 1000 }) } };
}

type Running = { proxy: CarbonProxy; meter: EnergyMeter; url: string; port: number };
const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.proxy.close();
    await r.meter.close();
  }
});
async function start(options: Partial<Parameters<typeof createCarbonProxy>[0]> = {}, port = 0): Promise<Running> {
  const { source, clock } = machine();
  const meter = createEnergyMeter({ sources: [source], clock, sampleIntervalMs: 20, onWarning: false });
  const proxy = createCarbonProxy({ upstream: origin, meter, onWarning: false, shutdownGraceMs: 1_000, ...options });
  proxy.server.listen(port, '127.0.0.1');
  await once(proxy.server, 'listening');
  const bound = (proxy.server.address() as AddressInfo).port;
  const r = { proxy, meter, port: bound, url: `http://127.0.0.1:${bound}` };
  running.push(r);
  return r;
}

/** ms from now until the server closes this socket (or `undefined` once `limitMs` passed with it open). */
function closedWithin(socket: Socket, limitMs: number): Promise<number | undefined> {
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, limitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
    socket.on('error', () => {});
    socket.resume();
  });
}

describe('slow clients are cut at the documented limits, not 30 s later', () => {
  it('the defaults: headers within 10 s, a whole request within 5 min, checked every second', async () => {
    const { proxy } = await start();
    expect(proxy.server.headersTimeout).toBe(10_000);
    expect(proxy.server.requestTimeout).toBe(300_000);
    // Node sets it from the option, and keeps it here.
    expect((proxy.server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval).toBe(1_000);
  });

  it('silent, trickling headers, trickling body: each cut within about a second of its limit (Node alone waits up to 30 s)', async () => {
    const { port } = await start({ headersTimeoutMs: 300, requestTimeoutMs: 800 });
    const silent = connect(port, '127.0.0.1');
    const trickle = connect(port, '127.0.0.1');
    const body = connect(port, '127.0.0.1');
    const timers: Array<ReturnType<typeof setInterval>> = [];
    await Promise.all([once(silent, 'connect'), once(trickle, 'connect'), once(body, 'connect')]);
    const header = 'POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ';
    let i = 0;
    timers.push(setInterval(() => trickle.write(header[i++ % header.length]!), 50));
    body.write('POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    timers.push(setInterval(() => body.write(' '), 50));
    try {
      const [a, b, c] = await Promise.all([closedWithin(silent, 10_000), closedWithin(trickle, 10_000), closedWithin(body, 10_000)]);
      // The limit, plus at most the checking interval, plus slack for a loaded machine: far below 30 s.
      for (const [what, ms] of [['silent', a], ['trickling headers', b], ['trickling body', c]] as const) {
        expect(ms, what).toBeDefined();
        expect(ms!, what).toBeLessThan(5_000);
      }
    } finally {
      for (const timer of timers) clearInterval(timer);
    }
  });
});

describe('the admin token', () => {
  it('empty or only whitespace is refused; a trailing newline (a secret file) is trimmed; ?token=%20 reads nothing', async () => {
    const meter = createEnergyMeter({ sources: [], onWarning: false });
    try {
      for (const token of ['', ' ', '\n', '\t \n']) expect(() => createCarbonProxy({ upstream: origin, meter, adminToken: token }), JSON.stringify(token)).toThrow(/admin token is empty/);
    } finally {
      await meter.close();
    }
    const { url } = await start({ adminToken: 'let-me-read\n' });
    expect((await fetch(`${url}/carbon/stats`, { headers: { authorization: 'Bearer let-me-read' } })).status).toBe(200);
    expect((await fetch(`${url}/carbon/stats?token=let-me-read`)).status).toBe(200);
    for (const token of ['%20', '', '%0A', 'let-me-read%0A%0A']) expect((await fetch(`${url}/carbon/stats?token=${token}`)).status, token).toBe(401);
  });

  it('the CLI: set but empty is an error; from a secret file it works; open books on a network address are noted', async () => {
    const empty = await runPacked(project, ['proxy', '--upstream', origin, '--port', '0', '--meter', 'estimate'], { env: { ...process.env, CARBON_TRACE_ADMIN_TOKEN: '' } });
    expect(empty.code).toBe(1);
    expect(empty.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^carbon-trace: CARBON_TRACE_ADMIN_TOKEN is set but empty/)]);
    const fromFile = await startPackedProxy(project, ['--upstream', origin, '--port', '0', '--meter', 'estimate'], { env: { ...process.env, CARBON_TRACE_ADMIN_TOKEN: 's3cret-token\n' } });
    try {
      expect((await fetch(`${fromFile.url}/metrics`, { headers: { authorization: 'Bearer s3cret-token' } })).status).toBe(200);
      expect((await fetch(`${fromFile.url}/metrics`)).status).toBe(401);
      expect(fromFile.lines.join('\n')).not.toMatch(/books .* are open/);
    } finally {
      await fromFile.stop();
    }
    const env = { ...process.env };
    delete env.CARBON_TRACE_ADMIN_TOKEN;
    const open = await startPackedProxy(project, ['--upstream', origin, '--port', '0', '--host', '0.0.0.0', '--meter', 'estimate'], { env });
    try {
      for (let i = 0; i < 50 && !open.lines.some((l) => l.includes('books')); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(open.lines).toContainEqual(expect.stringMatching(/^note: the books \(\/carbon\/stats, \/metrics, per API key and user\) are open to anyone who can reach this address: set CARBON_TRACE_ADMIN_TOKEN/));
    } finally {
      await open.stop();
    }
  }, 30_000);
});

describe('the key-id secret from the environment', () => {
  it('is trimmed like the admin token (a secret file\'s newline would give every key another id than the fleet\'s); set but empty is an error', async () => {
    const { createHmac } = await import('node:crypto');
    const proxy = await startPackedProxy(project, ['--upstream', origin, '--port', '0', '--meter', 'estimate'], { env: { ...process.env, CARBON_TRACE_KEY_ID_SECRET: 'fleet-secret\n' } });
    try {
      await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-one' }, body: '{"model":"m","messages":[]}' }).then((r) => r.text());
      const stats = await (await fetch(`${proxy.url}/carbon/stats`)).json();
      expect(Object.keys(stats.byApiKey)).toEqual([`key:${createHmac('sha256', 'fleet-secret').update('sk-one').digest('hex').slice(0, 12)}`]);
    } finally {
      await proxy.stop();
    }
    const empty = await runPacked(project, ['proxy', '--upstream', origin, '--port', '0', '--meter', 'estimate'], { env: { ...process.env, CARBON_TRACE_KEY_ID_SECRET: ' \n' } });
    expect(empty.code).toBe(1);
    expect(empty.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^carbon-trace: CARBON_TRACE_KEY_ID_SECRET is set but empty/)]);
  });
});

describe('Host names (DNS rebinding)', () => {
  it('a name the proxy was not given is refused, on the books and on the model alike; IP addresses and localhost pass', async () => {
    const { port } = await start();
    upstream.requests.length = 0;
    const body = '{"model":"m","messages":[]}';
    for (const host of ['rebind.attacker.example', 'rebind.attacker.example:80', 'evil', 'localhost.attacker.example']) {
      for (const request of [`GET /carbon/stats HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`]) {
        const answer = await raw(port, request);
        expect(answer, host).toMatch(/^HTTP\/1\.1 403 /);
        expect(answer).toMatch(/allow it with --allowed-host/);
      }
    }
    expect(upstream.requests).toEqual([]);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `[::1]:${port}`, `app.localhost:${port}`, `10.1.2.3:${port}`, 'LOCALHOST.']) {
      expect(await raw(port, `GET /carbon/stats HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), host).toMatch(/^HTTP\/1\.1 200 /);
    }
  });

  it('names given are allowed (a domain with a leading dot; a trailing dot or capitals change nothing); true allows any', async () => {
    const named = await start({ allowedHosts: ['gpu-box.', '.Internal.Example.'] });
    const status = async (port: number, host: string) => /^HTTP\/1\.1 (\d+)/.exec(await raw(port, `GET /carbon/stats HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`))![1];
    expect(await status(named.port, 'gpu-box:8787')).toBe('200');
    expect(await status(named.port, 'GPU-Box')).toBe('200');
    expect(await status(named.port, 'a.internal.example')).toBe('200');
    expect(await status(named.port, 'a.internal.example.')).toBe('200');
    expect(await status(named.port, 'gpu-box.')).toBe('200');
    expect(await status(named.port, 'internal.example')).toBe('200');
    expect(await status(named.port, 'xinternal.example')).toBe('403');
    expect(await status(named.port, 'gpu-box.evil.example')).toBe('403');
    const any = await start({ allowedHosts: true });
    expect(await status(any.port, 'whatever.example')).toBe('200');
  });
});

describe('loops through carbon-trace proxies', () => {
  it('two proxies pointing at each other: 508 within two hops, and no pile of connections', async () => {
    // B's port first, so A can be told to forward there.
    const bPort = await freePort();
    const a = await start({ upstream: `http://127.0.0.1:${bPort}` });
    const b = await start({ upstream: a.url }, bPort);
    let connections = 0;
    a.proxy.server.on('connection', () => connections++);
    b.proxy.server.on('connection', () => connections++);
    const response = await fetch(`${a.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' });
    expect(response.status).toBe(508);
    expect((await response.json()).error.message).toMatch(/a loop/);
    // The client's to A, A's to B, B's to A: three, not hundreds.
    expect(connections).toBeLessThanOrEqual(4);
  });

  it('a request that passed 8 carbon-trace proxies already is a loop too', async () => {
    const { url } = await start();
    upstream.requests.length = 0;
    const ids = Array.from({ length: 8 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`).join(', ');
    expect((await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-carbon-trace-proxy': ids }, body: '{"model":"m"}' })).status).toBe(508);
    expect(upstream.requests).toEqual([]);
    // Fewer pass, and the upstream sees this proxy added.
    const response = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-carbon-trace-proxy': 'another-proxy' }, body: '{"model":"m"}' });
    expect(response.status).toBe(200);
    expect(String(upstream.requests.at(-1)!.headers['x-carbon-trace-proxy'])).toMatch(/^another-proxy, [0-9a-f-]{36}$/);
  });
});

describe('the proxy\'s own routes, however spelled', () => {
  it('/metrics/, //metrics, /carbon/stats/ are the proxy\'s (and need its token): never the model server\'s own /metrics', async () => {
    const { port, url } = await start({ adminToken: 'tok' });
    upstream.requests.length = 0;
    for (const path of ['/metrics/', '//metrics', '/metrics//', '/carbon/stats/', '/api/v1/carbon/inference/stats/', '//carbon//stats']) {
      expect((await fetch(`${url}${path}`)).status, path).toBe(401);
      const answer = await raw(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tok\r\nConnection: close\r\n\r\n`);
      expect(answer, path).toMatch(/^HTTP\/1\.1 200 /);
    }
    expect((await fetch(`${url}/carbon/`)).status).toBe(200);
    expect(upstream.requests).toEqual([]);
  });

  it('no spelling reaches the model server\'s own metrics (vLLM serves every path that begins with /metrics), whatever the method', async () => {
    const { port } = await start();
    upstream.requests.length = 0;
    for (const path of ['/metrics;x', '/metrics.', '/metrics/x', '/metrics%20', '/metrics%00', '/metrics%3Bx', '/METRICS', '/Metrics/', '/metricsfoo']) {
      const answer = await raw(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      expect(answer, path).toMatch(/^HTTP\/1\.1 (200|404) /);
    }
    expect(await raw(port, 'GET /metrics#x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    for (const method of ['POST', 'OPTIONS', 'PUT', 'DELETE']) {
      const answer = await raw(port, `${method} /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      expect(answer, method).toMatch(/^HTTP\/1\.1 405 /);
      expect(answer).toMatch(/^allow: GET, HEAD$/im);
    }
    expect(upstream.requests).toEqual([]);
  });
});

describe('the books\' routes stay cheap', () => {
  it('?top=N gives the N rows with the most energy per table and says how many more there are; ?recent=N the last N requests', async () => {
    const { url, proxy } = await start();
    for (let i = 0; i < 5; i++) {
      await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer key-${i}` }, body: JSON.stringify({ model: `m${i}`, user: `u${i}`, messages: [] }) });
    }
    for (let i = 0; i < 100 && (await proxy.stats()).requests < 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    const all = await (await fetch(`${url}/carbon/stats`)).json();
    const top = await (await fetch(`${url}/carbon/stats?top=2&recent=1`)).json();
    expect(all.rowsOmitted).toBeUndefined();
    expect(Object.keys(all.byModel)).toHaveLength(5);
    for (const table of ['byModel', 'byApiKey', 'byUser']) {
      expect(Object.keys(top[table]), table).toHaveLength(2);
      expect(top.rowsOmitted[table], table).toBe(3);
      // The two with the most energy, as the whole table ranks them.
      const ranked = Object.entries(all[table] as Record<string, { joules: number }>).sort((a, b) => b[1].joules - a[1].joules).map(([name]) => name);
      expect(Object.keys(top[table]).sort(), table).toEqual(ranked.slice(0, 2).sort());
    }
    // Newest first: ?recent=1 is the last request, the first of the whole list.
    expect(top.recent).toEqual([all.recent[0]]);
    expect(all.recent.map((r: { model: string }) => r.model)).toEqual(['m4', 'm3', 'm2', 'm1', 'm0']);
    expect(top.requests).toBe(all.requests);
  });

  it('readers asking the same thing share one answer; past 16 distinct questions waiting, 503 with Retry-After, never a queue without end', async () => {
    const { url } = await start();
    const same = await Promise.all(Array.from({ length: 40 }, () => fetch(`${url}/carbon/stats?top=3`)));
    expect(same.map((r) => r.status)).toEqual(Array(40).fill(200));
    await Promise.all(same.map((r) => r.arrayBuffer()));
    const distinct = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`${url}/carbon/stats?top=${i}`)));
    for (const response of distinct) {
      expect([200, 503]).toContain(response.status);
      if (response.status === 503) {
        expect(response.headers.get('retry-after')).toBe('1');
        expect((await response.json()).error.message).toMatch(/too many readers of the books are waiting/);
      } else {
        await response.arrayBuffer();
      }
    }
    // The 16 that may wait are answered (and more, as turns end while the others arrive).
    expect(distinct.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(16);
  });

  it('/metrics has a lane of its own: a crowd of readers of /carbon/stats never turns Prometheus away', async () => {
    const { url } = await start();
    const crowd = Array.from({ length: 60 }, (_, i) => fetch(`${url}/carbon/stats?top=${i}`));
    const scrapes = await Promise.all(Array.from({ length: 5 }, () => fetch(`${url}/metrics`)));
    expect(scrapes.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    for (const response of await Promise.all(crowd)) await response.arrayBuffer();
  });

  it('/metrics puts only the small totals on file before it answers — not the tables — and what it showed is never above them', async () => {
    const { mkdtempSync, readFileSync, existsSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-guards-'));
    try {
      const ledger = join(dir, 'ledger.csv');
      const { url } = await start({ ledger });
      for (let i = 0; i < 3; i++) await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' });
      const text = await (await fetch(`${url}/metrics`)).text();
      expect(existsSync(`${ledger}.snapshot.json`)).toBe(false);
      const totals = JSON.parse(readFileSync(`${ledger}.meter.json`, 'utf8'));
      const shown = [...text.matchAll(/^carbon_trace_meter_energy_joules_total\{component="(\w+)"\} (\S+)$/gm)];
      expect(shown.length).toBeGreaterThan(0);
      for (const [, component, joules] of shown) expect(totals.carried.total[component!], component).toBeGreaterThanOrEqual(Number(joules));
      expect(totals.carried.requests).toBeGreaterThanOrEqual(Number(/^carbon_trace_closed_requests_total (\S+)$/m.exec(text)![1]));
    } finally {
      for (const r of running.splice(0)) {
        await r.proxy.close();
        await r.meter.close();
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
