import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/**
 * Splits one CSV record (RFC 4180 quoting, a quoted field may hold commas, quotes and newlines),
 * undoing the `'` that guards formulas; `undefined` when it is not one.
 *
 * @example
 * ```ts
 * parseCsvLine('a,"b ""c""\nd",e'); // ['a', 'b "c"\nd', 'e']
 * ```
 */
export function parseCsvLine(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    let field = '';
    let quoted = false;
    if (line[i] === '"') {
      quoted = true;
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return undefined;
        field += line.slice(i, q);
        if (line[q + 1] === '"') {
          field += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      if (i < line.length && line[i] !== ',') return undefined;
    } else {
      const comma = line.indexOf(',', i);
      field = line.slice(i, comma < 0 ? line.length : comma);
      i = comma < 0 ? line.length : comma;
    }
    out.push(quoted && /^'['=+\-@]/.test(field) ? field.slice(1) : field);
    i++;
  }
  return out;
}

const QUOTE = 0x22;
const NEWLINE = 0x0a;
// A record longer than this is not a row (rows are a few hundred bytes, names at most 4 KiB each):
// an unbalanced quote (a damaged line) must not swallow the rows after it.
const MAX_RECORD_BYTES = 256 * 1024;

/**
 * Finds the CSV records in `data` from `start`: a newline ends a record only outside quotes (a
 * model or user name may hold a newline, and the ledger quotes it, as RFC 4180 says). Calls
 * `onRecord` with each whole record (without its newline) and the offset just past it; returns
 * where the first record not yet whole begins. A quote left open for more than 256 KiB is damage,
 * not a field: that record ends at its first newline (and will not parse), and reading goes on.
 *
 * @example
 * ```ts
 * const rest = splitRecords(buffer, 0, (text, end) => rows.push(text));
 * ```
 */
export function splitRecords(data: Buffer, start: number, onRecord: (text: string, end: number) => void): number {
  let recordStart = start;
  let quotes = 0;
  let from = start;
  // The next quote at or after `from` (-1: none to the end): searched once, not once per line, so
  // a buffer of lines without quotes is read in one pass.
  let nextQuote = data.indexOf(QUOTE, from);
  for (let newline = data.indexOf(NEWLINE, from); newline >= 0; newline = data.indexOf(NEWLINE, from)) {
    while (nextQuote >= 0 && nextQuote < newline) {
      quotes++;
      nextQuote = data.indexOf(QUOTE, nextQuote + 1);
    }
    from = newline + 1;
    if (quotes % 2 === 1) {
      // An odd count of quotes so far: this newline is inside a quoted field, unless it has been open too long.
      if (newline - recordStart <= MAX_RECORD_BYTES) continue;
      const first = data.indexOf(NEWLINE, recordStart);
      onRecord(data.toString('utf8', recordStart, first), first + 1);
      recordStart = first + 1;
      from = recordStart;
      quotes = 0;
      nextQuote = data.indexOf(QUOTE, from);
      continue;
    }
    onRecord(data.toString('utf8', recordStart, newline), newline + 1);
    recordStart = newline + 1;
    quotes = 0;
  }
  return recordStart;
}

const CHUNK_BYTES = 1 << 20;

/**
 * Reads the records of bytes `[from, to)` of an open file, in chunks (a ledger of millions of rows
 * is larger than a string may be), calling `onRecord` with each and the offset where it ends. A
 * last record without its newline (or with a quote still open) is not read. Returns how many
 * records were too long to be rows, and where the last whole record ends.
 *
 * @example
 * ```ts
 * scanRecordsSync(fd, headerBytes, size, (text, end) => { … });
 * ```
 */
export function scanRecordsSync(fd: number, from: number, to: number, onRecord: (text: string, end: number) => void): { tooLong: number; end: number } {
  const chunk = Buffer.alloc(CHUNK_BYTES);
  let carry: Buffer = Buffer.alloc(0);
  let position = from;
  let tooLong = 0;
  while (position < to) {
    const n = readSync(fd, chunk, 0, Math.min(chunk.length, to - position), position);
    if (n <= 0) break;
    const dataStart = position - carry.length;
    position += n;
    const data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
    const rest = splitRecords(data, 0, (text, end) => onRecord(text, dataStart + end));
    carry = Buffer.from(data.subarray(rest));
    if (carry.length > 2 * MAX_RECORD_BYTES && carry.indexOf(NEWLINE) < 0) {
      // No newline at all in this much: not a row; what follows its end is read on.
      tooLong++;
      carry = Buffer.alloc(0);
      position = skipPastRecordSync(fd, position, to);
    }
  }
  return { tooLong, end: position - carry.length };
}

