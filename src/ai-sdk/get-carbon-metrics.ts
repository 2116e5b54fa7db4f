import type { CarbonMetrics } from '../core/types';
import { CARBON_METADATA_KEY } from './carbon-trace-middleware';

/**
 * Reads the metrics back from anything that carries `providerMetadata`: a `generateText`
 * result, a step of `result.steps`, an `onStepFinish` / `onFinish` event, a `finish-step`
 * stream part — or a `providerMetadata` object itself.
 *
 * Returns `undefined` when the call carried no trace. A `streamText` result holds promises:
 * pass `await result.providerMetadata`, or map `await result.steps`.
 *
 * @example
 * ```ts
 * import { sumCarbonMetrics } from 'carbon-trace';
 * import { getCarbonMetrics } from 'carbon-trace/ai-sdk';
 *
 * const result = await generateText({ model, tools, stopWhen: stepCountIs(5), prompt });
 * getCarbonMetrics(result);                               // the last step only
 * sumCarbonMetrics(result.steps.map(getCarbonMetrics));   // the whole tool loop
 * ```
 */
export function getCarbonMetrics(resultOrStep: unknown): CarbonMetrics | undefined {
  if (typeof resultOrStep !== 'object' || resultOrStep === null) return undefined;
  const holder = resultOrStep as Record<string, unknown>;
  const metadata = Object.hasOwn(holder, CARBON_METADATA_KEY) ? holder : providerMetadataOf(holder);
  const metrics = metadata?.[CARBON_METADATA_KEY];
  return isCarbonMetrics(metrics) ? metrics : undefined;
}

function providerMetadataOf(holder: Record<string, unknown>): Record<string, unknown> | undefined {
  // A getter on SDK result classes, so not an own property: read it, but only as plain data.
  const metadata = holder.providerMetadata;
  if (typeof metadata !== 'object' || metadata === null || typeof (metadata as PromiseLike<unknown>).then === 'function') {
    return undefined;
  }
  return Object.hasOwn(metadata, CARBON_METADATA_KEY) ? (metadata as Record<string, unknown>) : undefined;
}

function isCarbonMetrics(value: unknown): value is CarbonMetrics {
  if (typeof value !== 'object' || value === null) return false;
  const method = (value as { trackingMethod?: unknown }).trackingMethod;
  return method === 'codecarbon' || method === 'codecarbon_estimated';
}
