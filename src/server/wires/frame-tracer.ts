import { Buffer } from 'node:buffer';
import { asciiJson, dataOf, lateTraceWatch, namesTrace, parseObject, spliceTrace, spliceTraceInto } from './json-splice';
import { frameLimit, MAX_HELD_TAIL_BYTES, type StreamHooks, type StreamLimits, type StreamTracer, type WireUsage } from './wire';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * What one event (SSE) or line (NDJSON) is to the trace:
 * - `carry`: it may be the one the trace goes on; held until a later event shows it was not
 *   (then it goes as it came) or the stream ends;
 * - `end`: the wire's last event (Anthropic's `message_stop`): the books close now, and it goes
 *   after the held one;
 * - `carry-end`: both (the Responses API's `response.completed`);
 * - `keep`: a keep-alive (`ping`): it waits with a held event without releasing it;
 * - `pass`: anything else: a held event was not the last, and goes first.
 *
 * @example
 * ```ts
 * const role: FrameRole = data.done === true ? 'carry' : 'pass';
 * ```
 */
export type FrameRole = 'carry' | 'end' | 'carry-end' | 'keep' | 'pass';

/**
 * How a wire's stream is framed and where its trace goes: what {@link FrameTracer} needs to know.
 *
 * @example
 * ```ts
 * const rules: FrameRules = {
 *   framing: 'ndjson',
 *   tokens: /"content"\s*:\s*"(?!")/g,
 *   mayMatter: /"done"\s*:\s*true/,
 *   read: (data, usage) => (data.done === true ? (usage({ completionTokens: data.eval_count }), 'carry') : 'pass'),
 * };
 * ```
 */
export type FrameRules<Memo = unknown> = {
  framing: 'sse' | 'ndjson';
  /** One match per generated piece, in a frame's bytes read as Latin-1 (global flag). */
  tokens: RegExp;
  /** A quick look at a frame's bytes (Latin-1): only frames it matches are parsed; the rest pass as `pass`. */
  mayMatter: RegExp;
  /** What a parsed frame that may matter is, and the usage it reports (`memo`: this stream's, from {@link FrameRules.memo}). */
  read(data: Loose, usage: (usage: WireUsage) => void, memo: Memo): FrameRole;
  /** What one stream remembers across its frames (llama.cpp's counts per prompt): made afresh for each stream. */
  memo?: () => Memo;
  /** The member of the carrier whose object gets the trace; the carrier's top level when absent. */
  into?: string;
  /** The largest frame held whole, bytes, whatever the operator allows; a stream that sends more without a boundary passes untraced. Default 16 MiB. */
  maxFrameBytes?: number;
};

const LF = 0x0a;
const CR = 0x0d;
const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Watches a stream of events (SSE) or lines (NDJSON) pass, byte for byte, and puts the trace on
 * the frame its wire's rules name: only frames that may matter are parsed, only a carrier is held
 * (with what comes after it until the next frame shows whether it was the last, up to
 * {@link MAX_HELD_TAIL_BYTES}: beyond, the carrier goes on untraced, in order, and the tracer says
 * so with `letGo`), and every other byte flows at once, undecoded. What it holds is bounded: one
 * frame of at most `maxFrameBytes`, and that tail.
 *
 * The upstream's own trace wins, on whatever event it came: a stream that named `x_carbon_trace`
 * anywhere before `complete` gets none of ours. One the upstream sends after its wire's last event
 * comes after ours was placed and the books closed: it passes as it came, and `upstreamTracedLate`
 * says so (the proxy warns). Chat completions keep their own tracer ({@link EventTracer}); every
 * other streaming wire uses this one.
 *
 * @example
 * ```ts
 * const tracer = new FrameTracer(ollamaRules, { tokens: (n) => metered.tokens(n), usage: (u) => Object.assign(usage, u) });
 * const { out, done } = tracer.push(chunk);
 * ```
 */
export class FrameTracer<Memo = unknown> implements StreamTracer {
  // Bytes of the frame not yet ended; `crEnded`: they end with a CR that ended a line (an LF may follow).
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private lineStart = true;
  private crEnded = false;
  // Whether the CR that ended the last chunk ended a blank line (SSE: the event's end).
  private blankPending = false;
  private held: { frame: Buffer; data: Loose } | undefined;
  private heldTail: Buffer[] = [];
  private heldTailBytes = 0;
  private released = false;
  private ended = false;
  private endFrame: Buffer | undefined;
  private after: Buffer[] = [];
  private completed = false;
  private passing = false;
  private upstreamSeen = false;
  private late: ReturnType<typeof lateTraceWatch> | undefined;
  private lateSeen = false;
  private readonly memo: Memo;
  readonly maxFrameBytes: number;

  constructor(
    private readonly rules: FrameRules<Memo>,
    private readonly hooks: StreamHooks,
    limits: StreamLimits = {},
  ) {
    this.maxFrameBytes = frameLimit(limits.maxFrameBytes, rules.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    this.memo = rules.memo?.() as Memo;
  }

  get isComplete(): boolean {
    return this.completed;
  }

  get gaveUp(): boolean {
    return this.passing;
  }

  get upstreamTraced(): boolean {
    if (this.upstreamSeen) return true;
    // What came after the wire's last event, or an unended last frame, has not been looked at yet.
    const unread = [...this.after, ...this.parts];
    if (!this.completed && unread.length > 0 && namesTrace(Buffer.concat(unread).toString('latin1'))) this.upstreamSeen = true;
    return this.upstreamSeen;
  }

  get placesTrace(): boolean {
    return this.held !== undefined && !this.upstreamTraced && this.inject(this.held.frame, '{}') !== undefined;
  }

  get letGo(): boolean {
    return this.released && this.held === undefined;
  }

  get upstreamTracedLate(): boolean {
    return this.lateSeen;
  }

  push(chunk: Buffer): { out: Buffer[]; done: boolean } {
    if (this.completed) {
      if (this.late !== undefined && !this.lateSeen) this.lateSeen = this.late.see(chunk);
      return { out: [chunk], done: false };
    }
    if (this.passing) return { out: [chunk], done: false };
    if (this.ended) {
      this.after.push(chunk);
      return { out: [], done: false };
    }
    // The common chunk: whole frames, nothing held, none that may matter.
    if (this.partsBytes === 0 && !this.crEnded && this.held === undefined && this.endsFrame(chunk)) {
      const view = chunk.toString('latin1');
      if (!this.rules.mayMatter.test(view)) {
        this.countTokens(view);
        if (namesTrace(view)) this.upstreamSeen = true;
        return { out: [chunk], done: false };
      }
    }
    const out: Buffer[] = [];
    let from = 0;
    let i = 0;
    if (this.crEnded) {
      // The CR that ended the last chunk ended a line: an LF now belongs to it.
      this.crEnded = false;
      if (chunk[0] === LF) i = 1;
      if (this.blankPending) {
        this.blankPending = false;
        this.emit(chunk.subarray(0, i), out);
        from = i;
      }
    }
    for (; i < chunk.length; i++) {
      const b = chunk[i];
      // NDJSON lines end at LF only (a CR before it stays in the line); SSE lines at CR LF, LF or CR.
      if (b !== LF && (b !== CR || this.rules.framing === 'ndjson')) {
        this.lineStart = false;
        continue;
      }
      let end = i + 1;
      if (b === CR) {
        if (end >= chunk.length) {
          // A CR last: an LF may follow in the next chunk, and belongs to this line.
          this.blankPending = this.lineStart;
          this.crEnded = true;
          this.lineStart = true;
          break;
        }
        if (chunk[end] === LF) end++;
      }
      // A line ends: in NDJSON it is the frame; in SSE a blank line ends the event.
      if (this.rules.framing === 'ndjson' || this.lineStart) {
        this.emit(chunk.subarray(from, end), out);
        from = end;
      }
      this.lineStart = true;
      i = end - 1;
    }
    if (from < chunk.length) {
      const rest = chunk.subarray(from);
      if (this.ended) {
        this.after.push(...this.parts.splice(0), rest);
        this.partsBytes = 0;
      } else {
        this.parts.push(Buffer.from(rest));
        this.partsBytes += rest.length;
        if (this.partsBytes > this.maxFrameBytes) {
          // No boundary in sight: holding it all would hold the client back. It passes as it comes.
          this.passing = true;
          this.flushHeld(out);
          out.push(...this.parts.splice(0));
          this.partsBytes = 0;
        }
      }
    }
    return { out, done: this.ended };
  }

  complete(trace: Record<string, unknown> | undefined): Buffer[] {
    const out: Buffer[] = [];
    if (this.held !== undefined) {
      const withTrace = trace !== undefined && !this.upstreamTraced ? this.inject(this.held.frame, asciiJson(trace)) : undefined;
      out.push(withTrace ?? this.held.frame, ...this.heldTail);
      // Ours is on the response: a trace of the upstream's after this point would be a second one.
      if (withTrace !== undefined) this.late = lateTraceWatch();
    }
    if (this.endFrame !== undefined) out.push(this.endFrame);
    out.push(...this.after, ...this.parts);
    this.held = undefined;
    this.heldTail = [];
    this.heldTailBytes = 0;
    this.endFrame = undefined;
    this.after = [];
    this.parts = [];
    this.partsBytes = 0;
    this.completed = true;
    return out;
  }

  /** A frame ended with `tail`: after the wire's last event it waits; before, it is looked at. */
  private emit(tail: Buffer, out: Buffer[]): void {
    const frame = this.take(tail);
    if (this.ended) this.after.push(frame);
    else this.onFrame(frame, out);
  }

  /** The frame whose last bytes are `tail`, from what waited before them. */
  private take(tail: Buffer): Buffer {
    if (this.partsBytes === 0) return tail;
    const frame = Buffer.concat([...this.parts, tail]);
    this.parts = [];
    this.partsBytes = 0;
    return frame;
  }

  private endsFrame(chunk: Buffer): boolean {
    const n = chunk.length;
    if (n === 0 || chunk[n - 1] !== LF) return false;
    if (this.rules.framing === 'ndjson') return true;
    return n >= 2 && (chunk[n - 2] === LF || (n >= 3 && chunk[n - 2] === CR && chunk[n - 3] === LF));
  }

  private countTokens(view: string): void {
    const pattern = this.rules.tokens;
    pattern.lastIndex = 0;
    let n = 0;
    while (pattern.exec(view) !== null) n++;
    if (n > 0) this.hooks.tokens(n);
  }

  private onFrame(frame: Buffer, out: Buffer[]): void {
    const view = frame.toString('latin1');
    const data = this.rules.framing === 'sse' ? dataOf(view) : view.trim() === '' ? undefined : view;
    if (data === undefined) {
      // A comment, a keep-alive or a blank line: after a held frame it waits with it, so the order stays.
      this.holdOrPass(frame, out);
      return;
    }
    this.countTokens(view);
    if (namesTrace(view)) this.upstreamSeen = true;
    let role: FrameRole = 'pass';
    let parsed: Loose;
    if (this.rules.mayMatter.test(view)) {
      parsed = parseObject(this.rules.framing === 'sse' ? (dataOf(frame.toString('utf8')) ?? '') : frame.toString('utf8'));
      if (parsed !== undefined) role = this.rules.read(parsed, (usage) => this.hooks.usage(usage), this.memo);
    }
    switch (role) {
      case 'keep':
        this.holdOrPass(frame, out);
        return;
      case 'end':
        this.ended = true;
        this.endFrame = frame;
        return;
      case 'carry':
      case 'carry-end':
        this.flushHeld(out);
        this.held = { frame, data: parsed };
        this.released = false;
        this.ended = role === 'carry-end';
        return;
      default:
        this.flushHeld(out);
        out.push(frame);
    }
  }

  /** A frame that neither carries nor ends: it waits with a held carrier, within bounds; else it goes. */
  private holdOrPass(frame: Buffer, out: Buffer[]): void {
    if (this.held === undefined) {
      out.push(frame);
      return;
    }
    this.heldTail.push(frame);
    this.heldTailBytes += frame.length;
    if (this.heldTailBytes > MAX_HELD_TAIL_BYTES) {
      // A stream kept open with keep-alives after its carrier: holding them all would grow without
      // bound and starve the client. The carrier goes on untraced, with what waited, in order.
      this.flushHeld(out);
      this.released = true;
    }
  }

  private flushHeld(out: Buffer[]): void {
    if (this.held === undefined) return;
    out.push(this.held.frame, ...this.heldTail);
    this.held = undefined;
    this.heldTail = [];
    this.heldTailBytes = 0;
  }

  /** The frame with the trace spliced where the rules say; `undefined` when its shape is not that simple. */
  private inject(frame: Buffer, traceJson: string): Buffer | undefined {
    const at = this.rules.framing === 'sse' ? dataLine(frame) : { start: 0, end: lineEnd(frame) };
    if (at === undefined) return undefined;
    const json = frame.subarray(at.start, at.end);
    const spliced = this.rules.into === undefined ? spliceTrace(json, traceJson) : spliceTraceInto(json, traceJson, this.rules.into);
    return spliced === undefined ? undefined : Buffer.concat([frame.subarray(0, at.start), spliced, frame.subarray(at.end)]);
  }
}

/** Where the value of an event's one `data:` line is; `undefined` when it has none or several. */
function dataLine(frame: Buffer): { start: number; end: number } | undefined {
  const view = frame.toString('latin1');
  const lines = [...view.matchAll(/^data:.*$/gm)];
  if (lines.length !== 1) return undefined;
  const line = lines[0]!;
  const start = line.index + (line[0].startsWith('data: ') ? 6 : 5);
  return { start, end: line.index + line[0].replace(/\r$/, '').length };
}

/** Where a line's text ends (before its CR LF or LF). */
function lineEnd(frame: Buffer): number {
  let end = frame.length;
  if (frame[end - 1] === LF) end--;
  if (frame[end - 1] === CR) end--;
  return end;
}
