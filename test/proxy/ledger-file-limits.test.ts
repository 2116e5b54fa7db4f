/**
 * A ledger whose file cannot take what is written (a full disk, a quota, a file-size limit), made
 * real with RLIMIT_FSIZE on a child process (test/proxy/ledger-fsize.ts): a header cut short
 * refuses the start with one line and leaves no partial header; rows beyond `maxPendingRows`
 * waiting for the file are counted lost, oldest first, said once, and the newest are written when
 * the file takes rows again.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LEDGER_COLUMNS, openLedger } from '../../src/server/books/ledger';
import { parseCsvLine } from '../../src/server/books/ledger-read';
import { runProcess } from '../setup/processes';
import { noteNotRun } from '../setup/system-tools';

const prlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!prlimit) noteNotRun(import.meta.filename, 'prlimit', 'the file-size-limit tests need prlimit (util-linux, on Linux): sudo apt-get install -y util-linux');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const ledgerPath = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-fsize-'));
  dirs.push(dir);
  return join(dir, 'ledger.csv');
};

/** Runs one case of test/proxy/ledger-fsize.ts; its JSON line. */
async function limited(...args: string[]) {
  const { code, stdout, stderr } = await runProcess(process.execPath, ['--import', 'tsx', 'test/proxy/ledger-fsize.ts', ...args], { timeoutMs: 30_000 });
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

const HEADER = `${LEDGER_COLUMNS.join(',')}\n`;

describe.skipIf(!prlimit)('a file that cannot take what the ledger writes', () => {
  it('a new ledger whose header is cut short (a 100-byte file-size limit): the start is refused with one line, and no partial header is left', async () => {
    const path = ledgerPath();
    const result = await limited('header', path, '100');
    expect(result.opened).toBe(false);
    expect(result.error).toMatch(new RegExp(`^${path}: the ledger's header could not be written \\(EFBIG after 100 of ${Buffer.byteLength(HEADER)} bytes\\): the file is left empty; free space`));
    expect(result.error).not.toContain('\n');
    expect(statSync(path).size).toBe(0);
    // With room again, it starts as a new ledger, with the whole header.
    openLedger({ path }).close();
    expect(readFileSync(path, 'utf8')).toBe(HEADER);
  });

  it('a 0.1 header with no row, rewritten to this version\'s and cut short: refused the same, no partial header left', async () => {
    const path = ledgerPath();
    writeFileSync(path, 'timestamp,project_name,run_id,duration,model,api_key_id,user\n');
    const result = await limited('header', path, '100');
    expect(result.opened).toBe(false);
    expect(result.error).toMatch(/the ledger's header could not be written \(EFBIG after \d+ of \d+ bytes\): the file is left empty/);
    expect(statSync(path).size).toBe(0);
  });

  it('more rows wait than maxPendingRows (5 of 12): the 7 oldest are counted lost and said once, the 5 newest are written when the file takes rows again', async () => {
    const path = ledgerPath();
    const result = await limited('pending', path, '5', '12');
    const headerBytes = Buffer.byteLength(HEADER);
    // While the file could take nothing: 5 kept, 7 lost, the file as it was (a header and one row).
    expect(result.waiting.pendingRows).toBe(5);
    expect(result.waiting.lostRows).toBe(7);
    expect(result.waiting.bytes).toBeGreaterThan(headerBytes);
    const warnings = result.warnings as string[];
    expect(warnings.filter((w) => w.includes('rows waited for the file'))).toEqual([expect.stringMatching(/more than 5 rows waited for the file: the oldest are lost from it/)]);
    expect(warnings.filter((w) => w.includes('rows cannot be written'))).toHaveLength(1);
    expect(warnings.filter((w) => w.includes('rows are written again'))).toEqual([expect.stringContaining('(7 rows in all were lost while it could not take them)')]);
    // Space again: the 5 newest are in the file, in order, after the row written before.
    expect(result.flushed).toBe(true);
    expect(result.after).toMatchObject({ pendingRows: 0, lostRows: 7, rows: 6 });
    const text = readFileSync(path, 'utf8');
    expect(Buffer.byteLength(text)).toBe(result.after.bytes);
    const [head, ...rows] = text.split('\n').filter(Boolean);
    const model = parseCsvLine(head!)!.indexOf('model');
    expect(rows.map((row) => parseCsvLine(row)![model])).toEqual(['first', 'row-7', 'row-8', 'row-9', 'row-10', 'row-11']);
  });
});
