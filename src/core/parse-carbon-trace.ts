import { createWarner, type CarbonTraceWarningHandler } from './report';
import type { CarbonMetrics, CarbonSessionTotals } from './types';
import { isFigure } from './units';
import { carbonTraceWireFields, plainWireValue, type CarbonTraceWireField } from './wire-schema';

/**
 * The top-level response field that carries the trace.
 *
 * @example
 * ```ts
 * const raw = body[CARBON_TRACE_FIELD]; // body.x_carbon_trace
 * ```
 */
export const CARBON_TRACE_FIELD = 'x_carbon_trace';

/**
 * The key under which both adapters publish metrics: `providerMetadata.codecarbon`,
 * `response_metadata.codecarbon`, `generationInfo.codecarbon`.
 *
 * @example
 * ```ts
 * result.providerMetadata?.[CARBON_METADATA_KEY]; // same as getCarbonMetrics(result)
 * ```
 */
export const CARBON_METADATA_KEY = 'codecarbon';

/**
 * The key under which both adapters publish an EcoLogits estimate of a call that carried no
 * trace (`estimate` option): `providerMetadata.ecologits`, `response_metadata.ecologits`. Never
 * the same key as a trace's.
 *
 * @example
 * ```ts
 * result.providerMetadata?.[ESTIMATE_METADATA_KEY]; // same as getCarbonEstimate(result)
 * ```
 */
export const ESTIMATE_METADATA_KEY = 'ecologits';

const WIRE_FIELDS = Object.keys(carbonTraceWireFields) as CarbonTraceWireField[];

// Model Garden v1's session total and its `emissions_g_co2` are both computed from one float;
// a relative tolerance absorbs the kg→g rounding without matching a genuinely different value.
const SAME_VALUE_TOLERANCE = 1e-6;

type WireValues = { -readonly [K in CarbonTraceWireField]?: number | boolean };

/**
 * Turns one `x_carbon_trace` value into {@link CarbonMetrics} in fixed units (kWh, kgCO2eq, W, s).
 *
 * Accepts the object or a JSON string of it. Never throws. Returns `undefined` when the value
 * is not an object, or yields no usable figure (every field absent, null, invalid or dropped;
 * zeros are figures). Bad fields (null, NaN, ±Infinity, negative, non-numeric, above 2^53) are
 * dropped and named in `warnings`; numeric strings are coerced and named too. A field absent on
 * the wire is absent in the result.
 *
 * A Model Garden v1 snapshot (a session running total) gives no per-call emissions: its
 * `session` is passed through, and the adapters derive each call's share from successive
 * responses.
 *
 * @example
 * ```ts
 * import { parseCarbonTrace } from 'carbon-trace';
 * const metrics = parseCarbonTrace({
 *   emissions_g_co2: 0.42, energy_consumed_wh: 1.2, gpu_energy_wh: 1.0, measured: true,
 * });
 * metrics?.gwpKgco2eq;   // 0.00042
 * metrics?.gpuEnergyKwh; // 0.001
 * metrics?.trackingMethod; // 'codecarbon'
 * ```
 */
export function parseCarbonTrace(value: unknown): CarbonMetrics | undefined {
  return readCarbonTrace(value).metrics;
}

/**
 * What a trace gave, and when it gave nothing, why: for the adapters' warnings.
 *
 * @example
 * ```ts
 * readCarbonTrace({ energy_consumed_wh: -1 }); // { metrics: undefined, problem: 'no usable figure: energy_consumed_wh dropped: negative (-1)' }
 * ```
 */
export function readCarbonTrace(value: unknown): { metrics: CarbonMetrics | undefined; problem?: string } {
  try {
    return normalise(typeof value === 'string' ? parseJsonObject(value) : value);
  } catch {
    // A hostile value (a throwing getter, a Proxy) must cost the caller its metrics, not its call.
    return { metrics: undefined, problem: 'unreadable' };
  }
}

/**
 * Options of {@link extractCarbonMetrics} and `createCarbonTraceAccumulator`.
 *
 * @example
 * ```ts
 * const options: ExtractCarbonMetricsOptions = { onWarning: (message) => logger.warn(message) };
 * ```
 */
export type ExtractCarbonMetricsOptions = {
  /**
   * Where the warning goes when the response carried no trace, or one with no usable figure.
   * Default: `console.warn`, each distinct warning once per process. `false` silences it.
   */
  onWarning?: CarbonTraceWarningHandler;
};

/**
 * The warning of a response read alone: no trace, or one with nothing usable in it.
 *
 * @example
 * ```ts
 * warnAboutResponse(undefined, false, undefined); // console: no x_carbon_trace in the response…
 * ```
 */
export function warnAboutResponse(onWarning: CarbonTraceWarningHandler | undefined, found: boolean, problem: string | undefined): void {
  if (onWarning === false) return;
  const warn = createWarner(onWarning);
  if (!found) warn('response\0missing', NO_TRACE_IN_RESPONSE);
  else if (problem !== undefined) warn(`response\0${problem}`, `the response's x_carbon_trace has no usable figure (${problem}): no carbon metrics for it`);
}

