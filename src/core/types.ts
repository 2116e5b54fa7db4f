/**
 * How a call's numbers were obtained.
 *
 * - `'codecarbon'`: the server measured them with hardware power counters (RAPL, NVML…).
 * - `'codecarbon_estimated'`: CodeCarbon fell back to its power models (TDP × load), or the
 *   server did not say it measured.
 *
 * @example
 * ```ts
 * import type { TrackingMethod } from 'carbon-trace';
 * const label = (m: TrackingMethod) => (m === 'codecarbon' ? 'measured' : 'estimated');
 * ```
 */
export type TrackingMethod = 'codecarbon' | 'codecarbon_estimated';

/**
 * The model server's own running totals since it started, as sent by Model Garden v1.
 * Passed through as sent: they describe the server session, not this call.
 *
 * @example
 * ```ts
 * import { parseCarbonTrace } from 'carbon-trace';
 * const { session } = parseCarbonTrace({ session_total_kg_co2: 0.2, session_requests: 10 }) ?? {};
 * session?.totalKgco2eq; // 0.2
 * ```
 */
export type CarbonSessionTotals = {
  /** Emissions of the whole server session, kgCO2eq (wire: `session_total_kg_co2`). */
  totalKgco2eq?: number;
  /** Requests served in the session (wire: `session_requests`). */
  requests?: number;
  /** Tokens generated in the session (wire: `session_tokens`). */
  tokens?: number;
};

/**
 * The carbon record of one model call, normalised to fixed units: kWh, kgCO2eq, W, s.
 *
 * A field the server did not send is absent, never `0`. Every number is finite and ≥ 0.
 * The object is plain JSON (no `undefined` values, no class instances), so it can travel in
 * `providerMetadata` or `response_metadata`.
 *
 * @example
 * ```ts
 * import { parseCarbonTrace, type CarbonMetrics } from 'carbon-trace';
 * const metrics: CarbonMetrics | undefined = parseCarbonTrace({ emissions_g_co2: 0.42, energy_consumed_wh: 1.2, measured: true });
 * metrics?.gwpKgco2eq; // 0.00042
 * metrics?.energyKwh;  // 0.0012
 * ```
 */
export type CarbonMetrics = {
  /** `'codecarbon'` when the server says it measured, else `'codecarbon_estimated'`. */
  trackingMethod: TrackingMethod;
  /** `true` only when the wire said `measured: true` (or `"true"` / `1`). */
  measured: boolean;
  /** Whether CodeCarbon's tracker was running on the server (wire: `tracking_active`). */
  trackingActive?: boolean;
  /** Total energy, kWh (wire: `energy_consumed_wh` ÷ 1000, or the sum of the components). */
  energyKwh?: number;
  /** Global warming potential, kgCO2eq (wire: `emissions_g_co2` ÷ 1000). */
  gwpKgco2eq?: number;
  /** CPU energy, kWh (wire: `cpu_energy_wh` ÷ 1000). */
  cpuEnergyKwh?: number;
  /** GPU energy, kWh (wire: `gpu_energy_wh` ÷ 1000). */
  gpuEnergyKwh?: number;
  /** RAM energy, kWh (wire: `ram_energy_wh` ÷ 1000). */
  ramEnergyKwh?: number;
  /** Mean CPU power during the call, W (wire: `cpu_power_watts`). */
  cpuPowerWatts?: number;
  /** Mean GPU power during the call, W (wire: `gpu_power_watts`). */
  gpuPowerWatts?: number;
  /** Mean RAM power during the call, W (wire: `ram_power_watts`). */
  ramPowerWatts?: number;
  /** Measured duration of the call on the server, s (wire: `duration_seconds`). */
  durationSeconds?: number;
  /** Prompt tokens the server counted (wire: `prompt_tokens`). */
  promptTokens?: number;
  /** Completion tokens the server counted (wire: `completion_tokens`). */
  completionTokens?: number;
  /** The server session's running totals (Model Garden v1), passed through. */
  session?: CarbonSessionTotals;
  /** One line per field that was dropped, coerced or derived. Empty when the trace was clean. */
  warnings: string[];
};

/**
 * The fields of {@link CarbonMetrics} that add up across calls.
 *
 * @example
 * ```ts
 * const field: CarbonSummedField = 'gwpKgco2eq';
 * ```
 */
export type CarbonSummedField =
  | 'energyKwh'
  | 'gwpKgco2eq'
  | 'cpuEnergyKwh'
  | 'gpuEnergyKwh'
  | 'ramEnergyKwh'
  | 'durationSeconds'
  | 'promptTokens'
  | 'completionTokens';

