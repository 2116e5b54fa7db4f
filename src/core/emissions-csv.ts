import type { CarbonTotals } from './types';
import { JOULES_PER_KWH } from './units';

/**
 * CodeCarbon's emissions.csv columns (`EmissionsData`, codecarbon 2.x), in its order and units:
 * duration s, emissions kgCO2eq, emissions_rate kg/s, powers W, energies kWh. Tools that read
 * CodeCarbon output find every column they know where they expect it.
 *
 * @example
 * ```ts
 * const header = tracker.toEmissionsCsv().split('\n')[0].split(',');
 * header.slice(0, EMISSIONS_CSV_COLUMNS.length); // CodeCarbon's own columns
 * ```
 */
export const EMISSIONS_CSV_COLUMNS = [
  'timestamp', 'project_name', 'run_id', 'experiment_id', 'duration', 'emissions', 'emissions_rate',
  'cpu_power', 'gpu_power', 'ram_power', 'cpu_energy', 'gpu_energy', 'ram_energy', 'energy_consumed',
  'country_name', 'country_iso_code', 'region', 'cloud_provider', 'cloud_region', 'os', 'python_version',
  'codecarbon_version', 'cpu_count', 'cpu_model', 'gpu_count', 'gpu_model', 'longitude', 'latitude',
  'ram_total_size', 'tracking_mode', 'on_cloud', 'pue',
] as const;

/**
 * carbon-trace's own columns, after CodeCarbon's, so coverage and measured share travel along.
 * `tracking_methods` names the kinds of figure a row sums, `;`-separated: `codecarbon`
 * (measured), `codecarbon_estimated` (the server's CodeCarbon power model), or `ecologits`
 * (estimated from the model's size) — never the latter with either of the former. `call_kinds`
 * names the kinds of call the row's model served (`chat`, `embedding`, `rerank`), `;`-separated;
 * empty when unknown.
 *
 * @example
 * ```ts
 * EMISSIONS_CSV_EXTRA_COLUMNS; // ['calls', 'traced_calls', 'measured_calls', 'prompt_tokens', 'completion_tokens', 'tracking_methods', 'call_kinds']
 * ```
 */
export const EMISSIONS_CSV_EXTRA_COLUMNS = ['calls', 'traced_calls', 'measured_calls', 'prompt_tokens', 'completion_tokens', 'tracking_methods', 'call_kinds'] as const;

/**
 * Options of `tracker.toEmissionsCsv()`.
 *
 * @example
 * ```ts
 * tracker.toEmissionsCsv({ projectName: 'support-bot', now: new Date() });
 * ```
 */
export type EmissionsCsvOptions = {
  /** `project_name` of every row. Default `'carbon-trace'`. */
  projectName?: string;
  /** `timestamp` of every row. Default: now. */
  now?: Date;
  /** The kinds of call each model served, for `call_kinds` (the tracker fills it). Default: none. */
  kindsByModel?: Record<string, readonly string[]>;
};

/**
 * Renders per-model totals as CodeCarbon emissions.csv text: a header and one row per model,
 * `run_id` being the model id. Mean powers and `emissions_rate` are energy ÷ duration over the
 * calls that carried a duration (empty when none did). A model with no traced call has its
 * energy and emissions cells empty, not `0`. Numbers keep 12 significant digits.
 *
 * `estimatesByModel` (EcoLogits estimates, e.g. `tracker.estimatesByModel()`) adds one row per
 * model after the traced ones, with `tracking_methods` = `ecologits`, `traced_calls` 0 and an
 * empty `pue` (the provider's PUE is inside the estimated energy). Tools that sum the whole
 * column would mix measurement and estimate: filter on `tracking_methods` first.
 *
 * @example
 * ```ts
 * writeFileSync('emissions.csv', toEmissionsCsv(tracker.byModel()));
 * writeFileSync('with-estimates.csv', toEmissionsCsv(tracker.byModel(), {}, tracker.estimatesByModel()));
 * ```
 */
