/**
 * Child processes started by tests: each in its own process group, so that stopping it also stops
 * whatever it started (npx, tsx and shells all start a node below them), and every one still alive
 * when the test worker exits is killed — also when a hook threw or a test timed out.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const alive = new Set<ChildProcess>();
// The global setup's folder for this run: each group started here is noted in it by its pid, so
// that the run's end checks these groups and no one else's (another run, a proxy run by hand).
const STARTED_DIR = process.env.CARBON_TRACE_TEST_STARTED;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

process.once('exit', () => {
  for (const child of alive) killGroup(child, 'SIGKILL');
});

/**
 * `spawn`, in a new process group that {@link stopProcess} (or the worker's exit) kills whole.
 *
 * @example
 * ```ts
 * const child = spawnProcess(process.execPath, ['dist/cli.js', 'proxy', '--upstream', origin]);
 * await stopProcess(child);
 * ```
 */
export function spawnProcess(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options, detached: true });
  alive.add(child);
  if (STARTED_DIR !== undefined && child.pid !== undefined) {
    try {
      writeFileSync(join(STARTED_DIR, String(child.pid)), `${[command, ...args].join(' ').slice(0, 300)}\n`);
    } catch {
      // The run's folder is gone (a test run outside npm test): nothing to note.
    }
  }
  // The group leader exiting does not end its children: kill the group when it goes, too.
  child.once('exit', () => {
    killGroup(child, 'SIGKILL');
    alive.delete(child);
  });
  return child;
}

/**
 * Stops a child and its whole process group: SIGTERM, then SIGKILL after `graceMs`.
 *
 * @example
 * ```ts
 * await stopProcess(child);
 * ```
 */
export function stopProcess(child: ChildProcess, graceMs = 3_000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      killGroup(child, 'SIGKILL');
      resolve();
      return;
    }
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    killGroup(child, 'SIGTERM');
  });
}

/**
 * Runs a command to its end, like `execFile`, with its output; past `timeoutMs` its whole process
 * group is killed.
 *
 * @example
 * ```ts
 * const { code, stdout } = await runProcess(process.execPath, ['--import', 'tsx', 'examples/demo.ts']);
 * ```
 */
export function runProcess(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { timeoutMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const { timeoutMs = 60_000, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const child = spawnProcess(command, args, spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
