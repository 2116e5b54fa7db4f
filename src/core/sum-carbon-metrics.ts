import { isCarbonEstimate } from './get-carbon-metrics';
import { hasCarbonFigure } from './parse-carbon-trace';
import type { CarbonEstimate, CarbonFieldSums, CarbonMetrics, CarbonSummedField, CarbonTotals } from './types';
import { isFigure } from './units';

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
] as const satisfies ReadonlyArray<CarbonSummedField>;

// The energies and emissions summed again over timed calls only, for mean powers and rates.
const TIMED = ['energyKwh', 'gwpKgco2eq', 'cpuEnergyKwh', 'gpuEnergyKwh', 'ramEnergyKwh'] as const satisfies ReadonlyArray<
  keyof CarbonTotals['withDuration']
>;

/**
 * Fresh totals of no call: counts at 0, sums absent (unknown until a call brings a figure).
 *
 * @example
 * ```ts
 * import { emptyCarbonTotals } from 'carbon-trace';
 * emptyCarbonTotals().calls; // 0
 * emptyCarbonTotals().energyKwh; // undefined
 * ```
 */
export function emptyCarbonTotals(): CarbonTotals {
  // Literal objects: a tracker or handler makes one per model and per root run, on the hot path.
  return {
    calls: 0,
    tracedCalls: 0,
    measuredCalls: 0,
    callsWith: emptyFieldSums(),
    withDuration: { energyKwh: 0, gwpKgco2eq: 0, cpuEnergyKwh: 0, gpuEnergyKwh: 0, ramEnergyKwh: 0 },
  };
}

function emptyFieldSums(): CarbonFieldSums {
  return { energyKwh: 0, gwpKgco2eq: 0, cpuEnergyKwh: 0, gpuEnergyKwh: 0, ramEnergyKwh: 0, durationSeconds: 0, promptTokens: 0, completionTokens: 0 };
}

/**
 * Adds one call to `totals` in place and returns it. `undefined` or `null` counts as a call
 * without a trace, and so do metrics without any carbon figure (a trace whose every number was
 * unusable, or a session snapshot nothing could be derived from) — and an EcoLogits estimate
 * passed by mistake: estimates add up with {@link addCarbonEstimate} only.
 *
 * @example
 * ```ts
 * import { addCarbonMetrics, emptyCarbonTotals } from 'carbon-trace';
 * const totals = emptyCarbonTotals();
 * addCarbonMetrics(totals, metrics);
 * ```
 */
export function addCarbonMetrics(totals: CarbonTotals, metrics: CarbonMetrics | undefined | null): CarbonTotals {
  if (metrics != null && (metrics as { trackingMethod?: unknown }).trackingMethod === 'ecologits') {
    totals.calls++;
    return totals;
  }
  return addFigures(totals, metrics);
}

/**
 * Adds one estimated call to estimate totals in place and returns it: `calls` counts it,
 * `tracedCalls` counts it when it is a usable estimate (the calls the sums cover),
 * `measuredCalls` never does. Anything but an EcoLogits estimate counts as a call without one.
 *
 * @example
 * ```ts
 * import { addCarbonEstimate, emptyCarbonTotals } from 'carbon-trace';
 * const estimated = emptyCarbonTotals();
 * addCarbonEstimate(estimated, getCarbonEstimate(result));
 * ```
 */
export function addCarbonEstimate(totals: CarbonTotals, estimate: CarbonEstimate | undefined | null): CarbonTotals {
  if (!isCarbonEstimate(estimate)) {
    totals.calls++;
    return totals;
  }
  return addFigures(totals, estimate);
}

function addFigures(totals: CarbonTotals, figures: CarbonMetrics | CarbonEstimate | undefined | null): CarbonTotals {
  totals.calls++;
  if (figures == null || typeof figures !== 'object' || !hasCarbonFigure(figures as CarbonMetrics)) return totals;
  // An estimate has a subset of the fields; the absent ones add nothing.
  const metrics = figures as Partial<CarbonMetrics>;
  totals.tracedCalls++;
  if (metrics.measured === true) totals.measuredCalls++;
  for (const key of SUMMED) {
    const value = usable(metrics[key]);
    if (value === undefined) continue;
    totals[key] = (totals[key] ?? 0) + value;
    totals.callsWith[key]++;
  }
  if (usable(metrics.durationSeconds) !== undefined) {
    for (const key of TIMED) totals.withDuration[key] += usable(metrics[key]) ?? 0;
  }
  return totals;
}

function usable(value: unknown): number | undefined {
  return isFigure(value) ? value : undefined;
}

/**
 * Sums many calls' metrics. `calls` counts every item, `undefined` and `null` included, so lost
 * coverage shows as `calls > tracedCalls`; `callsWith` says how many calls each sum covers.
 *
 * @example
 * ```ts
 * import { sumCarbonMetrics } from 'carbon-trace';
 * import { getCarbonMetrics } from 'carbon-trace/ai-sdk';
 * const totals = sumCarbonMetrics(result.steps.map(getCarbonMetrics));
 * console.log(`${formatEmissions(totals.gwpKgco2eq)} over ${totals.callsWith.gwpKgco2eq} of ${totals.calls} steps`);
 * ```
 */
export function sumCarbonMetrics(items: Iterable<CarbonMetrics | undefined | null>): CarbonTotals {
  const totals = emptyCarbonTotals();
  for (const item of items) addCarbonMetrics(totals, item);
  return totals;
}

/**
 * Sums many calls' EcoLogits estimates, apart from any measurement: energy, usage emissions and
 * tokens of the midpoints; `calls` counts every item, `tracedCalls` the ones with an estimate.
 *
 * @example
 * ```ts
 * import { sumCarbonEstimates } from 'carbon-trace';
 * import { getCarbonEstimate } from 'carbon-trace/ai-sdk';
 * const estimated = sumCarbonEstimates(result.steps.map(getCarbonEstimate));
 * ```
 */
export function sumCarbonEstimates(items: Iterable<CarbonEstimate | undefined | null>): CarbonTotals {
  const totals = emptyCarbonTotals();
  for (const item of items) addCarbonEstimate(totals, item);
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
  for (const item of items) addTotals(sum, item);
  return sum;
}

/**
 * Adds `item` into `sum` in place, nested counts included, and returns `sum`.
 *
 * @example
 * ```ts
 * addTotals(fleet, instance.totals());
 * ```
 */
export function addTotals(sum: CarbonTotals, item: CarbonTotals): CarbonTotals {
  sum.calls += item.calls;
  sum.tracedCalls += item.tracedCalls;
  sum.measuredCalls += item.measuredCalls;
  for (const key of SUMMED) {
    const value = item[key];
    if (isFigure(value)) sum[key] = (sum[key] ?? 0) + value;
    sum.callsWith[key] += item.callsWith?.[key] ?? 0;
  }
  for (const key of TIMED) sum.withDuration[key] += item.withDuration?.[key] ?? 0;
  return sum;
}

/**
 * A deep copy of totals (the nested counts are objects too).
 *
 * @example
 * ```ts
 * const snapshot = copyTotals(totals);
 * ```
 */
export function copyTotals(totals: CarbonTotals): CarbonTotals {
  return { ...totals, callsWith: { ...totals.callsWith }, withDuration: { ...totals.withDuration } };
}
