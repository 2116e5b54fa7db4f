/**
 * 1 kWh = 1000 W × 3600 s. Energy leaves carbon-trace in kWh, but OpenTelemetry wants joules and
 * CodeCarbon's powers are energy per second.
 *
 * @example
 * ```ts
 * const joules = metrics.energyKwh * JOULES_PER_KWH;
 * ```
 */
export const JOULES_PER_KWH = 3.6e6;

/**
 * Whether a value is a usable figure: a finite number ≥ 0 (zeros are figures). Metrics may come
 * back from JSON (providerMetadata, checkpoints), so no field's type is trusted.
 *
 * @example
 * ```ts
 * isFigure(0); // true
 * isFigure(Number.NaN); // false
 * ```
 */
export function isFigure(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/**
 * Whether a value is a usable count (tokens, requests): a whole number from 0 to 2^53 − 1.
 *
 * @example
 * ```ts
 * isCount(40); // true
 * isCount(1.5); // false
 * ```
 */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
