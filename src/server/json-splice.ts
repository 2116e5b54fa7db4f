import { Buffer } from 'node:buffer';
import { CARBON_TRACE_FIELD } from '../core/parse-carbon-trace';

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
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A JSON body read for what carbon-trace needs (usage, whether it carries a trace): decoded in its
 * own charset, a UTF-8 BOM ignored; `undefined` unless it is a JSON object.
 *
 * @example
 * ```ts
 * readJsonObject(body, 'application/json')?.usage;
 * ```
 */
export function readJsonObject(body: Uint8Array, contentType: string): Loose {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const utf8 = /^utf-?8$/.test(charsetOf(contentType));
  const start = utf8 && bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2] ? 3 : 0;
  try {
    const value = JSON.parse(bytes.toString(utf8 ? 'utf8' : 'latin1', start));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
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
