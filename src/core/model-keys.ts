/**
 * The model key of calls recorded without a `modelId`.
 *
 * @example
 * ```ts
 * tracker.byModel()[UNKNOWN_MODEL]?.calls;
 * ```
 */
export const UNKNOWN_MODEL = 'unknown';

/**
 * The model key under which a tracker books calls to models beyond its `maxModels` distinct
 * ids, so that per-tenant fine-tunes or LoRA adapters cannot grow its memory without end.
 *
 * @example
 * ```ts
 * tracker.byModel()[OVERFLOW_MODEL]?.calls; // calls to models past the first 1,000
 * ```
 */
export const OVERFLOW_MODEL = '(other models)';
