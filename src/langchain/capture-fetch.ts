/**
 * What `handler.fetch` tells about one response as its bytes pass to the client: each JSON
 * document (a whole body, an SSE data line, an NDJSON line), its end, or its failure.
 *
 * @example
 * ```ts
 * const observer: ResponseObserver = { observe: (data) => void seen.push(data), finish() {}, fail() {} };
 * ```
 */
export interface ResponseObserver {
  /** One JSON document: a whole body (`wholeBody`), or one event or line of a stream. */
  observe(data: string, wholeBody?: boolean): void;
  /** The client has read the whole response. */
  finish(): void;
  /** The request failed (`error`, when it threw), was answered with an error, or its body could not be read. */
  fail(error?: unknown): void;
  /**
   * Observe a non-streamed body however the client reads it (`text()`, `json()`,
   * `arrayBuffer()`, the stream) and whatever its content type, at the cost of re-wrapping the
   * response: for calls that must be booked even when the client reads the body its own way.
   * Otherwise a JSON body is read only through the client's own `text()`/`json()`.
   */
  readonly eager?: boolean;
}

/**
 * One request `handler.fetch` is about to send, as `begin` sees it.
 *
 * @example
 * ```ts
 * const request: ObservedRequest = { url: 'http://127.0.0.1:11434/api/embed', method: 'POST', body: '{"model":"m","input":"hi"}' };
 * ```
 */
export type ObservedRequest = { url: string; method: string; body: unknown };

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
 * Wraps a fetch so that every response it returns is observed for `x_carbon_trace` and for what
 * the model generated, on its way to the client: SSE streams event by event and NDJSON streams
 * (Ollama) line by line as they pass, JSON bodies when the client reads them. The client reads
 * the server's bytes, unchanged, and sees the same errors.
 *
 * `begin` is told about each request before it is sent (its body ties the response to the run
 * that sent it) and returns the observer to fill, or `undefined` to pass the response through.
 *
 * @example
 * ```ts
 * const fetch = createCaptureFetch(() => globalThis.fetch, (request) => captures.begin(request.body));
 * const model = new ChatOpenAI({ configuration: { fetch } });
 * ```
 */
export function createCaptureFetch(getInner: () => FetchLike, begin: (request: ObservedRequest) => ResponseObserver | undefined): FetchLike {
  return async (input, init) => {
    const capture = safely(() => begin(describeRequest(input, init)));
    let response: Response;
    try {
      response = await getInner()(input, init);
    } catch (error) {
      if (capture) safely(() => capture.fail(error));
      throw error;
    }
    if (capture === undefined) return response;
    try {
      const type = (response.headers.get('content-type') ?? '').toLowerCase();
      if (!response.ok || response.body === null) capture.fail();
      else if (type.includes('text/event-stream')) return rewrap(response, response.body.pipeThrough(observeLines(capture, 'sse')));
      // Before the JSON test: 'application/x-ndjson' contains 'json', but it is a stream of lines.
      else if (NDJSON_TYPES.some((t) => type.includes(t))) return rewrap(response, response.body.pipeThrough(observeLines(capture, 'ndjson')));
      else if (capture.eager === true) return rewrap(response, observeWholeBody(response.body, capture));
      else if (type.includes('json')) observeJsonBody(response, capture);
      else capture.fail();
    } catch {
      safely(() => capture.fail());
    }
    return response;
  };
}

// Ollama sends application/x-ndjson; the others are the names JSON Lines also goes by.
const NDJSON_TYPES = ['ndjson', 'jsonl', 'json-seq'];

/** The request as `begin` needs it, from either fetch form (`fetch(url, init)` or `fetch(request)`). */
function describeRequest(input: string | URL | Request, init: RequestInit | undefined): ObservedRequest {
  const isRequest = typeof Request !== 'undefined' && input instanceof Request;
  const url = isRequest ? input.url : String(input);
  const method = (init?.method ?? (isRequest ? input.method : 'GET')).toUpperCase();
  return { url, method, body: init?.body };
}

/**
 * Observes a JSON body when the client reads it, on the client's own Response: re-wrapping the
 * body in a new Response cost ~70 µs a call, this costs nothing measurable. A read that fails
 * (a body cut mid-way) rejects with the client's own error.
 */
function observeJsonBody(response: Response, capture: ResponseObserver): void {
  const text = response.text.bind(response);
  const readText = (): Promise<string> =>
    text().then(
      (body) => {
        safely(() => capture.observe(body, true));
        safely(() => capture.finish());
        return body;
      },
      (error: unknown) => {
        safely(() => capture.fail(error));
        throw error;
      },
    );
  Object.defineProperties(response, {
    text: { value: readText, configurable: true, writable: true },
    json: { value: () => readText().then((body) => JSON.parse(body) as unknown), configurable: true, writable: true },
  });
}

/**
 * Hands the client the body's bytes as they come and the observer the whole text at the end; a
 * body that errors mid-way (a cut socket) fails the observer and reaches the client as the same
 * error; a client that cancels the body aborts it.
 */
function observeWholeBody(body: ReadableStream<Uint8Array>, capture: ResponseObserver): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        safely(() => capture.fail(error));
        controller.error(error);
        return;
      }
      if (next.done) {
        text += decoder.decode();
        safely(() => capture.observe(text, true));
        safely(() => capture.finish());
        controller.close();
        return;
      }
      text += decoder.decode(next.value, { stream: true });
      controller.enqueue(next.value);
    },
    cancel(reason) {
      safely(() => capture.fail(new DOMException(String(reason ?? 'cancelled'), 'AbortError')));
      return reader.cancel(reason);
    },
  });
}

function rewrap(original: Response, body: ReadableStream<Uint8Array>): Response {
  const response = new Response(body, { status: original.status, statusText: original.statusText, headers: original.headers });
  // A constructed Response has an empty url; clients may log or compare it.
  Object.defineProperty(response, 'url', { value: original.url });
  return response;
}

/**
 * Observes a stream line by line: the `data:` lines of SSE, or every line of NDJSON (each is one
 * JSON document; Ollama's last, `"done": true`, carries the trace).
 */
function observeLines(capture: ResponseObserver, format: 'sse' | 'ndjson'): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let pending = '';
  const scan = (text: string, final: boolean) => {
    pending += text;
    const lines = pending.split(/\r\n|\r|\n/);
    pending = final ? '' : (lines.pop() ?? '');
    for (const line of lines) {
      if (format === 'sse') {
        if (line.startsWith('data:')) capture.observe(line.slice(5).trim());
      } else if (line.trim() !== '') capture.observe(line);
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
      safely(() => capture.finish());
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
