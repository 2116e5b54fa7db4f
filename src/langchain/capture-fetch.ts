import { findCarbonTrace } from '../core/parse-carbon-trace';

/**
 * Called with the response id and the raw `x_carbon_trace` of each traced response.
 *
 * @example
 * ```ts
 * const sink: TraceSink = (id, trace) => traces.set(id, trace);
 * ```
 */
export type TraceSink = (responseId: string, trace: unknown) => void;

type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/**
 * Wraps a fetch so that every OpenAI-compatible response it returns is observed for
 * `x_carbon_trace` on its way to the client: JSON bodies once complete, SSE streams line by
 * line as they pass. The bytes the client reads are the server's, unchanged.
 *
 * Observation happens before the client sees the bytes, not on a tee'd copy read later: the
 * trace is then known before the client has read the end of the body, so `handleLLMEnd` never
 * races it.
 *
 * @example
 * ```ts
 * const fetch = createCaptureFetch(() => globalThis.fetch, (id, trace) => traces.set(id, trace));
 * const model = new ChatOpenAI({ configuration: { fetch } });
 * ```
 */
export function createCaptureFetch(getInner: () => FetchLike, sink: TraceSink): FetchLike {
  return async (input, init) => {
    const response = await getInner()(input, init);
    try {
      if (!response.ok || response.body === null) return response;
      const type = response.headers.get('content-type') ?? '';
      if (type.includes('text/event-stream')) return rewrap(response, response.body.pipeThrough(observeEventStream(sink)));
      if (!type.includes('json')) return response;
      // A JSON body is read whole by the client anyway: reading it first costs no latency, and
      // measured cheaper than passing it through a stream transform.
      const text = await response.text();
      capture(sink, text);
      return rewrap(response, text);
    } catch {
      return response;
    }
  };
}

function rewrap(original: Response, body: BodyInit): Response {
  const response = new Response(body, { status: original.status, statusText: original.statusText, headers: original.headers });
  // A constructed Response has an empty url; clients may log or compare it.
  Object.defineProperty(response, 'url', { value: original.url });
  return response;
}

function capture(sink: TraceSink, text: string): void {
  if (!text.includes('x_carbon_trace')) return;
  try {
    const body = JSON.parse(text) as { id?: unknown };
    const trace = findCarbonTrace(body);
    if (trace !== undefined && typeof body.id === 'string') sink(body.id, trace);
  } catch {
    // Not JSON: the client will report it; there is no trace to take.
  }
}

function observeEventStream(sink: TraceSink): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let pending = '';
  const scan = (text: string, final: boolean) => {
    pending += text;
    const lines = pending.split(/\r\n|\r|\n/);
    pending = final ? '' : (lines.pop() ?? '');
    for (const line of lines) {
      if (line.startsWith('data:')) capture(sink, line.slice(5).trim());
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      try {
        scan(decoder.decode(chunk, { stream: true }), false);
      } catch {
        // Observation only.
      }
      controller.enqueue(chunk);
    },
    flush() {
      try {
        scan(decoder.decode(), true);
      } catch {
        // Observation only.
      }
    },
  });
}
