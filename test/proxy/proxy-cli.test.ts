/**
 * `npx carbon-trace proxy` from the packed tarball, as a child process, in front of the loopback
 * fixture server: what it prints, what it proxies, the numbers it serves, and the bad input it
 * must survive while it keeps serving everyone else.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCarbonMetrics } from '../../src/index';
import { carbonTraceMiddleware } from '../../src/ai-sdk/index';
import { lastUserText, startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { MAJORS } from '../ai-sdk/majors';
import { packedProject, runPacked, startPackedProxy, type RunningProxy } from './packed-cli';

let upstream: FixtureServer;
let project: string;
let proxy: RunningProxy;
let origin: string;
beforeAll(async () => {
  project = packedProject('proxy-cli');
  upstream = await startFixtureServer();
  origin = new URL(upstream.baseURL).origin;
  proxy = await startPackedProxy(project, ['--upstream', origin, '--port', '0', '--grid-intensity', '56', '--sample-ms', '50']);
}, 180_000);
afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
});

const post = (path: string, body: unknown, init: RequestInit = {}) =>
  fetch(`${proxy.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
const chat = (body: Record<string, unknown> = {}, init?: RequestInit) => post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }, init);
const stats = async () => (await fetch(`${proxy.url}/carbon/stats`)).json();
const settle = async () => {
  for (let i = 0; i < 100 && (await stats()).activeRequests > 0; i++) await new Promise((r) => setTimeout(r, 20));
};

describe('carbon-trace proxy (the packed CLI)', () => {
  it('says what it does on its first lines: where it listens, what measures, the grid, the dashboard', () => {
    expect(proxy.lines[0]).toMatch(new RegExp(`^carbon-trace proxy listening on http://127\\.0\\.0\\.1:\\d+ → ${origin.replace(/[.:/]/g, '\\$&')}$`));
    expect(proxy.lines[1]).toMatch(/^meter: CPU: .*; GPU: .*; RAM: .*/);
    expect(proxy.lines[2]).toBe('grid: 56 gCO2eq/kWh (given with --grid-intensity)');
    expect(proxy.lines[3]).toMatch(/^dashboard: http:\/\/127\.0\.0\.1:\d+\/carbon/);
  });

  it('JSON completions gain x_carbon_trace; the AI SDK reads it', async () => {
    upstream.reply = () => ({ content: 'proxied answer', latencyMs: 20 });
    const { ai, model } = MAJORS[2]!;
    const wrapped = ai.wrapLanguageModel({ model: model(`${proxy.url}/v1`), middleware: carbonTraceMiddleware({ onWarning: false }) });
    const result = await ai.generateText({ model: wrapped, prompt: 'x' });
    expect(result.text).toBe('proxied answer');
    const metrics = getCarbonMetrics(result)!;
    expect(metrics.energyKwh).toBeGreaterThan(0);
    expect(metrics.gwpKgco2eq).toBeCloseTo(metrics.energyKwh! * 56 / 1000, 15);
  });

  it('streams with tool calls gain the trace on the last chunk; the stream is otherwise the upstream\'s', async () => {
    upstream.reply = () => ({ id: 'same', toolCalls: [{ id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}' }] });
    const body = { stream: true, stream_options: { include_usage: true }, tools: [{ type: 'function', function: { name: 'weather', parameters: {} } }] };
    const direct = (await (await fetch(`${upstream.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [], ...body }) })).text()).split('\n\n');
    const ours = (await (await chat({ ...body, messages: [] })).text()).split('\n\n');
    expect(ours.length).toBe(direct.length);
    const traced = ours.findIndex((e) => e.includes('x_carbon_trace'));
    expect(ours[traced]).toContain('"usage":');
    ours.forEach((event, i) => i !== traced && expect(event).toBe(direct[i]));
  });

  it('passes every other path, method and error through as the upstream gave it', async () => {
    upstream.reply = () => ({ status: 500 });
    const failed = await chat();
    expect(failed.status).toBe(500);
    expect(await failed.json()).toEqual({ error: { message: 'fixture error 500', type: 'server_error', code: 500 } });
    const models = await fetch(`${proxy.url}/v1/models?limit=2`, { headers: { authorization: 'Bearer k' } });
    expect(models.status).toBe(404);
    expect(await models.json()).toEqual({ error: { message: 'no route /v1/models?limit=2', type: 'not_found' } });
    const forwarded = upstream.requests.at(-1)!;
    expect(forwarded.headers.authorization).toBe('Bearer k');
    const embeddings = await post('/v1/embeddings', { input: 'x' });
    expect(embeddings.status).toBe(404);
  });

  it('a cut upstream reaches the client as a cut; a client that leaves closes the books', async () => {
    upstream.reply = () => ({ content: 'one two three four five six', cutAfterEvents: 3 });
    await expect((await chat({ stream: true })).text()).rejects.toThrow();
    upstream.reply = () => ({ content: 'word '.repeat(300), delayMs: 5 });
    const controller = new AbortController();
    const reader = (await chat({ stream: true }, { signal: controller.signal })).body!.getReader();
    await reader.read();
    controller.abort();
    await settle();
    expect((await stats()).activeRequests).toBe(0);
  });

  it('200 concurrent streams: no cross-talk, and the traces add up to what the meter attributed', async () => {
    await settle();
    const before = await stats();
    upstream.reply = (req) => {
      const n = Number(lastUserText(req).replace('call-', ''));
      return { content: `answer ${n} `.repeat(1 + (n % 3)), delayMs: n % 2, latencyMs: n % 7 };
    };
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const text = await (await chat({ stream: true, messages: [{ role: 'user', content: `call-${i}` }] })).text();
        const events = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
        const content = events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
        const trace = events.find((e) => e.x_carbon_trace)?.x_carbon_trace;
        return { i, content, trace };
      }),
    );
    for (const { i, content, trace } of results) {
      expect(content).toBe(`answer ${i} `.repeat(1 + (i % 3)));
      expect(trace?.energy_consumed_wh).toBeGreaterThan(0);
    }
    await settle();
    const after = await stats();
    expect(after.requests - before.requests).toBe(200);
    const tracedJoules = results.reduce((sum, r) => sum + r.trace.energy_consumed_wh * 3600, 0);
    expect(Math.abs(tracedJoules - (after.attributedJoules - before.attributedJoules))).toBeLessThan(1e-6);
    expect(Math.abs(after.attributedJoules + after.idleJoules - after.totalJoules)).toBeLessThan(1e-6);
  }, 60_000);

  it('serves its numbers: JSON, Model Garden\'s shape, Prometheus', async () => {
    await settle();
    const ours = await stats();
    expect(ours.grid).toEqual({ gCo2PerKwh: 56, source: 'given with --grid-intensity' });
    expect(ours.emissionsGrams.attributed).toBeCloseTo((ours.attributedJoules / 3.6e6) * 56, 12);
    const garden = await (await fetch(`${proxy.url}/api/v1/carbon/inference/stats`)).json();
    expect(garden).toMatchObject({ tracking: true, request_count: ours.requests });
    for (const key of ['emissions_kg_co2', 'energy_kwh', 'energy_consumed_kwh', 'duration_seconds']) expect(typeof garden[key]).toBe('number');
    // Some streamed calls above asked for no usage: their tokens are unknown, and so is the total.
    expect(garden.total_tokens).toBeNull();
    expect(garden.energy_kwh).toBeGreaterThanOrEqual(ours.attributedJoules / 3.6e6);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    const sum = (name: string) =>
      metrics.split('\n').filter((l) => l.startsWith(`${name}{`)).reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(sum('carbon_trace_energy_joules_total')).toBeCloseTo(ours.attributedJoules, 6);
    expect(sum('carbon_trace_requests_total')).toBe(ours.requests);
    expect(metrics).toMatch(/^# TYPE carbon_trace_idle_energy_joules_total counter$/m);
    expect(metrics).toMatch(/^carbon_trace_power_watts\{component="cpu"\} \d/m);
  });
});

describe('bad input: a clear answer, and the proxy keeps serving the others', () => {
  it('an upstream that answers garbage: passed through, books closed, no trace invented', async () => {
    await settle();
    const before = (await stats()).requests;
    upstream.reply = () => ({ garbage: '{"choices": [tru' });
    const response = await chat();
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('{"choices": [tru');
    await settle();
    expect((await stats()).requests).toBe(before + 1);
  });

  it('a 10 MB request body is forwarded whole and traced', async () => {
    upstream.reply = (req) => ({ content: `got ${String(req.body.messages?.[0]?.content).length} characters` });
    const big = 'x'.repeat(10 * 1024 * 1024);
    const body = await (await chat({ messages: [{ role: 'user', content: big }] })).json();
    expect(body.choices[0].message.content).toBe(`got ${big.length} characters`);
    expect(body.x_carbon_trace.energy_consumed_wh).toBeGreaterThan(0);
  });

  it('a slowloris client holds its own socket only', async () => {
    upstream.reply = () => ({ content: 'still fast' });
    const slow = connect(Number(new URL(proxy.url).port), '127.0.0.1');
    slow.write('POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n');
    const drip = setInterval(() => slow.write('X-Slow: 1\r\n'), 100);
    try {
      const answers = await Promise.all(Array.from({ length: 10 }, async () => (await (await chat()).json()).choices[0].message.content));
      expect(answers).toEqual(Array(10).fill('still fast'));
    } finally {
      clearInterval(drip);
      slow.destroy();
    }
  });

  it('an upstream that goes away: 502 with a one-line JSON error, and the proxy stays up', async () => {
    const gone = await startFixtureServer();
    const goneOrigin = new URL(gone.baseURL).origin;
    const second = await startPackedProxy(project, ['--upstream', goneOrigin, '--port', '0']);
    await gone.close();
    try {
      const response = await fetch(`${second.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' });
      expect(response.status).toBe(502);
      expect(await response.json()).toEqual({ error: { message: `upstream ${goneOrigin} unreachable: ECONNREFUSED`, type: 'proxy_error' } });
      expect((await fetch(`${second.url}/carbon/stats`)).status).toBe(200);
    } finally {
      await second.stop();
    }
  });
});

describe('start before the model server', () => {
  it('starts, says the upstream is not reachable, answers 502, and passes requests once it is up', async () => {
    // A port that was just free: the model server will start there later, as vLLM does after loading.
    const later = await startFixtureServer();
    const laterOrigin = new URL(later.baseURL).origin;
    await later.close();
    const early = await startPackedProxy(project, ['--upstream', laterOrigin, '--port', '0']);
    try {
      for (let i = 0; i < 50 && !early.lines.some((l) => l.startsWith('upstream ')); i++) await new Promise((r) => setTimeout(r, 20));
      expect(early.lines).toContain(`upstream ${laterOrigin} is not reachable (ECONNREFUSED): answering 502 until it is`);
      const refused = await fetch(`${early.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' });
      expect(refused.status).toBe(502);
      const { createServer } = await import('node:http');
      const port = Number(new URL(laterOrigin).port);
      const server = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"up"},"finish_reason":"stop"}]}');
      });
      server.listen(port, '127.0.0.1');
      try {
        for (let i = 0; i < 100 && !early.lines.includes(`upstream ${laterOrigin} is reachable`); i++) await new Promise((r) => setTimeout(r, 50));
        expect(early.lines).toContain(`upstream ${laterOrigin} is reachable`);
        const answered = await (await fetch(`${early.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' })).json();
        expect(answered.choices[0].message.content).toBe('up');
        expect(answered.x_carbon_trace.duration_seconds).toBeGreaterThan(0);
      } finally {
        server.closeAllConnections();
        server.close();
      }
    } finally {
      await early.stop();
    }
  }, 20_000);
});

describe('the command line', () => {
  it('--help fits a screen and says why 0.0.0.0 exposes the model', async () => {
    const { code, stdout } = await runPacked(project, ['proxy', '--help']);
    expect(code).toBe(0);
    expect(stdout.split('\n').length).toBeLessThan(50);
    for (const flag of ['--upstream', '--port', '--host', '--zone', '--grid-intensity', '--meter', '--sample-ms', '--idle']) expect(stdout).toContain(flag);
    expect(stdout.replace(/\s+/g, ' ')).toMatch(/0\.0\.0\.0 listens on every interface: anyone who can reach this machine can then call your model/);
  });

  it.each([
    [['proxy', '--upstream', 'http://127.0.0.1:1', '--bogus'], /^carbon-trace: unknown option '--bogus'/],
    [['proxy'], /^carbon-trace: required option '--upstream <url>' not specified/],
    [['proxy', '--upstream', 'ftp://x'], /^carbon-trace: --upstream takes an http\(s\) URL/],
    [['proxy', '--upstream', 'http://127.0.0.1:1', '--port', '99999'], /^carbon-trace: option '--port <port>' argument '99999' is invalid\. --port takes a whole number from 0 to 65535/],
    [['proxy', '--upstream', 'http://127.0.0.1:1', '--meter', 'magic'], /^carbon-trace: option '--meter <source>' argument 'magic' is invalid\. Allowed choices are auto, rapl, nvml, amd-smi, powermetrics, estimate/],
    [['proxy', '--upstream', 'http://127.0.0.1:1', '--zone', 'Atlantis'], /^carbon-trace: unknown --zone "Atlantis"/],
    [['proxy', '--upstream', 'http://127.0.0.1:1', '--zone', 'FR', '--grid-intensity', '5'], /^carbon-trace: option '--zone <zone>' cannot be used with option '--grid-intensity <g>'/],
    [['proxy', '--upstream', 'http://admin:s3cret@127.0.0.1:1'], /^carbon-trace: --upstream must not carry credentials/],
    [['proxy', '--upstream', 'UPSTREAM', '--meter', 'rapl', '--powercap', '/nonexistent'], /^carbon-trace: --meter rapl: no RAPL powercap tree at \/nonexistent/],
  ])('%j: one line, no stack trace, exit 1', async (args, message) => {
    const { code, stderr } = await runPacked(project, args.map((a) => (a === 'UPSTREAM' ? origin : a)));
    expect(code).toBe(1);
    expect(stderr).toMatch(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });
});
