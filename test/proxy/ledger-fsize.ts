/**
 * Run as a child process (`node --import tsx test/proxy/ledger-fsize.ts <case> <ledger> …`): a
 * ledger under a file-size limit (RLIMIT_FSIZE, set on this very process with `prlimit --pid`
 * once everything is loaded; SIGXFSZ caught, as a service manager's limit leaves it), which cuts a
 * write short at the limit and refuses the next with EFBIG, as a full disk does. Prints one JSON
 * line.
 *
 * - `header <ledger> <limit>`: opens the ledger with the file limited to `limit` bytes.
 */
import { execFileSync } from 'node:child_process';
import { openLedger } from '../../src/server/books/ledger';

const [kind, path] = [process.argv[2], process.argv[3]!];
process.on('SIGXFSZ', () => {});
const limitFile = (bytes: number | 'unlimited') => execFileSync('prlimit', ['--pid', String(process.pid), `--fsize=${bytes}:unlimited`]);

if (kind === 'header') {
  limitFile(Number(process.argv[4]));
  try {
    openLedger({ path }).close();
    console.log(JSON.stringify({ opened: true }));
  } catch (error) {
    console.log(JSON.stringify({ opened: false, error: (error as Error).message }));
  }
} else {
  throw new Error(`unknown case ${kind}`);
}
