import { Buffer } from 'node:buffer';
import { asciiJson, dataOf, lateTraceWatch, namesTrace, parseObject } from './json-splice';
import { frameLimit, MAX_HELD_TAIL_BYTES } from './wire';
import { CARBON_TRACE_FIELD } from '../../core/parse-carbon-trace';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * What the event tracer tells its request while the stream passes.
 *
 * @example
 * ```ts
 * const hooks: EventTracerHooks = { tokens: (n) => request.tokens(n), usage: (u) => (usage = u) };
 * ```
 */
export type EventTracerHooks = {
  /** `count` tokens went to the client (see {@link countTokens}). */
  tokens(count: number): void;
  /** The stream carried usage. */
  usage(usage: { prompt_tokens?: unknown; completion_tokens?: unknown }): void;
};

/** What one `push` gives back: bytes to send now, and whether `[DONE]` came (the rest waits for the trace). */
export type PushResult = { out: Buffer[]; done: boolean };

// What a chunk that may be the last one looks like; anything else passes without being parsed.
const MAY_BE_LAST = /"finish_reason"\s*:\s*"|"choices"\s*:\s*\[\s*\]|"usage"\s*:\s*\{|\[DONE\]/;
// One token is one piece of produced output in one choice: text (chat `content`, reasoning, legacy
// completions' `text`) or a tool-call delta. Escaped quotes inside strings never match.
const TOKEN = /"(?:content|reasoning_content|reasoning|text)"\s*:\s*"(?!")|"tool_calls"\s*:\s*\[\s*\{/g;
const LF = 0x0a;
// The largest event held whole: chat chunks are a few hundred bytes, a tool call's a few kB.
const MAX_EVENT_BYTES = 64 * 1024;
const CR = 0x0d;

/**
 * How many tokens an SSE event (or several whole events) carries, by one rule for every path: a
 * non-empty `content`, `reasoning_content`, `reasoning` or `text` string, or a non-empty
 * `tool_calls` array, counts one — per choice, so `n > 1` streams count every choice.
 *
 * @example
 * ```ts
 * countTokens('data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'); // 1
 * ```
 */
export function countTokens(latin1: string): number {
  TOKEN.lastIndex = 0;
  let n = 0;
  while (TOKEN.exec(latin1) !== null) n++;
  return n;
}

const endsEvent = (bytes: Buffer) => bytes.length >= 2 && bytes[bytes.length - 1] === LF && (bytes[bytes.length - 2] === LF || (bytes[bytes.length - 2] === CR && bytes[bytes.length - 3] === LF));

function mayBeLast(chunk: Loose): boolean {
  if (!Array.isArray(chunk.choices)) return false;
  return chunk.choices.length === 0 || chunk.choices.some((c: Loose) => c?.finish_reason != null);
}

/**
 * Watches an OpenAI-compatible SSE body pass, byte for byte, and adds `x_carbon_trace` to the last
 * data chunk before `[DONE]`. Only the chunks that may be last — one with a `finish_reason`, or
 * the usage-only chunk (`choices: []`) — are held back until the next data event shows whether
 * they were; comments after a held chunk (`: keep-alive`) wait with it, so the order of bytes is
 * kept — up to {@link MAX_HELD_TAIL_BYTES}: beyond, the held chunk goes on untraced (`letGo`), so a
 * stream kept open with comments is never held. Content chunks flow at once, untouched and
 * undecoded. The upstream's own trace wins, on whatever chunk it came before `[DONE]`: the stream
 * is then sent as it came. One after `[DONE]` comes after ours was placed and the books closed:
 * it passes, and `upstreamTracedLate` says so.
 *
 * Used by the proxy (node streams) and by `withCarbonTrace` (web streams) alike.
 *
 * @example
 * ```ts
 * const tracer = new EventTracer({ tokens: (n) => metered.tokens(n), usage: () => {} });
 * const { out, done } = tracer.push(chunk);
 * if (done) send(tracer.complete(await traceFor(metered)));
 * ```
 */
export class EventTracer {
  private pending: Buffer | undefined;
  // Where scanning `pending` resumes, and whether that is the start of a line.
  private scanPos = 0;
  private lineStart = true;
  private held: { bytes: Buffer; chunk: Loose } | undefined;
  private heldTail: Buffer[] = [];
  private heldTailBytes = 0;
  private released = false;
  private late: ReturnType<typeof lateTraceWatch> | undefined;
  private lateSeen = false;
  private doneEvent: Buffer | undefined;
  private after: Buffer[] = [];
  private completed = false;
  private passing = false;
  private upstreamSeen = false;

  /** The largest event held whole, bytes: the limit given, at most 64 KiB. */
  readonly maxFrameBytes: number;

  constructor(
    private readonly hooks: EventTracerHooks,
    maxEventBytes?: number,
  ) {
    this.maxFrameBytes = frameLimit(maxEventBytes, MAX_EVENT_BYTES);
  }

  /** Whether `[DONE]` or the end came and {@link complete} has run: later bytes pass as they are. */
  get isComplete(): boolean {
    return this.completed;
  }

  /** Whether the stream sent too much without an event boundary: it then passes as it comes, untraced. */
  get gaveUp(): boolean {
    return this.passing;
  }

  /** Whether the upstream put its own trace on some chunk before {@link complete}: ours then stays out. */
  get upstreamTraced(): boolean {
    if (this.upstreamSeen) return true;
    // What came after [DONE], or an unended last event, has not been looked at yet.
    const unread = [...this.after, ...(this.pending === undefined ? [] : [this.pending])];
    if (!this.completed && unread.length > 0 && namesTrace(Buffer.concat(unread).toString('latin1'))) this.upstreamSeen = true;
    return this.upstreamSeen;
  }

  /** Whether {@link complete} would put a trace on the response now: a last chunk is held, without a trace of its own. */
  get placesTrace(): boolean {
    return this.held !== undefined && !this.upstreamTraced && injectIntoEvent(this.held.bytes, '{}') !== undefined;
  }

  /** Whether the chunk that would have carried the trace went on without it: too many comments came after it while the stream stayed open. */
  get letGo(): boolean {
    return this.released && this.held === undefined;
  }

  /** Whether bytes that passed after {@link complete} placed our trace name the upstream's own. */
  get upstreamTracedLate(): boolean {
    return this.lateSeen;
  }

  push(chunk: Buffer): PushResult {
    if (this.completed) {
      if (this.late !== undefined && !this.lateSeen) this.lateSeen = this.late.see(chunk);
      return { out: [chunk], done: false };
    }
    if (this.passing) return { out: [chunk], done: false };
    if (this.doneEvent !== undefined) {
      this.after.push(chunk);
      return { out: [], done: false };
    }
    // The common chunk: whole content events, nothing held, nothing that may be last.
    if (this.pending === undefined && this.held === undefined && endsEvent(chunk)) {
      const view = chunk.toString('latin1');
      if (!MAY_BE_LAST.test(view)) {
        const n = countTokens(view);
        if (n > 0) this.hooks.tokens(n);
        if (namesTrace(view)) this.upstreamSeen = true;
        return { out: [chunk], done: false };
      }
    }
    let bytes = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = undefined;
    const out: Buffer[] = [];
    // Events end at a blank line; lines end at CRLF, LF or CR (the SSE grammar).
    let i = this.scanPos;
    let lineStart = this.lineStart;
    let eventStart = 0;
    for (; i < bytes.length; i++) {
      const b = bytes[i];
      if (b !== LF && b !== CR) {
        lineStart = false;
        continue;
      }
      let next = i + 1;
      if (b === CR) {
        if (next >= bytes.length) break; // a CR last: LF may follow in the next chunk
        if (bytes[next] === LF) next++;
      }
      if (lineStart) {
        const event = bytes.subarray(eventStart, next);
        if (this.doneEvent !== undefined) this.after.push(event);
        else this.onEvent(event, out);
        eventStart = next;
      }
      lineStart = true;
      i = next - 1;
    }
    if (eventStart < bytes.length) {
      bytes = bytes.subarray(eventStart);
      if (this.doneEvent !== undefined) {
        this.after.push(bytes);
        this.scanPos = 0;
        this.lineStart = true;
      } else if (bytes.length > this.maxFrameBytes) {
        // No event boundary in sight (a server that does not frame its events): holding it all
        // would hold the client back and cost more at every chunk. It passes as it comes.
        this.passing = true;
        this.flushHeld(out);
        out.push(bytes);
      } else {
        this.pending = Buffer.from(bytes);
        this.scanPos = i - eventStart;
        this.lineStart = lineStart;
      }
    } else {
      this.scanPos = 0;
      this.lineStart = true;
    }
    return { out, done: this.doneEvent !== undefined };
  }

  private onEvent(event: Buffer, out: Buffer[]): void {
    const view = event.toString('latin1');
    const data = dataOf(view);
    if (data === undefined) {
      // A comment or keep-alive: after a held chunk it waits with it, so the order stays.
      if (this.held === undefined) {
        out.push(event);
        return;
      }
      this.heldTail.push(event);
      this.heldTailBytes += event.length;
      if (this.heldTailBytes > MAX_HELD_TAIL_BYTES) {
        // A stream kept open with comments after its last chunk: holding them all would grow
        // without bound and starve the client. The chunk goes on untraced, with what waited, in order.
        this.flushHeld(out);
        this.released = true;
      }
      return;
    }
    if (data.trim() === '[DONE]') {
      this.doneEvent = event;
      return;
    }
    const n = countTokens(view);
    if (n > 0) this.hooks.tokens(n);
    if (namesTrace(view)) this.upstreamSeen = true;
    this.flushHeld(out);
    if (MAY_BE_LAST.test(view)) {
      const chunk = parseObject(dataOf(event.toString('utf8')) ?? '');
      if (chunk !== undefined && chunk.usage !== null && typeof chunk.usage === 'object') this.hooks.usage(chunk.usage);
      if (chunk !== undefined && mayBeLast(chunk)) {
        this.held = { bytes: event, chunk };
        this.released = false;
        return;
      }
    }
    out.push(event);
  }

  private flushHeld(out: Buffer[]): void {
    if (this.held === undefined) return;
    out.push(this.held.bytes, ...this.heldTail);
    this.held = undefined;
    this.heldTail = [];
    this.heldTailBytes = 0;
  }

  /**
   * The bytes that end the stream, once `[DONE]` or the end came: the held chunk with the trace
   * (when given and the upstream sent none), what waited with it, `[DONE]`, and anything after.
   */
  complete(trace: Record<string, unknown> | undefined): Buffer[] {
    const out: Buffer[] = [];
    if (this.held !== undefined) {
      const withTrace = trace !== undefined && !this.upstreamTraced ? injectIntoEvent(this.held.bytes, asciiJson(trace)) : undefined;
      out.push(withTrace ?? this.held.bytes, ...this.heldTail);
      // Ours is on the response: a trace of the upstream's after this point would be a second one.
      if (withTrace !== undefined) this.late = lateTraceWatch();
    }
    if (this.doneEvent !== undefined) out.push(this.doneEvent);
    out.push(...this.after);
    if (this.pending !== undefined) out.push(this.pending);
    this.held = undefined;
    this.heldTail = [];
    this.heldTailBytes = 0;
    this.doneEvent = undefined;
    this.after = [];
    this.pending = undefined;
    this.completed = true;
    return out;
  }
}

/** The event with the trace added to its one data line's object; `undefined` when it is not that simple. */
function injectIntoEvent(event: Buffer, traceJson: string): Buffer | undefined {
  const view = event.toString('latin1');
  const lines = [...view.matchAll(/^data:.*$/gm)];
  if (lines.length !== 1) return undefined;
  const line = lines[0]!;
  const lineEnd = line.index + line[0].replace(/\r$/, '').length;
  let close = lineEnd - 1;
  while (close > line.index && (view[close] === ' ' || view[close] === '\t')) close--;
  if (view[close] !== '}') return undefined;
  let inner = close - 1;
  while (inner > line.index && (view[inner] === ' ' || view[inner] === '\t')) inner--;
  const member = `${view[inner] === '{' ? '' : ','}"${CARBON_TRACE_FIELD}":${traceJson}`;
  return Buffer.concat([event.subarray(0, close), Buffer.from(member, 'latin1'), event.subarray(close)]);
}
