/**
 * Stand-ins for amd-smi, powermetrics and nvidia-smi: node scripts the tests write into a temp
 * dir. Each prints one of the real output shapes at a fixed period, with energy growing at a known
 * power on the stub's own clock, checks that it was called with the tool's real flags, and records
 * its pid so a test can prove that nothing it started is left running.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type StubShape =
  | 'amd-6x' // ROCm 6.1+: a JSON array of {"gpu": N, …}, figures as {value, unit}
  | 'amd-7x' // ROCm 7: {"gpu_data": […]}
  | 'amd-6.0' // ROCm 6.0: bare numbers, power as `current_power`
  | 'amd-na' // energy "N/A": socket power only
  | 'powermetrics' // text, Apple silicon (macOS 13+)
  | 'nvidia-smi'; // `index, power.draw` lines

export type StubOptions = {
  shape: StubShape;
  /** Power per GPU (amd-smi, nvidia-smi), W. */
  watts?: number;
  gpus?: number;
  /** powermetrics: CPU and GPU power, W. */
  cpuWatts?: number;
  gpuWatts?: number;
  /** How often it prints, ms (the stub ignores the interval it is given: tests run faster). */
  periodMs?: number;
  /** First run only: exit with code 1 (and a line on stderr) after this long. */
  dieAfterMs?: number;
  /** First run only: stop printing (but stay alive) after this long. */
  hangAfterMs?: number;
  /** Print this on stderr and exit 1 at once, every run. */
  refuse?: string;
  /** Print nothing at all, stay alive. */
  silent?: boolean;
  /** Start a grandchild (`sleep`) whose pid is recorded too. */
  grandchild?: boolean;
  /** GPU ids to print instead of 0…n-1 (e.g. `__proto__`). */
  ids?: string[];
};

const STUB = String.raw`
const { appendFileSync, readFileSync } = require('node:fs');
const { spawn } = require('node:child_process');
const config = JSON.parse(readFileSync(__CONFIG__, 'utf8'));
const pids = __PIDS__;
let runs = 0;
try { runs = readFileSync(pids, 'utf8').split('\n').filter(Boolean).length; } catch {}
appendFileSync(pids, process.pid + '\n');
if (config.grandchild) {
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  appendFileSync(pids, sleeper.pid + '\n');
}
const args = process.argv.slice(2);
const need = {
  amd: ['metric', '--power', '--energy', '--json', '-w'],
  powermetrics: ['--samplers', 'cpu_power,gpu_power', '-i', '-b'],
  'nvidia-smi': ['--query-gpu=index,power.draw', '--format=csv,noheader,nounits', '-lms'],
}[config.shape.startsWith('amd') ? 'amd' : config.shape];
const missing = need.filter((flag) => !args.includes(flag));
if (missing.length > 0) { process.stderr.write('stub: unexpected arguments ' + JSON.stringify(args) + '\n'); process.exit(2); }
if (config.refuse) { process.stderr.write(config.refuse + '\n'); process.exit(1); }
const first = runs === 0;
const t0 = Date.now();
const gpus = config.gpus ?? 2;
const ids = config.ids ?? Array.from({ length: gpus }, (_, i) => i);
const watts = config.watts ?? 300;
let last = t0;
const figure = (value, unit) => ({ value, unit });
function amdEntry(id, i, now) {
  const joules = Math.round((1e6 * (i + 1) + (watts * (now - t0)) / 1000) * 1000) / 1000;
  const power = config.shape === 'amd-6.0' ? { current_power: watts, current_gfx_voltage: 'N/A' } : { socket_power: figure(watts, 'W'), gfx_voltage: figure(800, 'mV'), throttle_status: 'N/A' };
  const energy = config.shape === 'amd-na' ? 'N/A' : { total_energy_consumption: config.shape === 'amd-6.0' ? joules : figure(joules, 'J') };
  return { timestamp: Math.floor(now / 1000), gpu: id, power, energy };
}
function sample() {
  const now = Date.now();
  if (config.shape.startsWith('amd')) {
    const entries = ids.map((id, i) => amdEntry(id, i, now));
    const doc = config.shape === 'amd-7x' ? { gpu_data: entries } : entries;
    process.stdout.write(JSON.stringify(doc, null, 4) + '\n');
  } else if (config.shape === 'powermetrics') {
    const elapsed = (now - last).toFixed(2);
    const mw = (w) => Math.round(w * 1000);
    process.stdout.write(
      '*** Sampled system activity (' + new Date(now).toString() + ') (' + elapsed + 'ms elapsed) ***\n\n\n' +
      '**** Processor usage ****\n\nE-Cluster HW active frequency: 1248 MHz\nE-Cluster HW active residency:  77.43% (600 MHz:   0% 912 MHz:  54%)\n' +
      'CPU 0 frequency: 1359 MHz\n\n' +
      'CPU Power: ' + mw(config.cpuWatts) + ' mW\nGPU Power: ' + mw(config.gpuWatts) + ' mW\nANE Power: 323 mW\n' +
      'Combined Power (CPU + GPU + ANE): ' + (mw(config.cpuWatts) + mw(config.gpuWatts) + 323) + ' mW\n\n' +
      '**** GPU usage ****\n\nGPU HW active frequency: 389 MHz\nGPU idle residency:  96.55%\nGPU Power: ' + mw(config.gpuWatts) + ' mW\n\n',
    );
  } else {
    process.stdout.write(ids.map((id) => id + ', ' + watts.toFixed(2) + '\n').join(''));
  }
  last = now;
}
if (config.silent) { setInterval(() => {}, 1000); }
else {
  if (config.shape.startsWith('amd')) process.stdout.write("'CTRL' + 'C' to stop watching output:\n");
  if (config.shape === 'powermetrics') process.stdout.write('Machine model: Mac14,2\nOS version: 23A344\nBoot arguments:\nBoot time: Thu Sep 10 23:42:17 2026\n\n\n\n');
  const timer = setInterval(() => {
    if (first && config.hangAfterMs !== undefined && Date.now() - t0 >= config.hangAfterMs) return;
    sample();
  }, config.periodMs ?? 100);
  if (first && config.dieAfterMs !== undefined) setTimeout(() => { clearInterval(timer); process.stderr.write('stub: GPU reset\n'); process.exit(1); }, config.dieAfterMs);
}
`;

