import type { CarbonMetrics } from './types';

/**
 * The minimal OpenTelemetry span surface we write to; any `Span` of `@opentelemetry/api` fits.
 *
 * @example
 * ```ts
 * const span: AttributeSpan = trace.getActiveSpan()!;
 * ```
 */
export type AttributeSpan = {
  setAttributes(attributes: Record<string, string | number | boolean>): unknown;
  isRecording?(): boolean;
};

// @opentelemetry/api 1.x keeps its singletons on this global, and the active span under this
// context key. Reading them directly keeps OpenTelemetry an optional peer that is never
// imported: bundlers of edge apps without it have nothing to resolve.
const OTEL_API_GLOBAL = Symbol.for('opentelemetry.js.api.1');
const SPAN_CONTEXT_KEY = Symbol.for('OpenTelemetry Context Key SPAN');

type OtelGlobal = { context?: { active?(): { getValue?(key: symbol): unknown } } };

/**
 * The span active in the current OpenTelemetry context, or `undefined` when OpenTelemetry is
 * not installed, not set up, or no span is active.
 *
 * @example
 * ```ts
 * const span = getActiveSpan(); // inside ai's doGenerate / doStream span when telemetry is on
 * ```
 */
export function getActiveSpan(): AttributeSpan | undefined {
  try {
    const api = (globalThis as Record<symbol, OtelGlobal | undefined>)[OTEL_API_GLOBAL];
    const span = api?.context?.active?.()?.getValue?.(SPAN_CONTEXT_KEY) as AttributeSpan | undefined;
    return typeof span?.setAttributes === 'function' ? span : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The headline metrics as span attributes, `codecarbon.*`. Span attributes carry no unit
 * metadata, so the unit is in the name, as in the metric fields.
 *
 * @example
 * ```ts
 * carbonSpanAttributes(metrics);
 * // { 'codecarbon.traced': true, 'codecarbon.energy_kwh': 0.0004, 'codecarbon.gwp_kgco2eq': 0.0001, … }
 * ```
 */
export function carbonSpanAttributes(metrics: CarbonMetrics | undefined): Record<string, string | number | boolean> {
  if (metrics === undefined) return { 'codecarbon.traced': false };
  const attributes: Record<string, string | number | boolean> = {
    'codecarbon.traced': true,
    'codecarbon.measured': metrics.measured,
    'codecarbon.tracking_method': metrics.trackingMethod,
  };
  if (metrics.energyKwh !== undefined) attributes['codecarbon.energy_kwh'] = metrics.energyKwh;
  if (metrics.gwpKgco2eq !== undefined) attributes['codecarbon.gwp_kgco2eq'] = metrics.gwpKgco2eq;
  if (metrics.gpuEnergyKwh !== undefined) attributes['codecarbon.gpu_energy_kwh'] = metrics.gpuEnergyKwh;
  if (metrics.durationSeconds !== undefined) attributes['codecarbon.duration_s'] = metrics.durationSeconds;
  return attributes;
}

/**
 * Writes {@link carbonSpanAttributes} to a span; never throws.
 *
 * @example
 * ```ts
 * setCarbonSpanAttributes(getActiveSpan(), metrics);
 * ```
 */
export function setCarbonSpanAttributes(span: AttributeSpan | undefined, metrics: CarbonMetrics | undefined): void {
  if (span === undefined) return;
  try {
    if (span.isRecording?.() === false) return;
    span.setAttributes(carbonSpanAttributes(metrics));
  } catch {
    // A broken tracer must not fail the model call.
  }
}
