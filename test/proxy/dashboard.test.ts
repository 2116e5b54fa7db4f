/**
 * The proxy's dashboard in a real headless browser (Debian's chromium, driven by playwright-core):
 * it loads with no console error, the numbers it shows are the ones /carbon/stats serves, it
 * updates while you look, and a screenshot is left in .tmp/ for a person to look at. Its period
 * picker shows a period's books (today, a calendar month) as /carbon/stats?from=… serves them,
 * from a ledger kept across a restart, behind an admin token; without a ledger, the proxy's message.
 */
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startProxiedToyModel } from '../../examples/server/connection';
import { startToyModel } from '../../examples/server/toy-model';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter } from '../../src/server/index';
import type { Report } from '../../src/server/fleet/report';
import { describeWith, requireSystemTool } from '../setup/system-tools';

const CHROMIUM = requireSystemTool(import.meta.filename, {
  name: 'Chromium',
  candidates: [...(process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : []), '/usr/bin/chromium'],
  install: 'sudo apt-get install -y chromium',
});
let local: Awaited<ReturnType<typeof startProxiedToyModel>>;
let browser: Browser;
let page: Page;
const errors: string[] = [];

const call = (i: number, stream: boolean) =>
  fetch(`${local.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: i % 3 ? 'toy-model' : 'toy-model-large', stream, messages: [{ role: 'user', content: `question ${i}` }] }),
  }).then((r) => r.text());

beforeAll(async () => {
  if (!CHROMIUM) return;
  local = await startProxiedToyModel({ gridIntensityGPerKwh: 56 });
  for (let i = 0; i < 12; i++) await Promise.all([call(i, i % 2 === 0), call(i + 100, true)]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root in a sandbox with no network: no Chrome sandbox, nothing that phones home.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
  page.on('pageerror', (error) => errors.push(String(error)));
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await local?.close();
});

const shown = (selector: string) => page.$eval(selector, (el) => Number((el as HTMLElement).dataset.value));
/** The JSON the page last drew (it keeps it) and every figure with an id it shows, read at once: the page redraws every second, and idle grows meanwhile. */
const drawn = () =>
  page.evaluate(() => ({
    stats: (window as unknown as { __carbonStats: Record<string, never> }).__carbonStats,
    values: Object.fromEntries([...document.querySelectorAll('[id][data-value]')].map((el) => [el.id, Number((el as HTMLElement).dataset.value)])) as Record<string, number>,
  }));

describeWith(CHROMIUM, 'the dashboard at /carbon, in Chromium', () => {
  it('loads, self-contained, with no console error, and shows what /carbon/stats serves', async () => {
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    await page.goto(`${local.proxyURL}/carbon`);
    await page.waitForFunction(() => (window as unknown as { __carbonStats?: { requests: number } }).__carbonStats?.requests === 24);
    expect(requested.every((url) => url.startsWith(local.proxyURL))).toBe(true); // no CDN, nothing fetched from elsewhere

    const { stats, values } = await drawn();
    // Energy since start grows with idle time; what only requests change is stable: check it against a fresh fetch.
    const fresh = await (await fetch(`${local.proxyURL}/carbon/stats`)).json();
    expect(fresh.requests).toBe(24);
    expect(fresh.attributedJoules).toBe(stats.attributedJoules);
    expect(fresh.byModel).toEqual(stats.byModel);

    expect(values['requests']).toBe(stats.requests);
    // The headline is the requests' emissions; idle and the machine's total come after it.
    const emissions = stats.emissionsGrams as unknown as { attributed: number; idle: number; total: number };
    expect(values['emissions-requests']).toBe(emissions.attributed);
    expect(values['emissions-idle']).toBe(emissions.idle);
    expect(await page.$eval('main section:first-child h2', (el) => el.textContent)).toBe('Emissions since start');
    expect(await page.$eval('main section:first-child .big', (el) => el.id)).toBe('emissions-requests');
    expect(values['energy-total']).toBe(stats.totalJoules);
    expect(values['energy-attributed']).toBe(stats.attributedJoules);
    expect(values['energy-idle']).toBe(stats.idleJoules);
    expect(values['emissions-total']).toBe((stats.emissionsGrams as unknown as { total: number }).total);
    const byModel = stats.byModel as unknown as Record<string, { requests: number; joules: number }>;
    for (const [model, totals] of Object.entries(byModel)) {
      const cells = await page.$$eval(`tr[data-model="${model}"] td[data-value]`, (tds) => tds.map((td) => Number((td as HTMLElement).dataset.value)));
      expect(cells.slice(0, 2)).toEqual([totals.requests, totals.joules]);
      expect(cells[2]).toBeCloseTo((totals.joules / 3.6e6) * 56, 15);
    }
    // One unit per column, in every table.
    const columns = await page.$$eval('table', (tables) =>
      tables.map((t) => [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''))),
    );
    for (const rows of columns) {
      for (let c = 0; c < (rows[0]?.length ?? 0); c++) {
        const units = new Set(rows.map((r) => /\s([µmkMGn]?(?:Wh|g|W))$/.exec(r[c] ?? '')?.[1]).filter(Boolean));
        expect(units.size).toBeLessThanOrEqual(1);
      }
    }
    expect(await page.$$eval('tr.recent', (trs) => trs.length)).toBe(12);
    // Newest first, as the heading says and as /carbon/stats lists them; each row says its kind and whether its trace reached the client.
    expect(await page.$eval('#recent', (el) => el.parentElement!.querySelector('h2')!.textContent)).toBe('Recent requests — newest first');
    const recent = stats.recent as unknown as Array<{ totalJoules: number | null; kind: string | null; traceDelivered: boolean | null }>;
    const recentRows = await page.$$eval('tr.recent', (trs) =>
      trs.map((tr) => ({
        joules: (tr.querySelector('td[data-value]') as HTMLElement).dataset.value,
        kind: tr.children[2]!.textContent,
        delivered: (tr.querySelector('[data-delivered]') as HTMLElement).dataset.delivered,
      })),
    );
    expect(recentRows).toEqual(recent.slice(0, 12).map((r) => ({ joules: String(r.totalJoules), kind: r.kind ?? '—', delivered: r.traceDelivered === null ? 'unknown' : String(r.traceDelivered) })));
    // Per model: energy per 1,000 tokens out divides the energy and the tokens of the same requests.
    for (const [model, row] of Object.entries(stats.byModel as unknown as Record<string, { withTokens: { completion: { joules: number; tokens: number } } }>)) {
      const { joules, tokens } = row.withTokens.completion;
      const cell = await page.$eval(`tr[data-model="${model}"] td.per-1k-out`, (td) => (td as HTMLElement).dataset.value);
      if (tokens > 0) expect(Number(cell)).toBeCloseTo((1000 * joules) / tokens / 3600, 15);
      else expect(cell).toBe('null');
    }
    // Per kind of call: the rows add up to the requests.
    const kindRequests = await page.$$eval('#kinds tr[data-row] td[data-value]:nth-child(2)', (tds) => tds.map((td) => Number((td as HTMLElement).dataset.value)));
    expect(kindRequests.reduce((a, b) => a + b, 0)).toBe(stats.requests);
    expect(await page.$$eval('#keys tbody tr', (trs) => trs.length)).toBe(1); // no Authorization header: one (none) row
    expect(await page.textContent('#keys')).toContain('(none)');
    const bars = await page.$$eval('#chart g.request', (gs) => gs.map((g) => Number((g as SVGGElement).dataset.value)));
    expect(bars).toEqual((stats.recent as unknown as Array<{ totalJoules: number }>).map((r) => r.totalJoules));
    expect(await page.textContent('#grid')).toBe('56 gCO2eq/kWh (given with --grid-intensity)');
    expect(await page.textContent('#power')).toMatch(/CPU\s*estimated/);
    expect(errors).toEqual([]);
  });

  it('updates while you look', async () => {
    await Promise.all([call(200, true), call(201, false)]);
    await page.waitForFunction(() => (window as unknown as { __carbonStats: { requests: number } }).__carbonStats.requests === 26, undefined, { timeout: 5_000 });
    expect(await shown('#requests')).toBe(26);
    expect(await page.$$eval('#chart g.request', (gs) => gs.length)).toBe(26);
    mkdirSync(resolve('.tmp'), { recursive: true });
    await page.screenshot({ path: resolve('.tmp/dashboard.png'), fullPage: true });
    expect(existsSync(resolve('.tmp/dashboard.png'))).toBe(true);
    expect(errors).toEqual([]);
  });

  it('asks only for what it shows (?top=10): the 10 models with the most energy, then how many more', async () => {
    const asked: string[] = [];
    page.on('request', (r) => asked.push(r.url()));
    for (let i = 0; i < 13; i++) {
      await fetch(`${local.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: `extra-${i}`, messages: [{ role: 'user', content: 'x' }] }) }).then((r) => r.text());
    }
    await page.waitForFunction(() => (window as unknown as { __carbonStats: { requests: number } }).__carbonStats.requests === 39, undefined, { timeout: 5_000 });
    expect(asked.filter((url) => url.includes('/carbon/stats')).every((url) => url.endsWith('/carbon/stats?top=10'))).toBe(true);
    expect(await page.$$eval('#models tbody tr[data-model]', (trs) => trs.length)).toBe(10);
    // 15 models: toy-model, toy-model-large and 13 more.
    expect(await page.textContent('#models tr.more')).toBe('and 5 more (all of them: /carbon/stats)');
    const all = await (await fetch(`${local.proxyURL}/carbon/stats`)).json();
    const largest = Object.entries(all.byModel as Record<string, { joules: number }>).sort((a, b) => b[1].joules - a[1].joules).slice(0, 10).map(([m]) => m).sort();
    expect((await page.$$eval('#models tbody tr[data-model]', (trs) => trs.map((tr) => (tr as HTMLElement).dataset.model!))).sort()).toEqual(largest);
    expect(errors).toEqual([]);
  });
});