/**
 * One number per summed field.
 *
 * @example
 * ```ts
 * const sums: CarbonFieldSums = sumCarbonMetrics(items).callsWith;
 * ```
 */
export type CarbonFieldSums = Record<CarbonSummedField, number>;

/**
 * Sums over many calls. Every number is a plain sum; fields absent on a call add nothing. A sum
 * no call contributed to is absent (`undefined`), not `0`: a total over calls none of which was
 * traced is unknown, and `formatEnergy(totals.energyKwh)` prints `—` for it.
 *
 * `calls` counts every call, traced or not, failed or not, so `tracedCalls / calls` is the
 * coverage: a call without a trace is carbon you did not see. `callsWith` says how many calls
 * each sum covers, so a partial sum is visible (`callsWith.gwpKgco2eq < tracedCalls`: some
 * traced calls reported energy but no emissions).
 *
 * @example
 * ```ts
 * import { sumCarbonMetrics } from 'carbon-trace';
 * const totals = sumCarbonMetrics([metricsA, undefined]);
 * totals.calls;       // 2
 * totals.tracedCalls; // 1
 * totals.callsWith.gwpKgco2eq; // 1 when metricsA carried emissions
 * ```
 */
export type CarbonTotals = Partial<CarbonFieldSums> & {
  /** Every call, with or without a trace, including calls that failed or were aborted. */
  calls: number;
  /** Calls whose trace gave at least one carbon figure (energy, emissions, power or duration). */
  tracedCalls: number;
  /** Traced calls whose trace said `measured: true`. */
  measuredCalls: number;
  /** How many calls contributed to each sum. */
  callsWith: CarbonFieldSums;
  /**
   * Energy (kWh) and emissions (kgCO2eq) summed over the calls that carried a duration only, so
   * that mean powers and rates (energy ÷ `durationSeconds`) compare like with like.
   */
  withDuration: { energyKwh: number; gwpKgco2eq: number; cpuEnergyKwh: number; gpuEnergyKwh: number; ramEnergyKwh: number };
};

/**
 * What a call is attributed to, for totals per feature, user or tenant: string, number or
 * boolean values by key (e.g. `{ feature: 'chat', tenant: 'acme' }`).
 *
 * @example
 * ```ts
 * const attributes: CarbonAttributes = { feature: 'support-chat', userId: 'u-42' };
 * ```
 */
export type CarbonAttributes = Record<string, string | number | boolean>;

/**
 * What a recorded call is attributed to: its provider, its model, and your attributes.
 *
 * @example
 * ```ts
 * tracker.record(metrics, { provider: 'garden', modelId: 'llama-3.1-8b', attributes: { feature: 'chat' } } satisfies CarbonRecordContext);
 * ```
 */
export type CarbonRecordContext = {
  provider?: string;
  modelId?: string;
  attributes?: CarbonAttributes;
  /** What the call was: a generation (`'chat'`, the default), an embedding or a rerank. */
  kind?: CallKind;
  /**
   * An EcoLogits estimate of a call that carried no trace (adapters' `estimate` option). Kept
   * apart from `metrics`, so a recorder that does not know about estimates still books the call
   * as untraced, never as measured.
   */
  estimate?: CarbonEstimate;
};

/**
 * What a model call was, for totals per kind: a generation (`'chat'`: chat, completions,
 * Responses, Messages, Ollama's generate), an embedding, or a rerank or score.
 *
 * @example
 * ```ts
 * const kinds: CallKind[] = ['chat', 'embedding', 'rerank'];
 * ```
 */
export type CallKind = 'chat' | 'embedding' | 'rerank';

/**
 * Anything that records every model call, traced or not: a `CarbonTracker`, or your own.
 * Both adapters take one as `tracker`.
 *
 * @example
 * ```ts
 * import type { CarbonMetricsRecorder } from 'carbon-trace';
 * const rows: unknown[] = [];
 * const recorder: CarbonMetricsRecorder = { record: (metrics, context) => void rows.push({ metrics, context }) };
 * ```
 */
export type CarbonMetricsRecorder = {
  record(metrics: CarbonMetrics | undefined, context?: CarbonRecordContext): void;
};

/**
 * How a model call ended: `'completed'`; `'failed'` (an error such as HTTP 500 or a cut stream);
 * `'aborted'` (cancelled by the caller, or — LangChain — never ended and dropped after
 * `runTtlMs`). Every outcome counts in `calls`.
 *
 * @example
 * ```ts
 * const lost = (outcome: CallOutcome) => outcome !== 'completed';
 * ```
 */
export type CallOutcome = 'completed' | 'failed' | 'aborted';

