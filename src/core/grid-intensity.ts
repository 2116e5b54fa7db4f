import { hasCarbonFigure } from './parse-carbon-trace';
import { createWarner, type CarbonTraceWarningHandler } from './report';
import type { CarbonMetrics } from './types';

/**
 * A grid's carbon intensity: gCO2eq emitted per kWh drawn, and where the figure comes from.
 *
 * @example
 * ```ts
 * const france: GridIntensity = { gCo2PerKwh: 44.18, source: 'Ember 2024 average, FRA' };
 * ```
 */
export type GridIntensity = {
  gCo2PerKwh: number;
  source?: string;
  /** The zone the figure is for, when it came from a zone table (`'FRA'`). */
  zone?: string;
};

/**
 * One reading of a grid's intensity and where it comes from: a live figure (Electricity Maps) or
 * the zone's yearly average standing in for one. A {@link GridIntensity}, so it can be passed
 * wherever a fixed intensity is taken.
 *
 * @example
 * ```ts
 * const reading: GridIntensityReading = {
 *   gCo2PerKwh: 31, zone: 'FR', live: true, datetime: '2026-01-15T18:00:00.000Z',
 *   source: 'Electricity Maps live figure, zone FR, for 2026-01-15T18:00:00.000Z',
 * };
 * ```
 */
export type GridIntensityReading = GridIntensity & {
  source: string;
  /** The zone the figure is for, as the source names it (`'FR'`, `'US-CAL-CISO'`, `'FRA'`). */
  zone: string;
  /** `true` for a live figure; `false` for a yearly average standing in for one. */
  live: boolean;
  /** The hour the live figure is for (ISO 8601), when the source said. */
  datetime?: string;
  /** When the source last updated the figure (ISO 8601), when it said. */
  updatedAt?: string;
  /** Electricity Maps' `emissionFactorType`: `'lifecycle'` (its default) or `'direct'`. */
  emissionFactorType?: 'lifecycle' | 'direct';
  /** Electricity Maps' `isEstimated`: the figure was modelled, not measured, for that hour. */
  isEstimated?: boolean;
};

/**
 * A grid intensity that changes over time, read synchronously. `current()` never waits and never
 * fails: it gives the latest known reading (a live figure, or a fallback saying so); refreshing
 * happens elsewhere, in the background. Anything that takes a {@link GridIntensity} in
 * carbon-trace also takes one of these, and reads `current()` when it books a call, so each call
 * is booked at the intensity of its time. `carbon-trace/grid`'s `createElectricityMapsProvider`
 * makes one; any object of this shape will do.
 *
 * @example
 * ```ts
 * import { createElectricityMapsProvider } from 'carbon-trace/grid';
 * const grid: GridIntensityProvider = createElectricityMapsProvider({ zone: 'FR', token });
 * await grid.ready;                      // optional: the first answer (or its failure) is in
 * grid.current().gCo2PerKwh;             // now, never blocking
 * grid.close();                          // stops refreshing
 * ```
 */
export interface GridIntensityProvider {
  /** The latest known reading; immediate, never throws, never NaN or negative. */
  current(): GridIntensityReading;
  /** Settles (never rejects) once the first attempt at a live figure has succeeded or failed. */
  readonly ready: Promise<void>;
  /** Stops refreshing; `current()` keeps giving the last reading. */
  close(): void;
}

/**
 * What a `gridIntensity` option takes: a fixed intensity, or a provider read at each call.
 *
 * @example
 * ```ts
 * const fixed: GridIntensitySetting = { gCo2PerKwh: 56, source: 'our supplier, 2025' };
 * ```
 */
export type GridIntensitySetting = GridIntensity | GridIntensityProvider;

/**
 * Whether a value is a {@link GridIntensityProvider} rather than a fixed intensity.
 *
 * @example
 * ```ts
 * const now = isGridIntensityProvider(setting) ? setting.current() : setting;
 * ```
 */
export function isGridIntensityProvider(value: unknown): value is GridIntensityProvider {
  return typeof value === 'object' && value !== null && typeof (value as { current?: unknown }).current === 'function';
}

/**
 * Options of `withGridIntensity`.
 *
 * @example
 * ```ts
 * withGridIntensity(metrics, { gCo2PerKwh: 56 }, { onWarning: (m) => logger.warn(m) });
 * ```
 */
