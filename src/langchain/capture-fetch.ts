import type { ResponseCapture } from './capture-matching';

/**
 * The fetch signature `handler.fetch` has and wraps, in types every TypeScript setup has (no
 * DOM `RequestInfo`): a URL string, a `URL`, or a `Request`.
 *
 * @example
 * ```ts
 * const passThrough: FetchLike = (input, init) => fetch(input, init);
 * ```
 */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * Wraps a fetch so that every OpenAI-compatible response it returns is observed for
 * `x_carbon_trace` and for what the model generated, on its way to the client: SSE streams line
 * by line as they pass, JSON bodies when the client reads them. The client reads the server's
 * bytes, unchanged, and sees the same errors.
 *
 * `begin` is told about each request before it is sent (its body ties the response to the run
 * that sent it) and returns the capture to fill, or `undefined` to pass the response through.
 *
 * @example
 * ```ts
 * const fetch = createCaptureFetch(() => globalThis.fetch, (body) => captures.begin(body));
 * const model = new ChatOpenAI({ configuration: { fetch } });
 * ```
 */
export function createCaptureFetch(getInner: () => FetchLike, begin: (requestBody: unknown) => ResponseCapture | undefined): FetchLike {
  return async (input, init) => {
    const capture = safely(() => begin(init?.body));
    let response: Response;
    try {
      response = await getInner()(input, init);
    } catch (error) {
      if (capture) capture.failed = true;
      throw error;
    }
    if (capture === undefined) return response;
    try {
      const type = response.headers.get('content-type') ?? '';
      if (!response.ok || response.body === null) capture.failed = true;
      else if (type.includes('text/event-stream')) return rewrap(response, response.body.pipeThrough(observeEventStream(capture)));
      else if (type.includes('json')) observeJsonBody(response, capture);
      else capture.failed = true;
    } catch {
      capture.failed = true;
    }
    return response;
  };
}

/**
 * Observes a JSON body when the client reads it, on the client's own Response: re-wrapping the
 * body in a new Response cost ~70 µs a call, this costs nothing measurable. A read that fails
 * (a body cut mid-way) rejects with the client's own error.
 */
function observeJsonBody(response: Response, capture: ResponseCapture): void {
  const text = response.text.bind(response);
  const readText = (): Promise<string> =>
    text().then((body) => {
      capture.observe(body, true);
      capture.finish();
      return body;
    });
  Object.defineProperties(response, {
    text: { value: readText, configurable: true, writable: true },
    json: { value: () => readText().then((body) => JSON.parse(body) as unknown), configurable: true, writable: true },
  });
}

function rewrap(original: Response, body: ReadableStream<Uint8Array>): Response {
  const response = new Response(body, { status: original.status, statusText: original.statusText, headers: original.headers });
  // A constructed Response has an empty url; clients may log or compare it.
  Object.defineProperty(response, 'url', { value: original.url });
  return response;
}

function observeEventStream(capture: ResponseCapture): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let pending = '';
  const scan = (text: string, final: boolean) => {
    pending += text;
    const lines = pending.split(/\r\n|\r|\n/);
    pending = final ? '' : (lines.pop() ?? '');
    for (const line of lines) {
      if (line.startsWith('data:')) capture.observe(line.slice(5).trim());
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      // Observation only: whatever happens here, the client gets the chunk.
      safely(() => scan(decoder.decode(chunk, { stream: true }), false));
      controller.enqueue(chunk);
    },
    flush() {
      safely(() => scan(decoder.decode(), true));
      capture.finish();
    },
  });
}

function safely<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
