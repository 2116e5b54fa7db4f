import type { CarbonAttributes, CarbonMetrics } from './types';
import { isCount } from './units';

// Attributes end up as totals keys and metric labels: bounded so a caller cannot grow either.
const MAX_ATTRIBUTES = 32;
const MAX_ATTRIBUTE_KEY_LENGTH = 128;
const MAX_ATTRIBUTE_VALUE_LENGTH = 256;

/**
 * The usable attributes of a call, merged left to right (later sources win): string, finite
 * number and boolean values under own keys; anything else is left out. Never throws.
 *
 * @example
 * ```ts
 * mergeAttributes({ feature: 'chat' }, { tenant: 'acme', bad: {} }); // { feature: 'chat', tenant: 'acme' }
 * ```
 */
export function mergeAttributes(...sources: unknown[]): CarbonAttributes {
  const entries = new Map<string, string | number | boolean>();
  for (const source of sources) {
    if (typeof source !== 'object' || source === null || Array.isArray(source)) continue;
    try {
      for (const key of Object.keys(source)) {
        const value = (source as Record<string, unknown>)[key];
        if (key === '' || key.length > MAX_ATTRIBUTE_KEY_LENGTH) continue;
        if (typeof value === 'string') entries.set(key, value.slice(0, MAX_ATTRIBUTE_VALUE_LENGTH));
        else if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) entries.set(key, value);
      }
    } catch {
      // A hostile object (a throwing getter, a Proxy) contributes nothing.
    }
  }
  // fromEntries defines own properties, so a `__proto__` key is data, never a prototype.
  return Object.fromEntries([...entries].slice(0, MAX_ATTRIBUTES));
}

/**
 * How a call that threw ended: `'aborted'` when it was cancelled or timed out (`AbortError`,
 * `TimeoutError`, LangChain's `ModelAbortError`), `'failed'` otherwise.
 *
 * @example
 * ```ts
 * outcomeOfError(new DOMException('stop', 'AbortError')); // 'aborted'
 * ```
 */
export function outcomeOfError(error: unknown): 'aborted' | 'failed' {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'AbortError' || name === 'ModelAbortError' || name === 'TimeoutError' ? 'aborted' : 'failed';
}

/**
 * Fills token counts the trace did not carry from the response's own usage, so totals and
 * reports do not show 0 tokens for calls that had them. The trace's own counts win.
 *
 * @example
 * ```ts
 * withUsageTokens(metrics, { promptTokens: 12, completionTokens: 40 });
 * ```
 */
export function withUsageTokens(
  metrics: CarbonMetrics | undefined,
  usage: { promptTokens?: unknown; completionTokens?: unknown },
): CarbonMetrics | undefined {
  if (metrics === undefined) return undefined;
  const prompt = metrics.promptTokens === undefined ? count(usage.promptTokens) : undefined;
  const completion = metrics.completionTokens === undefined ? count(usage.completionTokens) : undefined;
  if (prompt === undefined && completion === undefined) return metrics;
  const filled = { ...metrics };
  if (prompt !== undefined) filled.promptTokens = prompt;
  if (completion !== undefined) filled.completionTokens = completion;
  return filled;
}

function count(value: unknown): number | undefined {
  return isCount(value) ? value : undefined;
}
