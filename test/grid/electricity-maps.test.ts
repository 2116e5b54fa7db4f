/**
 * The Electricity Maps provider against a loopback stand-in for API v3, its timers driven by
 * hand: what it asks, what it books at, how often it asks, how it falls back, and that the token
 * stays in the one header it belongs to.
 */
import { averageIntensity } from '@tgwf/co2/data';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CarbonTracker, parseCarbonTrace, type GridIntensityProvider } from '../../src/index';
import {
  createElectricityMapsProvider,
  ELECTRICITY_MAPS_API_URL,
  gridProviderFromOptions,
  type ElectricityMapsOptions,
} from '../../src/grid/index';
import { documentedAnswer, manualTimers, startElectricityMapsStandIn, type ElectricityMapsStandIn } from '../fixtures/electricity-maps-server';

const TOKEN = 'em-test-token-7Qx9Zp';
const FRANCE_YEARLY = averageIntensity.data.FRA!;

// One stand-in per test, so that a request aborted in one test never arrives in the next.
let api: ElectricityMapsStandIn;
beforeEach(async () => {
  api = await startElectricityMapsStandIn();
});
const open: GridIntensityProvider[] = [];
afterEach(async () => {
  for (const provider of open.splice(0)) provider.close();
  await api.close();
});

function start(overrides: Partial<ElectricityMapsOptions> = {}) {
  const clock = manualTimers();
  const warnings: string[] = [];
  const provider = createElectricityMapsProvider({
    zone: 'FR',
    token: TOKEN,
    apiUrl: api.url,
    timers: clock.timers,
    onWarning: (message) => warnings.push(message),
    ...overrides,
  });
  open.push(provider);
  return { provider, clock, warnings };
}

/** 10 Wh measured by the server, which reported its own 4.75 g. */
const metrics = parseCarbonTrace({ energy_consumed_wh: 10, emissions_g_co2: 4.75, duration_seconds: 2, measured: true })!;

