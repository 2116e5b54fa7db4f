import type { GridIntensity, GridIntensityProvider, GridIntensityReading } from '../core/grid-intensity';
import { readBounded } from '../core/read-bounded';
import { createWarner, type CarbonTraceWarningHandler } from '../core/report';
import { isFigure } from '../core/units';
import { gridIntensityOfZone } from './zones';

/**
 * Electricity Maps' public API, as its developer hub's API reference writes it
 * (portal.electricitymaps.com/developer-hub/api/reference); older pages use
 * `https://api.electricitymap.org`, which serves the same v3 routes.
 *
 * @example
 * ```ts
 * createElectricityMapsProvider({ zone: 'FR', token, apiUrl: ELECTRICITY_MAPS_API_URL });
 * ```
 */
export const ELECTRICITY_MAPS_API_URL = 'https://api.electricitymaps.com';

/**
 * The environment variable the carbon-trace command reads the Electricity Maps token from, named
 * in the error when there is none.
 *
 * @example
 * ```ts
 * const token = process.env[ELECTRICITY_MAPS_TOKEN_VARIABLE];
 * ```
 */
export const ELECTRICITY_MAPS_TOKEN_VARIABLE = 'ELECTRICITYMAPS_API_TOKEN';

/**
 * The timers a provider schedules its refreshes and time-outs with: the global ones by default,
 * stand-ins that tests drive by hand. A callback returns the promise of the work it started (a
 * refresh), so a stand-in can wait for it. Handles that have `unref` (Node's) are unref'd.
 *
 * @example
 * ```ts
 * const timers: GridTimers = { setTimeout: (run, ms) => setTimeout(run, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
 * ```
 */
export type GridTimers = {
  setTimeout(callback: () => unknown, ms: number): unknown;
  clearTimeout(handle: unknown): void;
};

/**
 * Options of {@link createElectricityMapsProvider}.
 *
 * @example
 * ```ts
 * const options: ElectricityMapsOptions = { zone: 'FR', token: process.env.ELECTRICITYMAPS_API_TOKEN, refreshSeconds: 300 };
 * ```
 */
export type ElectricityMapsOptions = {
  /** An Electricity Maps zone key: `'FR'`, `'DE'`, `'US-CAL-CISO'`, `'DK-DK1'`. */
  zone: string;
  /** The API token, sent as the `auth-token` header and nowhere else. Required. */
  token: string | undefined;
  /** The API's base URL (a proxy or a mirror of it). Default {@link ELECTRICITY_MAPS_API_URL}. */
  apiUrl?: string;
  /** Seconds between the end of one request and the start of the next. Default 300. */
  refreshSeconds?: number;
  /** Seconds a request may take before it counts as failed. Default 10. */
  timeoutSeconds?: number;
  /**
   * What to book at until a first live figure comes. Default: the yearly average of the zone's
   * country (the part before the first `-`) from CO2.js (Ember).
   */
  fallback?: GridIntensity;
  /** Where each fallback is stated, once, in one line. Default: `console.warn`. `false` silences it. */
  onWarning?: CarbonTraceWarningHandler;
  /** The fetch to call the API with. Default: `globalThis.fetch` at call time. */
  fetch?: typeof globalThis.fetch;
  /** The timers to schedule with. Default: the global `setTimeout` / `clearTimeout`. */
  timers?: GridTimers;
};

const DEFAULT_REFRESH_SECONDS = 300;
const DEFAULT_TIMEOUT_SECONDS = 10;
// No grid averages much above 1,000 gCO2eq/kWh over an hour (coal's lifecycle factor is about
// 820); a figure past this is a broken answer, not a grid.
const MAX_G_CO2_PER_KWH = 2_000;
// The documented answer is a few hundred bytes.
const MAX_ANSWER_CHARS = 64 * 1024;
const ZONE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
// What a header value may carry; fetch's own error for anything else quotes the value.
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;

const realTimers: GridTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as Parameters<typeof clearTimeout>[0]),
};

