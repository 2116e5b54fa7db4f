/**
 * What `/carbon/stats` and `/metrics` say of each request is what the proxy booked: its kind, its
 * wire, whether its trace reached the client — `recent` newest first, as the dashboard shows it —
 * and the tables per kind add up to the books, under concurrent requests and readers.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type BookedRequest, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

let upstream: FixtureServer;
beforeAll(async () => {
  upstream = await startFixtureServer(() => ({ content: 'a b c' }));
});
afterAll(() => upstream.close());

type Running = { proxy: CarbonProxy; meter: EnergyMeter; url: string; booked: BookedRequest[] };
let running: Running | undefined;
afterEach(async () => {
  await running?.proxy.close();
  await running?.meter.close();
  running = undefined;
});

async function start(): Promise<Running> {
  let now = performance.now();
  const start = now;
  const source: EnergySource = { name: '120 W', measured: true, read: () => ({ gpuJoules: (120 * (now - start)) / 1000 }) };
  const meter = createEnergyMeter({ sources: [source], clock: () => (now = performance.now()), sampleIntervalMs: 5, onWarning: false });
  const booked: BookedRequest[] = [];
  const proxy = createCarbonProxy({ upstream: new URL(upstream.baseURL).origin, meter, gridIntensity: { gCo2PerKwh: 100 }, onWarning: false, onBooked: (r) => void booked.push(r) });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  running = { proxy, meter, url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`, booked };
  return running;
}

const chat = (url: string, body: Record<string, unknown>) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...body }) }).then((r) => r.text());
const stats = async (url: string, query = '') => (await fetch(`${url}/carbon/stats${query}`)).json();
const settled = async (r: Running, n: number) => {
  for (let i = 0; i < 200 && ((await r.proxy.stats()).requests < n || r.meter.stats().activeRequests > 0); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};

describe('/carbon/stats', () => {
  it('recent is newest first, and ?recent=N the newest N; each says what the proxy booked of it: kind, wire, trace delivered', async () => {
    const r = await start();
    for (let i = 0; i < 6; i++) await chat(r.url, { model: `m${i}`, stream: i % 2 === 1 });
    // A route no wire knows is metered and booked too.
    await fetch(`${r.url}/v1/files`, { method: 'POST', body: 'x' }).then((res) => res.text());
    await settled(r, 7);
    const all = await stats(r.url);
    expect(all.recent).toHaveLength(7);
    expect(all.recent.slice(1).map((x: { model: string }) => x.model)).toEqual(['m5', 'm4', 'm3', 'm2', 'm1', 'm0']);
    for (let i = 1; i < all.recent.length; i++) expect(Date.parse(all.recent[i - 1].at)).toBeGreaterThanOrEqual(Date.parse(all.recent[i].at));
    expect((await stats(r.url, '?recent=2')).recent).toEqual(all.recent.slice(0, 2));
    // The books show what was booked, in the order booked: unknown is null, never made up.
    const newestFirst = [...r.booked].reverse();
    expect(all.recent.map((x: Record<string, unknown>) => [x.kind, x.wire, x.traceDelivered, x.streamed])).toEqual(
      newestFirst.map((b) => [b.kind ?? null, b.wire ?? null, b.traceDelivered ?? null, b.streamed]),
    );
    expect(all.recent.map((x: Record<string, unknown>) => [x.promptTokens, x.completionTokens])).toEqual(newestFirst.map((b) => [b.usage.promptTokens ?? null, b.usage.completionTokens ?? null]));
    // Per kind: as many as were booked of each, and whether their traces reached the client.
    const expected: Record<string, { requests: number; tracesDelivered: number; tracesNotDelivered: number }> = {};
    for (const b of r.booked) {
      const row = (expected[b.kind ?? '(unknown)'] ??= { requests: 0, tracesDelivered: 0, tracesNotDelivered: 0 });
      row.requests++;
      if (b.traceDelivered === true) row.tracesDelivered++;
      if (b.traceDelivered === false) row.tracesNotDelivered++;
    }
    expect(Object.keys(all.byKind).sort()).toEqual(Object.keys(expected).sort());
    for (const [kind, row] of Object.entries(expected)) expect(all.byKind[kind], kind).toMatchObject(row);
  });

  it('40 concurrent requests with readers polling throughout: the kinds, models and metrics add up to the books', async () => {
    const r = await start();
    let polling = true;
    const readers = (async () => {
      while (polling) await Promise.all([stats(r.url, '?top=3&recent=5'), fetch(`${r.url}/metrics`).then((x) => x.text())]);
    })();
    await Promise.all(Array.from({ length: 40 }, (_, i) => chat(r.url, { model: `m${i % 4}`, stream: i % 3 === 0, ...(i % 6 === 0 ? { stream_options: { include_usage: true } } : {}) })));
    polling = false;
    await readers;
    await settled(r, 40);
    const all = await stats(r.url);
    expect(all.requests).toBe(40);
    const kinds = Object.values(all.byKind) as Array<{ requests: number; joules: number; tracesDelivered: number; tracesNotDelivered: number }>;
    expect(kinds.reduce((s, k) => s + k.requests, 0)).toBe(40);
    expect(kinds.reduce((s, k) => s + k.joules, 0)).toBeCloseTo(all.attributedJoules, 9);
    const models = Object.values(all.byModel) as Array<{ tracesDelivered: number; tracesNotDelivered: number; withTokens: { completion: { joules: number; tokens: number } } }>;
    expect(models.reduce((s, m) => s + m.tracesDelivered, 0)).toBe(r.booked.filter((b) => b.traceDelivered === true).length);
    expect(models.reduce((s, m) => s + m.tracesNotDelivered, 0)).toBe(r.booked.filter((b) => b.traceDelivered === false).length);
    // Each model's per-token basis: the energy and the completion tokens of the same requests.
    const withTokens = r.booked.filter((b) => b.usage.completionTokens !== undefined && b.energy.totalJoules !== undefined);
    expect(models.reduce((s, m) => s + m.withTokens.completion.tokens, 0)).toBe(withTokens.reduce((s, b) => s + b.usage.completionTokens!, 0));
    expect(models.reduce((s, m) => s + m.withTokens.completion.joules, 0)).toBeCloseTo(withTokens.reduce((s, b) => s + b.energy.totalJoules!, 0), 9);

    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    const sum = (name: string, filter = '') => [...metrics.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))].filter((m) => m[1]!.includes(filter)).reduce((s, m) => s + Number(m[2]), 0);
    expect(sum('carbon_trace_call_kind_requests_total')).toBe(40);
    expect(sum('carbon_trace_traces_total', 'delivered="true"')).toBe(r.booked.filter((b) => b.traceDelivered === true).length);
    expect(sum('carbon_trace_tokens_with_energy_total', 'kind="completion"')).toBe(withTokens.reduce((s, b) => s + b.usage.completionTokens!, 0));
  });
});
