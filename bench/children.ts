/**
 * The benchmarks' own child processes: each in a process group of its own, all stopped (the
 * whole group, SIGKILL) when the benchmark exits however it exits.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const children: ChildProcess[] = [];

/** Stops every child started here, with what it started. */
export function stopAll(): void {
  for (const child of children.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));

/** `spawn` from the repository, in a group of its own that {@link stopAll} stops. */
export function spawnChild(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { cwd: root, ...options, detached: true });
  children.push(child);
  return child;
}

/** Starts a server process (stdin kept open), resolves with the port it prints. */
export function startPrinting(command: string, args: string[], match: RegExp): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnChild(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolvePromise, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += String(chunk);
      const m = match.exec(out);
      if (m) resolvePromise({ child, port: Number(m[1]) });
    });
    child.once('exit', () => reject(new Error(`${command} ${args.join(' ')} exited before printing where it listens`)));
  });
}
