import { averageIntensity } from '@tgwf/co2/data';
import { withGridIntensity as withIntensity, withWarning, type GridIntensity, type GridIntensityOptions } from '../core/grid-intensity';
import { createWarner } from '../core/report';
import type { CarbonMetrics } from '../core/types';
import { zoneKey, ZONE_HINT } from './iso-3166';

/**
 * Where the zone figures come from: CO2.js (`@tgwf/co2`, The Green Web Foundation) ships Ember's
 * yearly average grid intensities per country (ISO 3166-1 alpha-3) and region, in gCO2eq/kWh,
 * under CC BY-SA 4.0. The year is whatever the installed `@tgwf/co2` carries.
 *
 * @example
 * ```ts
 * console.log(`zone data: ${GRID_INTENSITY_SOURCE}`);
 * ```
 */
export const GRID_INTENSITY_SOURCE = 'Ember yearly average grid intensity, via CO2.js (@tgwf/co2)';

/**
 * The average grid intensity of a zone — an ISO 3166-1 country code, alpha-3 (`'FRA'`) or
 * alpha-2 (`'FR'`), in any case, or a region CO2.js knows (`'WORLD'` or `'WOR'`, `'EUROPE'`) —
 * or `undefined` for an unknown zone. `zone` is the key the figure was found under.
 *
 * @example
 * ```ts
 * import { gridIntensityOfZone } from 'carbon-trace/grid';
 * gridIntensityOfZone('fr'); // { gCo2PerKwh: …, source: 'Ember … (@tgwf/co2), zone FRA', zone: 'FRA' }
 * ```
 */
export function gridIntensityOfZone(zone: string): GridIntensity | undefined {
  const key = zoneKey(zone);
  const table = averageIntensity.data as Record<string, unknown>;
  const value = Object.hasOwn(table, key) ? table[key] : undefined;
  return typeof value === 'number' ? { gCo2PerKwh: value, source: `${GRID_INTENSITY_SOURCE}, zone ${key}`, zone: key } : undefined;
}

/**
 * {@link withIntensity | withGridIntensity} that also takes a zone: recomputes `gwpKgco2eq`
 * from `energyKwh` for a country or region, flagged in `warnings`. An unknown zone leaves the
 * metrics unchanged, with a warning in `warnings` and to `onWarning` (default: `console.warn`,
 * once per distinct warning), as every other carbon-trace warning.
 *
 * @example
 * ```ts
 * import { withGridIntensity } from 'carbon-trace/grid';
 * withGridIntensity(metrics, { zone: 'SE' }).gwpKgco2eq; // as if served in Sweden
 * withGridIntensity(metrics, { gCo2PerKwh: 56 });
 * ```
 */
export function withGridIntensity(metrics: CarbonMetrics, where: GridIntensity | { zone: string }, options: GridIntensityOptions = {}): CarbonMetrics {
  if ('gCo2PerKwh' in where) return withIntensity(metrics, where, options);
  const intensity = gridIntensityOfZone(where.zone);
  if (intensity === undefined) {
    const warning = `gwpKgco2eq not recomputed: unknown grid zone ${JSON.stringify(where.zone)} (${ZONE_HINT})`;
    createWarner(options.onWarning)(warning, warning);
    return withWarning(metrics, warning);
  }
  return withIntensity(metrics, intensity, options);
}

export type { GridIntensityOptions } from '../core/grid-intensity';

export type { GridIntensity } from '../core/grid-intensity';
