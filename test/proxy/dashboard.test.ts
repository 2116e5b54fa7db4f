/**
 * The proxy's dashboard in a real headless browser (Debian's chromium, driven by playwright-core):
 * it loads with no console error, the numbers it shows are the ones /carbon/stats serves, it
 * updates while you look, and a screenshot is left in .tmp/ for a person to look at.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startProxiedToyModel } from '../../examples/server/connection';
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

/** What the page last rendered (it keeps the JSON it drew from). */
const rendered = () => page.evaluate(() => (window as unknown as { __carbonStats: Record<string, never> }).__carbonStats);
const shown = (selector: string) => page.$eval(selector, (el) => Number((el as HTMLElement).dataset.value));

describeWith(CHROMIUM, 'the dashboard at /carbon, in Chromium', () => {
  it('loads, self-contained, with no console error, and shows what /carbon/stats serves', async () => {
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    await page.goto(`${local.proxyURL}/carbon`);
    await page.waitForFunction(() => (window as unknown as { __carbonStats?: { requests: number } }).__carbonStats?.requests === 24);
    expect(requested.every((url) => url.startsWith(local.proxyURL))).toBe(true); // no CDN, nothing fetched from elsewhere

    const stats = await rendered();
    // Energy since start grows with idle time; what only requests change is stable: check it against a fresh fetch.
    const fresh = await (await fetch(`${local.proxyURL}/carbon/stats`)).json();
    expect(fresh.requests).toBe(24);
    expect(fresh.attributedJoules).toBe(stats.attributedJoules);
    expect(fresh.byModel).toEqual(stats.byModel);

    expect(await shown('#requests')).toBe(stats.requests);
    // The headline is the requests' emissions; idle and the machine's total come after it.
    const emissions = stats.emissionsGrams as unknown as { attributed: number; idle: number; total: number };
    expect(await shown('#emissions-requests')).toBe(emissions.attributed);
    expect(await shown('#emissions-idle')).toBe(emissions.idle);
    expect(await page.$eval('main section:first-child h2', (el) => el.textContent)).toBe('Emissions since start');
    expect(await page.$eval('main section:first-child .big', (el) => el.id)).toBe('emissions-requests');
    expect(await shown('#energy-total')).toBe(stats.totalJoules);
    expect(await shown('#energy-attributed')).toBe(stats.attributedJoules);
    expect(await shown('#energy-idle')).toBe(stats.idleJoules);
    expect(await shown('#emissions-total')).toBe((stats.emissionsGrams as unknown as { total: number }).total);
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
