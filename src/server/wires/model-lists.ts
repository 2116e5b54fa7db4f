/**
 * The one model an OpenAI-style model list (`GET /v1/models`: `{ data: [{ id }] }`) names;
 * `undefined` when it names none or several (a router serving many cannot say which one a
 * request without a model went to).
 *
 * @example
 * ```ts
 * onlyModelOf({ object: 'list', data: [{ id: 'qwen2.5-7b' }] }); // 'qwen2.5-7b'
 * ```
 */
export function onlyModelOf(body: unknown): string | undefined {
  const data = body !== null && typeof body === 'object' ? (body as { data?: unknown }).data : undefined;
  if (!Array.isArray(data) || data.length !== 1) return undefined;
  return nonEmptyString((data[0] as { id?: unknown } | null)?.id);
}

/**
 * The string at `key` of an object, when it is a non-empty string.
 *
 * @example
 * ```ts
 * stringMember({ model_id: 'bigscience/bloom-560m' }, 'model_id'); // 'bigscience/bloom-560m'
 * ```
 */
export function stringMember(body: unknown, key: string): string | undefined {
  return body !== null && typeof body === 'object' ? nonEmptyString((body as Record<string, unknown>)[key]) : undefined;
}

const nonEmptyString = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
