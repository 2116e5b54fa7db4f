/**
 * The fleet, for real: Debian's Prometheus scrapes three proxies; its sums equal the proxies' books;
 * every query of the shipped Grafana dashboard and rules is valid PromQL and most return data; the
 * rules pass `promtool check rules`; the compose and Kubernetes examples use flags the CLI has.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { runProcess, spawnProcess, stopProcess } from '../setup/processes';
import { describeWith, requireSystemTool } from '../setup/system-tools';

const root = resolve(import.meta.dirname, '../..');
const PROMETHEUS = requireSystemTool(import.meta.filename, { name: 'Prometheus', candidates: ['/usr/bin/prometheus'], install: 'sudo apt-get install -y prometheus' });
const PROMTOOL = PROMETHEUS ? requireSystemTool(import.meta.filename, { name: 'promtool', candidates: ['/usr/bin/promtool'], install: 'sudo apt-get install -y prometheus' }) : undefined;

let upstream: FixtureServer;
const proxies: Array<{ proxy: CarbonProxy; meter: EnergyMeter; url: string }> = [];
let prometheus: ReturnType<typeof spawnProcess> | undefined;
let promUrl = '';
let dir = '';
let trickle: ReturnType<typeof setInterval> | undefined;

const chat = (url: string, body: Record<string, unknown>, key: string) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...body }) }).then((r) => r.text());

async function freePort(): Promise<number> {
  const server = createNetServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  server.close();
  return port;
}

async function query(expr: string): Promise<{ status: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> }; error?: string }> {
  return (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`)).json();
}

const sumOf = async (expr: string) => {
  const r = await query(expr);
  return r.data?.result.reduce((s, x) => s + Number(x.value[1]), 0) ?? NaN;
};

beforeAll(async () => {
  if (!PROMETHEUS) return;
  dir = mkdtempSync(join(tmpdir(), 'carbon-trace-prometheus-'));
  upstream = await startFixtureServer(() => ({ content: 'fleet answer', latencyMs: 2 }));
  for (let i = 0; i < 3; i++) {
    let now = performance.now();
    const start = now;
    const source: EnergySource = { name: `box ${i}`, measured: i !== 2, read: () => ({ gpuJoules: ((100 + 50 * i) * (now - start)) / 1000, cpuJoules: (20 * (now - start)) / 1000 }) };
    const meter = createEnergyMeter({ sources: [source], clock: () => (now = performance.now()), sampleIntervalMs: 50, onWarning: false });
    const proxy = createCarbonProxy({ upstream: new URL(upstream.baseURL).origin, meter, gridIntensity: { gCo2PerKwh: 50 + 100 * i }, onWarning: false });
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    proxies.push({ proxy, meter, url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}` });
  }
  // Traffic: each box its own mix of models, keys, users, streams.
  for (const [i, { url }] of proxies.entries()) {
    await Promise.all(
      Array.from({ length: 6 + 3 * i }, (_, j) => chat(url, { model: j % 2 ? 'llama' : 'mistral', user: `user-${j % 3}`, stream: j % 3 === 0, ...(j % 3 === 0 ? { stream_options: { include_usage: true } } : {}) }, `sk-team-${j % 2}`)),
    );
  }
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'rules.yml'), readFileSync(join(root, 'deploy/prometheus/rules.yml')));
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\nscrape_configs:\n  - job_name: carbon-trace\n    static_configs:\n      - targets: [${proxies.map((p) => `'${new URL(p.url).host}'`).join(', ')}]\n`,
  );
  prometheus = spawnProcess(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=error'], { stdio: ['ignore', 'ignore', 'pipe'] });
  // A trickle of requests while Prometheus looks, so that rates have something to show.
  trickle = setInterval(() => {
    for (const { url } of proxies) void chat(url, { model: 'llama', user: 'user-0' }, 'sk-team-0').catch(() => undefined);
  }, 250);
  for (let i = 0; i < 150; i++) {
    const up = await query('sum(up{job="carbon-trace"})').catch(() => undefined);
    if (up?.data?.result[0]?.value[1] === '3') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // Enough scrapes for rates over 5 s.
  await new Promise((r) => setTimeout(r, 6_000));
}, 60_000);

afterAll(async () => {
  if (trickle) clearInterval(trickle);
  if (prometheus) await stopProcess(prometheus);
  for (const { proxy, meter } of proxies) {
    await proxy.close();
    await meter.close();
  }
  await upstream?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describeWith(PROMETHEUS && PROMTOOL, 'a real Prometheus scraping three proxies', () => {
  it("its sums equal the proxies' books: energy (±3 %) and requests", async () => {
    clearInterval(trickle);
    trickle = undefined;
    // Let the last requests close and be scraped twice.
    await new Promise((r) => setTimeout(r, 2_500));
    const books = await Promise.all(proxies.map(async ({ proxy }) => proxy.stats()));
    const attributed = books.reduce((s, b) => s + b.attributedJoules, 0);
    const requests = books.reduce((s, b) => s + b.requests, 0);
    expect(requests).toBeGreaterThan(30);
    const energy = await sumOf('sum(carbon_trace_energy_joules_total)');
    expect(Math.abs(energy - attributed)).toBeLessThanOrEqual(0.03 * attributed);
    expect(await sumOf('sum(carbon_trace_requests_total)')).toBe(requests);
    expect(await sumOf('sum(carbon_trace_closed_requests_total)')).toBe(requests);
    expect(Math.abs((await sumOf('sum(carbon_trace_attributed_energy_joules_total)')) - attributed)).toBeLessThanOrEqual(0.03 * attributed);
    expect(await sumOf('sum(carbon_trace_api_key_requests_total)')).toBe(requests);
    const measured = await sumOf('sum(carbon_trace_requests_total{measured="true"})');
    expect(measured).toBe(books.slice(0, 2).reduce((s, b) => s + b.requests, 0));
    // Every box's books add up: attributed + idle + unattributed = what the meter measured and settled.
    const parts = await sumOf('sum(carbon_trace_attributed_energy_joules_total) + sum(carbon_trace_idle_energy_joules_total) + sum(carbon_trace_unattributed_energy_joules_total)');
    const total = await sumOf('sum(carbon_trace_meter_energy_joules_total)');
    expect(Math.abs(parts - total)).toBeLessThanOrEqual(1e-6 * total);
  });

  it('every query of the Grafana dashboard and of the rules is valid PromQL, and at least 80 % return data', async () => {
    const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/carbon-trace-dashboard.json'), 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((p: { targets?: Array<{ expr: string }> }) => (p.targets ?? []).map((t) => t.expr));
    const rules = readFileSync(join(root, 'deploy/prometheus/rules.yml'), 'utf8');
    // Each rule's expr: a one-line value, or a block scalar (|) of more indented lines.
    for (const match of rules.matchAll(/^(\s*)expr: (\|\n((?:\1\s+.*\n)+)|(.*)\n)/gm)) exprs.push((match[3] ?? match[4] ?? '').replace(/\s+/g, ' ').trim());
    expect(exprs.length).toBeGreaterThanOrEqual(25);
    const grafana = (e: string) => e.replaceAll('$__rate_interval', '5s').replaceAll('$__range', '30s').replaceAll('$instance', '.*');
    let withData = 0;
    const invalid: string[] = [];
    for (const expr of exprs) {
      const r = await query(grafana(expr));
      if (r.status !== 'success') invalid.push(`${expr}: ${r.error}`);
      else if ((r.data?.result.length ?? 0) > 0) withData++;
    }
    expect(invalid).toEqual([]);
    expect(withData / exprs.length).toBeGreaterThanOrEqual(0.8);
  });

  it('promtool check rules passes on the shipped rules', async () => {
    const { code, stdout, stderr } = await runProcess(PROMTOOL!, ['check', 'rules', join(root, 'deploy/prometheus/rules.yml')], { timeoutMs: 20_000 });
    expect(stderr).toBe('');
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
    expect(code).toBe(0);
  });
});
