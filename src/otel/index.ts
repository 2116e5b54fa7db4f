import { metrics, type Attributes, type Counter, type Meter } from '@opentelemetry/api';
import { isCarbonEstimate } from '../core/get-carbon-metrics';
import type { CarbonMetrics, CarbonMetricsRecorder, CarbonRecordContext } from '../core/types';
import { JOULES_PER_KWH } from '../core/units';

export { carbonSpanAttributes } from '../core/span-attributes';

/**
 * The instruments carbon-trace records, after the OpenTelemetry naming conventions: the unit is
 * instrument metadata (UCUM: `J`, `g`), not part of the name. `@opentelemetry/exporter-prometheus`
 * exposes them as `codecarbon_energy_total`, `codecarbon_emissions_total` and
 * `codecarbon_calls_total`, each with a `# UNIT` line.
 *
 * @example
 * ```ts
 * CARBON_INSTRUMENTS.energy.unit; // 'J'
 * ```
 */
export const CARBON_INSTRUMENTS = {
  energy: { name: 'codecarbon.energy', unit: 'J', description: 'Energy of model calls, as reported by CodeCarbon on the serving hardware (EcoLogits estimates: tracking method ecologits)' },
  emissions: { name: 'codecarbon.emissions', unit: 'g', description: 'Emissions of model calls, in grams of CO2 equivalent' },
  calls: { name: 'codecarbon.calls', unit: '{call}', description: 'Model calls, with or without a carbon trace (attribute codecarbon.traced)' },
} as const;

/**
 * The attributes on every data point: the OpenTelemetry GenAI names for provider and model, and
 * carbon-trace's own for the tracking method and whether the call carried a trace. An EcoLogits
 * estimate (adapters' `estimate` option) is recorded with `codecarbon.tracking_method` =
 * `ecologits` and `codecarbon.traced` = `false`: filter on it to keep measurements alone, e.g.
 * `sum(codecarbon_energy_total{codecarbon_tracking_method!="ecologits"})`. `codecarbon.call.kind` says
 * what the call was (`chat`, `embedding`, `rerank`), for totals per kind.
 *
 * @example
 * ```ts
 * CARBON_METRIC_ATTRIBUTES.model; // 'gen_ai.request.model'
 * ```
 */
export const CARBON_METRIC_ATTRIBUTES = {
  provider: 'gen_ai.provider.name',
  model: 'gen_ai.request.model',
  trackingMethod: 'codecarbon.tracking_method',
  traced: 'codecarbon.traced',
  kind: 'codecarbon.call.kind',
} as const;

/**
 * Options of {@link createOtelCarbonRecorder}.
 *
 * @example
 * ```ts
 * createOtelCarbonRecorder({ meter: meterProvider.getMeter('my-service') });
 * ```
 */
export type OtelCarbonRecorderOptions = {
  /**
   * Default: `metrics.getMeter('carbon-trace')` from the global MeterProvider, looked up when a
   * call is recorded — so the recorder may be created before the MeterProvider is registered.
   */
  meter?: Meter;
  /**
   * Which call attributes become metric attributes (each distinct value is a time series, so
   * allow only low-cardinality keys such as `feature` or `tenant`, never `userId`). Default: none.
   */
  attributeKeys?: readonly string[];
};

/**
 * A recorder that turns every model call into OpenTelemetry counters — energy (J), emissions
 * (gCO2eq) and calls (traced or not) — with provider, model and tracking-method attributes, so a
 * fleet of instances adds up in Prometheus or an OpenTelemetry Collector.
 *
 * @example
 * ```ts
 * import { CarbonTracker } from 'carbon-trace';
 * import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
 * import { createOtelCarbonRecorder } from 'carbon-trace/otel';
 *
 * const middleware = carbonTraceMiddleware({ tracker: [new CarbonTracker(), createOtelCarbonRecorder()] });
 * ```
 */
export function createOtelCarbonRecorder(options: OtelCarbonRecorderOptions = {}): CarbonMetricsRecorder {
  // The global API hands out no-op meters until a MeterProvider is registered, and they stay
  // no-ops: look the meter up per record, as OpenTelemetry's own instrumentations do, and make
  // the counters once per meter.
  const instruments = new WeakMap<Meter, Record<keyof typeof CARBON_INSTRUMENTS, Counter>>();
  const instrumentsOf = (meter: Meter) => {
    let made = instruments.get(meter);
    if (made === undefined) {
      const counter = (spec: { name: string; unit: string; description: string }): Counter =>
        meter.createCounter(spec.name, { unit: spec.unit, description: spec.description });
      made = { energy: counter(CARBON_INSTRUMENTS.energy), emissions: counter(CARBON_INSTRUMENTS.emissions), calls: counter(CARBON_INSTRUMENTS.calls) };
      instruments.set(meter, made);
    }
    return made;
  };

  return {
    record(m: CarbonMetrics | undefined, context: CarbonRecordContext = {}) {
      const { energy, emissions, calls } = instrumentsOf(options.meter ?? metrics.getMeter('carbon-trace'));
      const attributes: Attributes = {};
      for (const key of options.attributeKeys ?? []) {
        const value = context.attributes?.[key];
        if (value !== undefined && Object.hasOwn(context.attributes!, key)) attributes[key] = value;
      }
      if (context.provider) attributes[CARBON_METRIC_ATTRIBUTES.provider] = context.provider;
      if (context.modelId) attributes[CARBON_METRIC_ATTRIBUTES.model] = context.modelId;
      attributes[CARBON_METRIC_ATTRIBUTES.kind] = context.kind === 'embedding' || context.kind === 'rerank' ? context.kind : 'chat';
      if (m === undefined) {
        const estimate = context.estimate;
        if (!isCarbonEstimate(estimate)) {
          calls.add(1, { ...attributes, [CARBON_METRIC_ATTRIBUTES.traced]: false });
          return;
        }
        // The same instruments, told apart by the tracking method: one filter keeps measurements alone.
        attributes[CARBON_METRIC_ATTRIBUTES.trackingMethod] = estimate.trackingMethod;
        calls.add(1, { ...attributes, [CARBON_METRIC_ATTRIBUTES.traced]: false });
        energy.add(estimate.energyKwh * JOULES_PER_KWH, attributes);
        emissions.add(estimate.gwpKgco2eq * 1000, attributes);
        return;
      }
      attributes[CARBON_METRIC_ATTRIBUTES.trackingMethod] = m.trackingMethod;
      calls.add(1, { ...attributes, [CARBON_METRIC_ATTRIBUTES.traced]: true });
      if (typeof m.energyKwh === 'number') energy.add(m.energyKwh * JOULES_PER_KWH, attributes);
      if (typeof m.gwpKgco2eq === 'number') emissions.add(m.gwpKgco2eq * 1000, attributes);
    },
  };
}
