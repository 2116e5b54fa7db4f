/**
 * The fleet's books in a real Postgres (Debian's, started by the test in a temp folder): three
 * proxies write into one database under load, the database goes away for 10 s and comes back, and
 * the fleet's report is the sum of the three proxies' own books — no row lost, none twice — by
 * every grouping, from the rows and from the daily rollups, and the same as each ledger's report.
 * Hostile names go in and come out byte-exact; the URL's password shows nowhere.
 */
import { once } from 'node:events';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter } from '../../src/server/index';
import { entryOf, openLedger, type LedgerEntry } from '../../src/server/books/ledger';
import { parseCsvLine, scanRecordsSync } from '../../src/server/books/ledger-read';
import { createFleetShipper } from '../../src/server/fleet/shipper';
import { GROUP_KEYS, parseReportQuery, reportFromDatabase, reportFromLedger, type Report } from '../../src/server/fleet/report';
import { describeWithPostgres, startPostgres, testPool, type PostgresServer } from '../fixtures/postgres';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';

const HOSTILE = [
  'llama-3.1-8b',
  "it's; DROP TABLE carbon_trace_requests; --",
  'line one\nline two\r\nthree',
  'quote " and "" twice, comma',
  '=HYPERLINK("http://evil")',
  'ünïcödé 🌍',
  'x'.repeat(3000),
  'y'.repeat(10 * 1024),
];

// One secret across the fleet: the same API key has the same id on every proxy.
const FLEET_SECRET = 'a'.repeat(64);

type Running = { proxy: CarbonProxy; meter: EnergyMeter; url: string; ledger: string; warnings: string[] };

let server: PostgresServer;
let upstream: FixtureServer;
const dirs: string[] = [];
const running: Running[] = [];

const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30);

async function startProxy(name: string, ledger: string, db: string, gCo2PerKwh: number): Promise<Running> {
  const warnings: string[] = [];
  const start = performance.now();
  // A machine of 50 W CPU and 200 W GPU: the figures depend on timing, the identities checked here do not.
  const meter = createEnergyMeter({
    sources: [{ name: 'stand-in', measured: true, read: () => ({ cpuJoules: (50 * (performance.now() - start)) / 1000, gpuJoules: (200 * (performance.now() - start)) / 1000 }) }],
    sampleIntervalMs: 20,
    onWarning: false,
  });
  const proxy = createCarbonProxy({ upstream: upstream.baseURL.replace(/\/v1$/, ''), meter, ledger, db, instance: name, gridIntensity: { gCo2PerKwh }, keyIdSecret: FLEET_SECRET, onWarning: (w) => void warnings.push(w) });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  const r = { proxy, meter, url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`, ledger, warnings };
  running.push(r);
  return r;
}

async function stopProxy(r: Running): Promise<void> {
  await r.proxy.close();
  await r.meter.close();
  running.splice(running.indexOf(r), 1);
}

const chat = async (url: string, i: number) => {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer team-${i % 3}` },
    body: JSON.stringify({ model: HOSTILE[i % HOSTILE.length], user: HOSTILE[(i + 3) % HOSTILE.length], messages: [{ role: 'user', content: 'hi' }], stream: i % 4 === 0 }),
  });
  await response.text();
  return response.status;
};

async function load(urls: string[], perProxy: number, offset: number): Promise<void> {
  const statuses = await Promise.all(urls.flatMap((url) => Array.from({ length: perProxy }, (_, i) => chat(url, offset + i))));
  expect(statuses.every((s) => s === 200)).toBe(true);
}

