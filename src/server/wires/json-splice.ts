import { Buffer } from 'node:buffer';
import { CARBON_TRACE_FIELD } from '../../core/parse-carbon-trace';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const BOM = [0xef, 0xbb, 0xbf];
// Charsets in which the ASCII bytes of a JSON member mean what they mean in ASCII, so that a
// member can be spliced in without touching the other bytes.
const ASCII_COMPATIBLE = /^(utf-?8|us-ascii|ascii|iso-8859-\d+|latin-?1|windows-125\d|cp125\d)$/i;

/**
 * The charset a `content-type` names, lower-cased; `'utf-8'` when it names none (JSON's default).
 *
 * @example
 * ```ts
 * charsetOf('application/json; charset=ISO-8859-1'); // 'iso-8859-1'
 * ```
 */
export function charsetOf(contentType: string): string {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType);
  return match ? match[1]!.toLowerCase() : 'utf-8';
}

/**
 * Whether carbon-trace can splice ASCII bytes into a body of this charset without re-encoding it.
 *
 * @example
 * ```ts
 * canSplice('application/json; charset=utf-16'); // false
 * ```
 */
export function canSplice(contentType: string): boolean {
  return ASCII_COMPATIBLE.test(charsetOf(contentType));
}

/**
 * JSON text with every non-ASCII character escaped: its bytes are the same in UTF-8, Latin-1 and
 * every other ASCII-compatible charset, so it can be spliced into a body of any of them.
 *
 * @example
 * ```ts
 * asciiJson({ source: 'Électricité' }); // '{"source":"\\u00c9lectricit\\u00e9"}'
 * ```
 */
export function asciiJson(value: unknown): string {
  const json = isFlatRecord(value) ? flatJson(value) : JSON.stringify(value);
  return NON_ASCII.test(json) ? json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : json;
}

const NON_ASCII = /[\u007f-\uffff]/;

// A trace record is one level of numbers, booleans and strings: written directly, it costs about
// half of JSON.stringify, on every traced response. Same text: numbers print as JSON prints them.
function isFlatRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
}

// The record's member names, quoted once: they are the same few on every trace.
const KEY_JSON = new Map<string, string>();

function flatJson(record: Record<string, unknown>): string {
  let out = '{';
  for (const key in record) {
    const v = record[key];
    if (v === undefined || typeof v === 'function') continue;
    const text = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'null') : typeof v === 'boolean' ? (v ? 'true' : 'false') : JSON.stringify(v);
    let name = KEY_JSON.get(key);
    if (name === undefined) {
      name = JSON.stringify(key);
      if (KEY_JSON.size < 64) KEY_JSON.set(key, name);
    }
    out += `${out.length === 1 ? '' : ','}${name}:${text}`;
  }
  return `${out}}`;
}

/**
 * What carbon-trace reads of a JSON answer: whether it is one JSON object at all (only then is a
 * trace spliced in), whether it carries its own `x_carbon_trace`, and the `wanted` top-level
 * members, parsed (a wire's usage: `usage`, or Ollama's `eval_count`…). Read by one pass over
 * the bytes that jumps from quote to quote, without decoding or parsing the body (an answer can
 * be large); only the wanted members, a few bytes, are parsed. A member that is not valid JSON is
 * left out.
 *
 * @example
 * ```ts
 * readMembers(Buffer.from('{"id":"c","usage":{"completion_tokens":3}}'), ['usage']);
 * // { object: true, traced: false, members: { usage: { completion_tokens: 3 } } }
 * ```
 */
export function readMembers(body: Uint8Array, wanted: readonly string[]): { object: boolean; traced: boolean; members: Record<string, unknown> } {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let names = MEMBER_SETS.get(wanted);
  if (names === undefined) MEMBER_SETS.set(wanted, (names = new Set([...wanted, CARBON_TRACE_FIELD])));
  const spans = topLevelMembers(bytes, names);
  const members: Record<string, unknown> = Object.create(null);
  if (spans === undefined) return { object: false, traced: false, members };
  for (const name of wanted) {
    const at = spans.get(name);
    if (at === undefined) continue;
    try {
      members[name] = JSON.parse(bytes.toString('utf8', at[0], at[1]));
    } catch {
      // Not JSON after all: the member is as good as absent.
    }
  }
  return { object: true, traced: spans.has(CARBON_TRACE_FIELD), members };
}

