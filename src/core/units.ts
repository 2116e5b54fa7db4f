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
