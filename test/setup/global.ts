/**
 * Once per `npm test`: at the start, forget the notes of the last run; at the end, print which
 * tests did not run and why, and fail the run when a process group the tests started is still
 * alive. Only the groups this run started (noted by `spawnProcess`, by pid) are checked and
 * stopped: another test run, or a proxy someone runs by hand, is never touched.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NOT_RUN_DIR } from './system-tools';

let startedDir: string | undefined;

export function setup(): void {
  rmSync(NOT_RUN_DIR, { recursive: true, force: true });
  // Inherited by the test workers, which are started after this.
  startedDir = mkdtempSync(join(tmpdir(), 'carbon-trace-test-started-'));
  process.env.CARBON_TRACE_TEST_STARTED = startedDir;
}

/** Whether any process of the group whose leader was `pid` is alive. */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    // ESRCH: all gone. EPERM: a process of another user took the number since; not ours.
    return false;
  }
}

export async function teardown(): Promise<void> {
  let notes: string[] = [];
  try {
    notes = readdirSync(NOT_RUN_DIR).sort().map((f) => readFileSync(join(NOT_RUN_DIR, f), 'utf8').trim());
  } catch {
    // Every test ran.
  }
  if (notes.length > 0) console.log(`\nNot run on this machine (${notes.length}):\n${notes.map((n) => `  - ${n}`).join('\n')}\n`);
  if (startedDir === undefined) return;

  const started = new Map<number, string>();
  for (const name of readdirSync(startedDir)) {
    if (/^\d+$/.test(name)) started.set(Number(name), readFileSync(join(startedDir, name), 'utf8').trim());
  }
  rmSync(startedDir, { recursive: true, force: true });
  const leaked = () => [...started].filter(([pid]) => groupAlive(pid));
  // Groups being stopped get a moment to go.
  for (let i = 0; i < 30 && leaked().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const left = leaked();
  if (left.length === 0) return;
  console.error(`\nProcesses started by the tests are still running (killed now; a test leaks them):\n${left.map(([pid, args]) => `  group ${pid}: ${args}`).join('\n')}\n`);
  for (const [pid] of left) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  process.exitCode = 1;
}