// Each wire asks for the same few members on every answer: their set is made once.
const MEMBER_SETS = new WeakMap<readonly string[], ReadonlySet<string>>();
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The index just past the string that opens at `open` (a quote), or -1. */
function endOfString(bytes: Buffer, open: number): number {
  for (let q = bytes.indexOf(QUOTE, open + 1); q >= 0; q = bytes.indexOf(QUOTE, q + 1)) {
    let backslashes = 0;
    for (let j = q - 1; j > open && bytes[j] === BACKSLASH; j--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
  }
  return -1;
}

/** The index just past the value that starts at `i`, or -1 when it does not end. */
function endOfValue(bytes: Buffer, i: number): number {
  const first = bytes[i];
  if (first === QUOTE) return endOfString(bytes, i);
  if (first !== 0x7b && first !== 0x5b) {
    // A number, true, false or null: up to the next delimiter.
    while (i < bytes.length && bytes[i] !== 0x2c && bytes[i] !== 0x7d && bytes[i] !== 0x5d && !isSpace(bytes[i])) i++;
    return i;
  }
  let depth = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b === QUOTE) {
      i = endOfString(bytes, i);
      if (i < 0) return -1;
      continue;
    }
    if (b === 0x7b || b === 0x5b) depth++;
    else if (b === 0x7d || b === 0x5d) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return -1;
}

/** The member name between `from` and `to` when it is one of `wanted` (compared as bytes), else ''. */
function keyOf(bytes: Buffer, from: number, to: number, wanted: ReadonlySet<string>): string {
  for (const name of wanted) {
    if (name.length !== to - from) continue;
    let same = true;
    for (let j = 0; j < name.length && same; j++) same = bytes[from + j] === name.charCodeAt(j);
    if (same) return name;
  }
  return '';
}

/**
 * Where the values of the `wanted` top-level members of a JSON object are (byte offsets), or
 * `undefined` when the bytes are not one object (an array, a truncated or garbled body).
 */
function topLevelMembers(bytes: Buffer, wanted: ReadonlySet<string>): Map<string, [number, number]> | undefined {
  let i = bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2] ? 3 : 0;
  const skip = () => {
    while (isSpace(bytes[i])) i++;
  };
  skip();
  if (bytes[i] !== 0x7b) return undefined;
  i++;
  const members = new Map<string, [number, number]>();
  skip();
  if (bytes[i] === 0x7d) {
    i++;
  } else {
    for (;;) {
      skip();
      if (bytes[i] !== QUOTE) return undefined;
      const keyEnd = endOfString(bytes, i);
      if (keyEnd < 0) return undefined;
      const key = keyOf(bytes, i + 1, keyEnd - 1, wanted);
      i = keyEnd;
      skip();
      if (bytes[i] !== 0x3a) return undefined;
      i++;
      skip();
      const start = i;
      const end = endOfValue(bytes, i);
      if (end < 0 || end === start) return undefined;
      if (wanted.has(key)) members.set(key, [start, end]);
      i = end;
      skip();
      if (bytes[i] === 0x2c) {
        i++;
        continue;
      }
      if (bytes[i] === 0x7d) {
        i++;
        break;
      }
      return undefined;
    }
  }
  skip();
  return i === bytes.length ? members : undefined;
}

/**
 * Whether a parsed body or chunk carries its own `x_carbon_trace`.
 *
 * @example
 * ```ts
 * carriesTrace({ x_carbon_trace: { emissions_g_co2: 1 } }); // true
 * ```
 */
export function carriesTrace(value: Loose): boolean {
  return value !== null && typeof value === 'object' && Object.hasOwn(value, CARBON_TRACE_FIELD);
}

// A member named x_carbon_trace at any depth: inside a JSON string every quote is escaped, so text
// that only mentions the name (`\"x_carbon_trace\"`) never matches.
const TRACE_NAME = `"${CARBON_TRACE_FIELD}"`;
const TRACE_MEMBER = new RegExp(`${TRACE_NAME}\\s*:`);
// A regex's search is several times faster than String#includes on these one-byte strings.
const TRACE_NAME_SEEN = new RegExp(CARBON_TRACE_FIELD);

/**
 * Whether JSON text (an event, a line, or several, read as Latin-1) has a member named
 * `x_carbon_trace` anywhere: the upstream's own trace, wherever it put it.
 *
 * @example
 * ```ts
 * namesTrace('data: {"type":"message_stop","x_carbon_trace":{}}\n\n'); // true
 * namesTrace('data: {"text":"say \\"x_carbon_trace\\""}\n\n'); // false
 * ```
 */
export function namesTrace(latin1: string): boolean {
  return TRACE_NAME_SEEN.test(latin1) && TRACE_MEMBER.test(latin1);
}

/**
 * Watches bytes that pass after a stream's trace was placed, for the upstream's own: the name, whole
 * or cut between chunks, is enough (a warning, nothing more, follows).
 *
 * @example
 * ```ts
 * const late = lateTraceWatch();
 * late.see(Buffer.from('data: {"x_carbon_')); late.see(Buffer.from('trace":{}}\n\n')); // true
 * ```
 */
