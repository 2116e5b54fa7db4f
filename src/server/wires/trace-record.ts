import { isCount, JOULES_PER_KWH } from '../../core/units';
import { ENERGY_COMPONENTS, type RequestEnergy } from '../types';

/**
 * The grid intensity a producer books emissions with, and where the figure comes from.
 *
 * @example
 * ```ts
 * const grid: ResolvedGridIntensity = { gCo2PerKwh: 56, source: 'our supplier, 2025' };
 * ```
 */
export type ResolvedGridIntensity = {
  gCo2PerKwh: number;
  source: string;
  /** The zone the figure is for, when it came from a provider. */
  zone?: string;
  /** `true` for a live figure, `false` for a yearly average standing in; absent for a fixed one. */
  live?: boolean;
  /** The hour a live figure is for (ISO 8601). */
  datetime?: string;
};

/**
 * CodeCarbon's default when the location is unknown: the world average, gCO2eq/kWh.
 *
 * @example
 * ```ts
 * WORLD_AVERAGE_GRID.gCo2PerKwh; // 475
 * ```
 */
export const WORLD_AVERAGE_GRID: ResolvedGridIntensity = { gCo2PerKwh: 475, source: 'world average (CodeCarbon default)' };

const JOULES_PER_WH = 3600;

/**
 * The emissions of some energy on a grid, gCO2eq.
 *
 * @example
 * ```ts
 * gramsOf(3.6e6, { gCo2PerKwh: 56, source: 'given' }); // 56: one kWh
 * ```
 */
export function gramsOf(joules: number, grid: ResolvedGridIntensity): number {
  return (joules / JOULES_PER_KWH) * grid.gCo2PerKwh;
}

/**
 * The documented full `x_carbon_trace` record of one request — the wire format carbon-trace's
 * adapters and seeds-clients read — from the energy the meter attributed to it. Components no
 * source reports are left out, never written as 0; when the meter has no figure for the request
 * (a source could not be read during it), every energy and emissions field is left out and
 * `warnings` says why. carbon-trace's own fields (`grid_…`, `warnings`) are ignored by readers
 * that do not know them.
 *
 * @example
 * ```ts
 * carbonTraceRecord(await request.end(), WORLD_AVERAGE_GRID, { prompt_tokens: 12, completion_tokens: 40 });
 * // { emissions_g_co2: …, energy_consumed_wh: …, cpu_energy_wh: …, duration_seconds: …, measured: false, … }
 * ```
 */
export function carbonTraceRecord(
  energy: RequestEnergy,
  grid: ResolvedGridIntensity,
  tokens: { prompt_tokens?: unknown; completion_tokens?: unknown } = {},
): Record<string, unknown> {
  const seconds = energy.durationSeconds;
  const record: Record<string, unknown> = {};
  const known = energy.totalJoules !== undefined;
  if (energy.totalJoules !== undefined) {
    record.emissions_g_co2 = gramsOf(energy.totalJoules, grid);
    record.energy_consumed_wh = energy.totalJoules / JOULES_PER_WH;
    for (const component of ENERGY_COMPONENTS) {
      const joules = energy.joules[component];
      if (joules === undefined) continue;
      record[`${component}_energy_wh`] = joules / JOULES_PER_WH;
    }
  }
  record.duration_seconds = seconds;
  if (known) {
    for (const component of ENERGY_COMPONENTS) {
      const joules = energy.joules[component];
      if (joules === undefined || !(seconds > 0)) continue;
      record[`${component}_power_watts`] = joules / seconds;
    }
    record.measured = energy.measured;
  }
  record.tracking_active = true;
  if (isCount(tokens.prompt_tokens)) record.prompt_tokens = tokens.prompt_tokens;
  if (isCount(tokens.completion_tokens)) record.completion_tokens = tokens.completion_tokens;
  if (known) {
    record.grid_intensity_g_co2_per_kwh = grid.gCo2PerKwh;
    record.grid_intensity_source = grid.source;
    if (grid.zone !== undefined) record.grid_intensity_zone = grid.zone;
    if (grid.live !== undefined) record.grid_intensity_live = grid.live;
    if (grid.datetime !== undefined) record.grid_intensity_datetime = grid.datetime;
  }
  if (energy.warnings.length > 0) record.warnings = energy.warnings;
  return record;
}