/**
 * A live grid intensity from Electricity Maps (API v3, `GET /v3/carbon-intensity/latest?zone=…`
 * with the `auth-token` header), refreshed in the background. `current()` is immediate and never
 * fails; each model call reads it when it is booked.
 *
 * - It asks once at creation, then `refreshSeconds` after each answer: one request at a time, at
 *   most one per interval however many calls read it. Its timers are unref'd; `close()` stops it.
 * - When the API fails, times out, rejects the token or answers something that is not a figure
 *   (`carbonIntensity` not a number from 0 to 2,000, another zone, not JSON), it keeps the last
 *   live figure; before the first one it gives the zone's yearly average (`live: false`). Each
 *   fallback is stated once, in one line, through `onWarning`; a later failure after a recovery
 *   is stated again.
 * - A rejected token at start is one such line, then the yearly average; it keeps asking at
 *   each interval, quietly, in case the token becomes valid.
 * - The token goes in the `auth-token` header only: it is in no warning, error, reading or
 *   property, and redirects are not followed (a redirect would carry the header elsewhere).
 *
 * Throws at once (one line, no token in it) when the token is missing or cannot be a header, the
 * zone or URL is malformed, or the zone has no yearly average to fall back on and no `fallback`.
 *
 * @example
 * ```ts
 * import { createElectricityMapsProvider } from 'carbon-trace/grid';
 * import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
 *
 * const grid = createElectricityMapsProvider({ zone: 'FR', token: process.env.ELECTRICITYMAPS_API_TOKEN });
 * const middleware = carbonTraceMiddleware({ gridIntensity: grid }); // each call at the figure of its time
 * grid.current(); // { gCo2PerKwh: 31, zone: 'FR', live: true, datetime: '…', source: 'Electricity Maps live figure, zone FR, for …' }
 * grid.close();
 * ```
 */
export function createElectricityMapsProvider(options: ElectricityMapsOptions): GridIntensityProvider {
  const settings = validate(options);
  const { zone, token, endpoint, refreshMs, timeoutMs, timeoutSeconds, timers, fallback } = settings;
  const standIn = options.fallback === undefined ? 'the yearly average' : 'the fallback';
  const warn = createWarner(options.onWarning);
  const scrub = (text: string) => text.split(token).join('[token]');
  const fetchFn = options.fetch;

  let reading: GridIntensityReading = Object.freeze({
    gCo2PerKwh: fallback.gCo2PerKwh,
    source: `${fallback.source ?? 'given fallback'} (${standIn}: no live figure from Electricity Maps for zone ${zone} yet)`,
    zone: fallback.zone ?? zone,
    live: false,
  });
  let lastLive: GridIntensityReading | undefined;
  let failing = false;
  let episode = 0;
  let closed = false;
  let inFlight: AbortController | undefined;
  let nextRefresh: unknown;

  async function ask(signal: AbortSignal): Promise<GridIntensityReading | string> {
    const response = await (fetchFn ?? globalThis.fetch)(endpoint, {
      headers: { 'auth-token': token, accept: 'application/json' },
      redirect: 'manual',
      signal,
    });
    if (!response.ok) {
      void response.body?.cancel().catch(() => {});
      if (response.status === 401 || response.status === 403) return `the API token was rejected (HTTP ${response.status})`;
      if (response.status === 0 || (response.status >= 300 && response.status < 400)) return `the API redirected (HTTP ${response.status}), which is not followed`;
      return `HTTP ${response.status}`;
    }
    const length = Number(response.headers.get('content-length'));
    if (length > MAX_ANSWER_CHARS) {
      void response.body?.cancel().catch(() => {});
      return `an answer of ${length} bytes, not the documented one`;
    }
    // No Content-Length (a chunked answer) says nothing of its size: read no further than the limit.
    const bytes = await readBounded(response.body, MAX_ANSWER_CHARS);
    if (bytes === undefined) return `an answer of more than ${MAX_ANSWER_CHARS} bytes, not the documented one`;
    // TextDecoder, not Buffer: the grid provider also runs where Node's globals do not (edge).
    return readAnswer(new TextDecoder().decode(bytes), zone);
  }

  async function refresh(): Promise<void> {
    if (closed || inFlight !== undefined) return;
    const controller = new AbortController();
    inFlight = controller;
    let timedOut = false;
    const timeout = unref(
      timers.setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs),
    );
    let outcome: GridIntensityReading | string;
    try {
      outcome = await ask(controller.signal);
    } catch (error) {
      outcome = timedOut ? `no answer within ${timeoutSeconds} s` : `the request failed (${describeError(error)})`;
    } finally {
      timers.clearTimeout(timeout);
      inFlight = undefined;
    }
    if (closed) return;
    settle(outcome);
    nextRefresh = unref(timers.setTimeout(() => refresh(), refreshMs));
  }

  function settle(outcome: GridIntensityReading | string): void {
    if (typeof outcome !== 'string') {
      reading = lastLive = outcome;
      failing = false;
      return;
    }
    if (failing) return;
    failing = true;
    episode++;
    const instead =
      lastLive === undefined
        ? `booking at ${standIn}, ${reading.gCo2PerKwh} gCO2eq/kWh (${fallback.source ?? 'given fallback'})`
        : `keeping the last live figure, ${lastLive.gCo2PerKwh} gCO2eq/kWh${lastLive.datetime ? ` for ${lastLive.datetime}` : ''}`;
    const message = scrub(`Electricity Maps, zone ${zone}: ${outcome}; ${instead}, until it answers`);
    // Keyed per episode: the default console warner states each distinct key once per process.
    warn(`electricitymaps\0${zone}\0${episode}`, message);
  }

  const ready = refresh().catch(() => {});

  return {
    current: () => reading,
    ready,
    close() {
      closed = true;
      if (nextRefresh !== undefined) timers.clearTimeout(nextRefresh);
      inFlight?.abort();
    },
  };
}

