/**
 * `npm run bench:fleet`: the fleet's books in Postgres (issue #28), measured on this machine against
 * a Postgres the script starts itself (Debian's binaries, a throw-away cluster in a temp folder, run
 * as `nobody` when the script runs as root, as test/fixtures/postgres.ts does).
 *
 * 1. Insert rate: a ledger of 200,000 rows (openLedger/append: 50 models, 1,000 keys, 5,000 users,
 *    a few hostile names) sent by createFleetShipper into a new database, `flush()` until all of it
 *    is in; batchRows 500, 2000 (the default) and 5000, interleaved over rounds. Postgres as shipped
 *    (fsync on, synchronous_commit on): each batch is one durable commit.
 * 2. One proxy into Postgres: createCarbonProxy with a ledger and `db`, and the same without `db`,
 *    each in a process of its own, in front of the plain upstream (bench/plain-upstream.ts), under the
 *    closed-loop load of bench/load.ts; requests/s of both, interleaved, the ratio per round; then how
 *    many rows were still waiting when the load stopped and how long the shipper took to catch up.
 * 3. Scale: carbon_trace_requests filled with SQL (generate_series) over 60 days — 3 instances, 50
 *    models, 1,000 keys, 5,000 users — in 10 M-row chunks, the daily rollups filled from them as
 *    rows.ts does (one INSERT … SELECT … GROUP BY per chunk), idle intervals a minute apart; then
 *    reportFromDatabase timed: a month by api_key, by api_key,model, by user (rollups), a day by
 *    hour (rows, through the BRIN index on `at`); and the disk per million rows. At 10 M, then at
 *    100 M if the disk and the time allow (else 50 M or 30 M, and said so).
 *
 * Not a test: nothing fails on a number. `--quick` for a smoke run (small sizes, nothing written);
 * `--rounds N`; `--only insert,proxy,scale`; `--max-rows N` caps the scale part. Results go to
 * bench/RESULTS-fleet.md (rewritten after each part, so a run stopped midway keeps what it measured).
 *
 *   node --import tsx bench/fleet.ts
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { openLedger, type LedgerEntry } from '../src/server/books/ledger';
import { createFleetPool } from '../src/server/fleet/connect';
import { parseReportQuery, reportFromDatabase, type ReportQuery } from '../src/server/fleet/report';
import { migrate } from '../src/server/fleet/schema';
import { createFleetShipper } from '../src/server/fleet/shipper';
import { findPostgres } from '../test/fixtures/postgres';
import { spawnChild, startPrinting, stopAll } from './children';
import { cycle } from './load';

const root = resolve(import.meta.dirname, '..');

// ——— Options and small helpers ———

function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (v: number, digits = 2) => v.toFixed(digits);
const spread = (xs: number[], digits = 2) => (xs.length > 1 ? ` (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})` : '');
const thousands = (v: number) => Math.round(v).toLocaleString('en');
const k = (v: number) => `${(v / 1000).toFixed(2)}k`;
const mb = (bytes: number) => bytes / 1024 ** 2;
const gb = (bytes: number) => bytes / 1024 ** 3;
const freeBytes = (path: string) => {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
};
const log = (message: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);

// ——— A Postgres cluster of the benchmark's own ———

type Cluster = {
  version: string;
  settings: string[];
  url(db?: string): string;
  query<R extends pg.QueryResultRow = Record<string, unknown>>(db: string, text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  createDatabase(name: string): Promise<void>;
  dropDatabase(name: string): Promise<void>;
  /** CPU seconds (user + system) of the postmaster and its children so far. */
  cpuSeconds(): number;
  restart(): Promise<void>;
  close(): Promise<void>;
};

const CLUSTER_USER = 'carbon';

/** CPU seconds of one process (user + system), 0 when it is gone. */
function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * initdb and postgres in a new folder under /tmp, on a free port, with `settings` (`name=value`)
 * on the postgres command line. As root, both run as `nobody` (setpriv execs, so the child we hold
 * is the postmaster). The folder is removed by close(), which a `finally` always calls.
 */
