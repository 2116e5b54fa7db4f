import { isGridIntensityProvider, type GridIntensityProvider, type GridIntensityReading } from '../core/grid-intensity';
import { isFigure } from '../core/units';
import { WORLD_AVERAGE_GRID, type ResolvedGridIntensity } from './wires/trace-record';

/**
 * The grid's carbon intensity a producer books emissions with: gCO2eq/kWh, a zone (ISO 3166-1
 * country code or region; needs `@tgwf/co2`), or a live provider (`carbon-trace/grid`'s Electricity
 * Maps provider), read at every booking.
 *
 * @example
 * ```ts
 * const grid: GridIntensityOption = { zone: 'FR' };
 * ```
 */
export type GridIntensityOption = { gCo2PerKwh: number; source?: string } | { zone: string } | GridIntensityProvider;

/** A provider's reading as the books keep it: the figure, where it is from, and whether it is live. */
function resolvedOf(reading: GridIntensityReading): ResolvedGridIntensity {
  return { gCo2PerKwh: reading.gCo2PerKwh, source: reading.source, zone: reading.zone, live: reading.live, ...(reading.datetime ? { datetime: reading.datetime } : {}) };
}

/**
 * The grid intensity to book with, from a `gridIntensity` option: the world average, with a
 * warning and a `source` saying so, when the option is unusable.
 *
 * @example
 * ```ts
 * const grid = await resolveGrid({ zone: 'FR' }, warn);
 * ```
 */
export async function resolveGrid(option: GridIntensityOption | undefined, warn: (key: string, message: string) => void): Promise<ResolvedGridIntensity> {
  if (option === undefined) return WORLD_AVERAGE_GRID;
  if (isGridIntensityProvider(option)) {
    await option.ready;
    return resolvedOf(option.current());
  }
  if ('zone' in option) {
    try {
      const { gridIntensityOfZone } = await import('../grid/index');
      const found = gridIntensityOfZone(option.zone);
      if (found) return { gCo2PerKwh: found.gCo2PerKwh, source: found.source ?? `zone ${option.zone}` };
      warn('grid-zone', `unknown grid zone ${JSON.stringify(option.zone)}: traces use the world average, 475 gCO2eq/kWh, and say so`);
    } catch (error) {
      warn('grid-zone', `grid zones need @tgwf/co2 (${(error as Error).message}): traces use the world average, 475 gCO2eq/kWh, and say so`);
    }
    return { ...WORLD_AVERAGE_GRID, source: `${WORLD_AVERAGE_GRID.source}; zone ${JSON.stringify(option.zone)} unknown` };
  }
  const g = option.gCo2PerKwh;
  if (isFigure(g)) return { gCo2PerKwh: g, source: option.source ?? 'given' };
  warn('grid-number', `grid intensity ${String(g)} is not a number of gCO2eq/kWh ≥ 0: traces use the world average, 475, and say so`);
  return { ...WORLD_AVERAGE_GRID, source: `${WORLD_AVERAGE_GRID.source}; given intensity ${String(g)} unusable` };
}

/**
 * The grid a producer books with, known synchronously once resolved: the hot path reads
 * `current()` and awaits `ready` only before the first resolution.
 *
 * @example
 * ```ts
 * const grid = gridSource({ zone: 'FR' }, warn);
 * const now = grid.current() ?? (await grid.ready);
 * ```
 */
export function gridSource(option: GridIntensityOption | undefined, warn: (key: string, message: string) => void): { ready: Promise<ResolvedGridIntensity>; current(): ResolvedGridIntensity | undefined } {
  // A live provider is read at every booking; it never blocks (before its first figure it gives a stand-in).
  if (isGridIntensityProvider(option)) return { ready: Promise.resolve(resolvedOf(option.current())), current: () => resolvedOf(option.current()) };
  let resolved: ResolvedGridIntensity | undefined = option === undefined ? WORLD_AVERAGE_GRID : undefined;
  const ready = resolveGrid(option, warn).then((grid) => (resolved = grid));
  return { ready, current: () => resolved };
}
