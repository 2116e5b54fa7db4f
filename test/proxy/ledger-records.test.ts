/**
 * The ledger's records: a model or user name may hold anything a JSON string can (newlines, quotes,
 * commas, a formula's first character), and its row must come back whole and byte-exact — on a
 * restart (replay) and to the readers that ship and report it. A row split at a newline inside a
 * name was a row lost from the books.
 */
import { appendFileSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openLedger, type LedgerEntry } from '../../src/server/books/ledger';
import { parseCsvLine, readRecords, scanRecordsSync, splitRecords } from '../../src/server/books/ledger-read';
import { ledgerEntry } from '../fixtures/ledger-entry';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const ledgerPath = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-records-'));
  dirs.push(dir);
  return join(dir, 'ledger.csv');
};

const entry = (model: string, user: string, joules = 5): LedgerEntry => ledgerEntry({ model, user, joules });

const HOSTILE = [
  'line one\nline two',
  'carriage\r\nreturn',
  'quote " inside "" twice',
  "'; DROP TABLE carbon_trace_requests; --",
  '=HYPERLINK("http://x")',
  'comma, and; semicolon',
  '"\n"\n"',
  'ünïcödé 🌍',
  'x'.repeat(4096),
  '\n'.repeat(50),
];

describe('names with newlines, quotes and commas', () => {
  it('every hostile name comes back byte-exact from a replay, and the rows after it too', () => {
    const path = ledgerPath();
    const ledger = openLedger({ path });
    for (const name of HOSTILE) ledger.append(entry(name, `user ${name}`));
    ledger.append(entry('plain', 'plain user', 7));
    const back: LedgerEntry[] = [];
    const result = ledger.replay(0, (e) => back.push(e));
    ledger.close();
    expect(result).toMatchObject({ rows: HOSTILE.length + 1, skipped: 0 });
    expect(back.map((e) => e.model)).toEqual([...HOSTILE, 'plain']);
    expect(back.map((e) => e.user)).toEqual([...HOSTILE.map((n) => `user ${n}`), 'plain user']);
    expect(back.at(-1)!.energy.totalJoules).toBeCloseTo(7, 9);
  });

  it('a restart reads them back: the books keep every row (none split into lines that are not rows)', () => {
    const path = ledgerPath();
    const first = openLedger({ path });
    for (const name of HOSTILE) first.append(entry(name, name));
    first.close();
    const warnings: string[] = [];
    const second = openLedger({ path, onWarning: (m) => warnings.push(m) });
    const back: LedgerEntry[] = [];
    expect(second.replay(0, (e) => back.push(e)).rows).toBe(HOSTILE.length);
    second.close();
    expect(warnings).toEqual([]);
    expect(back.map((e) => e.model)).toEqual(HOSTILE);
  });

  it('a damaged record (a quote never closed) costs that record, not the rows after it', () => {
    const path = ledgerPath();
    const ledger = openLedger({ path });
    ledger.append(entry('before', 'u'));
    ledger.close();
    // A line with an open quote (an edit by hand, a bad disk), then 2,000 rows: the open quote must not swallow them all.
    appendFileSync(path, '2026-11-05T10:00:00.000Z,"broken\n');
    const again = openLedger({ path, onWarning: () => {} });
    const rowsAfter = 2000;
    for (let i = 0; i < rowsAfter; i++) again.append(entry(`after ${i}`, 'u'));
    const back: string[] = [];
    const result = again.replay(0, (e) => back.push(e.model!));
    again.close();
    expect(back[0]).toBe('before');
    // Rows within the first 256 KiB after the damage are read as part of it (the quote is still open
    // there); every row after that is back.
    expect(back.at(-1)).toBe(`after ${rowsAfter - 1}`);
    expect(result.skipped).toBeGreaterThanOrEqual(1);
  });

  it('a last row cut just after a newline inside its quoted name is dropped at the restart, once, and the rows after it are read', () => {
    const path = ledgerPath();
    const ledger = openLedger({ path });
    ledger.append(entry('whole', 'u'));
    ledger.append(entry('torn\nname', 'u'));
    ledger.close();
    // Cut the file just after the newline inside the quoted name: the file ends with a newline, but
    // the row is not whole (a power cut mid-write).
    const text = readFileSync(path, 'utf8');
    const cut = text.lastIndexOf('torn\n') + 'torn\n'.length;
    writeFileSync(path, text.slice(0, cut));
    const warnings: string[] = [];
    const again = openLedger({ path, onWarning: (m) => warnings.push(m) });
    const first: string[] = [];
    again.replay(0, (e) => first.push(e.model!));
    again.append(entry('next', 'u'));
    const second: string[] = [];
    again.replay(0, (e) => second.push(e.model!));
    again.close();
    expect(first).toEqual(['whole']);
    expect(second).toEqual(['whole', 'next']);
    expect(warnings.filter((w) => w.includes('torn'))).toHaveLength(1);
  });
});

describe('the record readers agree', () => {
  it('splitRecords ends a record at a newline outside quotes only, and says where the unfinished one begins', () => {
    const data = Buffer.from('a,"b\nc",d\ne,f\ng,"h');
    const got: Array<[string, number]> = [];
    const rest = splitRecords(data, 0, (text, end) => got.push([text, end]));
    expect(got).toEqual([
      ['a,"b\nc",d', 10],
      ['e,f', 14],
    ]);
    expect(rest).toBe(14);
    expect(parseCsvLine(got[0]![0])).toEqual(['a', 'b\nc', 'd']);
  });

  it('the chunked reader, the async reader and a whole-file split give the same records across chunk boundaries', async () => {
    const path = ledgerPath();
    const ledger = openLedger({ path });
    // Enough rows to cross the 1 MiB chunks several times, names with newlines straddling them.
    for (let i = 0; i < 6000; i++) ledger.append(entry(`m${i}\n${'y'.repeat(i % 700)}`, `"u${i}"`));
    ledger.close();
    const size = statSync(path).size;
    const whole: Array<[string, number]> = [];
    splitRecords(readFileSync(path), 0, (text, end) => whole.push([text, end]));

    const fd = openSync(path, 'r');
    const sync: Array<[string, number]> = [];
    scanRecordsSync(fd, 0, size, (text, end) => sync.push([text, end]));
    closeSync(fd);

    const handle = await open(path, 'r');
    const asyncRecords: Array<[string, number]> = [];
    for (let at = 0; at < size; ) {
      const { records, next } = await readRecords(handle, at, size, 64 * 1024);
      for (const r of records) asyncRecords.push([r.text, r.end]);
      expect(next).toBeGreaterThan(at);
      at = next;
    }
    await handle.close();

    expect(whole.length).toBe(6001);
    expect(sync).toEqual(whole);
    expect(asyncRecords).toEqual(whole);
  });

  it('a read with no whole record in it (a quote open to the end of the read) still moves on', async () => {
    const path = ledgerPath();
    appendFileSync(path, `x,"${'z\n'.repeat(400 * 1024)}\nok,row\n`);
    const size = statSync(path).size;
    const handle = await open(path, 'r');
    const texts: string[] = [];
    let reads = 0;
    for (let at = 0; at < size && reads < 10_000; reads++) {
      const { records, next } = await readRecords(handle, at, size, 1024);
      for (const r of records) texts.push(r.text);
      expect(next).toBeGreaterThan(at);
      at = next;
    }
    await handle.close();
    expect(texts.at(-1)).toBe('ok,row');
  });
});
