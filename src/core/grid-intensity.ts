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
 * and the value it replaced.
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
export function withGridIntensity(metrics: CarbonMetrics, intensity: GridIntensity, options: GridIntensityOptions = {}): CarbonMetrics {
  const { gCo2PerKwh } = intensity;
  const source = intensity.source ?? 'given intensity';
  const refuse = (warning: string) => {
    createWarner(options.onWarning)(warning, warning);
    return withWarning(metrics, warning);
  };
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