/**
 * Options of {@link gridProviderFromOptions}: what a command line gives, numbers possibly as text.
 *
 * @example
 * ```ts
 * const options: GridProviderOptions = { source: 'electricitymaps', zone: 'FR', token: process.env.ELECTRICITYMAPS_API_TOKEN, refreshSeconds: '300' };
 * ```
 */
export type GridProviderOptions = Omit<ElectricityMapsOptions, 'zone' | 'token' | 'refreshSeconds' | 'timeoutSeconds'> & {
  /** The only live source so far: `'electricitymaps'`. */
  source: string;
  zone?: string | undefined;
  token?: string | undefined;
  refreshSeconds?: number | string | undefined;
  timeoutSeconds?: number | string | undefined;
};

/**
 * Makes the live grid provider a command line or config asks for — `--grid-source
 * electricitymaps --zone FR --grid-api-url … --grid-refresh 300`, the token from
 * `ELECTRICITYMAPS_API_TOKEN` — or throws a one-line `Error` saying what is missing: without a
 * token, one naming `ELECTRICITYMAPS_API_TOKEN`. A token the API rejects is not an error: one
 * warning line, then the zone's yearly average (see {@link createElectricityMapsProvider}).
 *
 * @example
 * ```ts
 * import { gridProviderFromOptions } from 'carbon-trace/grid';
 *
 * const grid = gridProviderFromOptions({ source: 'electricitymaps', zone: 'FR', token: process.env.ELECTRICITYMAPS_API_TOKEN, refreshSeconds: 300 });
 * grid.current().gCo2PerKwh; // at every booking; never blocks
 * process.on('SIGTERM', () => grid.close());
 * ```
 */
export function gridProviderFromOptions(options: GridProviderOptions): GridIntensityProvider {
  const { source, zone, token, refreshSeconds, timeoutSeconds, ...rest } = options;
  if (source !== 'electricitymaps') throw new Error(`unknown grid source ${JSON.stringify(String(source)).slice(0, 40)}: the live source is 'electricitymaps'`);
  const provider: ElectricityMapsOptions = { ...rest, zone: zone ?? '', token };
  const refresh = seconds(refreshSeconds, 'refresh interval');
  const timeout = seconds(timeoutSeconds, 'time-out');
  if (refresh !== undefined) provider.refreshSeconds = refresh;
  if (timeout !== undefined) provider.timeoutSeconds = timeout;
  return createElectricityMapsProvider(provider);
}

function seconds(value: number | string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof parsed !== 'number' || !Number.isFinite(parsed)) throw new Error(`the Electricity Maps ${what} must be a number of seconds, got ${JSON.stringify(String(value)).slice(0, 40)}`);
  return parsed;
}