/**
 * {@link scanRecordsSync} off the event loop: reads at most `maxBytes` from `from` and returns the
 * whole records in them with the offset where each ends, and where the next read should start.
 *
 * @example
 * ```ts
 * const { records, next } = await readRecords(handle, offset, size, 1 << 20);
 * ```
 */
export async function readRecords(handle: FileHandle, from: number, to: number, maxBytes: number): Promise<{ records: Array<{ text: string; end: number }>; next: number; tooLong: number }> {
  const records: Array<{ text: string; end: number }> = [];
  // Room for any record a row can be, so that a read always ends at least one.
  const want = Math.min(Math.max(maxBytes, 2 * MAX_RECORD_BYTES), to - from);
  if (want <= 0) return { records, next: from, tooLong: 0 };
  const buffer = Buffer.alloc(want);
  const { bytesRead } = await handle.read(buffer, 0, want, from);
  const data = buffer.subarray(0, bytesRead);
  const rest = splitRecords(data, 0, (text, end) => records.push({ text, end: from + end }));
  if (rest === 0 && bytesRead === want && from + bytesRead < to) {
    // Nothing whole in a whole read: a damaged record (a quote never closed, or no newline at all).
    // It ends at its first newline, as splitRecords ends one; reading goes on after it.
    const first = data.indexOf(NEWLINE);
    return { records, next: first >= 0 ? from + first + 1 : await skipPastRecord(handle, from + bytesRead, to), tooLong: 1 };
  }
  return { records, next: from + rest, tooLong: 0 };
}

async function skipPastRecord(handle: FileHandle, from: number, to: number): Promise<number> {
  const buffer = Buffer.alloc(64 * 1024);
  for (let position = from; position < to; ) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, to - position), position);
    if (bytesRead <= 0) break;
    const newline = buffer.subarray(0, bytesRead).indexOf(NEWLINE);
    if (newline >= 0) return position + newline + 1;
    position += bytesRead;
  }
  return to;
}

function skipPastRecordSync(fd: number, from: number, to: number): number {
  const buffer = Buffer.alloc(64 * 1024);
  for (let position = from; position < to; ) {
    const n = readSync(fd, buffer, 0, Math.min(buffer.length, to - position), position);
    if (n <= 0) break;
    const newline = buffer.subarray(0, n).indexOf(NEWLINE);
    if (newline >= 0) return position + newline + 1;
    position += n;
  }
  return to;
}

/**
 * How much of the head and of the end of a span a fingerprint reads.
 *
 * @example
 * ```ts
 * const head = Buffer.alloc(Math.min(end, FINGERPRINT_WINDOW_BYTES));
 * ```
 */
export const FINGERPRINT_WINDOW_BYTES = 4096;

/**
 * The fingerprint of a span of `end` bytes from what was read of its head and of its end.
 *
 * @example
 * ```ts
 * fingerprintFrom(head, tail, end); // '3f9a…' (32 hex digits)
 * ```
 */
export function fingerprintFrom(head: Buffer, tail: Buffer, end: number): string {
  return createHash('sha256').update(head).update(tail).update(String(end)).digest('hex').slice(0, 32);
}

/**
 * The ledger's fingerprint of its first `end` bytes (its head, the end of that span, and the
 * length), read off the event loop: the same value as `Ledger.fingerprint(end)`, for the readers
 * that hold no lock on the file (the fleet's shipper, the ledger's index).
 *
 * @example
 * ```ts
 * if ((await fingerprintOf(handle, kept.bytes)) === kept.fingerprint) resumeAt(kept.bytes);
 * ```
 */
export async function fingerprintOf(handle: FileHandle, end: number): Promise<string> {
  const head = Buffer.alloc(Math.min(end, FINGERPRINT_WINDOW_BYTES));
  const a = await handle.read(head, 0, head.length, 0);
  const tailFrom = Math.max(0, end - FINGERPRINT_WINDOW_BYTES);
  const tail = Buffer.alloc(end - tailFrom);
  const b = await handle.read(tail, 0, tail.length, tailFrom);
  return fingerprintFrom(head.subarray(0, a.bytesRead), tail.subarray(0, b.bytesRead), end);
}
