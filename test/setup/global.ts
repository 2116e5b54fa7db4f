/**
 * Once per `npm test`: at the start, forget the notes of the last run; at the end, print which
 * tests did not run and why, and fail the run when a process the tests started is still alive.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NOT_RUN_DIR } from './system-tools';

const root = resolve(import.meta.dirname, '../..');
let before = new Set<number>();

/** pid → parent pid and command line, of every process whose command line names this checkout. */
function processesNamingRoot(): Map<number, { ppid: number; args: string }> {
  const found = new Map<number, { ppid: number; args: string }>();
  let table = '';
  try {
    table = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' });
  } catch {
    return found; // no ps (not Linux or macOS): nothing to check with
  }
  for (const line of table.split('\n')) {
    const match = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    if (match && match[3]!.includes(`${root}/`)) found.set(Number(match[1]), { ppid: Number(match[2]), args: match[3]! });
  }
  return found;
}

/** This process and the ones that started it (npm, sh): they name the checkout too. */
function ancestors(): Set<number> {
  const mine = new Set<number>([process.pid]);
  let pid = process.ppid;
  for (let i = 0; i < 20 && pid > 1; i++) {
    mine.add(pid);
    try {
      pid = Number(execFileSync('ps', ['-o', 'ppid=', '-p', String(pid)], { encoding: 'utf8' }).trim());
    } catch {
      break;
    }
  }
  return mine;
}

export function setup(): void {
  rmSync(NOT_RUN_DIR, { recursive: true, force: true });
  // A demo or proxy the developer runs by hand from this checkout is not a leak.
  before = new Set(processesNamingRoot().keys());
}

export async function teardown(): Promise<void> {
  let notes: string[] = [];
  try {
    notes = readdirSync(NOT_RUN_DIR).sort().map((f) => readFileSync(join(NOT_RUN_DIR, f), 'utf8').trim());
  } catch {
    // Every test ran.
  }
  if (notes.length > 0) console.log(`\nNot run on this machine (${notes.length}):\n${notes.map((n) => `  - ${n}`).join('\n')}\n`);

  const mine = ancestors();
  const leaked = () => [...processesNamingRoot()].filter(([pid]) => !before.has(pid) && !mine.has(pid));
  // Children being stopped get a moment to go.
  for (let i = 0; i < 30 && leaked().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const left = leaked();
  if (left.length === 0) return;
  console.error(`\nProcesses started by the tests are still running (killed now; a test leaks them):\n${left.map(([pid, p]) => `  ${pid} ${p.args}`).join('\n')}\n`);
  for (const [pid] of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  process.exitCode = 1;
}