export type GridIntensityOptions = {
  /** Where a warning goes when nothing could be recomputed. Default: `console.warn`, each distinct warning once. `false` silences it. */
  onWarning?: CarbonTraceWarningHandler;
};

/**
 * Recomputes a call's emissions from its energy for a given grid: for a server that reports
 * energy but no CO2, or to compare locations. Returns new metrics (the input is untouched) whose
 * `gwpKgco2eq` = `energyKwh` × intensity, flagged in `warnings` with the intensity, its source
 * and the value it replaced. Given a {@link GridIntensityProvider}, it uses the provider's
 * current reading.
 *
 * Tolerant like the parser: metrics without energy, or an intensity that is not a finite number
 * ≥ 0, come back unchanged with a warning saying why.
 *
 * @example
 * ```ts
 * import { withGridIntensity } from 'carbon-trace';
 * const local = withGridIntensity(metrics, { gCo2PerKwh: 56, source: 'our supplier, 2025' });
 * local.gwpKgco2eq; // metrics.energyKwh × 0.056
 * ```
 */
export function withGridIntensity(metrics: CarbonMetrics, grid: GridIntensitySetting, options: GridIntensityOptions = {}): CarbonMetrics {
  const refuse = (warning: string) => {
    createWarner(options.onWarning)(warning, warning);
    return withWarning(metrics, warning);
  };
  let intensity: GridIntensity;
  try {
    intensity = isGridIntensityProvider(grid) ? grid.current() : grid;
  } catch (error) {
    // Only a provider of the user's own can throw; the call is still booked, at the server's figure.
    return refuse(`gwpKgco2eq not recomputed: the grid intensity provider failed (${error instanceof Error ? error.message : String(error)})`);
  }
  if (intensity === null || typeof intensity !== 'object') return refuse(`gwpKgco2eq not recomputed: no grid intensity (${String(intensity)})`);
  const { gCo2PerKwh } = intensity;
  const source = intensity.source ?? 'given intensity';
  if (typeof gCo2PerKwh !== 'number' || !Number.isFinite(gCo2PerKwh) || gCo2PerKwh < 0) {
    return refuse(`gwpKgco2eq not recomputed: grid intensity ${String(gCo2PerKwh)} is not a number of gCO2eq/kWh ≥ 0 (${source})`);
  }
  if (typeof metrics.energyKwh !== 'number') {
    return refuse(`gwpKgco2eq not recomputed: the trace has no energy (${source})`);
  }
  const gwpKgco2eq = (metrics.energyKwh * gCo2PerKwh) / 1000;
  const replaced = metrics.gwpKgco2eq === undefined ? 'none reported' : `replaces the server's ${metrics.gwpKgco2eq} kgCO2eq`;
  return withWarning({ ...metrics, gwpKgco2eq }, `gwpKgco2eq derived from energyKwh × ${gCo2PerKwh} gCO2eq/kWh (${source}; ${replaced})`);
}

/**
 * A copy of `metrics` with one more warning; the input is untouched.
 *
 * @example
 * ```ts
 * withWarning(metrics, 'gwpKgco2eq not recomputed: unknown grid zone "XX"');
 * ```
 */
export function withWarning(metrics: CarbonMetrics, warning: string): CarbonMetrics {
  // Metrics may come back from JSON without their warnings array.
  const warnings = Array.isArray(metrics.warnings) ? metrics.warnings : [];
  return { ...metrics, warnings: [...warnings, warning] };
}

/**
 * Books a call's metrics at the `gridIntensity` an adapter or tracker was given: recomputed from
 * their energy at the grid's intensity now, or unchanged when there is no grid or no figure.
 *
 * @example
 * ```ts
 * const booked = bookAtGrid(metrics, options.gridIntensity, options.onWarning);
 * ```
 */
export function bookAtGrid(
  metrics: CarbonMetrics | undefined,
  grid: GridIntensitySetting | undefined,
  onWarning: CarbonTraceWarningHandler | undefined,
): CarbonMetrics | undefined {
  if (metrics === undefined || grid === undefined || grid === null || !hasCarbonFigure(metrics)) return metrics;
  return withGridIntensity(metrics, grid, onWarning === undefined ? {} : { onWarning });
}
