import { isFigure } from './units';

/**
 * What {@link formatEnergy} and {@link formatEmissions} show for a value that is not a figure:
 * `undefined`, `null`, NaN, ±Infinity, a negative number, a string or anything else that is not
 * a finite number ≥ 0. An em dash, as the demo's tables show an unknown cell: never a made-up `0`.
 *
 * @example
 * ```ts
 * formatEnergy(undefined) === NO_FIGURE; // true
 * ```
 */
export const NO_FIGURE = '—';

/**
 * Options of {@link formatEmissions}.
 *
 * @example
 * ```ts
 * const options: FormatEmissionsOptions = { co2eq: false }; // '80.7 µg' under a column headed CO2eq
 * ```
 */
export type FormatEmissionsOptions = {
  /** Append ` CO2eq` to the unit (`80.7 µg CO2eq`). Default: `true`. */
  co2eq?: boolean;
};

type Scale = readonly (readonly [unit: string, baseUnits: number])[];

// Largest first. Energy from pWh (a few tokens on a phone) to EWh (beyond the world's yearly
// electricity): kWh stays kWh rather than becoming a prefix of it.
const ENERGY_SCALE: Scale = [
  ['EWh', 1e18],
  ['PWh', 1e15],
  ['TWh', 1e12],
  ['GWh', 1e9],
  ['MWh', 1e6],
  ['kWh', 1e3],
  ['Wh', 1],
  ['mWh', 1e-3],
  ['µWh', 1e-6],
  ['nWh', 1e-9],
  ['pWh', 1e-12],
];

// Mass in grams; above a kilogram, tonnes, as emissions are reported (1 t = 1 Mg).
const MASS_SCALE: Scale = [
  ['Gt', 1e15],
  ['Mt', 1e12],
  ['kt', 1e9],
  ['t', 1e6],
  ['kg', 1e3],
  ['g', 1],
  ['mg', 1e-3],
  ['µg', 1e-6],
  ['ng', 1e-9],
  ['pg', 1e-12],
];

/**
 * A figure in base units with the unit that keeps 1–999 before the point, three significant
 * figures, never an exponent. Past either end of the scale it says so as a bound (`< 1 pWh`,
 * `> 999 EWh`) instead of switching to exponent notation.
 */
function withUnit(value: unknown, toBaseUnits: number, scale: Scale): string | undefined {
  if (!isFigure(value)) return undefined;
  const base = value * toBaseUnits;
  if (!Number.isFinite(base)) return `> 999 ${scale[0]![0]}`;
  if (base === 0) return `0 ${scale.find(([, s]) => s === 1)![0]}`;
  // Rounded before the unit is chosen, so 999.7 µWh becomes 1.00 mWh, not "1.00e+3 µWh".
  const rounded = Number(base.toPrecision(3));
  const [largest, largestScale] = scale[0]!;
  if (rounded >= 1000 * largestScale) return `> 999 ${largest}`;
  const [smallest, smallestScale] = scale[scale.length - 1]!;
  if (rounded < smallestScale) return `< 1 ${smallest}`;
  const [unit, unitScale] = scale.find(([, s]) => rounded >= s)!;
  return `${(rounded / unitScale).toPrecision(3)} ${unit}`;
}

/**
 * Energy for people: kWh (carbon-trace's unit, `energyKwh`) shown in the unit that keeps the
 * number between 1 and 999 — `170 µWh`, `1.31 mWh`, `2.40 kWh` — with three significant figures
 * and never an exponent. Zero is `0 Wh`; values below 1 pWh or of 1,000 EWh and more are shown as
 * bounds (`< 1 pWh`, `> 999 EWh`). Anything that is not a finite number ≥ 0 (`undefined`, `null`,
 * NaN, ±Infinity, negatives, strings) gives {@link NO_FIGURE} (`—`). Never throws.
 *
 * @example
 * ```ts
 * import { formatEnergy, getCarbonMetrics } from 'carbon-trace';
 * formatEnergy(0.00000017); // '170 µWh'
 * formatEnergy(0.00131);    // '1.31 Wh'
 * formatEnergy(getCarbonMetrics(result)?.energyKwh); // '—' when the call had no trace
 * ```
 */
export function formatEnergy(kwh: unknown): string {
  return withUnit(kwh, 1000, ENERGY_SCALE) ?? NO_FIGURE;
}

/**
 * Emissions for people: kgCO2eq (carbon-trace's unit, `gwpKgco2eq`) shown in the unit that keeps
 * the number between 1 and 999 — `80.7 µg CO2eq`, `3.20 kg CO2eq`, `1.50 t CO2eq` — with three
 * significant figures and never an exponent. Zero is `0 g CO2eq`; values below 1 pg or of 1,000
 * Gt and more are shown as bounds. Anything that is not a finite number ≥ 0 gives
 * {@link NO_FIGURE} (`—`), without the suffix. `{ co2eq: false }` leaves out ` CO2eq`, for a
 * column that already says it. Never throws.
 *
 * @example
 * ```ts
 * import { formatEmissions } from 'carbon-trace';
 * formatEmissions(0.0000000807);                   // '80.7 µg CO2eq'
 * formatEmissions(3.2);                            // '3.20 kg CO2eq'
 * formatEmissions(0.0000000807, { co2eq: false }); // '80.7 µg'
 * formatEmissions(Number.NaN);                     // '—'
 * ```
 */
export function formatEmissions(kgco2eq: unknown, options?: FormatEmissionsOptions): string {
  const mass = withUnit(kgco2eq, 1000, MASS_SCALE);
  if (mass === undefined) return NO_FIGURE;
  return options?.co2eq === false ? mass : `${mass} CO2eq`;
}
