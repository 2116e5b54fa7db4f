/**
 * The proxy's views of its books — /carbon/stats, /metrics, Model Garden's route — add up to the
 * meter's at every scrape, in both idle modes, with thousands of model names, and say "unknown"
 * where they do not know.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

let upstream: FixtureServer;
beforeAll(async () => {
  upstream = await startFixtureServer();
});
afterAll(() => upstream.close());

type Running = { proxy: CarbonProxy; meter: EnergyMeter; url: string };
let running: Running | undefined;
afterEach(async () => {
  await running?.proxy.close();
  await running?.meter.close();
  running = undefined;
});

async function start(idle: 'exclude' | 'share' = 'exclude'): Promise<Running> {
  let now = performance.now();
  const start = now;
  const source: EnergySource = { name: '120 W', measured: true, read: () => ({ cpuJoules: (20 * (now - start)) / 1000, gpuJoules: (100 * (now - start)) / 1000 }) };
  const meter = createEnergyMeter({ sources: [source], clock: () => (now = performance.now()), sampleIntervalMs: 10, idle, onWarning: false });
  const proxy = createCarbonProxy({ upstream: new URL(upstream.baseURL).origin, meter, gridIntensity: { gCo2PerKwh: 100 }, onWarning: false });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  running = { proxy, meter, url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}` };
  return running;
}

const chat = (url: string, body: Record<string, unknown> = {}) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }) });

/** name{labels} value → Σ values per metric name. */
function metricSums(text: string): Record<string, number> {
  const sums: Record<string, number> = Object.create(null);
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const name = line.slice(0, line.search(/[{ ]/));
    sums[name] = (sums[name] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sums;
}

const settle = async (meter: EnergyMeter) => {
  for (let i = 0; i < 100 && meter.stats().activeRequests > 0; i++) await new Promise((r) => setTimeout(r, 10));
};

describe('/metrics adds up to the meter\'s books at every scrape', () => {
  it.each(['exclude', 'share'] as const)("idle: '%s' — quiet spell, then requests: attributed + idle + unattributed = settled meter total", async (idle) => {
    const { url, meter } = await start(idle);
    await new Promise((r) => setTimeout(r, 60)); // a quiet spell
    const scrape = async () => metricSums(await (await fetch(`${url}/metrics`)).text());
    const first = await scrape();
    expect(first.carbon_trace_idle_energy_joules_total).toBeGreaterThan(0);
    upstream.reply = () => ({ content: 'a b c', latencyMs: 15 });
    await Promise.all([chat(url), chat(url, { stream: true })]);
    await settle(meter);
    for (const sums of [first, await scrape()]) {
      const parts = (sums.carbon_trace_attributed_energy_joules_total ?? 0) + sums.carbon_trace_idle_energy_joules_total! + sums.carbon_trace_unattributed_energy_joules_total!;
      // Each family is read from the same books in one scrape; only the meter moves between readings of it.
      expect(Math.abs(parts - sums.carbon_trace_meter_energy_joules_total!)).toBeLessThan(1e-6 * Math.max(1, sums.carbon_trace_meter_energy_joules_total!));
    }
    const stats = await (await fetch(`${url}/carbon/stats`)).json();
    expect(stats.requests).toBe(2);
    const rows = Object.values(stats.byModel) as Array<{ joules: number; idleShareJoules?: number }>;
    expect(rows.reduce((s, r) => s + r.joules, 0)).toBeCloseTo(stats.attributedJoules, 9);
    if (idle === 'share') expect(rows.reduce((s, r) => s + r.idleShareJoules!, 0)).toBeCloseTo(stats.idleJoules, 9);
    else expect(rows.every((r) => r.idleShareJoules === undefined)).toBe(true);
  });

  it('2,000 model names: a model in real use keeps its own row and label; rows and labels add up', async () => {
    const { url, meter } = await start();
    upstream.reply = () => ({ content: 'x' });
    for (let i = 0; i < 2000; i += 25) {
      await Promise.all(Array.from({ length: 25 }, (_, j) => chat(url, { model: `junk-${i + j}-${'z'.repeat(j === 3 ? 100_000 : 0)}` })));
      await chat(url, { model: 'llama-real' });
    }
    await settle(meter);
    const stats = await (await fetch(`${url}/carbon/stats`)).json();
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(stats.byModel['llama-real'].requests).toBe(80);
    expect(metrics).toMatch(/^carbon_trace_requests_total\{model="llama-real",measured="true"\} 80$/m);
    const labels = new Set([...metrics.matchAll(/model="([^"]*)"/g)].map((m) => m[1]));
    expect(labels.size).toBeLessThanOrEqual(100);
    // An evicted label's series ends: no history is moved onto another label (that would read as a jump).
    expect(labels.has('(other)')).toBe(false);
    for (const name of [...labels, ...Object.keys(stats.byModel)]) expect(name!.length).toBeLessThanOrEqual(200);
    const sums = metricSums(metrics);
    // The unlabeled families keep the whole books.
    expect(sums.carbon_trace_closed_requests_total).toBe(2080);
    expect(sums.carbon_trace_attributed_energy_joules_total).toBeCloseTo(stats.attributedJoules, 6);
    expect(sums.carbon_trace_requests_total).toBeLessThanOrEqual(2080);
    const rows = Object.values(stats.byModel) as Array<{ joules: number; requests: number }>;
    expect(rows.reduce((s, r) => s + r.requests, 0)).toBe(2080);
    expect(rows.reduce((s, r) => s + r.joules, 0)).toBeCloseTo(stats.attributedJoules, 6);
    const garden = await (await fetch(`${url}/api/v1/carbon/inference/stats`)).json();
    expect(garden.model_name.length).toBeLessThan(2200);
    expect(garden.model_name).toMatch(/ and \d+ more$/);
  });
});

describe("Model Garden's route", () => {
  it('total_tokens is prompt + completion as the usage said, and unknown (null) once a call reported none', async () => {
    const { url, meter } = await start();
    upstream.reply = () => ({ content: 'a b', usage: { prompt_tokens: 20, completion_tokens: 12 } });
    await chat(url);
    await chat(url, { stream: true, stream_options: { include_usage: true } });
    await settle(meter);
    const garden = async () => (await fetch(`${url}/api/v1/carbon/inference/stats`)).json();
    expect(await garden()).toMatchObject({ request_count: 2, total_tokens: 64, requests_with_usage: 2 });
    await chat(url, { stream: true }); // streamed, no usage asked for: its tokens are not known
    await settle(meter);
    const after = await garden();
    expect(after).toMatchObject({ request_count: 3, total_tokens: null, requests_with_usage: 2, tokens_per_second: null });
    expect(after).not.toHaveProperty('emissions_per_1k_tokens_g');
  });
});
