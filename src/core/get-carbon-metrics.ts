import { CARBON_METADATA_KEY, ESTIMATE_METADATA_KEY } from './parse-carbon-trace';
import type { CarbonEstimate, CarbonMetrics } from './types';
import { isFigure } from './units';

// Where each framework keeps per-call metadata: the AI SDK's results, steps and stream parts,
// LangChain's messages and generations.
const METADATA_HOLDERS = ['providerMetadata', 'response_metadata', 'generationInfo'] as const;

/**
 * Refuses, at compile time, a holder whose `providerMetadata` is still a promise — a
 * `streamText` / `streamObject` result — with a message that says what to pass instead.
 *
 * @example
 * ```ts
 * getCarbonMetrics(streamText({ model, prompt })); // type error: pass `await result.providerMetadata`
 * ```
 */
export type NotAStreamResult<T> = T extends { providerMetadata: PromiseLike<unknown> }
  ? { readonly 'a stream result holds promises: pass `await result.providerMetadata`, or map `await result.steps`': never }
  : unknown;

/**
 * Reads the metrics back from wherever an adapter put them:
 *
 * - AI SDK: a `generateText` / `generateObject` result, a step of `result.steps`, an
 *   `onStepFinish` / `onFinish` event, a `finish-step` part, or a `providerMetadata` object.
 *   A `streamText` result holds promises: pass `await result.providerMetadata`, or map
 *   `await result.steps`.
 * - LangChain: an `AIMessage` (`response_metadata`), a generation (`generationInfo`), or the
 *   metadata object itself.
 *
 * Returns `undefined` when the call carried no trace.
 *
 * @example
 * ```ts
 * import { getCarbonMetrics, sumCarbonMetrics } from 'carbon-trace';
 *
 * const result = await generateText({ model, tools, stopWhen: stepCountIs(5), prompt });
 * getCarbonMetrics(result);                             // the last step only
 * sumCarbonMetrics(result.steps.map(getCarbonMetrics)); // the whole tool loop
 *
 * const message = await chatModel.invoke('Hello', { callbacks: [handler] });
 * getCarbonMetrics(message)?.gwpKgco2eq;
 * ```
 */
export function getCarbonMetrics<T>(holder: T & NotAStreamResult<T>): CarbonMetrics | undefined {
  const value = findMetadata(holder, CARBON_METADATA_KEY);
  return isCarbonMetrics(value) ? value : undefined;
}

/**
 * Reads back the EcoLogits estimate an adapter's `estimate` option put beside a call that carried
 * no trace (`providerMetadata.ecologits`, `response_metadata.ecologits`), from the same holders
 * as {@link getCarbonMetrics}. Returns `undefined` for a traced call: those are never estimated.
 *
 * @example
 * ```ts
 * import { getCarbonEstimate, getCarbonMetrics } from 'carbon-trace';
 *
 * const measured = getCarbonMetrics(result);  // from the server's trace, or undefined
 * const estimated = getCarbonEstimate(result); // from the model's size, or undefined
 * console.log(measured ? `${measured.gwpKgco2eq} kg measured` : `${estimated?.gwpKgco2eq} kg estimated`);
 * ```
 */
export function getCarbonEstimate<T>(holder: T & NotAStreamResult<T>): CarbonEstimate | undefined {
  const value = findMetadata(holder, ESTIMATE_METADATA_KEY);
  return isCarbonEstimate(value) ? value : undefined;
}

function findMetadata(holder: unknown, metadataKey: string): unknown {
  if (typeof holder !== 'object' || holder === null) return undefined;
  const record = holder as Record<string, unknown>;
  if (Object.hasOwn(record, metadataKey)) return record[metadataKey];
  for (const key of METADATA_HOLDERS) {
    // Often a getter on SDK classes, so not an own property: read it, but only as plain data.
    const metadata = record[key];
    if (typeof metadata !== 'object' || metadata === null || typeof (metadata as PromiseLike<unknown>).then === 'function') continue;
    if (Object.hasOwn(metadata, metadataKey)) return (metadata as Record<string, unknown>)[metadataKey];
  }
  return undefined;
}

/**
 * Whether a value is a trace's metrics (`trackingMethod` `'codecarbon'` or
 * `'codecarbon_estimated'`) — never an estimate, whatever key it travelled under.
 *
 * @example
 * ```ts
 * if (isCarbonMetrics(metadata.codecarbon)) total += metadata.codecarbon.gwpKgco2eq ?? 0;
 * ```
 */
export function isCarbonMetrics(value: unknown): value is CarbonMetrics {
  if (typeof value !== 'object' || value === null) return false;
  const method = (value as { trackingMethod?: unknown }).trackingMethod;
  return method === 'codecarbon' || method === 'codecarbon_estimated';
}

/**
 * Whether a value is an EcoLogits estimate (`trackingMethod: 'ecologits'`, energy and emissions
 * numbers ≥ 0).
 *
 * @example
 * ```ts
 * if (isCarbonEstimate(context.estimate)) estimatedKg += context.estimate.gwpKgco2eq;
 * ```
 */
export function isCarbonEstimate(value: unknown): value is CarbonEstimate {
  if (typeof value !== 'object' || value === null) return false;
  const { trackingMethod, energyKwh, gwpKgco2eq } = value as Partial<CarbonEstimate>;
  return trackingMethod === 'ecologits' && isFigure(energyKwh) && isFigure(gwpKgco2eq);
}
