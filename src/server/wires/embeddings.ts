import { objectAt, trimmedPath, usageFrom, type Wire } from './wire';

const PATHS = /\/(?:embeddings|embed|rerank|score)$/;

/**
 * Embeddings, rerank and score: OpenAI's and vLLM's `/v1/embeddings`, vLLM's and Jina's
 * `/v1/rerank` and `/v1/score`, TEI's `/embed` and `/rerank`. The trace goes at the top level of
 * the JSON body; TEI answers a bare array, which has no place for it: the request is booked
 * without one. Usage: `usage.prompt_tokens`, or `usage.total_tokens` (rerank) — an input count;
 * these calls generate nothing.
 *
 * @example
 * ```ts
 * embeddingsWire.kind('/v1/rerank'); // 'rerank'
 * ```
 */
export const embeddingsWire: Wire = {
  name: 'embeddings',
  matches: (method, path) => method === 'POST' && PATHS.test(trimmedPath(path)),
  kind: (path) => (/\/(?:rerank|score)$/.test(trimmedPath(path)) ? 'rerank' : 'embedding'),
  userField: 'user',
  // TEI's /embed answers a bare array of vectors: nothing to report usage in.
  reportsUsage: (path) => !trimmedPath(path).endsWith('/embed'),
  usageMembers: ['usage'],
  usageOf: (members) => {
    const usage = objectAt(members, 'usage');
    return usageFrom(usage?.prompt_tokens ?? usage?.total_tokens, undefined);
  },
  streamTracer: () => undefined,
};
