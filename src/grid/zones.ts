import { averageIntensity } from '@tgwf/co2/data';
import type { GridIntensity } from '../core/grid-intensity';
import { zoneKey } from './iso-3166';

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
