import { Buffer } from 'node:buffer';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
// A value longer than this is cut. The views echo names bounded to 200 characters; the ledger and
// the fleet's database keep them as sent, up to here.
const MAX_VALUE_BYTES = 16 * 1024;
const MAX_KEY_BYTES = 64;

/**
 * Reads a few top-level string members of a JSON object (`model`, `user`) while its bytes stream
 * past, in any number of chunks, without buffering or parsing the body: the body of a chat
 * request can be tens of megabytes of images, and the trace needs two short strings.
 *
 * @example
 * ```ts
 * const fields = new RequestFields(['model', 'user']);
 * request.on('data', (chunk) => fields.write(chunk));
 * fields.get('model'); // 'llama-3.1-8b'
 * ```
 */
export class RequestFields {
  private readonly wanted: Set<string>;
  private readonly found = new Map<string, string>();
  private depth = 0;
  private inString = false;
  private escape = false;
  private expectKey = false;
  private afterKey = false;
  private expectValue = false;
  private capture: 'key' | 'value' | undefined;
  private bytes: number[] = [];
  private key = '';
  private stopped = false;
  private begun = false;

  constructor(keys: readonly string[]) {
    this.wanted = new Set(keys);
  }

  /** The member's string value, once its closing quote has passed. */
  get(key: string): string | undefined {
    return this.found.get(key);
  }

  write(chunk: Uint8Array): void {
    if (this.stopped) return;
    let i = 0;
    // A UTF-8 byte-order mark before the object is not part of it.
    if (!this.begun && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) i = 3;
    this.begun = true;
    for (; i < chunk.length; i++) {
      if (this.inString && this.capture === undefined && !this.escape) {
        // Most of a large body is the inside of strings (base64 images): jump to its closing quote.
        const end = closingQuote(chunk, i);
        if (end < 0) {
          this.escape = trailingBackslashes(chunk, i) % 2 === 1;
          return;
        }
        this.inString = false;
        i = end;
        continue;
      }
      const b = chunk[i]!;
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (b === BACKSLASH) this.escape = true;
        else if (b === QUOTE) {
          this.inString = false;
          this.endString();
          continue;
        }
        if (this.capture !== undefined && this.bytes.length < (this.capture === 'key' ? MAX_KEY_BYTES : MAX_VALUE_BYTES)) this.bytes.push(b);
        continue;
      }
      // Outside strings most bytes of a body are nested: skip to the next byte that matters.
      switch (b) {
        case QUOTE:
          this.inString = true;
          if (this.depth === 1 && this.expectKey) {
            this.expectKey = false;
            this.capture = 'key';
            this.bytes = [];
          } else if (this.depth === 1 && this.expectValue) {
            this.expectValue = false;
            this.capture = this.wanted.has(this.key) ? 'value' : undefined;
            this.bytes = [];
          }
          break;
        case 0x7b: // {
        case 0x5b: // [
          if (this.depth === 0 && b !== 0x7b) {
            this.stopped = true; // not an object: nothing to read
            return;
          }
          this.expectValue = false;
          this.depth++;
          if (this.depth === 1) this.expectKey = true;
          break;
        case 0x7d: // }
        case 0x5d: // ]
          this.depth--;
          if (this.depth <= 0) {
            this.stopped = true;
            return;
          }
          break;
        case 0x3a: // :
          if (this.depth === 1 && this.afterKey) {
            this.afterKey = false;
            this.expectValue = true;
          }
          break;
        case 0x2c: // ,
          if (this.depth === 1) this.expectKey = true;
          break;
        case 0x20:
        case 0x09:
        case 0x0a:
        case 0x0d:
          break;
        default:
          // A number, true, false or null: not a string value.
          if (this.depth === 1) this.expectValue = false;
          else if (this.depth === 0) {
            this.stopped = true;
            return;
          }
      }
    }
  }

  private endString(): void {
    const capture = this.capture;
    this.capture = undefined;
    if (capture === undefined) return;
    const text = decode(this.bytes);
    this.bytes = [];
    if (capture === 'key') {
      this.key = text ?? '';
      this.afterKey = true;
    } else if (text !== undefined) {
      this.found.set(this.key, text); // the last of duplicate members, as JSON.parse reads them
    }
  }
}

/** The index of the quote that closes a string whose inside starts at `from` (no escape pending), or -1. */
function closingQuote(chunk: Uint8Array, from: number): number {
  for (let q = chunk.indexOf(QUOTE, from); q >= 0; q = chunk.indexOf(QUOTE, q + 1)) {
    let backslashes = 0;
    for (let j = q - 1; j >= from && chunk[j] === BACKSLASH; j--) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  return -1;
}

/** How many backslashes end `chunk` after `from`: an odd count escapes the next chunk's first byte. */
function trailingBackslashes(chunk: Uint8Array, from: number): number {
  let n = 0;
  for (let j = chunk.length - 1; j >= from && chunk[j] === BACKSLASH; j--) n++;
  return n;
}

/** The JSON string body's text (escapes resolved), `undefined` when it is not valid. */
function decode(bytes: number[]): string | undefined {
  // Most names have no escape: their bytes are their text.
  if (!bytes.includes(BACKSLASH)) return Buffer.from(bytes).toString('utf8');
  try {
    const text = JSON.parse(`"${Buffer.from(bytes).toString('utf8')}"`);
    return typeof text === 'string' ? text : undefined;
  } catch {
    // A value cut at MAX_VALUE_BYTES may end inside an escape: drop the broken tail.
    try {
      const text = JSON.parse(`"${Buffer.from(bytes).toString('utf8').replace(/\\[^"]*$/, '')}"`);
      return typeof text === 'string' ? text : undefined;
    } catch {
      return undefined;
    }
  }
}
