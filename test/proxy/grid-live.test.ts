/**
 * `carbon-trace proxy --grid-source electricitymaps` (the packed CLI) in front of a loopback
 * stand-in for Electricity Maps' API: traces book at the live figure and follow it, the API is
 * asked at most once per refresh however many requests run, its failures never slow or zero a
 * request, and the token is shown nowhere.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startElectricityMapsStandIn, type ElectricityMapsStandIn } from '../fixtures/electricity-maps-server';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { packedProject, runPacked, startPackedProxy, type RunningProxy } from './packed-cli';

const TOKEN = 'em-token-3f9a7c1e5b2d';
let upstream: FixtureServer;
let api: ElectricityMapsStandIn;
let project: string;
let dir: string;
beforeAll(async () => {
  project = packedProject('proxy-cli');
  upstream = await startFixtureServer(() => ({ content: 'grid answer' }));
  api = await startElectricityMapsStandIn(() => ({ carbonIntensity: 31 }));
  dir = mkdtempSync(join(tmpdir(), 'carbon-trace-grid-'));
}, 120_000);
afterAll(async () => {
  await upstream?.close();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

const start = (extra: string[] = [], token: string | undefined = TOKEN) =>
  startPackedProxy(project, ['--upstream', new URL(upstream.baseURL).origin, '--port', '0', '--grid-source', 'electricitymaps', '--zone', 'FR', '--grid-api-url', api.url, '--grid-refresh', '1', ...extra], {
    env: { ...process.env, ...(token === undefined ? {} : { ELECTRICITYMAPS_API_TOKEN: token }) },
  });
/** The trace of the first request that books at `g` (the provider takes in an answer a moment after the API sends it), within `tries`. */
async function traceAt(proxy: RunningProxy, g: number, tries = 50) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let last: any = {};
  for (let i = 0; i < tries; i++) {
    last = await trace(proxy);
    if (last.grid_intensity_g_co2_per_kwh === g) return last;
    await new Promise((r) => setTimeout(r, 20));
  }
  return last;
}
const trace = async (proxy: RunningProxy) =>
  (await (await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' })).json()).x_carbon_trace;

describe('carbon-trace proxy --grid-source electricitymaps', () => {
  it('books at the live figure, and at the new one within a refresh; 200 requests make at most one call per refresh', async () => {
    api.reply = () => ({ carbonIntensity: 31, datetime: '2026-12-04T17:00:00.000Z' });
    const before = api.requests.length;
    const proxy = await start(['--ledger', join(dir, 'ledger.csv')]);
    try {
      await api.received(before + 1);
      const first = await traceAt(proxy, 31);
      expect(first).toMatchObject({ grid_intensity_g_co2_per_kwh: 31, grid_intensity_zone: 'FR', grid_intensity_live: true, grid_intensity_datetime: '2026-12-04T17:00:00.000Z' });
      expect(first.emissions_g_co2).toBeCloseTo((first.energy_consumed_wh / 1000) * 31, 12);
      expect(proxy.lines.find((l) => l.startsWith('grid: '))).toMatch(/^grid: live from Electricity Maps, zone FR, every 1 s/);

      api.reply = () => ({ carbonIntensity: 120, datetime: '2026-12-04T18:00:00.000Z' });
      const asked = api.requests.length;
      await api.received(asked + 1);
      expect((await traceAt(proxy, 120)).grid_intensity_g_co2_per_kwh).toBe(120);

      // 200 requests over about 2 s: the API hears from the proxy once per refresh at most.
      const from = api.requests.length;
      const started = performance.now();
      for (let i = 0; i < 10; i++) {
        await Promise.all(Array.from({ length: 20 }, () => trace(proxy)));
        await new Promise((r) => setTimeout(r, 200));
      }
      const seconds = (performance.now() - started) / 1000;
      expect(api.requests.length - from).toBeLessThanOrEqual(Math.floor(seconds / 1) + 1);
      const stats = await (await fetch(`${proxy.url}/carbon/stats`)).json();
      expect(stats.grid).toMatchObject({ gCo2PerKwh: 120, zone: 'FR', live: true });
      const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
      expect(metrics).toMatch(/^carbon_trace_grid_intensity_grams_per_kwh\{source="live",zone="FR"\} 120$/m);
      // The token went to the API, and nowhere else.
      expect(api.requests.at(-1)!.headers['auth-token']).toBe(TOKEN);
      const shown = [JSON.stringify(stats), metrics, await (await fetch(`${proxy.url}/carbon`)).text(), proxy.lines.join('\n'), proxy.stderr(), readFileSync(join(dir, 'ledger.csv'), 'utf8')].join('\n');
      expect(shown).not.toContain(TOKEN);
    } finally {
      await proxy.stop();
    }
  }, 30_000);

  it('an API that answers 500, then never answers: requests are not held, and book at the last good figure', async () => {
    api.reply = () => ({ carbonIntensity: 44 });
    const before = api.requests.length;
    const proxy = await start();
    try {
      await api.received(before + 1);
      expect((await traceAt(proxy, 44)).grid_intensity_g_co2_per_kwh).toBe(44);
      api.reply = () => ({ status: 500 });
      await api.received(api.requests.length + 1);
      const during500 = await trace(proxy);
      expect(during500.grid_intensity_g_co2_per_kwh).toBe(44);
      api.reply = () => ({ hang: true });
      await api.received(api.requests.length + 1);
      // The API holds this request open now: a request through the proxy still completes, at 44.
      const duringHang = await trace(proxy);
      expect(duringHang.grid_intensity_g_co2_per_kwh).toBe(44);
      expect(Number.isFinite(duringHang.emissions_g_co2)).toBe(true);
      expect(duringHang.emissions_g_co2).toBeGreaterThan(0);
      expect(proxy.stderr().split('\n').filter((l) => l.includes('Electricity Maps')).length).toBeLessThanOrEqual(2);
    } finally {
      await proxy.stop();
    }
  }, 30_000);

  it('a rejected token at start: one line, and the yearly average; no token: one line naming the variable', async () => {
    api.reply = () => ({ status: 401 });
    const before = api.requests.length;
    const proxy = await start([], 'wrong-token-value');
    try {
      await api.received(before + 1);
      for (let i = 0; i < 50 && !proxy.stderr().includes('rejected'); i++) await new Promise((r) => setTimeout(r, 20));
      const lines = proxy.stderr().trim().split('\n');
      expect(lines.filter((l) => l.includes('rejected'))).toHaveLength(1);
      expect(lines.join('\n')).not.toContain('wrong-token-value');
      const t = await trace(proxy);
      expect(t.grid_intensity_live).toBe(false);
      expect(t.grid_intensity_g_co2_per_kwh).toBeGreaterThan(0);
      expect(t.grid_intensity_source).toMatch(/yearly average/);
    } finally {
      await proxy.stop();
    }
    const { code, stderr } = await runPacked(project, ['proxy', '--upstream', new URL(upstream.baseURL).origin, '--grid-source', 'electricitymaps', '--zone', 'FR'], { env: { ...process.env, ELECTRICITYMAPS_API_TOKEN: '' } });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^carbon-trace: .*ELECTRICITYMAPS_API_TOKEN/);
  }, 30_000);
});