describe('createElectricityMapsProvider', () => {
  it('asks /v3/carbon-intensity/latest for its zone with the auth-token header, and gives the figure with where it comes from', async () => {
    const { provider, warnings } = start();
    await provider.ready;
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]).toMatchObject({ path: '/v3/carbon-intensity/latest', zone: 'FR', headers: expect.objectContaining({ 'auth-token': TOKEN }) });
    expect(provider.current()).toEqual({
      gCo2PerKwh: 56,
      zone: 'FR',
      live: true,
      datetime: '2026-01-15T18:00:00.000Z',
      updatedAt: '2026-01-15T18:04:12.345Z',
      emissionFactorType: 'lifecycle',
      isEstimated: true,
      source: 'Electricity Maps live figure, zone FR, for 2026-01-15T18:00:00.000Z',
    });
    expect(warnings).toEqual([]);
  });

  it('keeps a base URL path (a proxy or mirror) and defaults to the public API', async () => {
    const { provider } = start({ apiUrl: `${api.url}/mirror/electricitymaps/`, zone: 'US-CAL-CISO' });
    await provider.ready;
    expect(api.requests[0]).toMatchObject({ path: '/mirror/electricitymaps/v3/carbon-intensity/latest', zone: 'US-CAL-CISO' });
    expect(provider.current()).toMatchObject({ gCo2PerKwh: 56, zone: 'US-CAL-CISO', live: true });
    expect(ELECTRICITY_MAPS_API_URL).toBe('https://api.electricitymaps.com');
  });

  it('books at the API figure, and within one refresh at the new figure when it changes', async () => {
    const { provider, clock } = start({ refreshSeconds: 300 });
    const tracker = new CarbonTracker({ gridIntensity: provider, onWarning: false });
    await provider.ready;
    tracker.record(metrics, { modelId: 'm' });
    // 0.01 kWh × 56 g/kWh
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo(0.00056, 12);

    api.reply = () => ({ carbonIntensity: 120, datetime: '2026-01-15T19:00:00.000Z' });
    clock.advance(299_999);
    await clock.settle();
    expect(api.requests).toHaveLength(1);
    tracker.record(metrics, { modelId: 'm' });
    clock.advance(1);
    await clock.settle();
    expect(api.requests).toHaveLength(2);
    expect(provider.current()).toMatchObject({ gCo2PerKwh: 120, live: true, datetime: '2026-01-15T19:00:00.000Z' });
    tracker.record(metrics, { modelId: 'm' });
    // 56, 56, then 120 g/kWh
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo(0.00056 + 0.00056 + 0.0012, 12);
    // The CSV's emissions and emissions_rate follow: 0.00232 kg over 6 s.
    const [header, row] = tracker.toEmissionsCsv().trim().split('\n');
    const cell = (name: string) => Number(row!.split(',')[header!.split(',').indexOf(name)]);
    expect(cell('emissions')).toBeCloseTo(0.00232, 12);
    expect(cell('emissions_rate')).toBeCloseTo(0.00232 / 6, 12);
  });

  it('makes one API call per interval however many calls read it: 200 in a burst', async () => {
    const { provider, clock } = start({ refreshSeconds: 60 });
    const tracker = new CarbonTracker({ gridIntensity: provider, onWarning: false });
    await provider.ready;
    for (let i = 0; i < 200; i++) tracker.record(metrics, { modelId: 'm' });
    expect(api.requests).toHaveLength(1);
    for (let step = 0; step < 3; step++) {
      clock.advance(20_000);
      for (let i = 0; i < 200; i++) tracker.record(metrics, { modelId: 'm' });
      await clock.settle();
    }
    // 60 s: the second call, and no other.
    expect(api.requests).toHaveLength(2);
    expect(tracker.totals().calls).toBe(800);
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo(800 * 0.00056, 9);
  });

  it('never overlaps calls: while one hangs, no other starts, whatever the interval', async () => {
    api.reply = () => ({ hang: true });
    const { provider, clock } = start({ refreshSeconds: 5, timeoutSeconds: 60 });
    await api.received(1);
    clock.advance(59_000);
    await clock.settle();
    expect(api.requests).toHaveLength(1);
    expect(provider.current()).toMatchObject({ gCo2PerKwh: FRANCE_YEARLY, live: false });
    clock.advance(1_000); // the time-out
    await provider.ready;
    api.reply = () => ({ carbonIntensity: 40 });
    clock.advance(5_000);
    await clock.settle();
    expect(api.requests).toHaveLength(2);
    expect(provider.current().gCo2PerKwh).toBe(40);
  });

  it.each([
    ['answering 500', { status: 500 }, /HTTP 500/],
    ['never answering', { hang: true }, /no answer within 10 s/],
  ] as const)('with the API %s, current() stays immediate at the last good figure — never 0, never NaN — and says so once', async (name, failure, reason) => {
    const { provider, clock, warnings } = start();
    await provider.ready;
    api.reply = () => failure;
    for (let cycle = 1; cycle <= 3; cycle++) {
      clock.advance(300_000);
      await api.received(1 + cycle);
      // Mid-request: every read is immediate and gives the last live figure.
      for (let i = 0; i < 200; i++) expect(provider.current().gCo2PerKwh).toBe(56);
      if (name === 'never answering') clock.advance(10_000);
      await clock.settle();
    }
    expect(api.requests).toHaveLength(4);
    expect(provider.current()).toMatchObject({ gCo2PerKwh: 56, live: true, datetime: '2026-01-15T18:00:00.000Z' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(reason);
    expect(warnings[0]).toMatch(/keeping the last live figure, 56 gCO2eq\/kWh for 2026-01-15T18:00:00\.000Z, until it answers$/);
    expect(warnings[0]).not.toContain('\n');
  });

  it('before any live figure, books at the zone’s yearly average and says so in one line', async () => {
    api.reply = () => ({ hang: true });
    const { provider, clock, warnings } = start();
    // Immediately, before the API has said anything.
    expect(provider.current()).toMatchObject({ gCo2PerKwh: FRANCE_YEARLY, zone: 'FRA', live: false });
    expect(provider.current().source).toMatch(/Ember yearly average.*zone FRA \(the yearly average: no live figure from Electricity Maps for zone FR yet\)/);
    await api.received(1);
    clock.advance(10_000);
    await provider.ready;
    expect(warnings).toEqual([
      expect.stringMatching(new RegExp(`^Electricity Maps, zone FR: no answer within 10 s; booking at the yearly average, ${FRANCE_YEARLY} gCO2eq/kWh \\(Ember`)),
    ]);
  });

  it.each([401, 403])('a token rejected at start (HTTP %i): one warning line, then the yearly average', async (status) => {
    api.reply = () => ({ status });
    const { provider, clock, warnings } = start();
    const tracker = new CarbonTracker({ gridIntensity: provider, onWarning: false });
    await provider.ready;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`the API token was rejected \\(HTTP ${status}\\); booking at the yearly average`));
    expect(warnings[0]).not.toContain('\n');
    tracker.record(metrics);
    expect(tracker.totals().gwpKgco2eq).toBeCloseTo((0.01 * FRANCE_YEARLY) / 1000, 12);
    // It keeps asking, quietly, in case the token becomes valid.
    clock.advance(300_000);
    await clock.settle();
    expect(api.requests).toHaveLength(2);
    expect(warnings).toHaveLength(1);
  });

  it('comes back to live figures, and states a later outage again', async () => {
    const { provider, clock, warnings } = start();
    await provider.ready;
    api.reply = () => ({ status: 503 });
    clock.advance(300_000);
    await clock.settle();
    api.reply = () => ({ carbonIntensity: 70 });
    clock.advance(300_000);
    await clock.settle();
    expect(provider.current()).toMatchObject({ gCo2PerKwh: 70, live: true });
    api.reply = () => ({ status: 502 });
    clock.advance(300_000);
    await clock.settle();
    expect(warnings).toEqual([expect.stringMatching(/HTTP 503; keeping the last live figure, 56/), expect.stringMatching(/HTTP 502; keeping the last live figure, 70/)]);
  });

  const BAD: Array<[string, string, RegExp]> = [
    ['carbonIntensity null', JSON.stringify(documentedAnswer('FR', null)), /carbonIntensity null is not a figure/],
    ['carbonIntensity a string', JSON.stringify(documentedAnswer('FR', '56')), /carbonIntensity "56" is not a figure/],
    ['carbonIntensity negative', JSON.stringify(documentedAnswer('FR', -3)), /carbonIntensity -3 is not a figure/],
    ['carbonIntensity NaN', '{"zone":"FR","carbonIntensity":NaN}', /not JSON/],
    ['carbonIntensity huge', JSON.stringify(documentedAnswer('FR', 1e9)), /carbonIntensity 1000000000 is not a figure of gCO2eq\/kWh from 0 to 2000/],
    ['carbonIntensity absent', JSON.stringify({ zone: 'FR', datetime: '2026-01-15T18:00:00.000Z' }), /carbonIntensity undefined/],
    ['the figure under __proto__', '{"zone":"FR","__proto__":{"carbonIntensity":56}}', /carbonIntensity undefined/],
    ['not JSON', '<html>502 Bad Gateway</html>', /not JSON/],
    ['a JSON array', '[56]', /not a JSON object/],
    ['JSON null', 'null', /not a JSON object/],
    ['another zone (the API’s IP fallback)', JSON.stringify(documentedAnswer('DE', 380)), /the answer is for zone "DE", not FR/],
  ];

  it.each(BAD)('treats an answer with %s as a failure, not a figure', async (_name, raw, reason) => {
    api.reply = () => ({ raw });
    const { provider, warnings } = start();
    await provider.ready;
    expect(provider.current()).toMatchObject({ gCo2PerKwh: FRANCE_YEARLY, live: false });
    expect(warnings).toEqual([expect.stringMatching(reason)]);
    expect(({} as Record<string, unknown>).carbonIntensity).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('carbonIntensity');
  });

  it('does not follow a redirect, which would carry the token to another host', async () => {
    const elsewhere: string[] = [];
    const other = createServer((req, res) => {
      elsewhere.push(String(req.headers['auth-token']));
      res.end(JSON.stringify(documentedAnswer('FR', 10)));
    }).listen(0, '127.0.0.1');
    await once(other, 'listening');
    try {
      api.reply = () => ({ status: 302, headers: { location: `http://127.0.0.1:${(other.address() as AddressInfo).port}/v3/carbon-intensity/latest?zone=FR` } });
      const { provider, warnings } = start();
      await provider.ready;
      expect(elsewhere).toEqual([]);
      expect(provider.current().live).toBe(false);
      expect(warnings).toEqual([expect.stringMatching(/the API redirected \(HTTP 302\), which is not followed/)]);
    } finally {
      other.close();
    }
  });

  it('stops reading an answer at 64 KiB when it has no Content-Length: a chunked answer without end is not buffered', async () => {
    api.reply = () => ({ endless: true });
    const { provider, warnings } = start();
    await provider.ready;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(provider.current()).toMatchObject({ gCo2PerKwh: FRANCE_YEARLY, live: false });
    expect(warnings).toEqual([expect.stringMatching(/an answer of more than 65536 bytes, not the documented one/)]);
    // What the stand-in could write is what was read plus the sockets' buffers: far below what a
    // whole-body read would have pulled (it never ends), and nothing more once the read stopped.
    const written = api.endlessBytesWritten;
    expect(written).toBeLessThan(16 * 1024 * 1024);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(api.endlessBytesWritten).toBe(written);
  });

  it('puts the token in no warning, error, reading or property — even when the API echoes it', async () => {
    const seen: string[] = [];
    api.reply = () => ({ raw: JSON.stringify(documentedAnswer(TOKEN, 56)) });
    const { provider, clock, warnings } = start();
    await provider.ready;
    api.reply = () => ({ carbonIntensity: 56 });
    clock.advance(300_000);
    await clock.settle();
    api.reply = () => ({ raw: JSON.stringify(documentedAnswer('FR', TOKEN)) });
    clock.advance(300_000);
    await clock.settle();
    seen.push(...warnings, JSON.stringify(provider.current()), inspect(provider, { depth: 5, showHidden: true }), JSON.stringify(provider));
    const errors = [
      () => createElectricityMapsProvider({ zone: 'FR', token: `${TOKEN}\n`.replace('\n', ' x') }),
      () => createElectricityMapsProvider({ zone: 'F R', token: TOKEN }),
      () => createElectricityMapsProvider({ zone: 'FR', token: TOKEN, apiUrl: `https://user:${TOKEN}@example.org` }),
      () => createElectricityMapsProvider({ zone: 'XX', token: TOKEN }),
      () => gridProviderFromOptions({ source: 'electricitymaps', zone: 'FR', token: TOKEN, refreshSeconds: 'soon' }),
    ];
    for (const fail of errors) {
      expect(fail).toThrow();
      try {
        fail();
      } catch (error) {
        seen.push(String(error), inspect(error));
      }
    }
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    for (const text of seen) expect(text).not.toContain(TOKEN);
    expect(warnings.join('\n')).toContain('[token]');
  });

  it('stops at close(): no timer left, no further call, the in-flight one aborted', async () => {
    api.reply = () => ({ hang: true });
    const { provider, clock } = start();
    await api.received(1);
    provider.close();
    await provider.ready;
    expect(clock.pending).toBe(0);
    clock.advance(3_600_000);
    await clock.settle();
    expect(api.requests).toHaveLength(1);
    expect(provider.current()).toMatchObject({ gCo2PerKwh: FRANCE_YEARLY, live: false });
  });

  it('unrefs its timers, so an app that is done can exit', async () => {
    const handles: NodeJS.Timeout[] = [];
    const { provider } = start({
      timers: {
        setTimeout: (run, ms) => {
          const handle = setTimeout(run, ms);
          handles.push(handle);
          return handle;
        },
        clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
      },
    });
    await provider.ready;
    // The request's time-out, then the next refresh.
    expect(handles.length).toBeGreaterThanOrEqual(2);
    for (const handle of handles) expect(handle.hasRef()).toBe(false);
    provider.close();
  });
});

