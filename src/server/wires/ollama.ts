import { FrameTracer, type FrameRules } from './frame-tracer';
import { trimmedPath, usageFrom, type Wire } from './wire';

// Ollama serves its API at these paths exactly (a base path before them is the upstream's).
const PATHS = /^\/api\/(?:chat|generate|embed|embeddings)$/;

/**
 * Ollama's NDJSON stream (`application/x-ndjson`, its default): the trace goes on the final line,
 * the one with `"done": true`, which also reports the usage.
 *
 * @example
 * ```ts
 * new FrameTracer(ollamaLines, hooks);
 * ```
 */
export const ollamaLines: FrameRules = {
  framing: 'ndjson',
  tokens: /"(?:content|response|thinking)"\s*:\s*"(?!")|"tool_calls"\s*:\s*\[\s*\{/g,
  mayMatter: /"done"\s*:\s*true/,
  read(data, usage) {
    if (data.done !== true) return 'pass';
    usage(usageFrom(data.prompt_eval_count, data.eval_count));
    return 'carry';
  },
};

/**
 * Ollama's own API (`/api/chat`, `/api/generate`, `/api/embed`), which `ChatOllama`,
 * `OllamaEmbeddings` and `ollama-ai-provider-v2` speak. The trace goes on the final object
 * (`"done": true`), streamed as NDJSON or not; `/api/embed`'s one object is its final one.
 * Usage: `prompt_eval_count` (absent when Ollama reused a cached prompt) and `eval_count`.
 *
 * @example
 * ```ts
 * ollamaWire.kind('/api/embed'); // 'embedding'
 * ```
 */
export const ollamaWire: Wire = {
  name: 'ollama',
  matches: (method, path) => method === 'POST' && PATHS.test(trimmedPath(path)),
  kind: (path) => (/\/api\/embed(?:dings)?$/.test(trimmedPath(path)) ? 'embedding' : 'chat'),
  // The legacy /api/embeddings answers `{ embedding }` only.
  reportsUsage: (path) => !trimmedPath(path).endsWith('/api/embeddings'),
  usageMembers: ['prompt_eval_count', 'eval_count'],
  usageOf: (members) => usageFrom(members.prompt_eval_count, members.eval_count),
  streamTracer: (framing, hooks, limits) => (framing === 'ndjson' ? new FrameTracer(ollamaLines, hooks, limits) : undefined),
};
