import { anthropicWire } from './anthropic';
import { chatWire } from './chat';
import { embeddingsWire } from './embeddings';
import { llamaCppWire } from './llamacpp';
import { ollamaWire } from './ollama';
import { responsesWire } from './responses';
import { tgiWire } from './tgi';
import type { Wire } from './wire';

export type { CallKind, ModelList, StreamHooks, StreamLimits, StreamTracer, Wire, WireUsage } from './wire';
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

// Line-delimited JSON goes by many names: NDJSON, JSON Lines, Spring's stream+json.
const JSON_LINES = /^(?:application|text)\/(?:x-)?(?:ndjson|jsonl|jsonlines|json-lines|stream\+json|json-stream)$/;

/**
 * How an answer is framed, from its `content-type`: server-sent events, JSON lines (Ollama's
 * streams, under any of the names line-delimited JSON goes by), a JSON text sequence (RFC 7464:
 * streamed, but framed by RS characters no tracer reads, so it passes untraced), one JSON body, or
 * none of these (passed through untraced). Only `json` is held whole: a stream never is.
 *
 * @example
 * ```ts
 * answerFraming('application/x-ndjson'); // 'ndjson'
 * answerFraming('application/jsonl'); // 'ndjson'
 * answerFraming('application/json-seq'); // 'json-seq'
 * ```
 */
export function answerFraming(contentType: string): 'sse' | 'ndjson' | 'json-seq' | 'json' | undefined {
  const type = (contentType.split(';', 1)[0] ?? '').trim().toLowerCase();
  if (type === 'text/event-stream') return 'sse';
  if (JSON_LINES.test(type)) return 'ndjson';
  if (type.endsWith('json-seq')) return 'json-seq';
  if (type.includes('json')) return 'json';
  return undefined;
}

/**
 * Whether an answer of this framing streams (booked as streamed, never held whole).
 *
 * @example
 * ```ts
 * isStreamed(answerFraming('application/json-seq')); // true
 * ```
 */
export function isStreamed(framing: ReturnType<typeof answerFraming>): framing is 'sse' | 'ndjson' | 'json-seq' {
  return framing === 'sse' || framing === 'ndjson' || framing === 'json-seq';
}
