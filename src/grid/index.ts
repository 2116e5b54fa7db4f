import { isGridIntensityProvider, withGridIntensity as withIntensity, withWarning, type GridIntensityOptions, type GridIntensitySetting } from '../core/grid-intensity';
import { createWarner } from '../core/report';
import type { CarbonMetrics } from '../core/types';
import { ZONE_HINT } from './iso-3166';
import { gridIntensityOfZone } from './zones';

export { GRID_INTENSITY_SOURCE, gridIntensityOfZone } from './zones';

/**
 * {@link withIntensity | withGridIntensity} that also takes a zone: recomputes `gwpKgco2eq`
 * from `energyKwh` for a country or region, a fixed intensity or a provider's current reading,
 * flagged in `warnings`. An unknown zone leaves the
 * metrics unchanged, with a warning in `warnings` and to `onWarning` (default: `console.warn`,
 * once per distinct warning), as every other carbon-trace warning.
 *
 * @example
 * ```ts
 * import { withGridIntensity } from 'carbon-trace/grid';
 * withGridIntensity(metrics, { zone: 'SE' }).gwpKgco2eq; // as if served in Sweden
 * withGridIntensity(metrics, { gCo2PerKwh: 56 });
 * withGridIntensity(metrics, electricityMaps); // its current() reading
 * ```
 */
export function withGridIntensity(metrics: CarbonMetrics, where: GridIntensitySetting | { zone: string }, options: GridIntensityOptions = {}): CarbonMetrics {
  if (isGridIntensityProvider(where) || !('zone' in where) || 'gCo2PerKwh' in where) return withIntensity(metrics, where as GridIntensitySetting, options);
  const intensity = gridIntensityOfZone(where.zone);
  if (intensity === undefined) {
    const warning = `gwpKgco2eq not recomputed: unknown grid zone ${JSON.stringify(where.zone)} (${ZONE_HINT})`;
    createWarner(options.onWarning)(warning, warning);
    return withWarning(metrics, warning);
  }
  return withIntensity(metrics, intensity, options);
}

export {
  createElectricityMapsProvider,
  ELECTRICITY_MAPS_API_URL,
  ELECTRICITY_MAPS_TOKEN_VARIABLE,
  gridProviderFromOptions,
  type ElectricityMapsOptions,
  type GridProviderOptions,
  type GridTimers,
} from './electricity-maps';

export type { GridIntensityOptions } from '../core/grid-intensity';

export type { GridIntensity, GridIntensityProvider, GridIntensityReading, GridIntensitySetting } from '../core/grid-intensity';