async function startCluster(settings: string[]): Promise<Cluster> {
  const install = findPostgres();
  if (!install) throw new Error('PostgreSQL is not installed (no initdb/postgres under /usr/lib/postgresql/<version>/bin or on PATH): sudo apt-get install -y postgresql');
  const asRoot = process.getuid?.() === 0;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim());
  const prefix = asRoot ? ['/usr/bin/setpriv', `--reuid=${id('-u')}`, `--regid=${id('-g')}`, '--clear-groups', '--'] : [];
  const dir = mkdtempSync('/tmp/carbon-trace-bench-fleet-pg-');
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'socket');
  const password = randomBytes(18).toString('base64url');
  const port = await new Promise<number>((res) => {
    const server = createNetServer().listen(0, '127.0.0.1', () => {
      const p = (server.address() as AddressInfo).port;
      server.close(() => res(p));
    });
  });
  let child: ChildProcess | undefined;
  let output = '';
  const run = (program: string, args: string[]): [string, string[]] => (asRoot ? [prefix[0]!, [...prefix.slice(1), program, ...args]] : [program, args]);
  try {
    mkdirSync(socketDir);
    const pwfile = join(dir, 'pwfile');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (asRoot) for (const path of [dir, socketDir, pwfile]) chownSync(path, id('-u'), id('-g'));
    const [initdb, initArgs] = run(join(install.bin, 'initdb'), ['-D', dataDir, '-U', CLUSTER_USER, '-A', 'scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C', '--no-sync']);
    execFileSync(initdb, initArgs, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    rmSync(pwfile, { force: true });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const url = (db = 'postgres') => `postgres://${CLUSTER_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(db)}`;

  async function launch(): Promise<void> {
    const [postgres, args] = run(join(install!.bin, 'postgres'), ['-D', dataDir, '-p', String(port), '-k', socketDir, '-c', 'listen_addresses=127.0.0.1', ...settings.flatMap((s) => ['-c', s])]);
    output = '';
    const server = spawnChild(postgres, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = server;
    const keep = (data: Buffer) => (output = (output + data.toString()).slice(-8192));
    server.stdout!.on('data', keep);
    server.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (server.exitCode !== null || server.signalCode !== null) throw new Error(`postgres exited before accepting connections:\n${output}`);
      const client = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 1000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => {});
      }
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 30 s:\n${output}`);
      await sleep(100);
    }
  }

  async function stop(): Promise<void> {
    const server = child;
    child = undefined;
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    const exited = once(server, 'exit');
    // Fast shutdown: sessions are ended, a checkpoint is written.
    server.kill('SIGINT');
    const timer = setTimeout(() => {
      for (const pid of [server.pid!, ...childPids(server.pid!)]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }, 120_000);
    await exited;
    clearTimeout(timer);
  }

  async function query<R extends pg.QueryResultRow>(db: string, text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    const client = new pg.Client({ connectionString: url(db) });
    client.on('error', () => {});
    await client.connect();
    try {
      return await client.query<R>(text, values);
    } finally {
      await client.end();
    }
  }

  try {
    await launch();
  } catch (error) {
    await stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  let closed = false;
  // However the script ends (an error, Ctrl-C): the server, its backends and its folder go.
  process.on('exit', () => {
    if (closed) return;
    const pid = child?.pid;
    if (pid) for (const p of [pid, ...childPids(pid)]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    version: install.version,
    settings,
    url,
    query,
    createDatabase: async (name) => void (await query('postgres', `CREATE DATABASE ${name}`)),
    dropDatabase: async (name) => void (await query('postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)),
    cpuSeconds: () => (child?.pid ? [child.pid, ...childPids(child.pid)].reduce((a, pid) => a + processCpuSeconds(pid), 0) : 0),
    restart: async () => {
      await stop();
      await launch();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        await stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

// ——— Names: realistic, some hostile ———

const MODELS = [
  'meta-llama/Llama-3.1-8B-Instruct', 'meta-llama/Llama-3.1-70B-Instruct', 'meta-llama/Llama-3.3-70B-Instruct', 'mistralai/Mistral-7B-Instruct-v0.3',
  'mistralai/Mixtral-8x7B-Instruct-v0.1', 'mistralai/Mistral-Small-24B-Instruct-2501', 'Qwen/Qwen2.5-7B-Instruct', 'Qwen/Qwen2.5-14B-Instruct',
  'Qwen/Qwen2.5-32B-Instruct', 'Qwen/Qwen2.5-72B-Instruct', 'Qwen/Qwen2.5-Coder-32B-Instruct', 'Qwen/QwQ-32B', 'deepseek-ai/DeepSeek-R1-Distill-Llama-8B',
  'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B', 'google/gemma-2-9b-it', 'google/gemma-2-27b-it', 'google/gemma-3-12b-it', 'google/gemma-3-27b-it',
  'microsoft/Phi-3.5-mini-instruct', 'microsoft/phi-4', 'ibm-granite/granite-3.1-8b-instruct', 'tiiuae/Falcon3-10B-Instruct', 'allenai/OLMo-2-1124-13B-Instruct',
  'NousResearch/Hermes-3-Llama-3.1-8B', 'HuggingFaceTB/SmolLM2-1.7B-Instruct', 'llama3.1:8b', 'llama3.1:70b-instruct-q4_K_M', 'qwen2.5:14b', 'mistral-nemo:12b',
  'codellama:34b', 'gpt-oss-20b', 'gpt-oss-120b', 'team-a/finetune-2026-10', 'team-b/summarizer-v3', 'support-bot (prod)', 'support-bot (staging)',
  "it's; DROP TABLE carbon_trace_requests; --", 'quote " and "" twice, comma', '=HYPERLINK("http://evil")', 'ünïcödé 🌍 model', `long-${'x'.repeat(2000)}`,
  'vendor/model:with:colons', 'line one\nline two\ttab', 'Llama-3.1-8B-Instruct-AWQ', 'Qwen2.5-VL-7B-Instruct',
  // The last five are embedding models (kind 'embedding').
  'BAAI/bge-m3', 'intfloat/multilingual-e5-large', 'nomic-embed-text', 'sentence-transformers/all-MiniLM-L6-v2', 'Alibaba-NLP/gte-Qwen2-7B-instruct',
];
const EMBEDDING_FROM = 45;
const USERS = 5000;
const INSTANCES = [
  { name: 'gpu-fr-1', host: 'gpu-fr-1.internal', grid: 56, source: 'Electricity Maps, FR', measured: true },
  { name: 'gpu-fr-2', host: 'gpu-fr-2.internal', grid: 56, source: 'Electricity Maps, FR', measured: true },
  { name: 'gpu-de-1', host: 'gpu-de-1.internal', grid: 380, source: 'Electricity Maps, DE', measured: false },
];
const keyId = (key: number) => `key:${((key * 2654435761) % 281474976710655).toString(16).padStart(12, '0')}`;
const userName = (u: number) => (u % 997 === 0 ? `Zoë "z" O'Brien, ops; -- ${u}` : `user-${u}@team-${Math.floor(u / 5)}.example.com`);
/** A key's three models: 70 %, 20 %, 10 % of its requests. */
const modelOfKey = (key: number, r: number) => (r < 0.7 ? key % 50 : r < 0.9 ? (key * 7 + 1) % 50 : (key * 13 + 2) % 50);

/** A seeded generator, so every run sends the same rows. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The i-th of `n` ledger rows, over two days: users skewed (a few send most), each key's users on its three models. */
function ledgerEntry(i: number, n: number, random: () => number): LedgerEntry {
  const u = Math.floor(USERS * random() ** 2);
  const key = Math.floor(u / 5);
  const m = modelOfKey(key, random());
  const embedding = m >= EMBEDDING_FROM;
  const seconds = embedding ? 0.05 : 0.2 + random() * 8;
  const status = random() < 0.01 ? 500 : 200;
  const cpu = seconds * 40;
  const gpu = seconds * 300;
  const ram = seconds * 5;
  return {
    at: new Date(Date.UTC(2026, 10, 1) + Math.floor((i / n) * 2 * 86_400_000)).toISOString(),
    model: MODELS[m],
    apiKeyId: keyId(key),
    user: userName(u),
    status,
    streamed: !embedding && random() < 0.6,
    energy: { joules: { cpu, gpu, ram }, totalJoules: cpu + gpu + ram, durationSeconds: seconds, measured: true, warnings: [] },
    grid: { gCo2PerKwh: 56, source: 'given with --grid-intensity' },
    usage: { promptTokens: 50 + Math.floor(random() * 2000), ...(embedding ? {} : { completionTokens: Math.floor(random() * 800) }) },
    kind: embedding ? 'embedding' : 'chat',
    traceDelivered: true,
    expectsUsage: status === 200,
  };
}

// ——— Results file ———

type Section = { title: string; body: string };
const sections = new Map<string, Section>();
let machineLine = '';

/** The machine's load average now (1, 5, 15 min): other work on a shared machine shows here. */
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(', ');

function writeResults(quick: boolean): void {
  if (quick) return;
  const order = ['insert', 'proxy', 'scale'];
  // A part not run this time (`--only`) keeps its section from the file as it was.
  const path = join(root, 'bench', 'RESULTS-fleet.md');
  let previous = '';
  try {
    previous = readFileSync(path, 'utf8');
  } catch {
    // none yet
  }
  for (const [i, key] of order.entries()) {
    if (sections.has(key)) continue;
    const match = new RegExp(`\\n## ${i + 1}\\. ([^\\n]*)\\n([\\s\\S]*?)(?=\\n## \\d\\. |$)`).exec(previous);
    if (match) sections.set(key, { title: `${i + 1}. ${match[1]}`, body: match[2]! });
  }
  const parts = order.map((key) => sections.get(key)).filter((s): s is Section => s !== undefined);
  writeFileSync(
    join(root, 'bench', 'RESULTS-fleet.md'),
    `# The fleet's books in Postgres: insert rate, one proxy's rate into Postgres, reports at scale, disk\n\n` +
      `Written by \`npm run bench:fleet\` (bench/fleet.ts) on ${new Date().toISOString().slice(0, 10)} (${machineLine}). ` +
      `A shared 2-core VM: the proxy, its load, the upstream and Postgres all share the two cores; read the spread.\n\n` +
      parts.map((s) => `## ${s.title}\n\n${s.body.trim()}\n`).join('\n'),
  );
}

// ——— Part 1: insert rate of the shipper ———

async function insertRate(cluster: Cluster, quick: boolean, rounds: number): Promise<void> {
  const N = quick ? 20_000 : 200_000;
  const batches = [500, 2000, 5000];
  const dir = mkdtempSync('/tmp/carbon-trace-bench-fleet-ledger-');
  const ledger = openLedger({ path: join(dir, 'ledger.csv'), onWarning: (w) => console.error(`ledger: ${w}`), syncIntervalMs: 60_000 });
  try {
    const random = mulberry32(28);
    for (let i = 0; i < N; i++) ledger.append(ledgerEntry(i, N, random));
    const bytes = ledger.bytes;
    log(`part 1: a ledger of ${thousands(N)} rows, ${fmt(mb(bytes), 1)} MB (${Math.round(bytes / N)} bytes a row)`);
    const rate = new Map<number, number[]>(batches.map((b) => [b, []]));
    const nodeCpu = new Map<number, number[]>(batches.map((b) => [b, []]));
    const pgCpu = new Map<number, number[]>(batches.map((b) => [b, []]));
    let checks = 0;
    for (let round = 0; round < rounds; round++) {
      const order = batches.map((_, i) => batches[(i + round) % batches.length]!);
      for (const batchRows of order) {
        const db = `insert_r${round}_b${batchRows}`;
        await cluster.createDatabase(db);
        // Migrated before the clock starts: the figure is the rows', not the schema's.
        const pool = new pg.Pool({ connectionString: cluster.url(db), max: 1 });
        const c = await pool.connect();
        await migrate(c);
        c.release();
        await pool.end();
        const warnings: string[] = [];
        const cpu0 = process.cpuUsage();
        const pg0 = cluster.cpuSeconds();
        const t0 = performance.now();
        const shipper = createFleetShipper({
          db: cluster.url(db),
          instance: { name: 'bench-1', id: randomUUID(), host: hostname() },
          files: () => ({ ledger, idleLogPath: undefined }),
          warn: (_key, message) => void warnings.push(message),
          batchRows,
          intervalMs: 3_600_000,
        });
        let done = false;
        while (!done) {
          done = await shipper.flush();
          if (!done && shipper.state().error) throw new Error(`the shipper failed: ${shipper.state().error}`);
        }
        const seconds = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        const pgSeconds = cluster.cpuSeconds() - pg0;
        await shipper.close();
        const { rows } = await cluster.query<{ n: string; rolled: string }>(db, 'SELECT (SELECT count(*) FROM carbon_trace_requests) AS n, (SELECT sum(requests) FROM carbon_trace_daily) AS rolled');
        if (Number(rows[0]!.n) !== N || Number(rows[0]!.rolled) !== N) throw new Error(`batchRows ${batchRows}: ${rows[0]!.n} rows and ${rows[0]!.rolled} in the rollups, not ${N}`);
        checks++;
        if (warnings.length) console.error(warnings.join('\n'));
        rate.get(batchRows)!.push(N / seconds);
        nodeCpu.get(batchRows)!.push(((cpu.user + cpu.system) / 1e6 / N) * 100_000);
        pgCpu.get(batchRows)!.push((pgSeconds / N) * 100_000);
        log(`part 1, round ${round + 1}/${rounds}, batchRows ${batchRows}: ${thousands(N / seconds)} rows/s (${fmt(seconds)} s)`);
        await cluster.dropDatabase(db);
      }
    }
    const base = rate.get(2000)!;
    const lines = [
      `A ledger of ${thousands(N)} rows (${fmt(mb(bytes), 1)} MB, ${Math.round(bytes / N)} bytes a row; 50 models, 1,000 keys, 5,000 users, some hostile names — quotes, \`;\`, a 2 KB name, emoji) sent by \`createFleetShipper\` into a new database, \`flush()\` until all of it is in; the clock starts at \`createFleetShipper\` (schema already made).`,
      `Postgres ${cluster.version} with its defaults for durability (fsync on, synchronous_commit on): each batch of rows, its rollups and its offset are one commit.`,
      '',
      '| batchRows | rows/s | ÷ batchRows 2000 | shipper CPU per 100k rows (node) | Postgres CPU per 100k rows |',
      '|---|---|---|---|---|',
      ...batches.map((b) => {
        const ratios = rate.get(b)!.map((v, i) => v / base[i]!);
        return `| ${b}${b === 2000 ? ' (default)' : ''} | **${thousands(median(rate.get(b)!))}**${spread(rate.get(b)!, 0)} | ${fmt(median(ratios))}×${spread(ratios)} | ${fmt(median(nodeCpu.get(b)!))} s | ${fmt(median(pgCpu.get(b)!))} s |`;
      }),
      '',
      `Rounds: ${rounds} (the batch sizes interleaved, each into a new database); median (min–max over rounds). Every run checked: ${checks} of ${checks} put all ${thousands(N)} rows in the table and in the daily rollups' \`requests\`.`,
    ];
    lines.push('', `Load average of the machine (1, 5, 15 min) at the end of this part: ${loadAverage()} (other sessions' work on this shared machine shows here).`);
    sections.set('insert', { title: '1. Insert rate: a ledger sent by the shipper', body: lines.join('\n') });
  } finally {
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ——— Part 2: one proxy's full rate, with and without the database ———

function chatRequest(host: string, i: number): Buffer {
  const random = mulberry32(1000 + i);
  const u = Math.floor(USERS * random() ** 2);
  const key = Math.floor(u / 5);
  const m = modelOfKey(key, random()) % EMBEDDING_FROM;
  // Names without newlines here: the part counts ledger rows by lines.
  const body = JSON.stringify({ model: MODELS[m]!.replace(/\s/g, ' '), user: userName(u), messages: [{ role: 'user', content: 'Say something.' }] });
  return Buffer.from(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer sk-team-${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

async function proxyRate(cluster: Cluster, quick: boolean, rounds: number): Promise<void> {
  const CONNECTIONS = 16;
  const SECONDS = quick ? 1 : 5;
  const db = 'proxy_rate';
  await cluster.createDatabase(db);
  const dir = mkdtempSync('/tmp/carbon-trace-bench-fleet-proxy-');
  const started: ChildProcess[] = [];
  try {
    const upstream = await startPrinting(process.execPath, ['--import', 'tsx', 'bench/plain-upstream.ts'], /http:\/\/127\.0\.0\.1:(\d+)/);
    started.push(upstream.child);
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
    const start = async (name: string, withDb: boolean) => {
      const p = await startPrinting(process.execPath, ['--import', 'tsx', 'bench/fleet.ts', '--child-proxy', upstreamUrl, join(dir, `${name}.csv`), ...(withDb ? [cluster.url(db)] : [])], /listening on http:\/\/127\.0\.0\.1:(\d+)/);
      started.push(p.child);
      return { name, withDb, port: p.port, pid: p.child.pid!, sent: 0, requests: Array.from({ length: 500 }, (_, i) => chatRequest(`127.0.0.1:${p.port}`, i)) };
    };
    const withDb = await start('with-db', true);
    const ledgerOnly = await start('ledger-only', false);
    const targets = [withDb, ledgerOnly];
    const inDb = async () => Number((await cluster.query<{ n: string }>(db, 'SELECT count(*) AS n FROM carbon_trace_requests')).rows[0]!.n);
    /** Polls the table until it holds every row the proxy booked: seconds it took. */
    const catchUp = async (): Promise<number> => {
      const t0 = performance.now();
      while ((await inDb()) < withDb.sent) {
        if (performance.now() - t0 > 300_000) throw new Error(`the shipper did not catch up within 300 s: ${await inDb()} of ${withDb.sent} rows`);
        await sleep(20);
      }
      return (performance.now() - t0) / 1000;
    };
    // Warm-up, not measured; it also sizes each run to about SECONDS of load.
    let warmRate = 0;
    for (const t of targets) {
      const t0 = performance.now();
      await cycle(t.port, t.requests, CONNECTIONS, quick ? 1000 : 10_000);
      t.sent += quick ? 1000 : 10_000;
      warmRate = Math.max(warmRate, ((quick ? 1000 : 10_000) / (performance.now() - t0)) * 1000);
    }
    await catchUp();
    const total = Math.max(1000, Math.round((warmRate * SECONDS) / 1000) * 1000);
    log(`part 2: ${thousands(total)} requests per run (${CONNECTIONS} connections), ${rounds} rounds`);
    const rps = new Map<string, number[]>([[withDb.name, []], [ledgerOnly.name, []]]);
    const backlog: number[] = [];
    const catchUpSeconds: number[] = [];
    const shippedDuring: number[] = [];
    const proxyCpu = new Map<string, number[]>([[withDb.name, []], [ledgerOnly.name, []]]);
    const pgCpuShare: number[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const t of round % 2 === 0 ? targets : [...targets].reverse()) {
        const before = t.withDb ? await inDb() : 0;
        const cpu0 = processCpuSeconds(t.pid);
        const pg0 = cluster.cpuSeconds();
        const t0 = performance.now();
        await cycle(t.port, t.requests, CONNECTIONS, total);
        const seconds = (performance.now() - t0) / 1000;
        t.sent += total;
        rps.get(t.name)!.push(total / seconds);
        proxyCpu.get(t.name)!.push((100 * (processCpuSeconds(t.pid) - cpu0)) / seconds);
        if (t.withDb) {
          const atEnd = await inDb();
          pgCpuShare.push((100 * (cluster.cpuSeconds() - pg0)) / seconds);
          shippedDuring.push((atEnd - before) / seconds);
          backlog.push(t.sent - atEnd);
          catchUpSeconds.push(await catchUp());
        }
        log(`part 2, round ${round + 1}/${rounds}, ${t.name}: ${thousands(total / seconds)} req/s${t.withDb ? `, ${thousands(backlog.at(-1)!)} rows waiting at the end, in the table ${fmt(catchUpSeconds.at(-1)!)} s later` : ''}`);
      }
    }
    // The end: every request the proxy with db answered is a row in the table, once, and in the rollups.
    const final = (await cluster.query<{ n: string; distinct_keys: string; rolled: string }>(db, 'SELECT count(*) AS n, count(DISTINCT (run_id, ledger_offset)) AS distinct_keys, (SELECT sum(requests) FROM carbon_trace_daily) AS rolled FROM carbon_trace_requests')).rows[0]!;
    const ledgerLines = readFileSync(join(dir, 'with-db.csv'), 'utf8').split('\n').length - 2;
    const allIn = Number(final.n) === withDb.sent && Number(final.distinct_keys) === withDb.sent && Number(final.rolled) === withDb.sent && ledgerLines === withDb.sent;
    if (!allIn) console.error(`part 2: NOT all in: sent ${withDb.sent}, ledger rows ${ledgerLines}, table ${final.n} (${final.distinct_keys} distinct), rollups ${final.rolled}`);
    const ratios = rps.get(withDb.name)!.map((v, i) => v / rps.get(ledgerOnly.name)![i]!);
    const lines = [
      `\`createCarbonProxy\` with a ledger and \`db\`, and the same with a ledger only, each in a process of its own (the meter as the CLI's default: what this machine reads, CodeCarbon's estimate for the rest), in front of bench/plain-upstream.ts; ${CONNECTIONS} keep-alive connections sending back to back (bench/load.ts \`cycle\`), ${thousands(total)} requests a run (about ${SECONDS} s), 500 different requests in turn (chat, JSON; 1,000 keys' \`Authorization\`, 5,000 users, the keys' models). Postgres ${cluster.version}, fsync and synchronous_commit on; the shipper as the proxy sets it (a pass a second, 2000 rows a batch).`,
      '',
      '| | ledger only | ledger + db | ledger + db ÷ ledger only |',
      '|---|---|---|---|',
      `| requests/s | ${k(median(rps.get(ledgerOnly.name)!))}${spread(rps.get(ledgerOnly.name)!.map((v) => v / 1000))} | ${k(median(rps.get(withDb.name)!))}${spread(rps.get(withDb.name)!.map((v) => v / 1000))} | **${fmt(median(ratios))}×**${spread(ratios)} |`,
      `| proxy process CPU, % of one core | ${fmt(median(proxyCpu.get(ledgerOnly.name)!), 0)} | ${fmt(median(proxyCpu.get(withDb.name)!), 0)} | |`,
      `| Postgres CPU during the load, % of one core | | ${fmt(median(pgCpuShare), 0)}${spread(pgCpuShare, 0)} | |`,
      '',
      `- Rows put in Postgres during the load: ${thousands(median(shippedDuring))}/s${spread(shippedDuring, 0)} — against ${thousands(median(rps.get(withDb.name)!))} requests/s booked.`,
      `- Rows still waiting (in the ledger, not yet in the table) when the load stopped: ${thousands(median(backlog))}${spread(backlog, 0)} — at most ${fmt(Math.max(...backlog) / median(rps.get(withDb.name)!), 1)} s of requests.`,
      `- All of them in the table after: **${fmt(median(catchUpSeconds))} s**${spread(catchUpSeconds)} (the shipper looks at the ledger once a second).`,
      `- At the end: ${thousands(withDb.sent)} requests answered by the proxy with db (warm-up included), ${thousands(ledgerLines)} ledger rows, ${thousands(Number(final.n))} rows in carbon_trace_requests (${thousands(Number(final.distinct_keys))} distinct keys), ${thousands(Number(final.rolled))} in the rollups' \`requests\`: ${allIn ? '**all in, once**' : '**NOT all in** (see the script output)'}.`,
      '',
      `Rounds: ${rounds} (interleaved, alternating which goes first); ratios taken per round, median (min–max over rounds). Before each run with db, the previous run's rows were all in the table, so no catching up overlaps a run of either.`,
    ];
    lines.push('', `Load average of the machine (1, 5, 15 min) at the end of this part: ${loadAverage()} (other sessions' work on this shared machine shows here).`);
    sections.set('proxy', { title: '2. One proxy at its full rate, into Postgres', body: lines.join('\n') });
  } finally {
    for (const child of started) child.stdin?.end();
    await sleep(500);
    for (const child of started) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await cluster.dropDatabase(db).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

// ——— Part 3: reports at 10 M and 100 M rows, disk per million rows ———

const DAYS = 60;
const START = Date.UTC(2026, 8, 1); // 2026-09-01, 60 days to 2026-10-31
const dayIso = (d: number) => new Date(START + d * 86_400_000).toISOString().slice(0, 10);

/** The columns the generated rows fill, from generate_series' g and a few random draws per row. */
function generateSql(): string {
  // s0 draws each row's randomness once (a subquery with volatile functions is not flattened);
  // s1 derives the key (5 users a key), the model (the key's three), the instance (the model's box).
  return `
INSERT INTO carbon_trace_requests (run_id, ledger_offset, at, instance, instance_id, host, project, model, api_key_id, end_user, kind,
  status, streamed, measured, trace_delivered, expects_usage, duration_s, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, energy_kwh,
  emissions_kg, prompt_tokens, completion_tokens, grid_g_per_kwh, grid_source, warnings)
SELECT
  ($3::uuid[])[inst * 10 + (g * 9 / $4::bigint)::int + 1], g * 420 + 420,
  $5::timestamptz + (g * $6::float8) * interval '1 microsecond',
  ($7::text[])[inst + 1], ($8::uuid[])[inst + 1], ($9::text[])[inst + 1], 'carbon-trace proxy',
  ($10::text[])[m + 1],
  'key:' || lpad(to_hex((key * 2654435761) % 281474976710655), 12, '0'),
  CASE WHEN u % 997 = 0 THEN 'Zoë "z" O''Brien, ops; -- ' || u ELSE 'user-' || u || '@team-' || key || '.example.com' END,
  CASE WHEN m >= ${EMBEDDING_FROM} THEN 'embedding' ELSE 'chat' END,
  CASE WHEN r3 < 0.01 THEN 500 WHEN r3 < 0.02 THEN 429 ELSE 200 END,
  m < ${EMBEDDING_FROM} AND r2 < 0.6,
  CASE WHEN r3 < 0.005 THEN NULL ELSE inst < 2 END,
  true, r3 >= 0.02,
  secs,
  CASE WHEN r3 < 0.005 THEN NULL ELSE secs * 40 / 3.6e6 END,
  CASE WHEN r3 < 0.005 THEN NULL ELSE secs * 300 / 3.6e6 END,
  CASE WHEN r3 < 0.005 THEN NULL ELSE secs * 5 / 3.6e6 END,
  CASE WHEN r3 < 0.005 THEN NULL ELSE secs * 345 / 3.6e6 END,
  CASE WHEN r3 < 0.005 THEN NULL ELSE secs * 345 / 3.6e6 * ($11::float8[])[inst + 1] / 1000 END,
  50 + (r1 * 2000)::bigint,
  CASE WHEN m >= ${EMBEDDING_FROM} THEN NULL ELSE (r2 * 800)::bigint END,
  CASE WHEN r3 < 0.005 THEN NULL ELSE ($11::float8[])[inst + 1] END,
  CASE WHEN r3 < 0.005 THEN NULL ELSE ($12::text[])[inst + 1] END,
  CASE WHEN inst = 2 THEN 'no RAPL here: CPU energy estimated from its TDP (CodeCarbon)' END
FROM (
  SELECT g, u, key, m, m % 3 AS inst, r1, r2, r3, CASE WHEN m >= ${EMBEDDING_FROM} THEN 0.05 ELSE 0.2 + r2 * 8 END AS secs
  FROM (
    SELECT g, u, u / 5 AS key, CASE WHEN rm < 0.7 THEN (u / 5) % 50 WHEN rm < 0.9 THEN ((u / 5) * 7 + 1) % 50 ELSE ((u / 5) * 13 + 2) % 50 END AS m, r1, r2, r3
    FROM (SELECT g, floor(${USERS} * random() ^ 2)::int AS u, random() AS rm, random() AS r1, random() AS r2, random() AS r3 FROM generate_series($1::bigint, $2::bigint, 2) g) s0
  ) s1
) s2`;
}

/** The rollups of the rows between two times, as rows.ts adds them (its columns, its ON CONFLICT). */
// The names are grouped first and each group's key hashed once (rows.ts hashes each row's names in its
// GROUP BY: on a batch of 2,000 rows that is nothing, on 10 M rows the planner then expects a group a row
// and sorts them all on disk): the same groups, the same keys, the same sums.
const ROLLUP_SQL = `
INSERT INTO carbon_trace_daily AS d (day, group_key, instance, project, model, api_key_id, end_user, kind,
  requests, requests_with_energy, measured_requests, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, energy_kwh,
  measured_energy_kwh, emissions_kg, prompt_tokens, completion_tokens)
SELECT day, sha256(convert_to(json_build_array(instance, project, model, api_key_id, end_user, kind)::text, 'UTF8')),
  instance, project, model, api_key_id, end_user, kind, requests, requests_with_energy, measured_requests, cpu, gpu, ram, energy, measured_energy,
  emissions, prompt, completion
FROM (
  SELECT (at AT TIME ZONE 'UTC')::date AS day, instance, project, model, api_key_id, end_user, kind,
    count(*) AS requests, count(energy_kwh) AS requests_with_energy, count(*) FILTER (WHERE measured) AS measured_requests,
    coalesce(sum(cpu_energy_kwh), 0) AS cpu, coalesce(sum(gpu_energy_kwh), 0) AS gpu, coalesce(sum(ram_energy_kwh), 0) AS ram,
    coalesce(sum(energy_kwh), 0) AS energy, coalesce(sum(energy_kwh) FILTER (WHERE measured), 0) AS measured_energy,
    coalesce(sum(emissions_kg), 0) AS emissions, coalesce(sum(prompt_tokens), 0) AS prompt, coalesce(sum(completion_tokens), 0) AS completion
  FROM carbon_trace_requests
  WHERE ctid >= $3::tid AND at >= $1 AND at < $2
  GROUP BY 1, 2, 3, 4, 5, 6, 7
) grouped
ON CONFLICT (day, group_key) DO UPDATE SET
  requests = d.requests + excluded.requests,
  requests_with_energy = d.requests_with_energy + excluded.requests_with_energy,
  measured_requests = d.measured_requests + excluded.measured_requests,
  cpu_energy_kwh = d.cpu_energy_kwh + excluded.cpu_energy_kwh,
  gpu_energy_kwh = d.gpu_energy_kwh + excluded.gpu_energy_kwh,
  ram_energy_kwh = d.ram_energy_kwh + excluded.ram_energy_kwh,
  energy_kwh = d.energy_kwh + excluded.energy_kwh,
  measured_energy_kwh = d.measured_energy_kwh + excluded.measured_energy_kwh,
  emissions_kg = d.emissions_kg + excluded.emissions_kg,
  prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
  completion_tokens = d.completion_tokens + excluded.completion_tokens`;

/** Idle intervals a minute apart on each instance, and their rollups. */
const IDLE_SQL = `
INSERT INTO carbon_trace_idle (run_id, log_offset, from_at, at, instance, instance_id, host, project, cpu_idle_kwh, gpu_idle_kwh, ram_idle_kwh,
  idle_kwh, idle_emissions_kg, cpu_unattributed_kwh, gpu_unattributed_kwh, ram_unattributed_kwh, unattributed_kwh, unattributed_emissions_kg)
SELECT ($3::uuid[])[inst * 10 + 1], g * 200 + 200, $1::timestamptz + (g - 1) * interval '1 minute', $1::timestamptz + g * interval '1 minute',
  ($4::text[])[inst + 1], ($5::uuid[])[inst + 1], ($6::text[])[inst + 1], 'carbon-trace proxy',
  20 * 60 * r / 3.6e6, 80 * 60 * r / 3.6e6, 3 * 60 * r / 3.6e6, 103 * 60 * r / 3.6e6, 103 * 60 * r / 3.6e6 * ($7::float8[])[inst + 1] / 1000,
  0.1 / 3.6e6, 0.2 / 3.6e6, 0, 0.3 / 3.6e6, 0.3 / 3.6e6 * ($7::float8[])[inst + 1] / 1000
FROM generate_series(1, $2::int) g, generate_series(0, 2) inst, LATERAL (SELECT random() + 0 * g AS r) x;
INSERT INTO carbon_trace_idle_daily (day, group_key, instance, project, cpu_idle_kwh, gpu_idle_kwh, ram_idle_kwh, idle_kwh, idle_emissions_kg, unattributed_kwh, unattributed_emissions_kg)
SELECT (at AT TIME ZONE 'UTC')::date, sha256(convert_to(json_build_array(instance, project)::text, 'UTF8')), instance, project,
  coalesce(sum(cpu_idle_kwh), 0), coalesce(sum(gpu_idle_kwh), 0), coalesce(sum(ram_idle_kwh), 0),
  sum(idle_kwh), sum(idle_emissions_kg), sum(unattributed_kwh), sum(unattributed_emissions_kg)
FROM carbon_trace_idle GROUP BY 1, 2, 3, 4;
INSERT INTO carbon_trace_runs (run_id, stream, stored_through)
SELECT run_id, 'requests', max(ledger_offset) FROM carbon_trace_requests GROUP BY run_id
UNION ALL SELECT run_id, 'idle', max(log_offset) FROM carbon_trace_idle GROUP BY run_id`;

type ScaleResult = {
  rows: number;
  loadSeconds: number;
  rollupSeconds: number;
  analyzeSeconds: number;
  sizes: Array<{ table: string; rows: number; total: number; heap: number; indexes: number }>;
  reports: Array<{ name: string; source: string; groups: number; first: number; jitOn: number[]; jitOff: number[] }>;
  explains: Array<{ name: string; text: string }>;
  freeBefore: number;
  freeAfterLoad: number;
  /** A day by hour with the BRIN index as loaded (no range summarized): ms, or why it failed. */
  unsummarized: { ms: number; error?: string };
  /** Ranges brin_summarize_new_values summarized, and how long it took. */
  summarized: number;
  summarizeSeconds: number;
};

const REPORTS: Array<{ name: string; query: ReportQuery }> = [
  { name: 'a month by api_key', query: parseReportQuery({ from: dayIso(15), to: dayIso(45), by: 'api_key' }) },
  { name: 'a month by api_key,model', query: parseReportQuery({ from: dayIso(15), to: dayIso(45), by: 'api_key,model' }) },
  { name: 'a month by user', query: parseReportQuery({ from: dayIso(15), to: dayIso(45), by: 'user' }) },
  { name: 'a day by hour', query: parseReportQuery({ from: dayIso(30), to: dayIso(31), by: 'hour' }) },
];

async function scaleTo(cluster: Cluster, rows: number, quick: boolean, onChunk?: (done: number, seconds: number) => void): Promise<ScaleResult> {
  const db = `scale_${rows}`;
  await cluster.createDatabase(db);
  const freeBefore = freeBytes('/tmp');
  const client = new pg.Client({ connectionString: cluster.url(db) });
  client.on('error', () => {});
  await client.connect();
  // A second session: each chunk is made by two INSERTs at once (odd and even rows of the same
  // times, so the pages of one BRIN range still hold one stretch of time), one a core.
  const second = new pg.Client({ connectionString: cluster.url(db) });
  second.on('error', () => {});
  await second.connect();
  try {
    await migrate(client as unknown as pg.PoolClient);
    for (const [i, c] of [client, second].entries()) {
      for (const statement of ["SET work_mem = '1GB'", "SET maintenance_work_mem = '1GB'", 'SET synchronous_commit = off', `SELECT setseed(${0.28 + i * 0.1})`]) await c.query(statement);
    }
    const runIds = Array.from({ length: 30 }, () => randomUUID());
    const instanceIds = INSTANCES.map(() => randomUUID());
    const params = {
      names: INSTANCES.map((i) => i.name),
      hosts: INSTANCES.map((i) => i.host),
      grids: INSTANCES.map((i) => i.grid),
      sources: INSTANCES.map((i) => i.source),
    };
    // Chunks of whole days, at most 10 M rows each; rows in time order across the table, as a fleet writes them.
    const divisors = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60];
    const chunks = divisors.find((d) => rows / d <= 10_000_000) ?? 60;
    const stepUs = (DAYS * 86_400_000_000) / rows;
    const sql = generateSql();
    const t0 = performance.now();
    let rollupSeconds = 0;
    let rollupPlan = '';
    for (let c = 0; c < chunks; c++) {
      const lo = Math.round((c * rows) / chunks);
      const hi = Math.round(((c + 1) * rows) / chunks) - 1;
      // Where this chunk's rows begin: its rollup reads only them (a TID range scan). Through the
      // BRIN index it would read the whole table, every range of it unsummarized as loaded.
      // Less a margin: a session's last page and the blocks Postgres added ahead under contention
      // (up to 512) take rows of the next chunk too. The times in the WHERE keep the chunk exact,
      // and the rollups' total is checked against the rows below.
      const firstBlock = Math.max(0, Number((await client.query<{ n: string }>("SELECT pg_relation_size('carbon_trace_requests') / current_setting('block_size')::int AS n")).rows[0]!.n) - 4096);
      const tc = performance.now();
      await Promise.all(
        [client, second].map((c, i) => c.query(sql, [lo + i, hi, runIds, rows, new Date(START).toISOString(), stepUs, params.names, instanceIds, params.hosts, MODELS, params.grids, params.sources])),
      );
      // As autovacuum's analyse would: the planner then sums the chunk in a hash table, not by a sort of every row.
      await client.query('ANALYZE carbon_trace_requests');
      const tr = performance.now();
      const from = new Date(START + (c * DAYS * 86_400_000) / chunks);
      const to = new Date(START + ((c + 1) * DAYS * 86_400_000) / chunks);
      if (c === 0) {
        // The first chunk's rollup with its plan, for the console: EXPLAIN ANALYZE runs the INSERT.
        const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${ROLLUP_SQL}`, [from, to, `(${firstBlock},0)`]);
        rollupPlan = plan.rows.map((p) => p['QUERY PLAN']).join('\n');
        console.log(rollupPlan);
      } else await client.query(ROLLUP_SQL, [from, to, `(${firstBlock},0)`]);
      rollupSeconds += (performance.now() - tr) / 1000;
      const elapsed = (performance.now() - t0) / 1000;
      const done = hi + 1;
      log(`part 3, ${thousands(rows)} rows: chunk ${c + 1}/${chunks} in (${fmt((tr - tc) / 1000, 1)} s insert, ${fmt((performance.now() - tr) / 1000, 1)} s rollup); ${thousands(done)} rows in ${fmt(elapsed, 0)} s, ${thousands(done / elapsed)} rows/s, about ${fmt(((rows - done) / done) * elapsed / 60, 1)} min to go; ${fmt(gb(freeBytes('/tmp')), 1)} GB free`);
      onChunk?.(done, elapsed);
    }
    const [idleRows, idleRollups, runMarks] = IDLE_SQL.split(';\n');
    await client.query(idleRows!, [new Date(START).toISOString(), DAYS * 1440, runIds, params.names, instanceIds, params.hosts, params.grids]);
    await client.query(idleRollups!);
    await client.query(runMarks!);
    const loadSeconds = (performance.now() - t0) / 1000 - rollupSeconds;
    const freeAfterLoad = freeBytes('/tmp');
    // As autovacuum would leave them: the rollups vacuumed and analysed; the rows analysed (a sample).
    // A VACUUM of the rows would rewrite every page (hint bits, visibility), and no report reads them but by their BRIN index.
    const ta = performance.now();
    for (const statement of ['VACUUM (ANALYZE) carbon_trace_daily', 'VACUUM (ANALYZE) carbon_trace_idle_daily', 'VACUUM (ANALYZE) carbon_trace_idle', 'ANALYZE carbon_trace_requests', 'CHECKPOINT']) await client.query(statement);
    const analyzeSeconds = (performance.now() - ta) / 1000;
    const sizes: ScaleResult['sizes'] = [];
    for (const table of ['carbon_trace_requests', 'carbon_trace_daily', 'carbon_trace_idle', 'carbon_trace_idle_daily']) {
      const r = (
        await client.query<{ total: string; heap: string; indexes: string; n: string }>(
          `SELECT pg_total_relation_size($1) AS total, pg_table_size($1) AS heap, pg_indexes_size($1) AS indexes, ${table === 'carbon_trace_requests' ? String(rows) : `(SELECT count(*) FROM ${table})`} AS n`,
          [table],
        )
      ).rows[0]!;
      sizes.push({ table, rows: Number(r.n), total: Number(r.total), heap: Number(r.heap), indexes: Number(r.indexes) });
    }
    // The rollups hold every row once: the sum of their requests is the row count.
    const rolled = Number((await client.query<{ n: string }>('SELECT sum(requests) AS n FROM carbon_trace_daily')).rows[0]!.n);
    if (rolled !== rows) throw new Error(`the rollups count ${rolled} requests, not ${rows}`);
    await second.end().catch(() => {});

    // The BRIN index as loaded: rows inserted into new block ranges leave them unsummarized until a
    // VACUUM (or brin_summarize_new_values) summarizes them, and an unsummarized range matches every
    // query. A day by hour then, once, through the proxy's pool (its statement_timeout: 60 s).
    const unsummarized = await (async () => {
      const pool = createFleetPool(cluster.url(db), () => {});
      const t = performance.now();
      try {
        await reportFromDatabase(pool, REPORTS.find((r) => r.name === 'a day by hour')!.query);
        return { ms: performance.now() - t };
      } catch (error) {
        return { ms: performance.now() - t, error: (error as Error).message };
      } finally {
        await pool.end();
      }
    })();
    const ts = performance.now();
    const summarized = Number((await client.query<{ n: string }>("SELECT brin_summarize_new_values('carbon_trace_requests_at') AS n")).rows[0]!.n);
    const summarizeSeconds = (performance.now() - ts) / 1000;
    await client.end().catch(() => {});

    // Reports: the first right after a restart (Postgres' buffers empty; the OS page cache is not
    // emptied), then interleaved runs with the database's defaults (jit on), then with jit off.
    await cluster.restart();
    const reports: ScaleResult['reports'] = REPORTS.map((r) => ({ name: r.name, source: '', groups: 0, first: 0, jitOn: [], jitOff: [] }));
    const captured = new Map<string, Array<{ text: string; values: unknown[] }>>();
    const time = async (jit: boolean, runs: number, first: boolean) => {
      await cluster.query(db, `ALTER DATABASE ${db} SET jit = ${jit ? 'on' : 'off'}`);
      const pool = createFleetPool(cluster.url(db), (e) => console.error(`pool: ${String(e)}`));
      // The statements reportFromDatabase sends, for EXPLAIN below.
      const recording = new Proxy(pool, {
        get(target, prop, receiver) {
          if (prop !== 'query') return Reflect.get(target, prop, receiver);
          return (text: string, values: unknown[]) => {
            const name = current;
            if (name && !captured.has(name)) captured.set(name, []);
            if (name && captured.get(name)!.length < 5) captured.get(name)!.push({ text, values });
            return target.query(text, values);
          };
        },
      });
      let current = '';
      try {
        await pool.query('SELECT 1'); // connections open before the clock
        for (let run = 0; run < runs; run++) {
          for (const [i, r] of REPORTS.entries()) {
            current = r.name;
            const t = performance.now();
            const report = await reportFromDatabase(recording, r.query);
            const ms = performance.now() - t;
            current = '';
            const out = reports[i]!;
            out.source = report.source;
            out.groups = report.rows.length;
            if (first && run === 0) out.first = ms;
            else (jit ? out.jitOn : out.jitOff).push(ms);
          }
        }
      } finally {
        await pool.end();
      }
    };
    const runs = quick ? 2 : 7;
    await time(true, runs + 1, true);
    await time(false, runs, false);
    await cluster.query(db, `ALTER DATABASE ${db} RESET jit`);
    // EXPLAIN of each report's statement on rows (not the idle one), with the defaults.
    const explains: ScaleResult['explains'] = [];
    const ec = new pg.Client({ connectionString: cluster.url(db) });
    ec.on('error', () => {});
    await ec.connect();
    try {
      for (const r of REPORTS) {
        const statement = captured.get(r.name)?.find((s) => /carbon_trace_(requests|daily)\b/.test(s.text));
        if (!statement) continue;
        const plan = await ec.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${statement.text}`, statement.values);
        explains.push({ name: r.name, text: plan.rows.map((p) => p['QUERY PLAN']).join('\n') });
      }
    } finally {
      await ec.end();
    }
    return { rows, loadSeconds, rollupSeconds, analyzeSeconds, sizes, reports, explains, freeBefore, freeAfterLoad, unsummarized, summarized, summarizeSeconds };
  } finally {
    await client.end().catch(() => {});
    await second.end().catch(() => {});
    await cluster.dropDatabase(db);
  }
}

function scaleSection(results: ScaleResult[], cluster: Cluster, notes: string[]): Section {
  const lines: string[] = [
    `Rows made in SQL (\`INSERT … SELECT … FROM generate_series\`, in chunks of whole days of at most 10 M rows, in time order as a fleet writes them) over 60 days (${dayIso(0)} to ${dayIso(DAYS)}): 3 instances (each model served by one), 50 models (5 of them embeddings, some hostile names), 1,000 keys, 5,000 users (skewed: a few send most; 5 users a key; each key on its 3 models, 70/20/10 %), 1 % errors, 0.5 % without an energy figure, one instance estimated with a warning on each row. The table's own indexes as migrated (primary key (run_id, ledger_offset), BRIN on at) kept up while loading. Then the daily rollups of each chunk, rows.ts's columns and \`ON CONFLICT (day, group_key) DO UPDATE\` (group_key the SHA-256 of the names, hashed once a group), idle intervals a minute apart on each instance (259,200) and theirs; the rollups vacuumed and analysed, the rows analysed.`,
    `Postgres ${cluster.version}, this benchmark's cluster: \`${cluster.settings.join(' ')}\` (bulk-load settings; the reports run on the defaults otherwise: work_mem 4 MB, jit on, 2 parallel workers). Each report through \`reportFromDatabase\` on the proxy's own pool (\`createFleetPool\`), both of its statements (requests and idle) as it sends them.`,
    '',
    '### Report time',
    '',
    `| report | source | groups | ${results.map((r) => `${thousands(r.rows / 1e6)} M rows: first after a restart | median (min–max), jit on | median, jit off`).join(' | ')} |`,
    `|---|---|---|${results.map(() => '---|---|---').join('|')}|`,
    ...REPORTS.map((q, i) => {
      const cells = results.map((r) => {
        const x = r.reports[i]!;
        return `${fmt(x.first, 0)} ms | **${fmt(median(x.jitOn), 0)} ms**${spread(x.jitOn, 0)} | ${fmt(median(x.jitOff), 0)} ms${spread(x.jitOff, 0)}`;
      });
      const last = results.at(-1)!.reports[i]!;
      return `| ${q.name} (${q.query.from.toISOString().slice(0, 10)} to ${q.query.to.toISOString().slice(0, 10)}) | ${last.source} | ${thousands(last.groups)} | ${cells.join(' | ')} |`;
    }),
    '',
    ...results.map((r) => `BRIN index on \`at\` as loaded (${thousands(r.rows / 1e6)} M rows), before any range was summarized: a day by hour took ${r.unsummarized.error ? `${fmt(r.unsummarized.ms / 1000, 1)} s and failed (${r.unsummarized.error})` : `**${fmt(r.unsummarized.ms / 1000, 2)} s**`} — every unsummarized range matches, so it reads the whole table. \`brin_summarize_new_values\` then summarized ${thousands(r.summarized)} ranges in ${fmt(r.summarizeSeconds, 1)} s; the figures above are after it.`),
    '',
    '"First after a restart": Postgres restarted, its shared buffers empty; the OS page cache is not emptied (no root-only cache drop on a shared machine), so it is a warm-OS figure, not a cold disk one.',
    '',
    '### Disk',
    '',
    `| table | ${results.map((r) => `${thousands(r.rows / 1e6)} M rows: rows | total (table + indexes) | MB per million request rows`).join(' | ')} |`,
    `|---|${results.map(() => '---|---|---').join('|')}|`,
    ...results[0]!.sizes.map((_, t) =>
      `| ${results[0]!.sizes[t]!.table} | ${results
        .map((r) => {
          const s = r.sizes[t]!;
          return `${thousands(s.rows)} | ${fmt(gb(s.total), 2)} GB (${fmt(gb(s.heap), 2)} + ${fmt(gb(s.indexes), 2)}) | ${fmt(mb(s.total) / (r.rows / 1e6), 1)}`;
        })
        .join(' | ')} |`,
    ),
    '',
    ...results.map((r) => {
      const req = r.sizes.find((s) => s.table === 'carbon_trace_requests')!;
      const daily = r.sizes.find((s) => s.table === 'carbon_trace_daily')!;
      return `- ${thousands(r.rows / 1e6)} M rows: **${fmt(mb(req.total) / (r.rows / 1e6), 0)} MB per million rows** (${Math.round(req.heap / r.rows)} bytes a row in the table, ${Math.round(req.indexes / r.rows)} in its indexes); the daily rollups ${thousands(daily.rows)} rows, ${fmt(mb(daily.total), 0)} MB (${fmt((100 * daily.rows) / r.rows, 2)} % of the rows' count). Loaded in ${fmt(r.loadSeconds / 60, 1)} min (${thousands(r.rows / r.loadSeconds)} rows/s, this SQL, not the shipper), rollups ${fmt(r.rollupSeconds / 60, 1)} min, vacuum/analyse ${fmt(r.analyzeSeconds, 0)} s; free disk ${fmt(gb(r.freeBefore), 1)} GB before, ${fmt(gb(r.freeAfterLoad), 1)} GB after loading (WAL included).`;
    }),
    '',
    'The rollups\' size is set by how many (day, instance, project, model, key, user, kind) a day has — here at most 5,000 users × their key\'s 3 models a day, about 15,000 — not by the rows: ten times the rows adds few rollup rows. A month\'s report reads its 30 days of them.',
    ...(notes.length ? ['', ...notes.map((n) => `**Note:** ${n}`)] : []),
    '',
    `Load average of the machine (1, 5, 15 min) when this section was written: ${loadAverage()} (other sessions' work on this shared machine shows here).`,
    '',
    '### EXPLAIN (ANALYZE, BUFFERS) at the largest size, jit on',
    '',
    ...results.at(-1)!.explains.flatMap((e) => [`${e.name}:`, '', '```', e.text, '```', '']),
  ];
  return { title: '3. Reports at scale, and disk per million rows', body: lines.join('\n') };
}

async function scale(quick: boolean, maxRowsArg: number | undefined): Promise<void> {
  const settings = [
    'shared_buffers=1GB', 'max_wal_size=8GB', 'checkpoint_timeout=30min', 'maintenance_work_mem=1GB', 'wal_buffers=64MB', 'autovacuum=off',
  ];
  const cluster = await startCluster(settings);
  try {
    const notes: string[] = [];
    const results: ScaleResult[] = [];
    const first = quick ? 200_000 : 10_000_000;
    log(`part 3: ${thousands(first)} rows, ${fmt(gb(freeBytes('/tmp')), 1)} GB free on /tmp`);
    const small = await scaleTo(cluster, first, quick);
    results.push(small);
    sections.set('scale', scaleSection(results, cluster, notes));
    writeResults(quick);

    // The larger size: what the disk and ~40 minutes allow.
    const free = freeBytes('/tmp');
    const perRow = small.sizes.reduce((a, s) => a + s.total, 0) / first;
    const secondsPerRow = (small.loadSeconds + small.rollupSeconds + small.analyzeSeconds) / first;
    const budgetSeconds = 40 * 60 - 5 * 60; // minus the reports, EXPLAIN and the drop
    const wanted = quick ? 1_000_000 : Math.min(100_000_000, maxRowsArg ?? Infinity);
    let target = 0;
    for (const candidate of [100_000_000, 50_000_000, 30_000_000, 1_000_000].filter((c) => c <= wanted && c > first)) {
      const needBytes = candidate * perRow + 10 * 1024 ** 3; // + WAL (max_wal_size 8 GB) and some room
      const needSeconds = candidate * secondsPerRow * 1.15; // a larger table loads somewhat slower (its indexes outgrow the cache)
      const fitsDisk = free >= 45 * 1024 ** 3 ? needBytes < free - 5 * 1024 ** 3 : candidate < 100_000_000 && needBytes < free - 5 * 1024 ** 3;
      const fitsTime = quick || needSeconds < budgetSeconds;
      log(`part 3: ${thousands(candidate)} rows would take about ${fmt(gb(needBytes), 1)} GB (${fmt(gb(free), 1)} GB free) and ${fmt(needSeconds / 60, 1)} min: ${fitsDisk && fitsTime ? 'going' : 'no'}`);
      if (fitsDisk && fitsTime) {
        target = candidate;
        break;
      }
      if (!fitsDisk) notes.push(`${thousands(candidate / 1e6)} M rows skipped: they would need about ${fmt(gb(needBytes), 0)} GB with the WAL, and ${fmt(gb(free), 0)} GB were free${free < 45 * 1024 ** 3 && candidate === 100_000_000 ? ' (under the 45 GB this benchmark wants before trying 100 M)' : ''}.`);
      else notes.push(`${thousands(candidate / 1e6)} M rows skipped: at the rate measured at ${thousands(first / 1e6)} M they would take about ${fmt(needSeconds / 60, 0)} min to load, over this benchmark's ~40 min.`);
    }
    if (target > first) {
      log(`part 3: ${thousands(target)} rows`);
      const large = await scaleTo(cluster, target, quick);
      results.push(large);
      if (target < 100_000_000 && !quick) {
        const req = (r: ScaleResult) => r.sizes.find((s) => s.table === 'carbon_trace_requests')!.total;
        notes.push(
          `Extrapolated to 100 M rows (not measured): about ${fmt(gb((req(large) / target) * 1e8), 0)} GB for carbon_trace_requests; the month reports read the rollups, whose size does not grow with the rows once every (user, model) shows up each day, so their time should stay near the ${thousands(target / 1e6)} M figure; a day by hour reads 1/60 of the rows, so about ${fmt(100_000_000 / target, 1)}× the ${thousands(target / 1e6)} M figure.`,
        );
      }
    }
    sections.set('scale', scaleSection(results, cluster, notes));
    writeResults(quick);
  } finally {
    await cluster.close();
  }
}

// ——— Main ———

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const rounds = Number(argValue('--rounds') ?? (quick ? 1 : 5));
  const only = new Set((argValue('--only') ?? 'insert,proxy,scale').split(','));
  const maxRows = argValue('--max-rows') ? Number(argValue('--max-rows')) : undefined;
  const install = findPostgres();
  if (!install) {
    console.log('PostgreSQL is not installed: sudo apt-get install -y postgresql');
    return;
  }
  machineLine = `${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, ${Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024 ** 2)} GB RAM, Node ${process.version}, PostgreSQL ${install.version}`;
  log(`${machineLine}; ${fmt(gb(freeBytes('/tmp')), 1)} GB free on /tmp`);
  try {
    if (only.has('insert') || only.has('proxy')) {
      // Postgres as shipped, for durability: the figures of a real deployment's writes.
      const cluster = await startCluster(['shared_buffers=512MB']);
      try {
        if (only.has('insert')) {
          await insertRate(cluster, quick, rounds);
          writeResults(quick);
        }
        if (only.has('proxy')) {
          await proxyRate(cluster, quick, rounds);
          writeResults(quick);
        }
      } finally {
        await cluster.close();
      }
    }
    if (only.has('scale')) await scale(quick, maxRows);
  } finally {
    stopAll();
  }
  for (const s of sections.values()) console.log(`\n## ${s.title}\n\n${s.body}`);
}

// ——— The proxy child (part 2): `node --import tsx bench/fleet.ts --child-proxy <upstream> <ledger> [db]` ———

if (process.argv[2] === '--child-proxy') {
  const { createCarbonProxy, createEnergyMeter } = await import('../src/server/index');
  const [upstream, ledger, db] = process.argv.slice(3) as [string, string, string | undefined];
  // The meter the CLI uses by default: what this machine can read, CodeCarbon's estimate for the rest.
  const meter = createEnergyMeter({ onWarning: false });
  const proxy = createCarbonProxy({
    upstream,
    meter,
    ledger,
    ...(db ? { db } : {}),
    instance: 'bench-proxy',
    keyIdSecret: 'f'.repeat(64),
    gridIntensity: { gCo2PerKwh: 56 },
    onWarning: (w) => console.error(`proxy: ${w}`),
  });
  proxy.server.listen(0, '127.0.0.1');
  await once(proxy.server, 'listening');
  console.log(`listening on http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`);
  process.stdin.resume();
  process.stdin.on('end', () => void proxy.close().then(() => meter.close()).then(() => process.exit(0)));
} else {
  await main();
  process.exit(0);
}