describe('gridProviderFromOptions (what the command line will call)', () => {
  it.each([undefined, '', '   '])('without a token (%j): a one-line error naming ELECTRICITYMAPS_API_TOKEN, and no call', (token) => {
    expect(() => gridProviderFromOptions({ source: 'electricitymaps', zone: 'FR', token, apiUrl: api.url })).toThrow(
      /^Electricity Maps needs an API token: set ELECTRICITYMAPS_API_TOKEN$/,
    );
    expect(api.requests).toHaveLength(0);
  });

  it('builds the provider from command-line values, numbers as text included', async () => {
    const clock = manualTimers();
    const provider = gridProviderFromOptions({ source: 'electricitymaps', zone: 'FR', token: TOKEN, apiUrl: api.url, refreshSeconds: '60', timers: clock.timers, onWarning: false });
    open.push(provider);
    await provider.ready;
    clock.advance(60_000);
    await clock.settle();
    expect(api.requests).toHaveLength(2);
  });

  it.each([
    [{ source: 'watttime', zone: 'FR', token: TOKEN }, /unknown grid source "watttime"/],
    [{ source: 'electricitymaps', token: TOKEN }, /needs a zone key such as 'FR'/],
    [{ source: 'electricitymaps', zone: '__proto__', token: TOKEN }, /needs a zone key such as 'FR', 'DE' or 'US-CAL-CISO', got "__proto__"/],
    [{ source: 'electricitymaps', zone: 'XX', token: TOKEN }, /no yearly average to fall back on for Electricity Maps zone XX: pass fallback/],
    [{ source: 'electricitymaps', zone: 'FR', token: TOKEN, apiUrl: 'not a url' }, /API URL "not a url" is not a URL/],
    [{ source: 'electricitymaps', zone: 'FR', token: TOKEN, apiUrl: 'ftp://example.org' }, /must be http\(s\)/],
    [{ source: 'electricitymaps', zone: 'FR', token: TOKEN, apiUrl: 'https://example.org/?zone=DE' }, /without a query/],
    [{ source: 'electricitymaps', zone: 'FR', token: TOKEN, refreshSeconds: 0 }, /refresh interval must be 1 to 86400 seconds, got 0/],
    [{ source: 'electricitymaps', zone: 'FR', token: TOKEN, refreshSeconds: 'NaN' }, /refresh interval must be a number of seconds/],
    [{ source: 'electricitymaps', zone: 'FR', token: TOKEN, timeoutSeconds: -1 }, /time-out must be more than 0/],
    [{ source: 'electricitymaps', zone: 'FR', token: TOKEN, fallback: { gCo2PerKwh: Number.NaN } }, /fallback grid intensity must be a number/],
  ])('refuses %j with a one-line error', (options, reason) => {
    let message = '';
    try {
      open.push(gridProviderFromOptions(options));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(reason);
    expect(message).not.toContain('\n');
    expect(api.requests).toHaveLength(0);
  });

  it('takes an explicit fallback for a zone CO2.js has no country for', async () => {
    api.reply = () => ({ status: 500 });
    const provider = gridProviderFromOptions({
      source: 'electricitymaps', zone: 'XX-ISLAND', token: TOKEN, apiUrl: api.url, timers: manualTimers().timers, onWarning: false,
      fallback: { gCo2PerKwh: 600, source: 'island utility, 2025' },
    });
    open.push(provider);
    await provider.ready;
    expect(provider.current()).toMatchObject({ gCo2PerKwh: 600, live: false, zone: 'XX-ISLAND' });
    expect(provider.current().source).toMatch(/^island utility, 2025 \(the fallback: /);
  });
});
