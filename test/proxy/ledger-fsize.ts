/**
 * Run as a child process (`node --import tsx test/proxy/ledger-fsize.ts <case> <ledger> …`): a
 * ledger under a file-size limit (RLIMIT_FSIZE, set on this very process with `prlimit --pid`
 * once everything is loaded; SIGXFSZ caught, as a service manager's limit leaves it), which cuts a
 * write short at the limit and refuses the next with EFBIG, as a full disk does. Prints one JSON
 * line.
 *
 * - `header <ledger> <limit>`: opens the ledger with the file limited to `limit` bytes.
 * - `pending <ledger> <maxPendingRows> <rows>`: writes one row, then limits the file to what it
 *   holds and appends `rows` rows (models `row-0`, `row-1`, …), then lifts the limit and flushes.
 */
import { execFileSync } from 'node:child_process';
import { openLedger, type LedgerEntry } from '../../src/server/books/ledger';
import { ledgerEntry } from '../fixtures/ledger-entry';

const [kind, path] = [process.argv[2], process.argv[3]!];
process.on('SIGXFSZ', () => {});
const limitFile = (bytes: number | 'unlimited') => execFileSync('prlimit', ['--pid', String(process.pid), `--fsize=${bytes}:unlimited`]);

const entry = (model: string): LedgerEntry => ledgerEntry({ model });

if (kind === 'header') {
  limitFile(Number(process.argv[4]));
  try {
    openLedger({ path }).close();
    console.log(JSON.stringify({ opened: true }));
  } catch (error) {
    console.log(JSON.stringify({ opened: false, error: (error as Error).message }));
  }
} else if (kind === 'pending') {
  const [maxPendingRows, rows] = [Number(process.argv[4]), Number(process.argv[5])];
  const warnings: string[] = [];
  const ledger = openLedger({ path, maxPendingRows, retryIntervalMs: 600_000, onWarning: (m) => warnings.push(m) });
  ledger.append(entry('first'));
  limitFile(ledger.bytes);
  for (let i = 0; i < rows; i++) ledger.append(entry(`row-${i}`));
  const waiting = { pendingRows: ledger.pendingRows, lostRows: ledger.lostRows, bytes: ledger.bytes };
  limitFile('unlimited');
  const flushed = ledger.flush();
  const after = { pendingRows: ledger.pendingRows, lostRows: ledger.lostRows, bytes: ledger.bytes, rows: ledger.written.rows };
  ledger.close();
  console.log(JSON.stringify({ warnings, waiting, flushed, after }));
} else {
  throw new Error(`unknown case ${kind}`);
}
