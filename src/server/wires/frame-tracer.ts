import { Buffer } from 'node:buffer';
import { asciiJson, spliceTrace, spliceTraceInto } from './json-splice';
import type { StreamHooks, StreamTracer, WireUsage } from './wire';

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
export type FrameRules = {
  framing: 'sse' | 'ndjson';
  /** One match per generated piece, in a frame's bytes read as Latin-1 (global flag). */
  tokens: RegExp;
  /** A quick look at a frame's bytes (Latin-1): only frames it matches are parsed; the rest pass as `pass`. */
  mayMatter: RegExp;
  /** What a parsed frame that may matter is, and the usage it reports. */
  read(data: Loose, usage: (usage: WireUsage) => void): FrameRole;
  /** The member of the carrier whose object gets the trace; the carrier's top level when absent. */
  into?: string;
  /** The largest frame held whole, bytes; a stream that sends more without a boundary passes untraced. Default 16 MiB. */
  maxFrameBytes?: number;
};

const LF = 0x0a;
const CR = 0x0d;
const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/**
 * Watches a stream of events (SSE) or lines (NDJSON) pass, byte for byte, and puts the trace on
 * the frame its wire's rules name: only frames that may matter are parsed, only a carrier is held
 * (with what comes after it until the next frame shows whether it was the last), and every other
 * byte flows at once, undecoded. The upstream's own trace wins: a carrier that already has one
 * goes as it came. Chat completions keep their own tracer ({@link EventTracer}); every other
 * streaming wire uses this one.
 *
 * @example
 * ```ts
 * const tracer = new FrameTracer(ollamaRules, { tokens: (n) => metered.tokens(n), usage: (u) => Object.assign(usage, u) });
 * const { out, done } = tracer.push(chunk);
 * ```
 */
export class FrameTracer implements StreamTracer {
  // Bytes of the frame not yet ended; `crEnded`: they end with a CR that ended a line (an LF may follow).
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private lineStart = true;
  private crEnded = false;
  // Whether the CR that ended the last chunk ended a blank line (SSE: the event's end).
  private blankPending = false;
  private held: { frame: Buffer; data: Loose } | undefined;
  private heldTail: Buffer[] = [];
  private ended = false;
  private endFrame: Buffer | undefined;
  private after: Buffer[] = [];
  private completed = false;
  private passing = false;
  private upstreamSeen = false;
  readonly maxFrameBytes: number;

  constructor(
    private readonly rules: FrameRules,
    private readonly hooks: StreamHooks,
  ) {
    this.maxFrameBytes = rules.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  get isComplete(): boolean {
    return this.completed;
  }

  get gaveUp(): boolean {
    return this.passing;
  }

  get upstreamTraced(): boolean {
    return this.upstreamSeen || (this.held !== undefined && this.carrierTraced(this.held.data));
  }

  get placesTrace(): boolean {
    return this.held !== undefined && !this.upstreamTraced && this.inject(this.held.frame, '{}') !== undefined;
  }

  push(chunk: Buffer): { out: Buffer[]; done: boolean } {
    if (this.completed || this.passing) return { out: [chunk], done: false };
    if (this.ended) {
      this.after.push(chunk);
      return { out: [], done: false };
    }
    // The common chunk: whole frames, nothing held, none that may matter.
    if (this.partsBytes === 0 && !this.crEnded && this.held === undefined && this.endsFrame(chunk)) {
      const view = chunk.toString('latin1');
      if (!this.rules.mayMatter.test(view)) {
        this.countTokens(view);
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
          if (this.held !== undefined) out.push(this.held.frame, ...this.heldTail);
          this.held = undefined;
          this.heldTail = [];
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
    }
    if (this.endFrame !== undefined) out.push(this.endFrame);
    out.push(...this.after, ...this.parts);
    this.held = undefined;
    this.heldTail = [];
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
      if (this.held !== undefined) this.heldTail.push(frame);
      else out.push(frame);
      return;
    }
    this.countTokens(view);
    let role: FrameRole = 'pass';
    let parsed: Loose;
    if (this.rules.mayMatter.test(view)) {
      parsed = parseObject(this.rules.framing === 'sse' ? (dataOf(frame.toString('utf8')) ?? '') : frame.toString('utf8'));
      if (parsed !== undefined) role = this.rules.read(parsed, (usage) => this.hooks.usage(usage));
    }
    switch (role) {
      case 'keep':
        if (this.held !== undefined) this.heldTail.push(frame);
        else out.push(frame);
        return;
      case 'end':
        this.ended = true;
        this.endFrame = frame;
        return;
      case 'carry':
      case 'carry-end':
        this.flushHeld(out);
        this.held = { frame, data: parsed };
        this.ended = role === 'carry-end';
        return;
      default:
        this.flushHeld(out);
        out.push(frame);
    }
  }

  private flushHeld(out: Buffer[]): void {
    if (this.held === undefined) return;
    // A carrier released with the upstream's own trace: the stream is traced already.
    if (this.carrierTraced(this.held.data)) this.upstreamSeen = true;
    out.push(this.held.frame, ...this.heldTail);
    this.held = undefined;
    this.heldTail = [];
  }

  private carrierTraced(data: Loose): boolean {
    const target = this.rules.into === undefined ? data : data?.[this.rules.into];
    return target !== null && typeof target === 'object' && Object.hasOwn(target, 'x_carbon_trace');
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

/** The data of an SSE event (its `data:` lines joined), `undefined` for a comment or an event without data. */
function dataOf(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split(/\r\n|\n|\r/)) {
    if (!line.startsWith('data:')) continue;
    const value = line.slice(line.startsWith('data: ') ? 6 : 5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}

function parseObject(text: string): Loose {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
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
