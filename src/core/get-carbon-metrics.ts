import { CARBON_METADATA_KEY } from './parse-carbon-trace';
import type { CarbonMetrics } from './types';

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
  if (typeof holder !== 'object' || holder === null) return undefined;
  const record = holder as unknown as Record<string, unknown>;
  if (Object.hasOwn(record, CARBON_METADATA_KEY)) return asCarbonMetrics(record[CARBON_METADATA_KEY]);
  for (const key of METADATA_HOLDERS) {
    // Often a getter on SDK classes, so not an own property: read it, but only as plain data.
    const metadata = record[key];
    if (typeof metadata !== 'object' || metadata === null || typeof (metadata as PromiseLike<unknown>).then === 'function') continue;
    if (Object.hasOwn(metadata, CARBON_METADATA_KEY)) {
      return asCarbonMetrics((metadata as Record<string, unknown>)[CARBON_METADATA_KEY]);
    }
  }
  return undefined;
}

function asCarbonMetrics(value: unknown): CarbonMetrics | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const method = (value as { trackingMethod?: unknown }).trackingMethod;
  return method === 'codecarbon' || method === 'codecarbon_estimated' ? (value as CarbonMetrics) : undefined;
}