export type Stub = { path: string; dir: string; pids(): number[] };

const dirs: string[] = [];

/** Writes a stub executable named `name` (e.g. `amd-smi`) into a fresh temp dir. */
export function writeStub(name: string, options: StubOptions): Stub {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-tool-'));
  dirs.push(dir);
  const config = join(dir, 'config.json');
  const pids = join(dir, 'pids');
  writeFileSync(config, JSON.stringify(options));
  const path = join(dir, name);
  writeFileSync(path, `#!${process.execPath}\n${STUB.replace('__CONFIG__', JSON.stringify(config)).replace('__PIDS__', JSON.stringify(pids))}`);
  chmodSync(path, 0o755);
  return {
    path,
    dir,
    pids: () => (existsSync(pids) ? readFileSync(pids, 'utf8').split('\n').filter(Boolean).map(Number) : []),
  };
}

/**
 * A directory for the PATH a source sees (the whole of it, or first on it), holding the `sudo` asked for: none at all, a
 * file that cannot be executed (spawn answers EACCES, for root too: no execute bit), one that
 * refuses as sudo -n does for a user without a sudoers rule, or one that runs `sudo -n <command>`
 * as that command. Built the same for whoever runs the tests, whatever sudo the machine has.
 */
export function sudoOnPath(kind: 'none' | 'not-executable' | 'refuses' | 'allows'): string {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-sudo-'));
  dirs.push(dir);
  if (kind === 'none') return dir;
  const path = join(dir, 'sudo');
  const body = {
    'not-executable': 'exit 0\n',
    refuses: "echo 'sudo: a password is required' >&2\nexit 1\n",
    allows: '[ "$1" = -n ] || { echo "sudo stand-in: expected -n, got $*" >&2; exit 2; }\nshift\nexec "$@"\n',
  }[kind];
  writeFileSync(path, `#!/bin/sh\n${body}`);
  chmodSync(path, kind === 'not-executable' ? 0o644 : 0o755);
  return dir;
}

/** Whether a process is alive (a zombie of ours counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Kills whatever a stub started that is still alive and returns those pids: a test asserts the
 * list is empty, and nothing is left running even when it is not.
 */
export function reapStubs(stubs: Stub[]): number[] {
  const left = stubs.flatMap((s) => s.pids()).filter(alive);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  return left;
}

/** Removes the stubs' temp dirs. */
export function removeStubDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Polls `check` every 10 ms until it returns a value other than `undefined`, or throws after `timeoutMs`. */
export async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
