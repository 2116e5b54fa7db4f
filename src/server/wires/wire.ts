import type { Buffer } from 'node:buffer';
import type { CallKind } from '../../core/types';
import { isCount } from '../../core/units';

// The books' and the trackers' kinds are one type (a rerank or score is 'rerank').
export type { CallKind };

/**
 * The tokens a response reported, in the books' names; a count the wire did not give is absent.
 *
 * @example
 * ```ts
 * const usage: WireUsage = { promptTokens: 12, completionTokens: 40 };
 * ```
 */
export type WireUsage = { promptTokens?: number; completionTokens?: number };

/**
 * What a stream tracer tells its request while the stream passes.
 *
 * @example
 * ```ts
 * const hooks: StreamHooks = { tokens: (n) => metered.tokens(n), usage: (u) => Object.assign(usage, u) };
 * ```
 */
export type StreamHooks = {
  /** `count` generated pieces went to the client: they pace the request's share of the machine's energy. */
  tokens(count: number): void;
  /**
   * The stream reported usage: a later report of the same count overrides an earlier one, and a
   * count reported as `undefined` is unknown from then on (a sum that lost one of its terms).
   */
  usage(usage: WireUsage): void;
};

/**
 * One streamed response passing through: bytes in, the same bytes out, plus the trace where its
 * wire puts it. `push` gives back what may go to the client now; once `done` (the wire's last
 * event came) or the stream's end, `complete(trace)` gives the rest.
 *
 * @example
 * ```ts
 * const { out, done } = tracer.push(chunk);
 * send(out);
 * if (done) send(tracer.complete(await traceFor(request)));
 * ```
 */
export type StreamTracer = {
  push(chunk: Buffer): { out: Buffer[]; done: boolean };
  /** The bytes that end the stream: the held event with the trace (when given and placeable), and whatever waited. */
  complete(trace: Record<string, unknown> | undefined): Buffer[];
  /** `complete` has run: later bytes pass as they are. */
  readonly isComplete: boolean;
  /** The stream sent more than {@link maxFrameBytes} without an event boundary: it passes as it comes, untraced. */
  readonly gaveUp: boolean;
  /** The largest event (or line) held whole, bytes. */
  readonly maxFrameBytes: number;
  /** The upstream put its own trace on some event of the response, before `complete`: ours stays out. */
  readonly upstreamTraced: boolean;
  /** `complete(trace)` would put the trace on the response now (an event to carry it is held, without a trace of its own). */
  readonly placesTrace: boolean;
  /**
   * The event that would carry the trace went on without it: more than {@link MAX_HELD_TAIL_BYTES}
   * (keep-alives, comments) came after it while the stream stayed open, and no later event took its place.
   */
  readonly letGo: boolean;
  /** Bytes that passed after `complete` name an `x_carbon_trace` of the upstream's: the client got two. */
  readonly upstreamTracedLate: boolean;
};

/**
 * What a stream tracer may hold, as the operator bounds it.
 *
 * @example
 * ```ts
 * wire.streamTracer('sse', hooks, { maxFrameBytes: 1024 * 1024 });
 * ```
 */
export type StreamLimits = {
  /** The largest event (or line) held whole, bytes; the tracer's own cap when larger, absent or not a positive number. */
  maxFrameBytes?: number;
};

/**
 * The most bytes a tracer holds after the event that would carry the trace, waiting to learn whether
 * it was the last: a ping or two on every known wire. Beyond it the event goes on untraced, so a
 * stream that keeps a connection alive with comments never makes the proxy hold them.
 *
 * @example
 * ```ts
 * MAX_HELD_TAIL_BYTES; // 65536
 * ```
 */
export const MAX_HELD_TAIL_BYTES = 64 * 1024;

/**
 * Said when a tracer let its carrier go ({@link StreamTracer.letGo}).
 *
 * @example
 * ```ts
 * if (tracer.letGo) warn('stream-let-go', LET_GO_WARNING);
 * ```
 */
