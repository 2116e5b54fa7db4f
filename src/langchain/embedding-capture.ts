import type { ObservedRequest, ResponseObserver } from './capture-fetch';

// Loosely typed on purpose: request and response bodies are read defensively.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * An embedding request `handler.fetch` recognised by its path, with what its body says.
 *
 * @example
 * ```ts
 * embeddingRequestOf({ url: 'http://127.0.0.1:11434/api/embed', method: 'POST', body: '{"model":"nomic-embed-text","input":"hi"}' });
 * // → { provider: 'ollama', modelName: 'nomic-embed-text' }
 * ```
 */
export type EmbeddingRequest = {
  /** `'ollama'` for Ollama's own API, else `'openai'`: what the chat classes' `ls_provider` says for the same servers. */
  provider: string;
  modelName?: string;
};

/**
 * Whether a request is an embedding call, from its path: `/embeddings` (OpenAI-compatible:
 * `OpenAIEmbeddings`), `/api/embed` and `/api/embeddings` (Ollama: `OllamaEmbeddings`), `/embed`
 * (TEI). Embedding classes start no LangChain run, so `handler.fetch` books these itself.
 *
 * @example
 * ```ts
 * embeddingRequestOf({ url: 'http://gpu-box:8000/v1/embeddings', method: 'POST', body: '{"model":"bge-m3","input":["a"]}' });
 * // → { provider: 'openai', modelName: 'bge-m3' }
 * ```
 */
export function embeddingRequestOf(request: ObservedRequest): EmbeddingRequest | undefined {
  if (request.method !== 'POST') return undefined;
  let path: string;
  try {
    path = new URL(request.url).pathname.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
  let provider: string;
  if (path.endsWith('/api/embed') || path.endsWith('/api/embeddings')) provider = 'ollama';
  else if (path.endsWith('/embeddings') || path.endsWith('/embed')) provider = 'openai';
  else return undefined;
  const result: EmbeddingRequest = { provider };
  const model = modelOf(request.body);
  if (model !== undefined) result.modelName = model;
  return result;
}

/**
 * How an embedding response ended: its parsed body (an object, an array such as TEI's, or
 * `undefined` when it was not JSON), or a failure.
 *
 * @example
 * ```ts
 * const ended: EmbeddingOutcome = { outcome: 'completed', body: { data: [], x_carbon_trace: { energy_consumed_wh: 0.1 } } };
 * ```
 */
export type EmbeddingOutcome = { outcome: 'completed'; body: unknown } | { outcome: 'failed' | 'aborted' };

/**
 * Observes one embedding response and reports once how it ended: when the client has read the
 * whole body, or when the request failed.
 *
 * @example
 * ```ts
 * const capture = new EmbeddingCapture((ended) => book(ended));
 * ```
 */
export class EmbeddingCapture implements ResponseObserver {
  /** No LangChain run counts the call if this does not: it must see the body however it is read. */
  readonly eager = true;
  private text: string | undefined;
  private ended = false;

  constructor(private readonly onEnd: (ended: EmbeddingOutcome) => void) {}

  observe(data: string, wholeBody = false): void {
    // Embedding responses are one JSON body; a stream here is no embedding call we know of.
    if (wholeBody) this.text = data;
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd({ outcome: 'completed', body: parseJson(this.text) });
  }

  fail(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const name = (error as { name?: unknown } | null | undefined)?.name;
    this.onEnd({ outcome: name === 'AbortError' || name === 'TimeoutError' ? 'aborted' : 'failed' });
  }
}

/**
 * The input tokens an embedding response reports: OpenAI's `usage.prompt_tokens` (or
 * `total_tokens`), Ollama's `prompt_eval_count`.
 *
 * @example
 * ```ts
 * embeddingPromptTokens({ usage: { prompt_tokens: 8, total_tokens: 8 } }); // 8
 * ```
 */
export function embeddingPromptTokens(body: unknown): unknown {
  const loose = body as Loose;
  if (loose === null || typeof loose !== 'object' || Array.isArray(loose)) return undefined;
  return loose.usage?.prompt_tokens ?? loose.usage?.total_tokens ?? loose.prompt_eval_count;
}

function modelOf(body: unknown): string | undefined {
  if (typeof body !== 'string') return undefined;
  const parsed = parseJson(body) as Loose;
  return typeof parsed?.model === 'string' && parsed.model !== '' ? parsed.model : undefined;
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined; // Not JSON: the client reports it; there is nothing to take.
  }
}
