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

/**
 * The attribute value under which `byAttribute(key)` books calls that did not carry `key`, so
 * that the values of a key always add up to every call.
 *
 * @example
 * ```ts
 * tracker.byAttribute('feature')[UNATTRIBUTED]?.calls; // calls without a feature
 * ```
 */
export const UNATTRIBUTED = '(none)';

/**
 * The attribute value under which a tracker books calls whose value of a key comes after its
 * `maxAttributeValues` distinct values (user ids, request ids used as attributes).
 *
 * @example
 * ```ts
 * tracker.byAttribute('userId')[OVERFLOW_ATTRIBUTE_VALUE]?.calls;
 * ```
 */
export const OVERFLOW_ATTRIBUTE_VALUE = '(other values)';
