import type { CarbonMetrics, CarbonTotals } from './types';

// The numeric fields that add up across calls, named the same in both types.
const SUMMED = [
  'energyKwh',
  'gwpKgco2eq',
  'cpuEnergyKwh',
  'gpuEnergyKwh',
  'ramEnergyKwh',
  'durationSeconds',
  'promptTokens',
  'completionTokens',
] as const satisfies ReadonlyArray<keyof CarbonMetrics & keyof CarbonTotals>;

/**
 * Fresh all-zero totals.
 *
 * @example
 * ```ts
 * import { emptyCarbonTotals } from 'carbon-trace';
 * emptyCarbonTotals().calls; // 0
 * ```
 */
export function emptyCarbonTotals(): CarbonTotals {
  return {
    calls: 0,
    tracedCalls: 0,
    measuredCalls: 0,
    energyKwh: 0,
    gwpKgco2eq: 0,
    cpuEnergyKwh: 0,
    gpuEnergyKwh: 0,
    ramEnergyKwh: 0,
    durationSeconds: 0,
    promptTokens: 0,
    completionTokens: 0,
  };
}

/**
 * Adds one call to `totals` in place and returns it. `undefined` or `null` counts as a call
 * without a trace.
 *
 * @example
 * ```ts
 * import { addCarbonMetrics, emptyCarbonTotals } from 'carbon-trace';
 * const totals = emptyCarbonTotals();
 * addCarbonMetrics(totals, metrics);
 * ```
 */
export function addCarbonMetrics(totals: CarbonTotals, metrics: CarbonMetrics | undefined | null): CarbonTotals {
  totals.calls++;
  if (metrics == null) return totals;
  totals.tracedCalls++;
  if (metrics.measured === true) totals.measuredCalls++;
  for (const key of SUMMED) {
    const value = metrics[key];
    // Metrics may come back from JSON (providerMetadata, checkpoints): trust no field's type.
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) totals[key] += value;
  }
  return totals;
}

/**
 * Sums many calls' metrics. `calls` counts every item, `undefined` and `null` included, so lost
 * coverage shows as `calls > tracedCalls`.
 *
 * @example
 * ```ts
 * import { sumCarbonMetrics } from 'carbon-trace';
 * import { getCarbonMetrics } from 'carbon-trace/ai-sdk';
 * const totals = sumCarbonMetrics(result.steps.map(getCarbonMetrics));
 * console.log(`${totals.gwpKgco2eq * 1000} gCO2eq over ${totals.calls} steps`);
 * ```
 */
export function sumCarbonMetrics(items: Iterable<CarbonMetrics | undefined | null>): CarbonTotals {
  const totals = emptyCarbonTotals();
  for (const item of items) addCarbonMetrics(totals, item);
  return totals;
}

/**
 * Adds up several totals field by field (e.g. the per-model totals of a tracker).
 *
 * @example
 * ```ts
 * const all = sumTotals(Object.values(tracker.byModel()));
 * ```
 */
export function sumTotals(items: Iterable<CarbonTotals>): CarbonTotals {
  const sum = emptyCarbonTotals();
  for (const item of items) {
    for (const key of Object.keys(sum) as Array<keyof CarbonTotals>) sum[key] += item[key];
  }
  return sum;
}