function validate(options: ElectricityMapsOptions) {
  const given = options ?? ({} as ElectricityMapsOptions);
  const token = typeof given.token === 'string' ? given.token.trim() : '';
  if (token === '') throw new Error(`Electricity Maps needs an API token: set ${ELECTRICITY_MAPS_TOKEN_VARIABLE}`);
  if (!TOKEN_PATTERN.test(token)) {
    throw new Error(`the Electricity Maps API token (${ELECTRICITY_MAPS_TOKEN_VARIABLE}) has characters an HTTP header cannot carry`);
  }
  const zone = typeof given.zone === 'string' ? given.zone.trim() : '';
  if (!ZONE_PATTERN.test(zone)) {
    throw new Error(`Electricity Maps needs a zone key such as 'FR', 'DE' or 'US-CAL-CISO', got ${JSON.stringify(String(given.zone ?? '')).slice(0, 40)}`);
  }
  let base: URL;
  try {
    base = new URL(given.apiUrl ?? ELECTRICITY_MAPS_API_URL);
  } catch {
    throw new Error(`the Electricity Maps API URL ${JSON.stringify(String(given.apiUrl)).slice(0, 80)} is not a URL`);
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new Error(`the Electricity Maps API URL must be http(s), got ${base.protocol}`);
  if (base.username !== '' || base.password !== '') throw new Error('the Electricity Maps API URL must not carry credentials: the token goes in ELECTRICITYMAPS_API_TOKEN');
  if (base.search !== '' || base.hash !== '') throw new Error('the Electricity Maps API URL must be a base URL, without a query or fragment');
  const endpoint = new URL(`${base.pathname.replace(/\/+$/, '')}/v3/carbon-intensity/latest`, base.origin);
  endpoint.searchParams.set('zone', zone);
  const refreshSeconds = given.refreshSeconds ?? DEFAULT_REFRESH_SECONDS;
  if (typeof refreshSeconds !== 'number' || !(refreshSeconds >= 1 && refreshSeconds <= 86_400)) {
    throw new Error(`the Electricity Maps refresh interval must be 1 to 86400 seconds, got ${String(refreshSeconds)}`);
  }
  const timeoutSeconds = given.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  if (typeof timeoutSeconds !== 'number' || !(timeoutSeconds > 0 && timeoutSeconds <= 600)) {
    throw new Error(`the Electricity Maps time-out must be more than 0 and at most 600 seconds, got ${String(timeoutSeconds)}`);
  }
  const fallback = given.fallback ?? gridIntensityOfZone(zone.split('-')[0]!);
  if (fallback === undefined) {
    throw new Error(`no yearly average to fall back on for Electricity Maps zone ${zone}: pass fallback: { gCo2PerKwh, source }`);
  }
  if (!isFigure(fallback.gCo2PerKwh) || fallback.gCo2PerKwh > MAX_G_CO2_PER_KWH) {
    throw new Error(`the fallback grid intensity must be a number of gCO2eq/kWh from 0 to ${MAX_G_CO2_PER_KWH}, got ${String(fallback.gCo2PerKwh)}`);
  }
  const timers = given.timers ?? realTimers;
  return { token, zone, endpoint: endpoint.href, refreshMs: refreshSeconds * 1000, timeoutMs: timeoutSeconds * 1000, timeoutSeconds, timers, fallback };
}

/**
 * The live reading in an answer of `/v3/carbon-intensity/latest`, or why it is not one. Only
 * own fields count: a `__proto__` key is data, never a prototype.
 */
function readAnswer(text: string, zone: string): GridIntensityReading | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'the answer is not JSON';
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'the answer is not a JSON object';
  const field = (key: string): unknown => (Object.hasOwn(body as object, key) ? (body as Record<string, unknown>)[key] : undefined);
  const figure = field('carbonIntensity');
  if (!isFigure(figure) || figure > MAX_G_CO2_PER_KWH) {
    return `carbonIntensity ${shown(figure)} is not a figure of gCO2eq/kWh from 0 to ${MAX_G_CO2_PER_KWH}`;
  }
  // Without a usable zone the API falls back to the caller's location: an answer for another zone is not ours.
  const answeredZone = field('zone');
  if (answeredZone !== undefined && (typeof answeredZone !== 'string' || answeredZone.toUpperCase() !== zone.toUpperCase())) {
    return `the answer is for zone ${shown(answeredZone)}, not ${zone}`;
  }
  const datetime = isoTime(field('datetime'));
  const reading: GridIntensityReading = {
    gCo2PerKwh: figure,
    source: `Electricity Maps live figure, zone ${zone}${datetime ? `, for ${datetime}` : ''}`,
    zone,
    live: true,
  };
  if (datetime) reading.datetime = datetime;
  const updatedAt = isoTime(field('updatedAt'));
  if (updatedAt) reading.updatedAt = updatedAt;
  const factor = field('emissionFactorType');
  if (factor === 'lifecycle' || factor === 'direct') reading.emissionFactorType = factor;
  const estimated = field('isEstimated');
  if (typeof estimated === 'boolean') reading.isEstimated = estimated;
  return Object.freeze(reading);
}

function isoTime(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 64) return undefined;
  const time = Date.parse(value);
  return Number.isFinite(time) ? new Date(time).toISOString() : undefined;
}

function shown(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = typeof value;
  }
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof code === 'string' ? `${message}: ${code}` : message;
}

function unref<T>(handle: T): T {
  (handle as { unref?: () => void } | null)?.unref?.();
  return handle;
}
