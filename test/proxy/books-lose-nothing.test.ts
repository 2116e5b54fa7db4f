/**
 * The ledger's promise: every request whose response the client fully received is in the file —
 * after kill -9, on a full disk, with a second proxy trying the same file — and no snapshot of
 * another file is ever applied to it. Each case reproduces what an adversarial review found.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type CarbonProxy, type EnergyMeter, type EnergySource } from '../../src/server/index';
import { LEDGER_COLUMNS } from '../../src/server/books/ledger';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { runProcess, spawnProcess, stopProcess } from '../setup/processes';
import { noteNotRun } from '../setup/system-tools';
import { packedProject, runPacked, startPackedProxy } from './packed-cli';

const dirs: string[] = [];

// Packed once per file, before the tests (a build when dist is older than src can take a while).
let project: string;
beforeAll(() => {
  project = packedProject('books-lose-nothing');
}, 120_000);

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-books-'));
  dirs.push(dir);
  return dir;
};

/**
 * A model server of every wire the proxy meters but does not trace: embeddings (sized JSON), the
 * Responses API (an unsized event stream), Ollama's NDJSON, an error, a gzip-compressed
 * completion, a 204.
 */
let other: Server;
let otherOrigin: string;
const gzipped = gzipSync(JSON.stringify({ id: 'c', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'zipped' }, finish_reason: 'stop' }] }));
beforeAll(async () => {
  other = createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      const path = req.url ?? '';
      if (path === '/v1/embeddings') {
        const body = JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: Array.from({ length: 256 }, (_, i) => i / 256) }], usage: { prompt_tokens: 3, total_tokens: 3 } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else if (path === '/v1/responses') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: response.created\ndata: {"type":"response.created"}\n\n');
        res.end('event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":3,"output_tokens":2}}}\n\n');
      } else if (path === '/api/chat') {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.write('{"message":{"role":"assistant","content":"hi"},"done":false}\n');
        res.end('{"done":true,"prompt_eval_count":3,"eval_count":2}\n');
      } else if (path === '/v1/chat/completions' && req.headers['x-test'] === 'error') {
        const body = JSON.stringify({ error: { message: 'bad request', type: 'invalid_request_error' } });
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else if (path === '/v1/chat/completions') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gzipped.length });
        res.end(gzipped);
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  other.listen(0, '127.0.0.1');
  await once(other, 'listening');
  otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
});
afterAll(() => {
  other?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const KINDS: Array<{ name: string; path: string; method?: string; headers?: Record<string, string> }> = [
  { name: 'embeddings', path: '/v1/embeddings' },
  { name: 'responses', path: '/v1/responses' },
  { name: 'ollama', path: '/api/chat' },
  { name: 'error', path: '/v1/chat/completions', headers: { 'x-test': 'error' } },
  { name: 'gzip', path: '/v1/chat/completions', headers: { 'accept-encoding': 'gzip' } },
  { name: '204', path: '/v1/files/f', method: 'DELETE' },
];

/** One request of a kind, its whole response read. */
const call = async (url: string, kind: (typeof KINDS)[number]) => {
  const response = await fetch(`${url}${kind.path}`, { method: kind.method ?? 'POST', headers: { 'content-type': 'application/json', ...kind.headers }, body: kind.method === 'DELETE' ? null : JSON.stringify({ model: `m-${kind.name}`, input: 'x', messages: [] }) });
  await response.arrayBuffer();
  return response.status;
};

const rowCount = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).length - 1;

/** A measured source whose reads take `ms` (a slow counter): books close that much after a response ends upstream. */
function slowSource(ms: number): EnergySource {
  const start = performance.now();
  return { name: 'slow', measured: true, read: () => new Promise((resolve) => setTimeout(() => resolve({ cpuJoules: (50 * (performance.now() - start)) / 1000 }), ms)) };
}

const running: Array<{ proxy: CarbonProxy; meter: EnergyMeter }> = [];
/** Stops one proxy started here (and its meter) before the test ends. */
async function stopOne(r: { proxy: CarbonProxy; meter: EnergyMeter }): Promise<void> {
  running.splice(running.findIndex((x) => x.proxy === r.proxy), 1);
  await r.proxy.close();
  await r.meter.close();
}
afterEach(async () => {
  for (const { proxy, meter } of running.splice(0)) {
    await proxy.close();
    await meter.close();
  }
});
async function start(options: Partial<Parameters<typeof createCarbonProxy>[0]> & { readMs?: number; upstreamUrl?: string } = {}) {
  const meter = createEnergyMeter({ sources: [slowSource(options.readMs ?? 0)], sampleIntervalMs: 1_000, onWarning: false });
  await meter.ready;
  const proxy = createCarbonProxy({ upstream: options.upstreamUrl ?? otherOrigin, meter, onWarning: false, ...options });
  running.push({ proxy, meter });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  return { proxy, meter, url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}` };
}

describe('every row is in the file before the client has the whole response', () => {
  it('embeddings, the Responses API, Ollama, errors, compressed completions and a 204: with a slow meter, the row is there the moment the response is whole', async () => {
    const ledger = join(tempDir(), 'ledger.csv');
    const { url } = await start({ ledger, readMs: 40 });
    let done = 0;
    for (const round of [1, 2]) {
      for (const kind of KINDS) {
        await call(url, kind);
        done++;
        expect(rowCount(ledger), `${kind.name}, round ${round}`).toBe(done);
      }
    }
    // And when they come all at once.
    const statuses = await Promise.all(KINDS.flatMap((kind) => [call(url, kind).then(() => expect(rowCount(ledger)).toBeGreaterThanOrEqual(++done))]));
    expect(statuses).toHaveLength(KINDS.length);
  });

  it('the bytes are the upstream\'s: a sized body keeps its length, a compressed one its bytes', async () => {
    const { url } = await start({ ledger: join(tempDir(), 'ledger.csv'), readMs: 20 });
    const embeddings = await fetch(`${url}/v1/embeddings`, { method: 'POST', body: '{}' });
    const text = await embeddings.text();
    expect(Number(embeddings.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    expect(JSON.parse(text).data[0].embedding).toHaveLength(256);
    const zipped = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'accept-encoding': 'gzip' } });
    expect(JSON.parse(await zipped.text()).choices[0].message.content).toBe('zipped');
  });

  it('kill -9 at any moment (the packed CLI, 3 kills under load): every response a client fully received has its row', async () => {
    const ledger = join(tempDir(), 'ledger.csv');
    let received = 0;
    for (let kill = 0; kill < 3; kill++) {
      const proxy = await startPackedProxy(project, ['--upstream', otherOrigin, '--port', '0', '--meter', 'estimate', '--ledger', ledger]);
      let stop = false;
      const clients = Array.from({ length: 6 }, async (_, c) => {
        for (let i = 0; !stop; i++) {
          try {
            await call(proxy.url, KINDS[(c + i) % KINDS.length]!);
            if (!stop) received++;
          } catch {
            return; // the proxy died under this request
          }
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 400));
      // The count is read before the kill: a response counted here was whole before it.
      stop = true;
      const counted = received;
      process.kill(-proxy.child.pid!, 'SIGKILL');
      await once(proxy.child, 'exit');
      await Promise.all(clients);
      expect(counted).toBeGreaterThan(0);
      expect(rowCount(ledger)).toBeGreaterThanOrEqual(counted);
      received = rowCount(ledger);
    }
  }, 60_000);
});

describe('a stream the upstream cuts is the upstream\'s failure', () => {
  let fixture: FixtureServer;
  beforeAll(async () => {
    fixture = await startFixtureServer();
  });
  afterAll(() => fixture?.close());

  it('booked 502 (what the deploy/ alert on 502s reads), while a client that leaves is still 499', async () => {
    const { proxy, url } = await start({ upstreamUrl: new URL(fixture.baseURL).origin });
    fixture.reply = () => ({ content: 'one two three four five six', cutAfterEvents: 3 });
    const cut = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', stream: true, messages: [] }) });
    await expect(cut.text()).rejects.toThrow();
    fixture.reply = () => ({ content: 'slow', delayMs: 200 });
    const controller = new AbortController();
    const left = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', stream: true, messages: [] }), signal: controller.signal });
    const reader = left.body!.getReader();
    await reader.read();
    controller.abort();
    for (let i = 0; i < 100 && (await proxy.stats()).requests < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await proxy.stats()).byModel.m!.byStatus).toEqual({ 502: 1, 499: 1 });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^carbon_trace_responses_total\{model="m",status="502"\} 1$/m);
  });
});

describe('a full disk', () => {
  const prlimit = (() => {
    try {
      execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
      return process.platform === 'linux';
    } catch {
      return false;
    }
  })();

  if (!prlimit) noteNotRun(import.meta.filename, 'prlimit', 'the full-disk test needs prlimit (util-linux, on Linux): sudo apt-get install -y util-linux');
  it.skipIf(!prlimit)('rows that do not fit wait in memory, whole, and are written when space comes back: no partial line, the books and the file agree after a restart', async () => {
    const ledger = join(tempDir(), 'ledger.csv');
    const bin = join(project, 'node_modules', '.bin', 'carbon-trace');
    // The file may not grow past ~6 kB (RLIMIT_FSIZE: a write past it is cut short, then EFBIG),
    // as a full disk does; SIGXFSZ ignored, as a service manager's limit leaves it.
    const child = spawnProcess('sh', ['-c', `trap '' XFSZ; exec prlimit --fsize=6000:unlimited "${process.execPath}" "${bin}" proxy --upstream ${otherOrigin} --port 0 --meter estimate --ledger "${ledger}"`], { cwd: project });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      for (let i = 0; i < 100 && !/listening on (http:\S+)/.test(stdout); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      const url = /listening on (http:\S+)/.exec(stdout)![1]!;
      for (let i = 0; i < 24; i++) expect(await call(url, KINDS[i % KINDS.length]!)).toBeLessThan(500);
      const full = readFileSync(ledger, 'utf8');
      // Only whole rows: every line ends, and has every column.
      expect(full.endsWith('\n')).toBe(true);
      for (const line of full.trimEnd().split('\n')) expect(line.match(/("([^"]|"")*"|[^,]*)(,|$)/g)!.length - 1).toBeGreaterThanOrEqual(LEDGER_COLUMNS.length - 1);
      const waiting = (await (await fetch(`${url}/carbon/stats`)).json()).ledger;
      expect(waiting.pendingRows).toBe(24 - rowCount(ledger));
      expect(waiting.pendingRows).toBeGreaterThan(0);
      expect(stderr.match(/rows cannot be written/g)).toHaveLength(1);
      expect(stderr).toMatch(/ledger .*ledger\.csv: rows cannot be written since \S+ \((EFBIG|a short write)/);
      // The meter's totals stay on file while rows wait (tied to the rows that are in it): idle
      // energy a scrape showed is not lost to a crash now.
      const scrape = await (await fetch(`${url}/metrics`)).text();
      const totals = JSON.parse(readFileSync(`${ledger}.meter.json`, 'utf8'));
      expect(totals.ledgerBytes).toBe(Buffer.byteLength(readFileSync(ledger)));
      expect(totals.carried.requests).toBe(rowCount(ledger));
      for (const [, component, joules] of scrape.matchAll(/^carbon_trace_idle_energy_joules_total\{component="(\w+)"\} (\S+)$/gm)) expect(totals.carried.idle[component!]).toBeGreaterThanOrEqual(Number(joules));

      // Space comes back.
      execFileSync('prlimit', ['--pid', String(child.pid), '--fsize=unlimited:unlimited']);
      for (let i = 0; i < 100 && !/rows are written again/.test(stderr); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(stderr.match(/rows are written again/g)).toHaveLength(1);
      expect(rowCount(ledger)).toBe(24);
      await call(url, KINDS[0]!);
      expect(rowCount(ledger)).toBe(25);
      expect((await (await fetch(`${url}/carbon/stats`)).json()).ledger).toMatchObject({ pendingRows: 0, lostRows: 0 });
      // A second episode is said again, start and end, however alike.
      execFileSync('prlimit', ['--pid', String(child.pid), `--fsize=${Buffer.byteLength(readFileSync(ledger)) + 1500}:unlimited`]);
      for (let i = 0; i < 8; i++) await call(url, KINDS[0]!);
      expect(stderr.match(/rows cannot be written/g)).toHaveLength(2);
      execFileSync('prlimit', ['--pid', String(child.pid), '--fsize=unlimited:unlimited']);
      for (let i = 0; i < 100 && (stderr.match(/rows are written again/g) ?? []).length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(stderr.match(/rows are written again/g)).toHaveLength(2);
      expect(rowCount(ledger)).toBe(33);
    } finally {
      await stopProcess(child);
    }
    const again = await startPackedProxy(project, ['--upstream', otherOrigin, '--port', '0', '--meter', 'estimate', '--ledger', ledger]);
    try {
      const stats = await (await fetch(`${again.url}/carbon/stats`)).json();
      expect(stats.requests).toBe(33);
      expect(again.stderr()).not.toMatch(/does not match|skipped/);
    } finally {
      await again.stop();
    }
  }, 60_000);
});

describe('a snapshot belongs to its file', () => {
  it('ledger b copied over a.csv, a\'s snapshots left beside it: the books are b\'s rows, rebuilt, with the warning', async () => {
    const dir = tempDir();
    const [a, b] = [join(dir, 'a.csv'), join(dir, 'b.csv')];
    const book = async (ledger: string, model: string, n: number) => {
      const { proxy, meter, url } = await start({ ledger });
      for (let i = 0; i < n; i++) await call(url, { ...KINDS[0]!, name: model });
      running.splice(running.findIndex((r) => r.proxy === proxy), 1);
      await proxy.close();
      await meter.close();
    };
    await book(a, 'a', 3);
    await book(b, 'b', 5);
    expect(existsSync(`${a}.snapshot.json`)).toBe(true);
    copyFileSync(b, a);
    const warnings: string[] = [];
    const { proxy } = await start({ ledger: a, onWarning: (m) => void warnings.push(m) });
    const stats = await proxy.stats();
    expect(stats.requests).toBe(5);
    expect(Object.keys(stats.byModel)).toEqual(['m-b']);
    expect(stats.byModel['m-b']!.requests).toBe(5);
    expect(warnings).toEqual([expect.stringMatching(/a\.csv: its snapshot does not match the file \(rotated, replaced or damaged\); the books are rebuilt from the rows/)]);
  });

  it('its own file, grown after it: taken, and the rows after it read', async () => {
    const ledger = join(tempDir(), 'a.csv');
    const first = await start({ ledger });
    for (let i = 0; i < 3; i++) await call(first.url, KINDS[0]!);
    await first.proxy.close();
    const snapshot = readFileSync(`${ledger}.snapshot.json`, 'utf8');
    const meterTotals = readFileSync(`${ledger}.meter.json`, 'utf8');
    const second = await start({ ledger });
    for (let i = 0; i < 2; i++) await call(second.url, KINDS[0]!);
    await second.proxy.close();
    // The first run's snapshots put back: the two rows after them are read.
    writeFileSync(`${ledger}.snapshot.json`, snapshot);
    writeFileSync(`${ledger}.meter.json`, meterTotals);
    const warnings: string[] = [];
    const third = await start({ ledger, onWarning: (m) => void warnings.push(m) });
    expect((await third.proxy.stats()).requests).toBe(5);
    expect(warnings).toEqual([]);
  });
});

describe('a ledger moved, replaced or cut under a running proxy', () => {
  it('replaced (cp + mv over it): the proxy writes no more rows or snapshots, says so once, and a second proxy may keep the new file alone', async () => {
    const dir = tempDir();
    const ledger = join(dir, 'ledger.csv');
    const warnings: string[] = [];
    const first = await start({ ledger, onWarning: (m) => void warnings.push(m) });
    for (let i = 0; i < 2; i++) await call(first.url, KINDS[0]!);
    copyFileSync(ledger, join(dir, 'copy.csv'));
    renameSync(join(dir, 'copy.csv'), ledger);
    for (let i = 0; i < 3; i++) await call(first.url, KINDS[0]!);
    expect(warnings.filter((w) => w.includes('another file now has its name'))).toEqual([expect.stringMatching(/ledger\.csv: another file now has its name \(moved, replaced or rotated\) while the proxy wrote it: no more rows are written/)]);
    expect(rowCount(ledger)).toBe(2);
    expect((await first.proxy.stats()).ledger).toMatchObject({ pendingRows: 3 });
    // The new file is free: another proxy takes it, and it alone writes it and its companions.
    const second = await start({ ledger });
    await call(second.url, KINDS[1]!);
    expect(rowCount(ledger)).toBe(3);
    const snapshotBefore = existsSync(`${ledger}.meter.json`) ? readFileSync(`${ledger}.meter.json`, 'utf8') : '';
    await stopOne(first);
    expect(existsSync(`${ledger}.meter.json`) ? readFileSync(`${ledger}.meter.json`, 'utf8') : '').toBe(snapshotBefore);
    expect(warnings).toContainEqual(expect.stringMatching(/3 rows could not be written before the proxy stopped \(another file now has its name/));
  });

  it('cut short (copytruncate): no row goes into it headless, so the next start is not refused', async () => {
    const ledger = join(tempDir(), 'ledger.csv');
    const warnings: string[] = [];
    const first = await start({ ledger, onWarning: (m) => void warnings.push(m) });
    for (let i = 0; i < 2; i++) await call(first.url, KINDS[0]!);
    truncateSync(ledger, 0);
    await call(first.url, KINDS[0]!);
    expect(readFileSync(ledger, 'utf8')).toBe('');
    expect(warnings).toContainEqual(expect.stringMatching(/ledger\.csv: it was cut short \(truncated: logrotate copytruncate, or by hand\) while the proxy wrote it/));
    await stopOne(first);
    const again = await start({ ledger });
    expect((await again.proxy.stats()).requests).toBe(0);
    await call(again.url, KINDS[0]!);
    expect(rowCount(ledger)).toBe(1);
  });
});

describe('one proxy per ledger, for real', () => {
  it('another name of the same file — a symbolic link, a hard link, a relative path — is refused while the first holds it', async () => {
    const dir = tempDir();
    const ledger = join(dir, 'ledger.csv');
    await start({ ledger });
    symlinkSync(ledger, join(dir, 'link.csv'));
    linkSync(ledger, join(dir, 'hard.csv'));
    mkdirSync(join(dir, 'sub'));
    const meter = createEnergyMeter({ sources: [], onWarning: false });
    try {
      for (const name of [join(dir, 'link.csv'), join(dir, 'hard.csv'), relative(process.cwd(), join(dir, 'sub', '..', 'ledger.csv'))]) {
        expect(() => createCarbonProxy({ upstream: otherOrigin, meter, ledger: name, onWarning: false }), name).toThrow(/in use by another carbon-trace proxy/);
      }
    } finally {
      await meter.close();
    }
  });

  it('two proxies started at the same instant, 150 times: one holds the ledger, and it uses the key-id secret on file', async () => {
    const dir = tempDir();
    // The old lock (a file made, then its pid written) let both in about 3 rounds in 150.
    const rounds = 150;
    const t0 = Date.now() + 2_500;
    const runs = await Promise.all([0, 1].map(() => runProcess(process.execPath, ['--import', 'tsx', 'test/proxy/lock-race.ts', dir, String(rounds), String(t0), '20'], { timeoutMs: 30_000 })));
    const lines = runs.flatMap((r) => r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { round: number; held: boolean; from?: number; to?: number; secret?: string; error?: string }));
    expect(lines).toHaveLength(2 * rounds);
    let refused = 0;
    for (let round = 0; round < rounds; round++) {
      const both = lines.filter((l) => l.round === round);
      const holders = both.filter((l) => l.held);
      expect(holders.length, `round ${round}`).toBeGreaterThanOrEqual(1);
      // Two holders only one after the other (the second came once the first had let go).
      if (holders.length === 2) expect(holders[0]!.to! <= holders[1]!.from! || holders[1]!.to! <= holders[0]!.from!, `round ${round}: two holders at once`).toBe(true);
      for (const l of both.filter((x) => !x.held)) expect(l.error).toMatch(/in use by another carbon-trace proxy/);
      refused += both.length - holders.length;
      const onFile = readFileSync(join(dir, `race-${round}.csv.key-id-secret`), 'utf8').trim();
      for (const holder of holders) expect(holder.secret, `round ${round}`).toBe(onFile);
    }
    // The rounds did race.
    expect(refused).toBeGreaterThan(0);
  }, 40_000);

  const namespaces = (() => {
    try {
      return execFileSync('unshare', ['--user', '--map-root-user', '--pid', '--fork', process.execPath, '-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }) === '1';
    } catch {
      return false;
    }
  })();
  if (!namespaces) noteNotRun(import.meta.filename, 'namespaces', 'the PID-namespace lock test needs unprivileged user namespaces (unshare --user --pid), which this machine does not allow');
  it.skipIf(!namespaces)('two containers sharing the volume, each its own PID 1: the second is refused', async () => {
    const ledger = join(tempDir(), 'ledger.csv');
    const bin = join(project, 'node_modules', '.bin', 'carbon-trace');
    const inContainer = ['--user', '--map-root-user', '--pid', '--fork', process.execPath, bin, 'proxy', '--upstream', otherOrigin, '--port', '0', '--meter', 'estimate', '--ledger', ledger];
    const first = spawnProcess('unshare', inContainer, { cwd: project });
    let out = '';
    first.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      for (let i = 0; i < 100 && !out.includes('listening on'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(out).toContain('listening on');
      const second = await runProcess('unshare', inContainer, { cwd: project, timeoutMs: 20_000 });
      expect(second.code).toBe(1);
      expect(second.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^carbon-trace: --ledger .*ledger\.csv: in use by another carbon-trace proxy/)]);
    } finally {
      await stopProcess(first);
    }
  }, 30_000);
});

describe('only a regular file is a ledger', () => {
  it('/dev/null, a pipe, a directory: refused in one line, and nothing is created beside them', async () => {
    const dir = tempDir();
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    mkdirSync(join(dir, 'folder'));
    const devBefore = readdirSync('/dev').sort();
    for (const [path, kind] of [['/dev/null', 'a character device'], [join(dir, 'pipe'), 'a pipe'], [join(dir, 'folder'), 'a directory']] as const) {
      const { code, stderr } = await runPacked(project, ['proxy', '--upstream', otherOrigin, '--port', '0', '--meter', 'estimate', '--ledger', path]);
      expect(code, path).toBe(1);
      expect(stderr.trim().split('\n'), path).toEqual([`carbon-trace: --ledger ${path}: ${kind}, not a regular file: a ledger is a file (such as /var/lib/carbon-trace/ledger.csv)`]);
    }
    expect(readdirSync('/dev').sort()).toEqual(devBefore);
    expect(readdirSync(dir).sort()).toEqual(['folder', 'pipe']);
  }, 30_000);
});

describe('the key-id secret', () => {
  it('a secret that is a directory, or not a secret, or unreadable: the start is refused in one line (a new one would give every key a second id)', async () => {
    const cases: Array<[string, (path: string) => void, RegExp]> = [
      ['a directory', (path) => mkdirSync(path), /is a directory/],
      ['not a secret', (path) => writeFileSync(path, 'hello\n'), /is not a secret/],
      ['a link to nothing', (path) => symlinkSync(join(tmpdir(), 'carbon-trace-nonexistent', 'secret'), path), /is a link to a file that does not exist/],
    ];
    // Root reads any file: unreadable only for another user.
    if (process.getuid?.() !== 0) cases.push(['unreadable', (path) => (writeFileSync(path, `${'ab'.repeat(32)}\n`), chmodSync(path, 0o000)), /is unreadable \(EACCES\)/]);
    for (const [what, make, message] of cases) {
      const ledger = join(tempDir(), 'ledger.csv');
      make(`${ledger}.key-id-secret`);
      const { code, stderr } = await runPacked(project, ['proxy', '--upstream', otherOrigin, '--port', '0', '--meter', 'estimate', '--ledger', ledger]);
      expect(code, what).toBe(1);
      const lines = stderr.trim().split('\n');
      expect(lines, what).toHaveLength(1);
      expect(lines[0], what).toMatch(message);
      expect(lines[0], what).toMatch(/^carbon-trace: the key-id secret .*ledger\.csv\.key-id-secret .*: fix it .* or remove it/);
    }
  }, 30_000);

  it('a ledger with rows but no secret beside it (opened under another name, or made with CARBON_TRACE_KEY_ID_SECRET): refused, not given a second set of ids', async () => {
    const dir = tempDir();
    const ledger = join(dir, 'ledger.csv');
    const first = await start({ ledger });
    await call(first.url, KINDS[0]!);
    await stopOne(first);
    linkSync(ledger, join(dir, 'other-name.csv'));
    const meter = createEnergyMeter({ sources: [], onWarning: false });
    try {
      expect(() => createCarbonProxy({ upstream: otherOrigin, meter, ledger: join(dir, 'other-name.csv'), onWarning: false })).toThrow(/other-name\.csv has rows but no key-id secret beside it .*set CARBON_TRACE_KEY_ID_SECRET to it, or copy the secret file here/);
      // Given the secret, it starts.
      const proxy = createCarbonProxy({ upstream: otherOrigin, meter, ledger: join(dir, 'other-name.csv'), keyIdSecret: readFileSync(`${ledger}.key-id-secret`, 'utf8').trim(), onWarning: false });
      await proxy.close();
    } finally {
      await meter.close();
    }
  });

  it('is made once, complete, readable by its owner only, and kept', async () => {
    const ledger = join(tempDir(), 'ledger.csv');
    const first = await start({ ledger });
    await first.proxy.close();
    const secret = readFileSync(`${ledger}.key-id-secret`, 'utf8');
    expect(secret).toMatch(/^[0-9a-f]{64}\n$/);
    expect((await import('node:fs')).statSync(`${ledger}.key-id-secret`).mode & 0o777).toBe(0o600);
    await start({ ledger });
    expect(readFileSync(`${ledger}.key-id-secret`, 'utf8')).toBe(secret);
    expect(readdirSync(join(ledger, '..')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('a clock that was once ahead', () => {
  it('books dated in the future count from now, with a warning; Model Garden\'s duration is never negative', async () => {
    const ledger = join(tempDir(), 'ledger.csv');
    const first = await start({ ledger });
    await call(first.url, KINDS[0]!);
    await first.proxy.close();
    // The rows as a clock ten years ahead wrote them; no snapshot.
    writeFileSync(ledger, readFileSync(ledger, 'utf8').replace(/\n20\d\d-/g, '\n2036-'));
    rmSync(`${ledger}.snapshot.json`);
    rmSync(`${ledger}.meter.json`);
    const warnings: string[] = [];
    const { proxy, url } = await start({ ledger, onWarning: (m) => void warnings.push(m) });
    const stats = await proxy.stats();
    expect(Date.parse(stats.since)).toBeLessThanOrEqual(Date.now());
    expect(warnings).toEqual([expect.stringMatching(/ledger\.csv: its books begin at 2036-.*, which is later than now \(a clock that was ahead\): they are counted from now/)]);
    const garden = await (await fetch(`${url}/api/v1/carbon/inference/stats`)).json();
    expect(garden.duration_seconds).toBeGreaterThanOrEqual(0);
    expect(garden.request_count).toBe(1);
  });
});
