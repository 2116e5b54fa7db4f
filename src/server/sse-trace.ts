import { Buffer } from 'node:buffer';
import { withTraceMember } from './trace-record';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * What the stream observer needs from its request: token pacing, and the trace once the books are
 * closed.
 *
 * @example
 * ```ts
 * const hooks: StreamTraceHooks = { token: () => request.tokens(1), usage: (u) => (tokens = u), finish: async () => record };
 * ```
 */
export type StreamTraceHooks = {
  /** One content or tool-call delta went to the client. */
  token(): void;
  /** The stream carried usage (`prompt_tokens`, `completion_tokens`). */
  usage(usage: { prompt_tokens?: number; completion_tokens?: number }): void;
  /** The stream is over (`[DONE]`, end or cut): close the books and give the trace, if any. */
  finish(): Promise<Record<string, unknown> | undefined>;
  /** The client went away: close the books. */
  abort(): void;
};

const SEPARATOR = /\r\n\r\n|\n\n|\r\r/;
// What a chunk that may be the last one looks like, and what marks a produced token; cheap
// checks on the text, so that most chunks pass without being parsed.
const MAY_BE_LAST = /"finish_reason"\s*:\s*"|"choices"\s*:\s*\[\s*\]|\[DONE\]|"usage"\s*:\s*\{/;
const TOKEN = /"content"\s*:\s*"(?!")|"tool_calls"\s*:\s*\[\s*\{/;
const TOKENS = new RegExp(TOKEN.source, 'g');

/**
 * Passes an OpenAI-compatible SSE body through, event by event and byte for byte, except that
 * `x_carbon_trace` is added to the last data chunk before `[DONE]`. Only the chunks that may be
 * last — one with a `finish_reason`, or the usage-only chunk (`choices: []`) — are held back
 * until the next event shows whether they were; content chunks flow at once. Pull-based, so the
 * client's pace is the upstream's (backpressure), and a client that cancels cancels the upstream
 * body and still closes the request's books.
 *
 * @example
 * ```ts
 * return new Response(traceEventStream(upstream.body!, hooks), upstream);
 * ```
 */
export function traceEventStream(body: ReadableStream<Uint8Array>, hooks: StreamTraceHooks): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let pending = '';
  let held: string | undefined;
  let finished = false;

  const finish = async (): Promise<string> => {
    finished = true;
    const last = held;
    held = undefined;
    const trace = await hooks.finish();
    if (last === undefined) return '';
    return trace === undefined ? last : (injectIntoEvent(last, trace) ?? last);
  };

  /** Text to send now for one complete event (with its separator); `undefined` for `[DONE]`. */
  const onEvent = (event: string): string | undefined => {
    if (!MAY_BE_LAST.test(event)) {
      if (TOKEN.test(event)) hooks.token();
      return flushHeld() + event;
    }
    const data = dataOf(event);
    if (data === undefined) return flushHeld() + event; // a comment or keep-alive
    if (data.trim() === '[DONE]') return undefined;
    const chunk = parse(data);
    if (chunk !== undefined) observe(chunk);
    if (chunk !== undefined && mayBeLast(chunk)) {
      const out = flushHeld();
      held = event;
      return out;
    }
    return flushHeld() + event;
  };

  const flushHeld = (): string => {
    const out = held ?? '';
    held = undefined;
    return out;
  };

  const observe = (chunk: Loose) => {
    for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
      const delta = choice?.delta;
      if ((typeof delta?.content === 'string' && delta.content !== '') || (Array.isArray(delta?.tool_calls) && delta.tool_calls.length > 0)) hooks.token();
    }
    if (chunk.usage && typeof chunk.usage === 'object') hooks.usage(chunk.usage);
  };

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (error) {
          // A cut upstream: close the books, and hand the client the same error.
          if (!finished) await finish().catch(() => undefined);
          throw error;
        }
        if (next.done) {
          pending += decoder.decode();
          let out = pending;
          pending = '';
          if (!finished) out = (await finish()) + out;
          if (out) controller.enqueue(encoder.encode(out));
          controller.close();
          return;
        }
        // The common chunk: whole content events, nothing held, nothing that may be last. Its own
        // bytes go on untouched; the ASCII patterns are found in a byte-for-byte (latin1) view,
        // cheaper than decoding UTF-8 that nothing will change.
        const chunk = next.value;
        if (pending === '' && held === undefined) {
          const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
          if (view.endsWith('\n\n') && !MAY_BE_LAST.test(view)) {
            TOKENS.lastIndex = 0;
            while (TOKENS.exec(view) !== null) hooks.token();
            controller.enqueue(chunk);
            return;
          }
        }
        pending += decoder.decode(chunk, { stream: true });
        let out = '';
        for (let match = SEPARATOR.exec(pending); match; match = SEPARATOR.exec(pending)) {
          const end = match.index + match[0].length;
          const event = pending.slice(0, end);
          pending = pending.slice(end);
          const sent = onEvent(event);
          out += sent === undefined ? (await finish()) + event : sent;
        }
        if (out) {
          controller.enqueue(encoder.encode(out));
          return;
        }
      }
    },
    async cancel(reason) {
      if (!finished) {
        finished = true;
        hooks.abort();
      }
      await reader.cancel(reason);
    },
  });
}

function dataOf(event: string): string | undefined {
  const lines = event.split(/\r\n|\n|\r/).filter((l) => l.startsWith('data:'));
  if (lines.length === 0) return undefined;
  return lines.map((l) => l.slice(5).replace(/^ /, '')).join('\n');
}

function parse(data: string): Loose {
  try {
    const value = JSON.parse(data);
    return value !== null && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

function mayBeLast(chunk: Loose): boolean {
  if (!Array.isArray(chunk.choices)) return false;
  return chunk.choices.length === 0 || chunk.choices.some((c: Loose) => c?.finish_reason != null);
}

/** The event with the trace added to its one data line; `undefined` when it is not that simple. */
function injectIntoEvent(event: string, trace: Record<string, unknown>): string | undefined {
  const lines = event.split(/(\r\n|\n|\r)/);
  const dataLines = lines.filter((l) => l.startsWith('data:'));
  if (dataLines.length !== 1) return undefined;
  const line = dataLines[0]!;
  const prefix = line.startsWith('data: ') ? 'data: ' : 'data:';
  const json = withTraceMember(line.slice(prefix.length), trace);
  if (json === undefined) return undefined;
  return lines.map((l) => (l === line ? `${prefix}${json}` : l)).join('');
}