/**
 * What a reader of one response is told when it had no trace, with where to look.
 *
 * @example
 * ```ts
 * expect(warnings).toContain(NO_TRACE_IN_RESPONSE);
 * ```
 */
export const NO_TRACE_IN_RESPONSE =
  'no x_carbon_trace in the response: no carbon metrics for it. The server sends none (put the carbon-trace proxy in front of it), or the wire carries none (TEI\'s bare-array bodies; see docs/clients.md)';

/**
 * Finds `x_carbon_trace` in a whole response body or one stream chunk and parses it: top
 * level on every wire, or inside the `response` of the Responses API's last event
 * (`response.completed`, or `response.incomplete`). Use it on `chat.completions.create`, `responses.create` and `embeddings.create`
 * results alike.
 *
 * Accepts the parsed body or its JSON text. Never throws; `undefined` when there is no trace
 * or no usable figure in it, with a warning (see {@link ExtractCarbonMetricsOptions}). For a
 * stream, feed the chunks to `createCarbonTraceAccumulator` instead: most chunks carry none.
 *
 * @example
 * ```ts
 * import { extractCarbonMetrics } from 'carbon-trace';
 * const body = await (await fetch(url, init)).json();
 * const metrics = extractCarbonMetrics(body); // CarbonMetrics | undefined
 * ```
 */
export function extractCarbonMetrics(body: unknown, options: ExtractCarbonMetricsOptions = {}): CarbonMetrics | undefined {
  const trace = findCarbonTrace(body);
  if (trace === undefined) {
    warnAboutResponse(options.onWarning, false, undefined);
    return undefined;
  }
  const read = readCarbonTrace(trace);
  warnAboutResponse(options.onWarning, true, read.problem);
  return read.metrics;
}

/**
 * Returns the raw `x_carbon_trace` value of a body or chunk (object or JSON text), or
 * `undefined`. Does no validation: pair it with {@link parseCarbonTrace}.
 *
 * JSON text is only parsed when it mentions the field, so chunks without a trace cost a
 * substring search.
 *
 * @example
 * ```ts
 * import { findCarbonTrace, parseCarbonTrace } from 'carbon-trace';
 * const raw = findCarbonTrace('{"id":"c1","x_carbon_trace":{"emissions_g_co2":1}}');
 * parseCarbonTrace(raw)?.gwpKgco2eq; // 0.001
 * ```
 */
export function findCarbonTrace(body: unknown): unknown {
  try {
    if (typeof body === 'string') {
      if (!body.includes(CARBON_TRACE_FIELD)) return undefined;
      body = parseJsonObject(body);
    }
    if (!isPlainRecord(body)) return undefined;
    if (Object.hasOwn(body, CARBON_TRACE_FIELD)) return body[CARBON_TRACE_FIELD];
    // The Responses API's stream ends with an event that wraps the whole response — completed,
    // or incomplete when it hit max_output_tokens — and the trace rides on that response
    // (DESIGN.md §8).
    const wrapped = body.type === 'response.completed' || body.type === 'response.incomplete' ? body.response : undefined;
    return isPlainRecord(wrapped) && Object.hasOwn(wrapped, CARBON_TRACE_FIELD) ? wrapped[CARBON_TRACE_FIELD] : undefined;
  } catch {
    return undefined;
  }
}

