/**
 * `carbon-trace proxy --meter amd-smi | powermetrics`, run as the built CLI (`node dist/cli.js`)
 * in front of the loopback fixture server, with stub tools: it starts, its `meter:` line names the
 * tool, a completion's GPU energy comes from it, and a missing tool is one line and exit code 1.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { spawnProcess, stopProcess } from '../setup/processes';
import { alive, reapStubs, removeStubDirs, sudoOnPath, writeStub, type Stub } from '../server/tool-stubs';

const root = resolve(import.meta.dirname, '../..');
const cli = join(root, 'dist', 'cli.js');

let upstream: FixtureServer;
const children = new Set<ChildProcess>();
const stubs: Stub[] = [];

function newestMs(dir: string): number {
  return Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newestMs(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
}

beforeAll(async () => {
  if (!existsSync(cli) || statSync(cli).mtimeMs < newestMs(join(root, 'src'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  upstream = await startFixtureServer();
}, 180_000);

/** Stops a proxy as a user would (SIGTERM), then its whole group for sure. */
async function stop(child: ChildProcess): Promise<void> {
  await stopProcess(child, 5_000);
  children.delete(child);
}

afterAll(async () => {
  await Promise.all([...children].map(stop));
  await upstream?.close();
  reapStubs(stubs);
  removeStubDirs();
});

type Started = { child: ChildProcess; lines: string[]; url: string };

/** Runs the CLI and resolves at its `meter:` line, or rejects with what it printed when it exits first. */
function proxy(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Started> {
  const child = spawnProcess(process.execPath, [cli, 'proxy', '--upstream', new URL(upstream.baseURL).origin, '--port', '0', ...args], { cwd: root, env });
  children.add(child);
  const lines: string[] = [];
  let stderr = '';
  return new Promise((resolvePromise, reject) => {
    let pending = '';
    const timer = setTimeout(() => reject(new Error(`no meter line within 20 s: ${JSON.stringify(lines)} ${stderr}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop()!;
      lines.push(...parts);
      const listening = lines.find((l) => l.startsWith('carbon-trace proxy listening on '));
      if (listening && lines.some((l) => l.startsWith('meter: '))) {
        clearTimeout(timer);
        resolvePromise({ child, lines, url: /listening on (http:\/\/\S+)/.exec(listening)![1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`exited with ${code}`), { code, stderr, lines }));
    });
  });
}

describe('carbon-trace proxy --meter amd-smi | powermetrics (built CLI, stub tools)', () => {
  it('--help lists both meters and their path flags', () => {
    const help = execFileSync(process.execPath, [cli, 'proxy', '--help'], { encoding: 'utf8' });
    expect(help).toMatch(/--meter <source>[\s\S]*amd-smi[\s\S]*powermetrics/);
    expect(help).toMatch(/--amd-smi <path>/);
    expect(help).toMatch(/--powermetrics <path>/);
  });

  it('--meter amd-smi with amd-smi on the PATH: starts, names it on the meter line, and books GPU energy from it', async () => {
    const stub = writeStub('amd-smi', { shape: 'amd-6x', gpus: 2, watts: 300 });
    stubs.push(stub);
    const started = await proxy(['--meter', 'amd-smi', '--sample-ms', '50'], { ...process.env, PATH: `${dirname(stub.path)}:${process.env.PATH}` });
    try {
      expect(started.lines.find((l) => l.startsWith('meter: '))).toMatch(/^meter: CPU: .*; GPU: amd-smi energy counter, 2 GPUs, every 1 s \(measured\); RAM: /);
      const response = await fetch(`${started.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
      expect(response.status).toBe(200);
      await response.text();
      const stats = (await (await fetch(`${started.url}/carbon/stats`)).json()) as { byComponent?: { gpu?: { source: string; measured: boolean; totalJoules: number } } };
      expect(stats.byComponent?.gpu).toMatchObject({ source: 'amd-smi', measured: true });
      expect(stats.byComponent!.gpu!.totalJoules).toBeGreaterThan(0);
    } finally {
      await stop(started.child);
    }
    // Stopping the proxy stopped amd-smi.
    expect(stub.pids().filter(alive)).toEqual([]);
  });

  it('--meter amd-smi --amd-smi <path>, and --meter powermetrics --powermetrics <path>', async () => {
    const amd = writeStub('amd-smi', { shape: 'amd-7x', gpus: 1, watts: 300 });
    const mac = writeStub('powermetrics', { shape: 'powermetrics', cpuWatts: 5, gpuWatts: 10 });
    stubs.push(amd, mac);
    const a = await proxy(['--meter', 'amd-smi', '--amd-smi', amd.path]);
    try {
      expect(a.lines.find((l) => l.startsWith('meter: '))).toMatch(/GPU: amd-smi energy counter, 1 GPU, every 1 s \(measured\)/);
    } finally {
      await stop(a.child);
    }
    // As root powermetrics runs directly; as anyone else through `sudo -n`: a sudo stand-in first on
    // the PATH runs it, so the flag is checked the same for whoever runs the tests.
    const m = await proxy(['--meter', 'powermetrics', '--powermetrics', mac.path], { ...process.env, PATH: `${sudoOnPath('allows')}:${process.env.PATH}` });
    try {
      expect(m.lines.find((l) => l.startsWith('meter: '))).toMatch(/^meter: CPU: powermetrics CPU \+ GPU power, every 1000 ms \(measured\); GPU: powermetrics CPU \+ GPU power, every 1000 ms \(measured\); RAM: modelled/);
    } finally {
      await stop(m.child);
    }
  });

  it('--meter amd-smi without amd-smi: one line on stderr naming it, exit code 1', async () => {
    const failure = (await proxy(['--meter', 'amd-smi', '--amd-smi', '/nonexistent/amd-smi']).then(
      () => undefined,
      (error: unknown) => error,
    )) as { code: number; stderr: string } | undefined;
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toMatch(/^carbon-trace: --meter amd-smi: amd-smi not found \(\/nonexistent\/amd-smi: ENOENT\): install AMD's amd-smi .*\n$/);
  });
});