// ——— The period picker ———

const ADMIN = 'let-me-read';
type PeriodShown = { period: { from: string; to: string; label: string }; urls: string[]; reports: Array<Report | null> };

describeWith(CHROMIUM, 'the dashboard over a period (the picker), in Chromium', () => {
  let model: Awaited<ReturnType<typeof startToyModel>>;
  let meter: EnergyMeter;
  let proxy: CarbonProxy | undefined;
  let proxyURL: string;
  let dir: string;
  let periodPage: Page;
  const pageErrors: string[] = [];
  const asked: Array<{ url: string; authorization: string | undefined }> = [];

  const startOnLedger = async () => {
    proxy = createCarbonProxy({ upstream: model.origin, meter, ledger: join(dir, 'ledger.csv'), gridIntensity: { gCo2PerKwh: 56, source: 'given with --grid-intensity' }, adminToken: ADMIN, onWarning: false });
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    proxyURL = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
  };
  // Three API keys, four users, three models, streamed and not: every table has rows to sort.
  const send = async (i: number) => {
    const response = await fetch(`${proxyURL}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer team-${i % 3}` },
      body: JSON.stringify({ model: ['toy-model', 'toy-model-large', 'toy-model-xl'][i % 3 === 0 ? 0 : i % 2 ? 1 : 2], user: `user-${i % 4}`, stream: i % 2 === 0, messages: [{ role: 'user', content: `question ${'x '.repeat(i)}` }] }),
    });
    await response.text();
    expect(response.status).toBe(200);
  };
  /** What the page last drew its period from (it keeps the JSON). */
  const periodShown = () => periodPage.evaluate(() => (window as unknown as { __carbonPeriod?: PeriodShown }).__carbonPeriod) as Promise<PeriodShown | undefined>;
  const value = (selector: string) => periodPage.$eval(selector, (el) => Number((el as HTMLElement).dataset.value));
  const fetchReport = async (url: string) => {
    const response = await fetch(`${proxyURL}${url}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(response.status, url).toBe(200);
    return (await response.json()) as Report;
  };

  /** Every figure on the period view is the one of the JSON the page read, and that JSON is what /carbon/stats?from=… serves. */
  async function expectPageIsTheBooks(shown: PeriodShown, requests: number): Promise<void> {
    expect(shown.urls.map((u) => new URL(u, proxyURL).searchParams.get('by'))).toEqual(['model', 'api_key', 'user']);
    const [byModel, byKey, byUser] = shown.reports as Report[];
    for (const [i, url] of shown.urls.entries()) {
      const fresh = await fetchReport(url);
      const kept = shown.reports[i]!;
      expect(fresh.from).toBe(`${shown.period.from}T00:00:00.000Z`);
      expect(fresh.to).toBe(`${shown.period.to}T00:00:00.000Z`);
      expect(fresh.rows).toEqual(kept.rows);
      // The requests' totals are the same; idle (and so the machine's) only grows: the idle log gains a line a minute.
      const requestTotals = (totals: Report['totals']) => Object.fromEntries(Object.entries(totals).filter(([key]) => key !== 'idle' && !key.startsWith('machine')));
      expect(requestTotals(fresh.totals)).toEqual(requestTotals(kept.totals));
      expect(fresh.totals.idle.idleEnergyKwh).toBeGreaterThanOrEqual(kept.totals.idle.idleEnergyKwh);
      expect(fresh.totals.machineEnergyKwh).toBeGreaterThanOrEqual(kept.totals.machineEnergyKwh);
    }
    const t = byModel!.totals;
    expect(t.requests).toBe(requests);
    expect(await value('#p-requests')).toBe(t.requests);
    expect(await value('#p-emissions-requests')).toBe(t.emissionsKgco2eq);
    expect(await value('#p-emissions-idle')).toBe(t.idle.idleEmissionsKgco2eq);
    expect(await value('#p-emissions-total')).toBe(t.machineEmissionsKgco2eq);
    expect(await value('#p-energy-requests')).toBe(t.energyKwh);
    expect(await value('#p-energy-idle')).toBe(t.idle.idleEnergyKwh);
    expect(await value('#p-energy-total')).toBe(t.machineEnergyKwh);
    expect(await value('#p-energy-share')).toBe(t.machineEnergyKwh > 0 ? t.energyKwh / t.machineEnergyKwh : 0);
    expect(await value('#p-measured-share')).toBe((100 * t.measuredEnergyKwh) / t.energyKwh);
    expect(await value('#p-requests-with-energy')).toBe(t.requestsWithEnergy);
    expect(await value('#p-measured-requests')).toBe(t.measuredRequests);
    expect(await value('#p-prompt-tokens')).toBe(t.promptTokens);
    expect(await value('#p-completion-tokens')).toBe(t.completionTokens);
    // What the page shows in words: the requests' CO2eq in its unit, the count in full.
    expect(await periodPage.textContent('#p-requests')).toBe(t.requests.toLocaleString('en-US'));

    // Each table: the 10 groups with the most CO2eq, largest first, each figure the report's.
    for (const [report, id, by] of [[byModel, 'p-models', 'model'], [byKey, 'p-keys', 'api_key'], [byUser, 'p-users', 'user']] as const) {
      const rows = await periodPage.$$eval(`#${id} tbody tr[data-group]`, (trs) =>
        trs.map((tr) => ({ group: (tr as HTMLElement).dataset.group, cells: [...tr.querySelectorAll('td[data-value]')].map((td) => Number((td as HTMLElement).dataset.value)) })),
      );
      const expected = [...report!.rows].sort((a, b) => b.emissionsKgco2eq - a.emissionsKgco2eq).slice(0, 10);
      expect(rows.length, id).toBeGreaterThan(1);
      expect(rows, id).toEqual(
        expected.map((r) => ({
          group: r.group[by] ?? '',
          cells: [r.requests, r.energyKwh, r.emissionsKgco2eq, r.promptTokens, r.completionTokens, r.energyKwh > 0 ? (100 * r.measuredEnergyKwh) / r.energyKwh : Number.NaN],
        })),
      );
      // The rows add up to the period's totals (every group is shown: fewer than 10).
      expect(rows.reduce((sum, r) => sum + r.cells[0]!, 0)).toBe(t.requests);
    }
    // One unit per column, a unit in no header but the columns' cells.
    const tables = await periodPage.$$eval('#period-view table', (ts) => ts.map((tb) => [...tb.querySelectorAll('tbody tr[data-group]')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''))));
    expect(tables).toHaveLength(3);
    for (const rows of tables) {
      for (let c = 0; c < rows[0]!.length; c++) {
        const units = new Set(rows.map((r) => /\s([µmkMGn]?(?:Wh|g|W)|t|kt|%)$/.exec(r[c] ?? '')?.[1]).filter(Boolean));
        expect(units.size).toBeLessThanOrEqual(1);
      }
    }
    expect(await periodPage.isVisible('#period-error')).toBe(false);
    expect(await periodPage.isVisible('#live')).toBe(false);
  }

  beforeAll(async () => {
    if (!CHROMIUM) return;
    dir = mkdtempSync(join(tmpdir(), 'carbon-trace-dashboard-'));
    model = await startToyModel();
    const start = performance.now();
    // A measured CPU and GPU (50 W and 200 W): idle and the requests' energy both have figures.
    meter = createEnergyMeter({
      sources: [{ name: 'stand-in', measured: true, read: () => ({ cpuJoules: (50 * (performance.now() - start)) / 1000, gpuJoules: (200 * (performance.now() - start)) / 1000 }) }],
      sampleIntervalMs: 20,
      onWarning: false,
    });
    // A first run, then a restart on the same ledger: its idle is in the idle log, and the period crosses the restart.
    await startOnLedger();
    for (let i = 0; i < 9; i++) await send(i);
    await new Promise((r) => setTimeout(r, 300));
    await proxy!.close();
    await startOnLedger();
    for (let i = 9; i < 21; i++) await send(i);

    periodPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    periodPage.on('pageerror', (error) => pageErrors.push(String(error)));
    periodPage.on('console', (message) => message.type() === 'error' && !/Failed to load resource/.test(message.text()) && pageErrors.push(message.text()));
    periodPage.on('request', (r) => asked.push({ url: r.url(), authorization: r.headers().authorization }));
  }, 60_000);
  afterAll(async () => {
    await periodPage?.close();
    await proxy?.close();
    await meter?.close();
    await model?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('"today": the totals and the top models, API keys and users of /carbon/stats?from=<today>&to=<tomorrow>, from the ledger across a restart, behind the admin token', async () => {
    await periodPage.goto(`${proxyURL}/carbon?token=${ADMIN}`);
    // The live books carry the first run's requests across the restart (the ledger keeps them).
    await periodPage.waitForFunction(() => (window as unknown as { __carbonStats?: { requests: number } }).__carbonStats?.requests === 21);
    expect(await periodPage.getAttribute('button[data-period="live"]', 'aria-pressed')).toBe('true');
    asked.length = 0;
    await periodPage.click('button[data-period="today"]');
    await periodPage.waitForFunction(() => (window as unknown as { __carbonPeriod?: unknown }).__carbonPeriod !== undefined);
    const shown = (await periodShown())!;
    const today = new Date().toISOString().slice(0, 10);
    const tomorrow = new Date(Date.parse(`${today}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
    expect(shown.period).toMatchObject({ from: today, to: tomorrow });
    expect(shown.urls).toEqual(['model', 'api_key', 'user'].map((by) => `/carbon/stats?from=${today}&to=${tomorrow}&by=${by}&top=10`));
    // From the ledger (its rows, or its daily rollups for whole days), said on the page.
    for (const r of shown.reports) expect(r?.source).toMatch(/^ledger/);
    expect(await periodPage.textContent('#p-source')).toMatch(/^this proxy's ledger/);
    await expectPageIsTheBooks(shown, 21);
    // The first run's idle (logged when it stopped) is in the period's books, and on the page.
    expect(shown.reports[0]!.totals.idle.idleEnergyKwh).toBeGreaterThan(0);
    expect(await periodPage.textContent('#period-range')).toBe(`today, ${today} (UTC)`);
    expect(await periodPage.getAttribute('button[data-period="today"]', 'aria-pressed')).toBe('true');
    expect(new URL(periodPage.url()).hash).toBe('#period=today');
    expect(new URL(periodPage.url()).searchParams.get('token')).toBe(ADMIN);

    // Three reads (one per table), each with the admin token; then nothing for a while — not the live view's every second.
    await new Promise((r) => setTimeout(r, 2_500));
    const stats = asked.filter((a) => a.url.includes('/carbon/stats'));
    expect(stats.map((a) => new URL(a.url).search)).toEqual(shown.urls.map((u) => u.slice('/carbon/stats'.length)));
    expect(stats.every((a) => a.authorization === `Bearer ${ADMIN}`)).toBe(true);

    mkdirSync(resolve('.tmp'), { recursive: true });
    await periodPage.screenshot({ path: resolve('.tmp/dashboard-period.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });

  it('"a month": this calendar month by default, another one from the month picker; back to live', async () => {
    await periodPage.click('button[data-period="month"]');
    expect(await periodPage.isVisible('#month')).toBe(true);
    const month = new Date().toISOString().slice(0, 7);
    expect(await periodPage.inputValue('#month')).toBe(month);
    await periodPage.waitForFunction((m) => (window as unknown as { __carbonPeriod?: PeriodShown }).__carbonPeriod?.period.from === `${m}-01` && (window as unknown as { __carbonPeriod: PeriodShown }).__carbonPeriod.period.to !== undefined && new URLSearchParams(location.hash.slice(1)).get('period') === 'month', month);
    const shown = (await periodShown())!;
    const [y, m] = month.split('-').map(Number) as [number, number];
    const next = new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 10);
    expect(shown.urls[0]).toBe(`/carbon/stats?from=${month}-01&to=${next}&by=model&top=10`);
    await expectPageIsTheBooks(shown, 21);
    expect(new URL(periodPage.url()).hash).toBe(`#period=month&month=${month}`);
    await periodPage.screenshot({ path: resolve('.tmp/dashboard-period-month.png') });

    // The month before: no request then; the page says so, with zeros, not a broken table.
    const before = new Date(Date.UTC(y, m - 2, 1)).toISOString().slice(0, 7);
    await periodPage.fill('#month', before);
    await periodPage.waitForFunction((b) => (window as unknown as { __carbonPeriod?: PeriodShown }).__carbonPeriod?.period.from === `${b}-01`, before);
    const empty = (await periodShown())!;
    expect(empty.reports[0]!.totals.requests).toBe(0);
    expect(await value('#p-requests')).toBe(0);
    expect(await value('#p-emissions-requests')).toBe(0);
    expect(await periodPage.textContent('#p-models')).toBe('no request in this period');
    expect(await periodPage.textContent('#p-measured-share')).toBe('—');

    // Back to live: the live view again, polled every second.
    await periodPage.click('button[data-period="live"]');
    expect(await periodPage.isVisible('#live')).toBe(true);
    expect(await periodPage.isVisible('#period-view')).toBe(false);
    expect(await periodPage.isVisible('#month')).toBe(false);
    await send(100);
    await periodPage.waitForFunction(() => (window as unknown as { __carbonStats: { requests: number } }).__carbonStats.requests === 22, undefined, { timeout: 5_000 });
    expect(pageErrors).toEqual([]);
  });

  it('a period on a proxy with no ledger and no database: the proxy\'s message in place, not a broken page', async () => {
    // A proxy of this source tree (the one above is the built package's, as the examples run it), with no ledger and no database.
    const bare = createCarbonProxy({ upstream: model.origin, meter, onWarning: false });
    bare.server.listen(0, '127.0.0.1');
    await once(bare.server, 'listening');
    const bareURL = `http://127.0.0.1:${(bare.server.address() as AddressInfo).port}`;
    const page2 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const failures: string[] = [];
    page2.on('pageerror', (error) => failures.push(String(error)));
    try {
      // A link to a period opens it.
      await page2.goto(`${bareURL}/carbon#period=7d`);
      await page2.waitForFunction(() => document.getElementById('period-message')!.textContent !== '');
      const url = await page2.evaluate(() => (window as unknown as { __carbonPeriod: PeriodShown }).__carbonPeriod.urls[0]!);
      const answer = await fetch(`${bareURL}${url}`);
      expect(answer.status).toBe(500);
      const { error } = (await answer.json()) as { error: { message: string } };
      expect(error.message).toMatch(/keeps no ledger/);
      expect(await page2.textContent('#period-message')).toBe(`/carbon/stats answered 500: ${error.message}`);
      expect(await page2.isVisible('#period-error')).toBe(true);
      expect(await page2.$$eval('#period-view .period-body', (els) => els.filter((el) => (el as HTMLElement).offsetParent !== null).length)).toBe(0);
      expect(await page2.getAttribute('button[data-period="7d"]', 'aria-pressed')).toBe('true');
      // The header still says what the proxy is in front of (read once, without the live tables).
      await page2.waitForFunction(() => document.getElementById('upstream')!.textContent!.startsWith('→ '));
      expect(await page2.isVisible('#live')).toBe(false);
      await page2.screenshot({ path: resolve('.tmp/dashboard-period-no-ledger.png'), fullPage: true });
      expect(failures).toEqual([]);
    } finally {
      await page2.close();
      await bare.close();
    }
  });
});