export function lateTraceWatch(): { see(chunk: Buffer): boolean } {
  const name = Buffer.from(TRACE_NAME, 'latin1');
  let tail = Buffer.alloc(0);
  let seen = false;
  return {
    see(chunk) {
      if (seen) return true;
      const bytes = tail.length === 0 ? chunk : Buffer.concat([tail, chunk]);
      seen = bytes.includes(name);
      tail = Buffer.from(bytes.subarray(Math.max(0, bytes.length - name.length + 1)));
      return seen;
    },
  };
}

const isSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/**
 * The body with `"x_carbon_trace": <traceJson>` added as the last member of its top-level object,
 * every other byte as it was (a BOM, the charset, the whitespace); `undefined` when the body is not
 * a JSON object (an array, an error page…), which is then left alone. `traceJson` must be ASCII
 * ({@link asciiJson}).
 *
 * @example
 * ```ts
 * spliceTrace(Buffer.from('{"id":"c1"}'), '{"emissions_g_co2":0.1}')!.toString(); // '{"id":"c1","x_carbon_trace":{"emissions_g_co2":0.1}}'
 * ```
 */
export function spliceTrace(body: Uint8Array, traceJson: string): Buffer | undefined {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let open = bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2] ? 3 : 0;
  while (isSpace(bytes[open])) open++;
  let close = bytes.length - 1;
  while (close > open && isSpace(bytes[close])) close--;
  if (bytes[open] !== 0x7b || bytes[close] !== 0x7d || close <= open) return undefined;
  let inner = open + 1;
  while (inner < close && isSpace(bytes[inner])) inner++;
  const member = `${inner === close ? '' : ','}"${CARBON_TRACE_FIELD}":${traceJson}`;
  return Buffer.concat([bytes.subarray(0, close), Buffer.from(member, 'latin1'), bytes.subarray(close)]);
}

/**
 * The body with the trace added as the last member of the object that is the value of its
 * top-level `member` (the `response` of the Responses API's `response.completed` event), every
 * other byte as it was; `undefined` when there is no such object.
 *
 * @example
 * ```ts
 * spliceTraceInto(Buffer.from('{"type":"response.completed","response":{"id":"r"}}'), '{"energy_consumed_wh":1}', 'response')!.toString();
 * // '{"type":"response.completed","response":{"id":"r","x_carbon_trace":{"energy_consumed_wh":1}}}'
 * ```
 */
export function spliceTraceInto(body: Uint8Array, traceJson: string, member: string): Buffer | undefined {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const at = topLevelMembers(bytes, new Set([member]))?.get(member);
  if (at === undefined) return undefined;
  const inner = spliceTrace(bytes.subarray(at[0], at[1]), traceJson);
  return inner === undefined ? undefined : Buffer.concat([bytes.subarray(0, at[0]), inner, bytes.subarray(at[1])]);
}

/** The request bodies the proxy and `withCarbonTrace` take by default: chat requests with images fit. */
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/** One rule for JSON and streams: a server that measures itself keeps its own trace. */
export const UPSTREAM_TRACE_WARNING =
  'the upstream response already carries x_carbon_trace: it is passed through unchanged, and carbon-trace books its own figure for the request apart (in /carbon/stats, not in the response)';

/**
 * The upstream's own trace came after its wire's last event (after `message_stop`,
 * `response.completed`, `[DONE]`): carbon-trace's was already on the response and the books
 * closed, so the client got both.
 *
 * @example
 * ```ts
 * if (tracer.upstreamTracedLate) warn('upstream-trace-late', UPSTREAM_TRACE_LATE_WARNING);
 * ```
 */
export const UPSTREAM_TRACE_LATE_WARNING =
  "the upstream sent its own x_carbon_trace after the stream's last event, when carbon-trace's was already on the response: the client got both, and the books keep carbon-trace's as delivered";

/**
 * The data of an SSE event (its `data:` lines joined), `undefined` for a comment or an event
 * without data. Both stream tracers read events with it.
 *
 * @example
 * ```ts
 * dataOf('event: message_delta\ndata: {"type":"message_delta"}\n\n'); // '{"type":"message_delta"}'
 * ```
 */
export function dataOf(event: string): string | undefined {
  let data: string | undefined;
  for (const line of event.split(/\r\n|\n|\r/)) {
    if (!line.startsWith('data:')) continue;
    const value = line.slice(line.startsWith('data: ') ? 6 : 5);
    data = data === undefined ? value : `${data}\n${value}`;
  }
  return data;
}

/**
 * JSON text parsed when it is one object; `undefined` for anything else (an array, a number,
 * malformed text).
 *
 * @example
 * ```ts
 * parseObject('{"done":true}'); // { done: true }
 * ```
 */
export function parseObject(text: string): Loose {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
