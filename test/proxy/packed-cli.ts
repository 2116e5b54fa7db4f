/**
 * The `carbon-trace` command as users receive it: the package is packed with `npm pack`, unpacked
 * into a scratch project below the repository (so its dependencies resolve from the project's
 * node_modules, as they would from a user's), and its bin run by node as a child process — in its
 * own process group, stopped whole (npx would leave the node below it running).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runProcess, spawnProcess, stopProcess } from '../setup/processes';

const root = resolve(import.meta.dirname, '../..');

/** Newest modification time of the files under `dir`, ms. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

let packed: string | undefined;

/**
 * Builds (when dist is missing or older than src), packs and unpacks the package once per test
 * file; returns the scratch project's directory.
 */
export function packedProject(name: string): string {
  if (packed) return packed;
  const cli = join(root, 'dist', 'cli.js');
  if (!existsSync(cli) || statSync(cli).mtimeMs < newest(join(root, 'src'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  const dir = join(root, '.tmp', name);
  rmSync(dir, { recursive: true, force: true });
  const installed = join(dir, 'node_modules', 'carbon-trace');
  mkdirSync(installed, { recursive: true });
  const { filename } = (JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{ filename: string }>)[0]!;
  execFileSync('tar', ['-xzf', join(dir, filename), '-C', installed, '--strip-components=1']);
  // What npm does for a dependency's bin on install.
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  symlinkSync('../carbon-trace/dist/cli.js', join(dir, 'node_modules', '.bin', 'carbon-trace'));
  packed = dir;
  return dir;
}

export type RunningProxy = { url: string; lines: string[]; child: ChildProcess; stderr(): string; stop(): Promise<void> };

/** The packed bin, as npm links it: `node_modules/.bin/carbon-trace`. */
const bin = (project: string) => join(project, 'node_modules', '.bin', 'carbon-trace');

/** `carbon-trace proxy …` from the packed project; resolves once it prints where it listens. */
export function startPackedProxy(project: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<RunningProxy> {
  return new Promise((resolvePromise, reject) => {
    const child = spawnProcess(process.execPath, [bin(project), 'proxy', ...args], { cwd: project, ...(options.env ? { env: options.env } : {}) });
    const lines: string[] = [];
    let stderr = '';
    let settled = false;
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      lines.push(...d.toString().split('\n').filter(Boolean));
      const match = lines[0]?.match(/listening on (http:\/\/\S+)/);
      if (match && lines.length >= 4 && !settled) {
        settled = true;
        resolvePromise({
          url: match[1]!,
          lines,
          child,
          stderr: () => stderr,
          stop: () => stopProcess(child),
        });
      }
    });
    child.on('exit', (code) => {
      if (!settled) reject(new Error(`proxy exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** Runs the command to completion: exit code, stdout, stderr. */
export function runPacked(project: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(process.execPath, [bin(project), ...args], { cwd: project, timeoutMs: 30_000, ...(options.env ? { env: options.env } : {}) });
}
