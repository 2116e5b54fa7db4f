import { findCarbonTrace } from '../core/parse-carbon-trace';

/**
 * What the fetch learnt about the responses of one model call.
 *
 * @example
 * ```ts
 * const { slot } = calls.open(params.abortSignal);
 * if (slot.hasTrace) readCarbonTrace(slot.trace);
 * ```
 */
export type CallTraceSlot = {
  /** Whether a request of this call went through the fetch at all. */
  seen: boolean;
  /** Whether a response carried `x_carbon_trace` (valid or not). */
  hasTrace: boolean;
  /** The last `x_carbon_trace` value seen, as sent. */
  trace: unknown;
};

/**
 * One open model call: the signal the provider gets in place of the caller's, and what the
 * fetch saw. `close()` forgets the call and stops following the caller's signal; a call never
 * closed (a stream neither read nor cancelled) is forgotten once it is garbage, where the runtime
 * has `WeakRef` and `FinalizationRegistry`.
 *
 * @example
 * ```ts
 * const call = calls.open(params.abortSignal);
 * try { await doGenerate(); } finally { call.close(); }
 * ```
 */
export type OpenCall = { signal: AbortSignal; slot: CallTraceSlot; close(): void };

/**
 * A fetch that hands each traced response to the model call that sent the request.
 *
 * @example
 * ```ts
 * const calls = createCallTraceFetch();
 * const ollama = createOllama({ fetch: calls.fetch });
 * ```
 */
export type CallTraceFetch = {
  fetch: typeof globalThis.fetch;
  open(callerSignal: AbortSignal | undefined): OpenCall;
};

// A line or JSON body longer than this is passed on unread: a trace is small, and holding
// an unbounded body would cost the caller memory they never asked to spend.
const MAX_HELD_CHARS = 16 * 1024 * 1024;

/**
 * Creates the fetch behind `carbonTraceMiddleware().fetch`.
 *
 * Each call gets an `AbortSignal` of its own, which follows the caller's (same abort, same
 * reason) and which every AI SDK provider passes untouched to `fetch` as `init.signal`. That
 * signal is how a response finds its call: nothing is added to the request, so the server sees
 * the same bytes, and response ids — which collide on Ollama and are absent elsewhere — are
 * never relied on. A request whose signal is not one of ours passes through untouched.
 *
 * @example
 * ```ts
 * const calls = createCallTraceFetch(undefined);
 * const call = calls.open(undefined);
 * await calls.fetch('http://127.0.0.1:11434/api/chat', { method: 'POST', body, signal: call.signal });
 * call.slot.trace; // the x_carbon_trace of the final NDJSON line
 * call.close();
 * ```
 */
export function createCallTraceFetch(baseFetch: typeof globalThis.fetch | undefined): CallTraceFetch {
  const calls = new WeakMap<AbortSignal, CallTraceSlot>();
  // A call's controller lives as long as its signal: whatever still holds the signal (a fetch in
  // flight) can still be aborted through it, even once the call itself was dropped.
  const controllers = new WeakMap<AbortSignal, AbortController>();

  const traceFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // Read at call time, so a fetch installed later (a polyfill, a test's stub) is the one used.
    const send = baseFetch ?? globalThis.fetch;
    const signal = init?.signal;
    const slot = signal ? calls.get(signal) : undefined;
    if (slot === undefined) return send(input, init);
    slot.seen = true;
    const response = await send(input, init);
    try {
      return observe(response, slot);
    } catch {
      return response;
    }
  };

  return {
    fetch: traceFetch as typeof globalThis.fetch,
    open(callerSignal) {
      const controller = new AbortController();
      const slot: CallTraceSlot = { seen: false, hasTrace: false, trace: undefined };
      calls.set(controller.signal, slot);
      controllers.set(controller.signal, controller);
      let unfollow = () => {};
      if (callerSignal != null) {
        if (callerSignal.aborted) controller.abort(callerSignal.reason);
        else unfollow = follow(callerSignal, controller);
      }
      return {
        signal: controller.signal,
        slot,
        close() {
          calls.delete(controller.signal);
          controllers.delete(controller.signal);
          unfollow();
        },
      };
    },
  };
}

// A call is closed when its response ends, fails or is cancelled; one whose stream is never read
// nor cancelled is never closed, and a listener on the caller's signal — often one signal for a
// whole session or server — would keep it forever. Where the runtime has weak references, the
// listener reaches the call only weakly and is removed once the call is garbage.
const weakly = typeof WeakRef === 'function' && typeof FinalizationRegistry === 'function';
const unfollowCollected = weakly ? new FinalizationRegistry<() => void>((unfollow) => unfollow()) : undefined;

/**
 * Aborts `controller` when `callerSignal` aborts, with the same reason; returns what stops it.
 * A function of its own so that no closure here captures `controller` strongly (closures of one
 * scope share what they capture).
 */
function follow(callerSignal: AbortSignal, controller: AbortController): () => void {
  const ref = weakly ? new WeakRef(controller) : undefined;
  const strong = weakly ? undefined : controller;
  const onAbort = () => (ref?.deref() ?? strong)?.abort(callerSignal.reason);
  callerSignal.addEventListener('abort', onAbort, { once: true });
  const remove = () => callerSignal.removeEventListener('abort', onAbort);
  unfollowCollected?.register(controller, remove, onAbort);
  return () => {
    remove();
    unfollowCollected?.unregister(onAbort);
  };
}

/**
 * The same response, its body read on its way to the client: JSON whole (up to a bound),
 * server-sent events and NDJSON line by line, so the final event's trace is in the slot before
 * the provider parses that event. Bytes pass unchanged; an error or cancel passes through.
 */
function observe(response: Response, slot: CallTraceSlot): Response {
  if (!response.ok || response.body === null) return response;
  const contentType = response.headers.get('content-type') ?? '';
  const lines = /event-stream|ndjson|jsonl|json-seq/i.test(contentType);
  if (!lines && !/json/i.test(contentType)) return response;

  const decoder = new TextDecoder();
  const found = (text: string) => {
    const trace = findCarbonTrace(text);
    if (trace === undefined) return;
    slot.hasTrace = true;
    slot.trace = trace;
  };
  let held = '';
  let overflowed = false;

  const onLine = (line: string) => {
    if (!line.includes('x_carbon_trace')) return;
    const data = line.startsWith('data:') ? line.slice(5) : line;
    found(data.trim());
  };
  const take = (text: string) => {
    if (!lines) {
      if (overflowed) return;
      held += text;
      if (held.length > MAX_HELD_CHARS) {
        held = '';
        overflowed = true;
      }
      return;
    }
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      const piece = text.slice(start, end);
      if (!overflowed) onLine(held === '' ? piece : held + piece);
      held = '';
      overflowed = false;
      start = end + 1;
    }
    if (overflowed) return;
    held += text.slice(start);
    if (held.length > MAX_HELD_CHARS) {
      held = '';
      overflowed = true;
    }
  };

  const transform = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      try {
        take(decoder.decode(chunk, { stream: true }));
      } catch {
        // Reading is ours; the bytes are the caller's and go on whatever happened here.
      }
      controller.enqueue(chunk);
    },
    flush() {
      try {
        take(decoder.decode());
        if (overflowed) return;
        if (lines) onLine(held);
        else found(held);
      } catch {
        // As above: a failed read only means no trace.
      }
    },
  });
  const observed = new Response(response.body.pipeThrough(transform), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
  // A constructed Response has no URL of its own; some clients report it in errors.
  Object.defineProperty(observed, 'url', { value: response.url });
  Object.defineProperty(observed, 'redirected', { value: response.redirected });
  return observed;
}