async function flushAll(rs: Running[]): Promise<void> {
  for (const r of rs) {
    let done = false;
    for (let i = 0; i < 100 && !done; i++) {
      done = await r.proxy.flushFleet();
      if (!done) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(done, `proxy ${r.url} sent its ledger`).toBe(true);
  }
}

/** Every row of a ledger, read as the ledger reads them back (without its lock: a proxy holds it). */
function ledgerRows(path: string): LedgerEntry[] {
  const rows: LedgerEntry[] = [];
  const fd = openSync(path, 'r');
  try {
    let index: Map<string, number> | undefined;
    scanRecordsSync(fd, 0, fstatSync(fd).size, (text) => {
      const fields = parseCsvLine(text)!;
      if (!index) index = new Map(fields.map((c, i) => [c, i]));
      else rows.push(entryOf(fields, index)!);
    });
  } finally {
    closeSync(fd);
  }
  return rows;
}

const today = () => new Date(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
const dayAfter = (d: Date) => new Date(d.getTime() + 86_400_000);

function expectSameTotals(a: Report['totals'], b: Report['totals']): void {
  expect(a.requests).toBe(b.requests);
  expect(a.requestsWithEnergy).toBe(b.requestsWithEnergy);
  expect(a.promptTokens).toBe(b.promptTokens);
  expect(a.completionTokens).toBe(b.completionTokens);
  for (const key of ['energyKwh', 'cpuEnergyKwh', 'gpuEnergyKwh', 'emissionsKgco2eq', 'measuredEnergyKwh'] as const) expect(relative(a[key], b[key]), key).toBeLessThan(1e-9);
  for (const key of ['idleEnergyKwh', 'idleEmissionsKgco2eq', 'unattributedEnergyKwh'] as const) expect(relative(a.idle[key], b.idle[key]), key).toBeLessThan(1e-9);
}

describeWithPostgres(import.meta.filename, 'the fleet in Postgres', () => {
  beforeAll(async () => {
    server = await startPostgres({ databases: ['fleet', 'retention'] });
    upstream = await startFixtureServer(() => ({ content: 'ok', latencyMs: 2 }));
  }, 60_000);
  afterAll(async () => {
    for (const r of [...running]) await stopProxy(r).catch(() => {});
    await upstream?.close();
    await server?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  let fleet: Running[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'carbon-trace-fleet-'));
    dirs.push(d);
    return d;
  };

  it('three proxies under load, Postgres stopped for 10 s and back: the fleet report is the sum of the three proxies\' books, no row lost or twice', async () => {
    const d = dir();
    const db = server.url('fleet');
    fleet = await Promise.all(['gpu-fr', 'gpu-pl', 'gpu-se'].map((name, i) => startProxy(name, join(d, `${name}.csv`), db, [56, 650, 40][i]!)));
    const urls = fleet.map((r) => r.url);
    await load(urls, 40, 0);
    await flushAll(fleet);

    // Postgres goes away mid-load: no request waits or fails, and the rows wait in the ledgers.
    await server.stop();
    await load(urls, 40, 40);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await load(urls, 20, 80);
    for (const r of fleet) expect((await r.proxy.stats()).fleet?.connected).toBe(false);
    await server.start();
    await load(urls, 40, 100);
    await flushAll(fleet);

    const pool = testPool(db);
    try {
      const { rows } = await pool.query<{ n: string; distinct_rows: string }>('SELECT count(*) AS n, count(DISTINCT (run_id, ledger_offset)) AS distinct_rows FROM carbon_trace_requests');
      const inLedgers = fleet.map((r) => ledgerRows(r.ledger).length);
      expect(inLedgers).toEqual([140, 140, 140]);
      expect(Number(rows[0]!.n)).toBe(420);
      expect(Number(rows[0]!.distinct_rows)).toBe(420);

      const query = parseReportQuery({ from: today().toISOString().slice(0, 10), to: dayAfter(today()).toISOString().slice(0, 10), by: 'instance' });
      const report = await reportFromDatabase(pool, query);
      expect(report.source).toBe('daily rollups');
      for (const r of fleet) {
        const stats = await r.proxy.stats();
        const row = report.rows.find((x) => x.group.instance === stats.instance)!;
        // The proxy's own books: every request, and the energy of its rows.
        expect(row.requests).toBe(stats.requests);
        const booked = Object.values(stats.byModel).reduce((sum, m) => sum + m.joules, 0);
        expect(relative(row.energyKwh * 3.6e6, booked)).toBeLessThan(1e-9);
        // And its ledger's own report (no server): the same figures.
        const own = await reportFromLedger(r.ledger, { ...query, by: [] }, { instance: stats.instance });
        expect(own.totals.requests).toBe(row.requests);
        expect(relative(own.totals.emissionsKgco2eq, row.emissionsKgco2eq)).toBeLessThan(1e-9);
      }
      // Down and back: said once each way, per proxy.
      for (const r of fleet) {
        expect(r.warnings.filter((w) => w.includes('rows wait in the ledger'))).toHaveLength(1);
        expect(r.warnings.filter((w) => w.includes('answering again'))).toHaveLength(1);
      }
    } finally {
      await pool.end();
    }
  }, 120_000);

  it('grouped every way, from the rows or the rollups, the reports add up to the same totals; the ledgers\' reports agree', async () => {
    const pool = testPool(server.url('fleet'));
    try {
      const day = today().toISOString().slice(0, 10);
      const next = dayAfter(today()).toISOString().slice(0, 10);
      const base = await reportFromDatabase(pool, parseReportQuery({ from: day, to: next }));
      expect(base.totals.requests).toBe(420);
      const groupings: string[] = [...GROUP_KEYS, 'api_key,model', 'instance,day,hour', 'user,project', GROUP_KEYS.join(',')];
      for (const by of groupings) {
        const rollups = await reportFromDatabase(pool, parseReportQuery({ from: day, to: next, by }));
        // A period one millisecond shorter than the day is answered from the rows.
        const rows = await reportFromDatabase(pool, parseReportQuery({ from: `${day}T00:00:00.000Z`, to: new Date(dayAfter(today()).getTime() - 1).toISOString(), by }));
        expect(rows.source).toBe('rows');
        expectSameTotals(rollups.totals, base.totals);
        expectSameTotals(rows.totals, base.totals);
        const summed = rollups.rows.reduce((s, r) => s + r.requests, 0);
        expect(summed).toBe(420);
        // Every group is there once.
        const keys = rollups.rows.map((r) => JSON.stringify(r.group));
        expect(new Set(keys).size).toBe(keys.length);
      }
      // Per API key: three teams (request i is team i % 3), across the three proxies.
      const byKey = await reportFromDatabase(pool, parseReportQuery({ from: day, to: next, by: 'api_key' }));
      const sent = [0, 1, 2].map((team) => 3 * Array.from({ length: 140 }, (_, i) => i).filter((i) => i % 3 === team).length);
      expect(byKey.rows.map((r) => r.requests).sort()).toEqual(sent.sort());
      // The ledgers' reports, summed, are the database's.
      const ledgerTotals = await Promise.all(fleet.map(async (r) => (await reportFromLedger(r.ledger, parseReportQuery({ from: day, to: next }), { instance: 'x' })).totals));
      expect(ledgerTotals.reduce((s, t) => s + t.requests, 0)).toBe(base.totals.requests);
      expect(relative(ledgerTotals.reduce((s, t) => s + t.energyKwh, 0), base.totals.energyKwh)).toBeLessThan(1e-9);
      expect(relative(ledgerTotals.reduce((s, t) => s + t.idle.idleEnergyKwh, 0), base.totals.idle.idleEnergyKwh)).toBeLessThan(1e-9);
    } finally {
      await pool.end();
    }
  }, 60_000);

  it('hostile model and user names are stored and reported byte-exact (as the proxy booked them)', async () => {
    const pool = testPool(server.url('fleet'));
    try {
      const stored = await pool.query<{ model: string; end_user: string }>('SELECT DISTINCT model, end_user FROM carbon_trace_requests');
      const models = new Set(stored.rows.map((r) => r.model));
      const users = new Set(stored.rows.map((r) => r.end_user));
      // What the ledger kept is what the database has.
      const kept = ledgerRows(fleet[0]!.ledger);
      expect(new Set(kept.map((e) => e.model))).toEqual(models);
      expect(new Set(kept.map((e) => e.user))).toEqual(users);
      // Every name (newlines, quotes, 10 KB) is the very bytes sent.
      expect(models).toEqual(new Set(HOSTILE));
      expect(users).toEqual(new Set(HOSTILE));
      // And the report gives them back whole.
      const day = today().toISOString().slice(0, 10);
      const report = await reportFromDatabase(pool, parseReportQuery({ from: day, to: dayAfter(today()).toISOString().slice(0, 10), by: 'model' }));
      expect(new Set(report.rows.map((r) => r.group.model))).toEqual(models);
    } finally {
      await pool.end();
    }
  }, 30_000);

  it('a period across a restart: both runs\' rows are in the report, once', async () => {
    const r = fleet[0]!;
    const { ledger } = r;
    const name = (await r.proxy.stats()).instance;
    await stopProxy(r);
    const again = await startProxy(name, ledger, server.url('fleet'), 56);
    fleet[0] = again;
    await load([again.url], 10, 0);
    await flushAll([again]);
    const pool = testPool(server.url('fleet'));
    try {
      const runs = await pool.query<{ n: string }>('SELECT count(DISTINCT run_id) AS n FROM carbon_trace_requests WHERE instance = $1', [name]);
      expect(Number(runs.rows[0]!.n)).toBe(2);
      const from = new Date(Date.now() - 3_600_000).toISOString();
      const to = new Date(Date.now() + 60_000).toISOString();
      const report = await reportFromDatabase(pool, parseReportQuery({ from, to, by: 'instance' }));
      const row = report.rows.find((x) => x.group.instance === name)!;
      expect(row.requests).toBe(150);
      const own = await reportFromLedger(ledger, parseReportQuery({ from, to }), { instance: name });
      expect(own.totals.requests).toBe(150);
      expect(relative(own.totals.energyKwh, row.energyKwh)).toBeLessThan(1e-9);
    } finally {
      await pool.end();
    }
  }, 60_000);

  it('the password shows nowhere: stats, the dashboard, warnings, a report\'s error', async () => {
    const r = fleet[1]!;
    const secret = server.password;
    const stats = await (await fetch(`${r.url}/carbon/stats`)).text();
    expect(stats).toContain('***');
    expect(stats).not.toContain(secret);
    expect(await (await fetch(`${r.url}/carbon`)).text()).not.toContain(secret);
    expect(r.warnings.join('\n')).not.toContain(secret);
    // A period answered by the database, then by a database that is down.
    const day = today().toISOString().slice(0, 10);
    expect(await (await fetch(`${r.url}/metrics`)).text()).toMatch(/^carbon_trace_fleet_database_up 1$/m);
    const ok = await fetch(`${r.url}/carbon/stats?from=${day}&by=instance`);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Report).totals.requests).toBeGreaterThan(0);
    await server.stop();
    try {
      // The fleet's books cannot be read: this proxy's ledger answers, and says so.
      const own = await fetch(`${r.url}/carbon/stats?from=${day}&by=model`);
      expect(own.status).toBe(200);
      const text = await own.text();
      const report = JSON.parse(text) as Report;
      expect(report.source).toMatch(/^ledger/);
      expect(report.note).toMatch(/^fleet database postgres:\/\/carbon:\*\*\*@.*: this proxy's ledger only, not the fleet's$/);
      expect(report.totals.requests).toBe((await reportFromLedger(r.ledger, parseReportQuery({ from: day, by: 'model' }), { instance: 'gpu-pl' })).totals.requests);
      expect(text).not.toContain(secret);
      // A `to` without `from`: refused, not the live books under a period's name.
      expect((await fetch(`${r.url}/carbon/stats?to=${day}`)).status).toBe(400);
      // Prometheus sees the database down.
      await r.proxy.flushFleet();
      expect(await (await fetch(`${r.url}/metrics`)).text()).toMatch(/^carbon_trace_fleet_database_up 0$/m);
    } finally {
      await server.start();
    }
    const bad = await fetch(`${r.url}/carbon/stats?from=yesterday`);
    expect(bad.status).toBe(400);
  }, 60_000);

  it('--retention: old rows go, the daily rollups stay; a period before then is answered in whole days only', async () => {
    const d = dir();
    const path = join(d, 'old.csv');
    const ledger = openLedger({ path });
    const old = new Date(Date.now() - 40 * 86_400_000);
    const entry = (at: Date, joules: number): LedgerEntry => ({ at: at.toISOString(), model: 'm', status: 200, streamed: false, energy: { joules: { gpu: joules }, totalJoules: joules, durationSeconds: 1, measured: true, warnings: [] }, grid: { gCo2PerKwh: 100, source: 'given' }, usage: { promptTokens: 1, completionTokens: 2 } });
    for (let i = 0; i < 5; i++) ledger.append(entry(old, 3600));
    for (let i = 0; i < 3; i++) ledger.append(entry(new Date(), 7200));
    const db = server.url('retention');
    const warnings: string[] = [];
    const shipper = createFleetShipper({ db, instance: { name: 'old-box', id: '00000000-0000-4000-8000-000000000001', host: 'h' }, files: () => ({ ledger, idleLogPath: undefined }), warn: (_k, m) => warnings.push(m), retentionDays: 30 });
    try {
      expect(await shipper.flush()).toBe(true);
      const pool = testPool(db);
      try {
        const left = await pool.query<{ n: string }>('SELECT count(*) AS n FROM carbon_trace_requests');
        expect(Number(left.rows[0]!.n)).toBe(3);
        const oldDay = old.toISOString().slice(0, 10);
        const whole = await reportFromDatabase(pool, parseReportQuery({ from: oldDay, to: dayAfter(new Date(`${oldDay}T00:00:00Z`)).toISOString().slice(0, 10) }));
        expect(whole.totals.requests).toBe(5);
        expect(whole.totals.energyKwh).toBeCloseTo((5 * 3600) / 3.6e6, 12);
        await expect(reportFromDatabase(pool, parseReportQuery({ from: oldDay, to: dayAfter(new Date(`${oldDay}T00:00:00Z`)).toISOString().slice(0, 10), by: 'hour' }))).rejects.toThrow(/removed \(--retention\)/);
      } finally {
        await pool.end();
      }
    } finally {
      await shipper.close();
      ledger.close();
    }
    expect(warnings.join('\n')).not.toContain(server.password);
  }, 60_000);
});