function parseJsonObject(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Malformed or too deeply nested for the engine's parser: no trace, same as absent.
    return undefined;
  }
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function normalise(trace: unknown): { metrics: CarbonMetrics | undefined; problem?: string } {
  if (!isPlainRecord(trace)) return { metrics: undefined, problem: 'not a trace object' };

  const warnings: string[] = [];
  const wire: WireValues = {};
  let known = 0;
  for (const name of WIRE_FIELDS) {
    // Own properties only: `__proto__`, `constructor` and inherited fields are never data.
    if (!Object.hasOwn(trace, name)) continue;
    const raw = trace[name];
    if (raw === undefined) continue;
    known++;
    const plain = plainWireValue(name, raw);
    if (plain !== undefined) {
      wire[name] = plain;
      continue;
    }
    const result = carbonTraceWireFields[name].safeParse(raw);
    if (!result.success) {
      warnings.push(`${name} dropped: ${result.error.issues[0]?.message ?? 'invalid'} (${describe(raw)})`);
      continue;
    }
    if (typeof raw === 'string' || (typeof raw === 'number' && typeof result.data === 'boolean')) {
      warnings.push(`${name} coerced from ${describe(raw)}`);
    }
    // -0 would survive every check and then print as "0" but compare oddly; normalise it.
    wire[name] = typeof result.data === 'number' ? result.data + 0 : result.data;
  }
  if (known === 0) return { metrics: undefined, problem: 'no known field' };

  const measured = wire.measured === true;
  const metrics: CarbonMetrics = {
    trackingMethod: measured ? 'codecarbon' : 'codecarbon_estimated',
    measured,
    warnings,
  };
  const trackingActive = toFlag(wire.tracking_active);
  if (trackingActive !== undefined) metrics.trackingActive = trackingActive;

  const cpuEnergyKwh = kilo(wire.cpu_energy_wh);
  const gpuEnergyKwh = kilo(wire.gpu_energy_wh);
  const ramEnergyKwh = kilo(wire.ram_energy_wh);
  let energyKwh = kilo(wire.energy_consumed_wh);
  if (energyKwh === undefined) {
    const parts = [cpuEnergyKwh, gpuEnergyKwh, ramEnergyKwh].filter((x) => x !== undefined);
    if (parts.length > 0) {
      energyKwh = parts.reduce((a, b) => a + b, 0);
      warnings.push('energyKwh derived from the sum of cpu/gpu/ram energy (energy_consumed_wh missing)');
    }
  }
  assign(metrics, 'energyKwh', energyKwh);
  assign(metrics, 'gwpKgco2eq', kilo(requestEmissionsGrams(wire, warnings)));
  assign(metrics, 'cpuEnergyKwh', cpuEnergyKwh);
  assign(metrics, 'gpuEnergyKwh', gpuEnergyKwh);
  assign(metrics, 'ramEnergyKwh', ramEnergyKwh);
  assign(metrics, 'cpuPowerWatts', num(wire.cpu_power_watts));
  assign(metrics, 'gpuPowerWatts', num(wire.gpu_power_watts));
  assign(metrics, 'ramPowerWatts', num(wire.ram_power_watts));
  assign(metrics, 'durationSeconds', num(wire.duration_seconds));
  assign(metrics, 'promptTokens', num(wire.prompt_tokens));
  assign(metrics, 'completionTokens', num(wire.completion_tokens));

  const session: CarbonSessionTotals = {};
  assign(session, 'totalKgco2eq', num(wire.session_total_kg_co2));
  assign(session, 'requests', num(wire.session_requests));
  assign(session, 'tokens', num(wire.session_tokens));
  if (Object.keys(session).length > 0) metrics.session = session;

  // A snapshot of a session is still input to the adapters' derivation; anything else without
  // a figure is not a trace of this call.
  if (!hasCarbonFigure(metrics) && metrics.session === undefined) {
    return { metrics: undefined, problem: `no usable figure${warnings.length > 0 ? `: ${warnings.join('; ')}` : ''}` };
  }
  return { metrics };
}

/**
 * Model Garden v1 sends `emissions_g_co2` = the session's running total and
 * `emissions_per_request_g` = that total ÷ requests so far, a running mean. Neither is this
 * request's emissions, and one snapshot cannot say what is: book none. The adapters, which see
 * successive snapshots, derive each call's share (see `createSessionEmissions`).
 */
function requestEmissionsGrams(wire: WireValues, warnings: string[]): number | undefined {
  const grams = num(wire.emissions_g_co2);
  if (grams === undefined) return undefined;
  const sessionKg = num(wire.session_total_kg_co2);
  const isRunningTotal =
    num(wire.emissions_per_request_g) !== undefined ||
    (sessionKg !== undefined && Math.abs(grams - sessionKg * 1000) <= SAME_VALUE_TOLERANCE * Math.max(grams, sessionKg * 1000));
  if (!isRunningTotal) return grams;
  warnings.push(
    'gwpKgco2eq not booked: emissions_g_co2 is the server session\'s running total (Model Garden v1), not this call\'s emissions',
  );
  return undefined;
}

// Fields that say something about the call's carbon; tokens and flags alone do not.
const FIGURES = [
  'energyKwh', 'gwpKgco2eq', 'cpuEnergyKwh', 'gpuEnergyKwh', 'ramEnergyKwh',
  'cpuPowerWatts', 'gpuPowerWatts', 'ramPowerWatts', 'durationSeconds',
] as const satisfies ReadonlyArray<keyof CarbonMetrics>;

/**
 * Whether metrics carry at least one carbon figure (energy, emissions, power or duration; zeros
 * count). Only such calls count as traced.
 *
 * @example
 * ```ts
 * hasCarbonFigure(parseCarbonTrace({ energy_consumed_wh: 0 })!); // true
 * ```
 */
export function hasCarbonFigure(metrics: CarbonMetrics): boolean {
  for (const key of FIGURES) {
    if (isFigure(metrics[key])) return true;
  }
  return false;
}

function num(value: number | boolean | undefined): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function kilo(value: number | boolean | undefined): number | undefined {
  return typeof value === 'number' ? value / 1000 : undefined;
}

function toFlag(value: number | boolean | undefined): boolean | undefined {
  return typeof value === 'boolean' ? value : undefined;
}

function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}