export function toEmissionsCsv(
  byModel: Record<string, CarbonTotals>,
  options: EmissionsCsvOptions = {},
  estimatesByModel?: Record<string, CarbonTotals>,
): string {
  const timestamp = (options.now ?? new Date()).toISOString();
  const project = options.projectName ?? 'carbon-trace';
  const columns = [...EMISSIONS_CSV_COLUMNS, ...EMISSIONS_CSV_EXTRA_COLUMNS];
  const lines = [columns.join(',')];
  const rows: Array<[string, CarbonTotals, boolean]> = Object.entries(byModel).map(([model, t]) => [model, t, false]);
  for (const [model, t] of Object.entries(estimatesByModel ?? {})) rows.push([model, t, true]);
  for (const [model, t, estimated] of rows) {
    // A sum no call contributed to is unknown, not zero.
    const sum = (key: keyof CarbonTotals['callsWith']) => (t.callsWith[key] > 0 ? (t[key] ?? '') : '');
    const timedSeconds = t.durationSeconds ?? 0;
    const perSecond = (value: number, factor: number, key: keyof CarbonTotals['callsWith']) =>
      timedSeconds > 0 && t.callsWith[key] > 0 ? (value * factor) / timedSeconds : '';
    const row: Record<string, string | number> = {
      timestamp,
      project_name: project,
      run_id: model,
      experiment_id: '',
      duration: sum('durationSeconds'),
      emissions: sum('gwpKgco2eq'),
      emissions_rate: perSecond(t.withDuration.gwpKgco2eq, 1, 'gwpKgco2eq'),
      cpu_power: perSecond(t.withDuration.cpuEnergyKwh, JOULES_PER_KWH, 'cpuEnergyKwh'),
      gpu_power: perSecond(t.withDuration.gpuEnergyKwh, JOULES_PER_KWH, 'gpuEnergyKwh'),
      ram_power: perSecond(t.withDuration.ramEnergyKwh, JOULES_PER_KWH, 'ramEnergyKwh'),
      cpu_energy: sum('cpuEnergyKwh'),
      gpu_energy: sum('gpuEnergyKwh'),
      ram_energy: sum('ramEnergyKwh'),
      energy_consumed: sum('energyKwh'),
      on_cloud: estimated ? 'Y' : 'N',
      pue: estimated ? '' : 1,
      calls: t.calls,
      traced_calls: estimated ? 0 : t.tracedCalls,
      measured_calls: estimated ? 0 : t.measuredCalls,
      prompt_tokens: t.promptTokens ?? '',
      completion_tokens: t.completionTokens ?? '',
      tracking_methods: estimated ? 'ecologits' : traceMethods(t),
      call_kinds: Object.hasOwn(options.kindsByModel ?? {}, model) ? options.kindsByModel![model]!.join(';') : '',
    };
    lines.push(columns.map((c) => csvField(row[c] ?? '')).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** The kinds a traced row sums: measured calls are `codecarbon`, the other traced ones `codecarbon_estimated`. */
function traceMethods(t: CarbonTotals): string {
  const kinds: string[] = [];
  if (t.measuredCalls > 0) kinds.push('codecarbon');
  if (t.tracedCalls > t.measuredCalls) kinds.push('codecarbon_estimated');
  return kinds.join(';');
}

/**
 * One CSV field: RFC 4180 quoting; a leading =, +, - or @ is also quoted with a ' so spreadsheets
 * do not run it; numbers to 12 significant digits.
 *
 * @example
 * ```ts
 * csvField('=HYPERLINK("x")'); // "'=HYPERLINK(""x"")"
 * ```
 */
export function csvField(value: string | number): string {
  // 12 significant digits: float sums print noise (0.0000016000000000000001) beyond that.
  if (typeof value === 'number') return String(Number(value.toPrecision(12)));
  // A leading ' is guarded too, so that reading back (one ' off) gives the value that was written.
  const safe = /^['=+\-@]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) || safe !== value ? `"${safe.replace(/"/g, '""')}"` : safe;
}