export const LET_GO_WARNING = `a stream sent more than ${MAX_HELD_TAIL_BYTES / 1024} KiB after the event that would carry the trace while it stayed open: that event went on as it came, without a trace`;

/**
 * The frame limit a tracer uses: `requested` when it is a positive number below `cap`, else `cap`.
 *
 * @example
 * ```ts
 * frameLimit(1000, 65536); // 1000
 * frameLimit(Number.NaN, 65536); // 65536
 * ```
 */
export function frameLimit(requested: number | undefined, cap: number): number {
  return requested !== undefined && Number.isFinite(requested) && requested >= 1 ? Math.min(Math.floor(requested), cap) : cap;
}

/**
 * Where a wire's upstream names its model, for requests that name none (TGI's, llama.cpp's).
 *
 * @example
 * ```ts
 * const list: ModelList = { path: '/info', pick: (body) => (body as { model_id?: string }).model_id };
 * ```
 */
export type ModelList = { path: string; pick(body: unknown): string | undefined };

/**
 * One wire: the request and response shapes of one family of model APIs, and where the trace
 * goes on them (DESIGN.md §8). The proxy and `withCarbonTrace` dispatch through the table of
 * these (`wireFor`) and know no shape themselves: a new wire is one module and its test.
 *
 * @example
 * ```ts
 * const wire = wireFor('POST', '/api/chat'); // the Ollama wire
 * wire?.kind('/api/chat'); // 'chat'
 * ```
 */
export type Wire = {
  /** Booked as the request's `wire`: `'chat'`, `'responses'`, `'embeddings'`, `'ollama'`, `'tgi'`, `'llamacpp'`, `'anthropic'`. */
  readonly name: string;
  /** Whether this wire serves `method path` (the path the upstream gets: its base path and the request's, decoded). */
  matches(method: string, path: string): boolean;
  kind(path: string): CallKind;
  /** The top-level string member of a request that names its end user, if the wire has one. */
  readonly userField?: string;
  /** Whether a 2xx answer of this path reports its tokens (then an answer without them makes the total unknown). */
  reportsUsage(path: string): boolean;
  /** The top-level members of a JSON answer that hold its usage. */
  readonly usageMembers: readonly string[];
  /** The usage of a JSON answer, from its `usageMembers` (those present and valid JSON). */
  usageOf(members: Record<string, unknown>): WireUsage;
  /** A tracer for a streamed answer of this framing; `undefined` when the wire does not stream that way. */
  streamTracer(framing: 'sse' | 'ndjson', hooks: StreamHooks, limits?: StreamLimits): StreamTracer | undefined;
  /** Where the upstream names its model when requests do not (tried in order). */
  readonly modelLists?: readonly ModelList[];
};

/**
 * The object at `key` of a parsed value, or `undefined`.
 *
 * @example
 * ```ts
 * objectAt({ usage: { input_tokens: 3 } }, 'usage'); // { input_tokens: 3 }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function objectAt(value: unknown, key: string): Record<string, any> | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const inner = (value as Record<string, unknown>)[key];
  return inner !== null && typeof inner === 'object' && !Array.isArray(inner) ? (inner as Record<string, unknown>) : undefined;
}

/**
 * A usage from two counts, each kept only when it is a non-negative integer.
 *
 * @example
 * ```ts
 * usageFrom(12, 'x'); // { promptTokens: 12 }
 * ```
 */
export function usageFrom(prompt: unknown, completion: unknown): WireUsage {
  const usage: WireUsage = {};
  if (isCount(prompt)) usage.promptTokens = prompt;
  if (isCount(completion)) usage.completionTokens = completion;
  return usage;
}

/**
 * The path without the slashes that may end it.
 *
 * @example
 * ```ts
 * trimmedPath('/v1/chat/completions/'); // '/v1/chat/completions'
 * ```
 */
export function trimmedPath(path: string): string {
  return path.replace(/\/+$/, '');
}