/**
 * A value known only as an interval (EcoLogits' `RangeValue`): a closed model's parameter count,
 * a provider's PUE, and what follows from them.
 *
 * @example
 * ```ts
 * const activeParametersBillion: CarbonRange = { min: 8, max: 28 };
 * ```
 */
export type CarbonRange = { min: number; max: number };

/**
 * One end of an estimate's interval.
 *
 * @example
 * ```ts
 * estimate.max?.gwpKgco2eq; // the high end of the usage emissions
 * ```
 */
export type CarbonEstimateBound = { energyKwh: number; gwpKgco2eq: number; embodiedGwpKgco2eq: number };

/**
 * What an estimate was computed from, so that any figure can be traced back and redone.
 *
 * @example
 * ```ts
 * const { provider, modelId, zone, gCo2PerKwh } = estimate.inputs;
 * ```
 */
export type CarbonEstimateInputs = {
  /** EcoLogits' provider name (`'openai'`, `'mistralai'`, `'google_genai'`…). */
  provider: string;
  /** The model id in EcoLogits' data (an alias resolved to it). */
  modelId: string;
  /** Active parameters, billions: a number, or a range for closed models. */
  activeParametersBillion: number | CarbonRange;
  /** Total parameters, billions: they set the GPU count. */
  totalParametersBillion: number | CarbonRange;
  /** GPUs the model needs (80 GB each, rounded up to a power of two). */
  gpuCount: number | CarbonRange;
  /** The provider's datacenter PUE. */
  pue: number | CarbonRange;
  /** Generated tokens the estimate is for. */
  outputTokens: number;
  /** The latency the caller measured, s; absent when it was not given. */
  requestLatencySeconds?: number;
  /** The generation time used: the modelled latency, bounded by the measured one, s. */
  generationLatencySeconds: number | CarbonRange;
  /** The electricity zone: the provider's datacenter country unless you gave one. */
  zone: string;
  /** Its grid intensity, gCO2eq/kWh, and where that comes from. */
  gCo2PerKwh: number;
  gridSource: string;
};

/**
 * An estimate of a model call's impact from the model's size, the tokens generated and the
 * latency (EcoLogits' method), for calls that carry no trace — API providers. It is a model of a
 * typical datacenter, not a measurement of the one that served you: it travels under its own key
 * (`providerMetadata.ecologits`, `response_metadata.ecologits`) and is summed apart from traces.
 *
 * Shaped like {@link CarbonMetrics} (kWh, kgCO2eq), with `trackingMethod: 'ecologits'` and
 * `measured: false`. When an input is only known as a range, `energyKwh` and the emissions are
 * the midpoint and `min` / `max` hold the ends, as EcoLogits reports them.
 *
 * @example
 * ```ts
 * import { getCarbonEstimate } from 'carbon-trace';
 * const estimate = getCarbonEstimate(result);
 * if (estimate) console.log(`${estimate.gwpKgco2eq * 1000} gCO2eq (estimated, ${estimate.min?.gwpKgco2eq}–${estimate.max?.gwpKgco2eq} kg)`);
 * ```
 */
export type CarbonEstimate = {
  trackingMethod: 'ecologits';
  measured: false;
  /** Energy of the request at the datacenter, PUE included, kWh (midpoint of a range). */
  energyKwh: number;
  /** Usage-phase emissions: `energyKwh` × the zone's grid intensity, kgCO2eq. */
  gwpKgco2eq: number;
  /** The request's share of manufacturing the server and GPUs, kgCO2eq — not in `gwpKgco2eq`. */
  embodiedGwpKgco2eq: number;
  /** The low end, when an input was a range. */
  min?: CarbonEstimateBound;
  /** The high end, when an input was a range. */
  max?: CarbonEstimateBound;
  /** Prompt tokens, when known; the method does not use them. */
  promptTokens?: number;
  /** Generated tokens. */
  completionTokens: number;
  inputs: CarbonEstimateInputs;
  /** The method and its release, e.g. `'EcoLogits 0.9.3 LLM inference (mlco2/ecologits)'`. */
  method: string;
  /** Caveats: unreleased or multimodal architectures, a grid zone that differs from EcoLogits' own mix… */
  warnings: string[];
};

/**
 * How an estimate from the model was made: `'ecologits'`. Trackers sum it apart from the two
 * {@link TrackingMethod | trace methods}.
 *
 * @example
 * ```ts
 * const kinds: Array<TrackingMethod | EstimateMethod> = ['codecarbon', 'codecarbon_estimated', 'ecologits'];
 * ```
 */
export type EstimateMethod = 'ecologits';
