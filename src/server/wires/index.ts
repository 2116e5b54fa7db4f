import { anthropicWire } from './anthropic';
import { chatWire } from './chat';
import { embeddingsWire } from './embeddings';
import { llamaCppWire } from './llamacpp';
import { ollamaWire } from './ollama';
import { responsesWire } from './responses';
import { tgiWire } from './tgi';
import type { Wire } from './wire';

export type { CallKind, ModelList, StreamHooks, StreamTracer, Wire, WireUsage } from './wire';
export { isCompletionPath } from './chat';

/**
 * Every wire carbon-trace traces, in the order they are tried: where two claim a path, the first
 * wins (Ollama's `/api/generate` before TGI's `/generate`, its `/api/embed` before TEI's `/embed`,
 * llama.cpp's bare `/completions` before OpenAI's `…/completions`).
 *
 * @example
 * ```ts
 * WIRES.map((wire) => wire.name); // ['ollama', 'llamacpp', 'tgi', 'anthropic', 'responses', 'embeddings', 'chat']
 * ```
 */
export const WIRES: readonly Wire[] = [ollamaWire, llamaCppWire, tgiWire, anthropicWire, responsesWire, embeddingsWire, chatWire];

/**
 * The wire that serves `method path` (the path the upstream gets, decoded), or `undefined`: the
 * request is then metered and booked, without a trace.
 *
 * @example
 * ```ts
 * wireFor('POST', '/api/chat')?.name; // 'ollama'
 * wireFor('GET', '/v1/models'); // undefined
 * ```
 */
export function wireFor(method: string, path: string): Wire | undefined {
  for (const wire of WIRES) if (wire.matches(method, path)) return wire;
  return undefined;
}

/**
 * How an answer is framed, from its `content-type`: server-sent events, NDJSON lines (Ollama's
 * streams), one JSON body, or none of these (passed through untraced).
 *
 * @example
 * ```ts
 * answerFraming('application/x-ndjson'); // 'ndjson'
 * ```
 */
export function answerFraming(contentType: string): 'sse' | 'ndjson' | 'json' | undefined {
  const type = contentType.toLowerCase();
  if (type.includes('text/event-stream')) return 'sse';
  if (type.includes('ndjson')) return 'ndjson';
  if (type.includes('json')) return 'json';
  return undefined;
}
