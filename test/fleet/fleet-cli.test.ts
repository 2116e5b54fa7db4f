/**
 * The fleet's books as an operator runs them: the packed `carbon-trace` CLI, three proxies with
 * `--db` (from CARBON_TRACE_DB, a password in it) in front of one model server, under load. One
 * proxy is killed with kill -9 (its whole process group) and started again on its ledger; Postgres
 * is stopped for 10 s and started again. Then `carbon-trace report --db` is the sum of the three
 * `carbon-trace report --ledger`: no row lost or twice, and every response a client fully received
 * has its row. The report's formats, its refusals, and the password, which shows nowhere.
 */
import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import type { Report } from '../../src/server/fleet/report';
import { startFixtureServer, type FixtureServer } from '../fixtures/openai-compatible-server';
import { describeWithPostgres, startPostgres, testClient, testPool, type PostgresServer } from '../fixtures/postgres';
import { packedProject, runPacked, startPackedProxy, type RunningProxy } from '../proxy/packed-cli';
import { runProcess } from '../setup/processes';

/** One secret across the fleet (CARBON_TRACE_KEY_ID_SECRET): an API key has one id on every proxy. */
const KEY_ID_SECRET = 'fleet-cli-key-id-secret-6f1d2c3b4a5e';
const API_KEYS = ['sk-team-red-0001', 'sk-team-blue-0002', 'sk-team-green-0003', 'sk-team-gold-0004'];
const MODELS = ['llama-3.1-8b', 'mistral-7b', 'qwen-2.5-14b'];
const USERS = ['ana', 'bo', 'chen', 'dee', 'eli'];
const NAMES = ['a', 'b', 'c'] as const;
const GRID = { a: 56, b: 650, c: 40 } as const;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30);
const keyId = (key: string) => `key:${createHmac('sha256', KEY_ID_SECRET).update(key).digest('hex').slice(0, 12)}`;

let project: string;
let server: PostgresServer;
let upstream: FixtureServer;
let origin: string;
const dirs: string[] = [];
/** Every proxy started here, to be stopped whatever happens. */
const proxies: RunningProxy[] = [];
/** What every proxy printed (stdout lines and stderr), read once it has exited or at the end. */
const proxyOutput = (p: RunningProxy) => `${p.lines.join('\n')}\n${p.stderr()}`;
/** What the proxies showed over HTTP: /carbon/stats and /carbon, with the database up and down. */
const shown: string[] = [];
/** stdout and stderr of every `carbon-trace report` run. */
const reportOutput: string[] = [];

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-fleet-cli-'));
  dirs.push(dir);
  return dir;
};

/** The environment of a child: this one's, without anything of ours that would change what is tested. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of ['CARBON_TRACE_DB', 'CARBON_TRACE_ADMIN_TOKEN', 'CARBON_TRACE_KEY_ID_SECRET']) if (!(name in extra)) delete env[name];
  return env;
}

const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.parse(`${today()}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);

/** `carbon-trace report …` from the packed project; its output kept for the password's check. */
async function report(args: string[], env: NodeJS.ProcessEnv = childEnv()) {
  const result = await runPacked(project, ['report', ...args], { env });
  reportOutput.push(result.stdout, result.stderr);
  return result;
}

async function reportJson(args: string[]): Promise<Report> {
  const { code, stdout, stderr } = await report([...args, '--format', 'json']);
  expect(code, `report ${args.join(' ')}: ${stderr}`).toBe(0);
  return JSON.parse(stdout) as Report;
}

/** Rows of a ledger, counted by whole lines (no name sent here holds a newline); a torn last line is not one. */
const ledgerRowCount = (path: string) => (readFileSync(path, 'utf8').match(/\n/g)?.length ?? 0) - 1;

/** kill -9 to the proxy's whole process group; resolves once it is gone. */
async function kill9(p: RunningProxy): Promise<void> {
  const exited = p.child.exitCode === null && p.child.signalCode === null ? once(p.child, 'exit') : Promise.resolve();
  process.kill(-p.child.pid!, 'SIGKILL');
  await exited;
}

/** SIGTERM, as a service manager stops it: resolves with its exit code, or throws when it takes too long. */
async function terminate(child: ChildProcess, timeoutMs = 20_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  process.kill(child.pid!, 'SIGTERM');
  const timer = sleep(timeoutMs).then(() => {
    throw new Error(`proxy ${child.pid} did not exit within ${timeoutMs / 1000} s of SIGTERM`);
  });
  const [code] = await Promise.race([exited, timer]);
  return code;
}

type Stats = { requests: number; instance: string; fleet?: { database: string; connected: boolean; waitingBytes: number; sentRows: number; error?: string } };
/** `/carbon/stats` of a running proxy; a proxy that died says how, with the end of its stderr. */
async function stats(p: RunningProxy): Promise<Stats> {
  let text: string;
  try {
    text = await (await fetch(`${p.url}/carbon/stats`)).text();
  } catch (error) {
    if (p.child.exitCode === null && p.child.signalCode === null) await sleep(200);
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      const tail = p.stderr().trim().split('\n').slice(-20).join('\n').split(server.password).join('<password>');
      throw new Error(`the proxy at ${p.url} exited (${p.child.exitCode ?? p.child.signalCode}); its stderr ended:\n${tail}`);
    }
    throw error;
  }
  shown.push(text);
  return JSON.parse(text) as Stats;
}

/** One proxy of the fleet: its name, ledger, the proxy now serving (none while it is down), and what its clients fully received. */
type Member = { name: (typeof NAMES)[number]; ledger: string; proxy: RunningProxy | undefined; received: number; failed: number; sent: number };

function proxyArgs(m: Member): string[] {
  return ['--upstream', origin, '--port', '0', '--meter', 'estimate', '--grid-intensity', String(GRID[m.name]), '--ledger', m.ledger, '--instance', m.name, ...(m.name === 'c' ? ['--retention', '90d'] : [])];
}

async function startMember(m: Member): Promise<RunningProxy> {
  const p = await startPackedProxy(project, proxyArgs(m), { env: childEnv({ CARBON_TRACE_DB: server.url('fleet'), CARBON_TRACE_KEY_ID_SECRET: KEY_ID_SECRET }) });
  proxies.push(p);
  // Its fifth line, where the rows go, may come after the four startPackedProxy waits for.
  for (let i = 0; i < 100 && !p.lines.some((l) => l.startsWith('fleet: ')); i++) await sleep(20);
  m.proxy = p;
  return p;
}

/**
 * One chat completion through a proxy: true when the client received all of it — status 200 and a
 * complete body (the JSON answer, or a stream up to `[DONE]`).
 */
async function chat(url: string, i: number): Promise<boolean> {
  const stream = i % 3 === 0;
  try {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEYS[i % API_KEYS.length]}` },
      body: JSON.stringify({ model: MODELS[i % MODELS.length], user: USERS[i % USERS.length], stream, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await response.text();
    if (response.status !== 200) return false;
    if (stream) return text.includes('data: [DONE]') && text.includes('"finish_reason":"stop"');
    const body = JSON.parse(text) as { choices?: Array<{ message?: { content?: string } }> };
    return body.choices?.[0]?.message?.content === 'ok';
  } catch {
    // The proxy died under this request (kill -9): not received.
    return false;
  }
}

/** Clients on every member, `workers` each, a request every `pauseMs` or so each, until stopped. */
function startLoad(members: Member[], workers: number, pauseMs: number) {
  let running = true;
  let counter = 0;
  const loops = members.flatMap((m) =>
    Array.from({ length: workers }, async () => {
      while (running) {
        const proxy = m.proxy;
        if (!proxy) {
          await sleep(20);
          continue;
        }
        m.sent++;
        if (await chat(proxy.url, counter++)) m.received++;
        else m.failed++;
        await sleep(pauseMs);
      }
    }),
  );
  return {
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** A burst: `n` concurrent requests to each member. */
async function burst(members: Member[], n: number, offset: number): Promise<void> {
  await Promise.all(
    members.flatMap((m) =>
      Array.from({ length: n }, async (_, i) => {
        m.sent++;
        if (await chat(m.proxy!.url, offset + i)) m.received++;
        else m.failed++;
      }),
    ),
  );
}

/** Polls `check` until it holds, or fails with what it last saw. */
async function until<T>(what: string, timeoutMs: number, read: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (check(last)) return last;
    await sleep(200);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s; last seen ${JSON.stringify(last)}`);
}

function expectSameFigures(label: string, fleet: Report['totals'], ledgers: Array<Report['totals']>, withIdle: boolean): void {
  const sum = (f: (t: Report['totals']) => number) => ledgers.reduce((s, t) => s + f(t), 0);
  expect(fleet.requests, `${label}: requests`).toBe(sum((t) => t.requests));
  expect(fleet.requestsWithEnergy, `${label}: requestsWithEnergy`).toBe(sum((t) => t.requestsWithEnergy));
  expect(fleet.promptTokens, `${label}: promptTokens`).toBe(sum((t) => t.promptTokens));
  expect(fleet.completionTokens, `${label}: completionTokens`).toBe(sum((t) => t.completionTokens));
  for (const key of ['energyKwh', 'cpuEnergyKwh', 'ramEnergyKwh', 'emissionsKgco2eq'] as const) {
    expect(relative(fleet[key], sum((t) => t[key])), `${label}: ${key} ${fleet[key]} vs ${sum((t) => t[key])}`).toBeLessThan(1e-9);
  }
  if (!withIdle) return;
  for (const key of ['idleEnergyKwh', 'idleEmissionsKgco2eq', 'unattributedEnergyKwh', 'unattributedEmissionsKgco2eq'] as const) {
    expect(relative(fleet.idle[key], sum((t) => t.idle[key])), `${label}: idle.${key} ${fleet.idle[key]} vs ${sum((t) => t.idle[key])}`).toBeLessThan(1e-9);
  }
}

describeWithPostgres(import.meta.filename, 'the fleet with the packed CLI: proxies --db and carbon-trace report', () => {
  beforeAll(async () => {
    [server, upstream] = await Promise.all([startPostgres({ databases: ['fleet', 'empty'] }), startFixtureServer(() => ({ content: 'ok', latencyMs: 3 }))]);
    origin = new URL(upstream.baseURL).origin;
    project = packedProject('fleet-cli');
  }, 180_000);

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop().catch(() => {})));
    await upstream?.close();
    await server?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const members: Member[] = [];

  /** On a failure: how each proxy ended, and what it said. */
  const diagnose = () =>
    onTestFailed(() => {
      for (const p of proxies) console.error(`proxy pid ${p.child.pid} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}):\n${proxyOutput(p).split(server.password).join('<password>')}`);
    });

  it('three proxies under load, one killed with kill -9 and started again, Postgres stopped 10 s: the fleet\'s report is the sum of the three ledgers\' reports, every received response has its row', async () => {
    diagnose();
    const dir = tempDir();
    for (const name of NAMES) members.push({ name, ledger: join(dir, `${name}.csv`), proxy: undefined, received: 0, failed: 0, sent: 0 });
    await Promise.all(members.map(startMember));
    for (const m of members) {
      expect(m.proxy!.lines.join('\n')).toContain(`as instance ${m.name}`);
      // The fleet's secret is given: no warning that key ids split across proxies.
      expect(m.proxy!.stderr()).not.toContain('key-id secret');
    }
    const [a, b, c] = members as [Member, Member, Member];

    await burst(members, 30, 0);
    const load = startLoad(members, 2, 100);
    try {
      await sleep(1_500);

      // kill -9 of b's whole group mid-load: every response b's clients fully received is in its ledger.
      const killed = b.proxy!;
      b.proxy = undefined;
      await kill9(killed);
      const receivedBeforeKill = b.received;
      expect(receivedBeforeKill).toBeGreaterThan(30);
      expect(ledgerRowCount(b.ledger)).toBeGreaterThanOrEqual(receivedBeforeKill);
      const othersBefore = a.received + c.received;
      await sleep(1_000);
      expect(a.received + c.received, 'a and c kept answering while b was down').toBeGreaterThan(othersBefore);
      // Started again on the same ledger (and a new port).
      const again = await startMember(b);
      expect(again.lines.join('\n')).toContain('as instance b');
      await sleep(1_500);

      // The stop lands while every proxy is mid-write, as it does under load: a lock holds their
      // INSERTs (a slow database) until Postgres goes. Then it stays away for 10 s: no request fails
      // or waits, the rows wait in the ledgers.
      const locker = testClient(server.url('fleet'));
      locker.on('error', () => {});
      await locker.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE carbon_trace_shipped IN ACCESS EXCLUSIVE MODE');
      const watcher = testClient(server.url('fleet'));
      watcher.on('error', () => {});
      await watcher.connect();
      try {
        await until('each proxy waits on the lock, mid-write', 10_000, async () => Number((await watcher.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'carbon-trace' AND wait_event_type = 'Lock'")).rows[0]!.n), (n) => n >= 3);
      } finally {
        await watcher.end();
      }
      await server.stop();
      await locker.end().catch(() => {});
      const downAt = Date.now();
      const receivedAtStop = members.map((m) => m.received);
      const failedAtStop = members.map((m) => m.failed);
      try {
        for (const m of members) {
          const s = await until(`proxy ${m.name} sees the database down`, 8_000, () => stats(m.proxy!), (x) => x.fleet?.connected === false && x.fleet.error !== undefined);
          expect(s.fleet!.database).toContain(':***@');
          shown.push(await (await fetch(`${m.proxy!.url}/carbon`)).text());
        }
        // A report while the database is down: refused in one line, with no password.
        const down = await report(['--db', server.url('fleet'), '--from', today(), '--format', 'json']);
        expect(down.code).not.toBe(0);
        expect(down.stdout).toBe('');
        expect(down.stderr.trim().split('\n')).toHaveLength(1);
        expect(down.stderr).toMatch(/^carbon-trace: postgres:\/\/carbon:\*\*\*@127\.0\.0\.1:\d+\/fleet: /);
        await sleep(Math.max(0, 10_000 - (Date.now() - downAt)));
      } finally {
        await server.start();
      }
      members.forEach((m, i) => {
        expect(m.received - receivedAtStop[i]!, `proxy ${m.name} answered while Postgres was down`).toBeGreaterThan(20);
        expect(m.failed - failedAtStop[i]!, `proxy ${m.name}: no request failed while Postgres was down`).toBe(0);
      });
      await sleep(2_000);
    } finally {
      await load.stop();
    }
    const total = members.reduce((s, m) => s + m.sent, 0);
    expect(total).toBeGreaterThan(300);

    // Every proxy has sent its whole ledger: waitingBytes 0 and connected, twice a pass apart.
    for (let round = 0; round < 2; round++) {
      for (const m of members) await until(`proxy ${m.name} sent its ledger`, 45_000, () => stats(m.proxy!), (s) => s.fleet?.connected === true && s.fleet.waitingBytes === 0);
      if (round === 0) await sleep(1_200);
    }

    const pool = testPool(server.url('fleet'));
    pool.on('error', () => {});
    const compare = async (withIdle: boolean) => {
      const from = today();
      const to = tomorrow();
      const [fleet, ...own] = await Promise.all([
        reportJson(['--db', server.url('fleet'), '--from', from, '--to', to, '--by', 'instance']),
        ...members.map((m) => reportJson(['--ledger', m.ledger, '--instance', m.name, '--from', from, '--to', to])),
      ]);
      expect(fleet.source).toBe('daily rollups');
      expect(fleet.rows.map((r) => r.group.instance).sort()).toEqual([...NAMES]);
      const counted = await pool.query<{ instance: string; n: string; runs: string }>('SELECT instance, count(*) AS n, count(DISTINCT run_id) AS runs FROM carbon_trace_requests GROUP BY instance ORDER BY instance');
      const inDb = Object.fromEntries(counted.rows.map((r) => [r.instance, { rows: Number(r.n), runs: Number(r.runs) }]));
      members.forEach((m, i) => {
        const mine = own[i]!;
        const row = fleet.rows.find((r) => r.group.instance === m.name)!;
        // Each instance's rows in the database are its ledger's rows: none lost, none twice.
        expect(mine.totals.requests, `ledger ${m.name}: its report counts its rows`).toBe(ledgerRowCount(m.ledger));
        expect(inDb[m.name]!.rows, `instance ${m.name}: rows in the database`).toBe(ledgerRowCount(m.ledger));
        expect(row.requests, `instance ${m.name}: the fleet's report`).toBe(mine.totals.requests);
        expect(relative(row.energyKwh, mine.totals.energyKwh)).toBeLessThan(1e-9);
        expect(relative(row.emissionsKgco2eq, mine.totals.emissionsKgco2eq)).toBeLessThan(1e-9);
        expect(mine.totals.energyKwh).toBeGreaterThan(0);
        // Every response its clients fully received has its row.
        expect(mine.totals.requests, `instance ${m.name}: ${m.received} responses received`).toBeGreaterThanOrEqual(m.received);
      });
      // b's two runs (before and after kill -9) are both in the database.
      expect(inDb.b!.runs).toBe(2);
      const all = await pool.query<{ n: string }>('SELECT count(*) AS n FROM carbon_trace_requests');
      expect(Number(all.rows[0]!.n)).toBe(fleet.totals.requests);
      expectSameFigures(withIdle ? 'after the proxies stopped' : 'live', fleet.totals, own.map((r) => r.totals), withIdle);
      return fleet;
    };
    try {
      // Live: the requests' figures (the idle log gets a line a minute, and at each stop).
      const live = await compare(false);
      expect(live.totals.requests).toBeGreaterThanOrEqual(members.reduce((s, m) => s + m.received, 0));

      // Each proxy stopped as a service manager stops it: its last idle line goes to the database too.
      const codes = await Promise.all(members.map((m) => terminate(m.proxy!.child)));
      expect(codes).toEqual([0, 0, 0]);
      const stopped = await compare(true);
      expect(stopped.totals.requests).toBe(live.totals.requests);
      expect(stopped.totals.idle.idleEnergyKwh).toBeGreaterThan(0);
    } finally {
      await pool.end();
    }

    // Down and back, said once each way by each proxy that lived through it.
    for (const m of members) {
      const err = m.proxy!.stderr();
      expect(err.split('\n').filter((l) => l.includes('rows wait in the ledger')), `proxy ${m.name}: ${err}`).toHaveLength(1);
      expect(err.split('\n').filter((l) => l.includes('answering again')), `proxy ${m.name}: ${err}`).toHaveLength(1);
    }
  }, 150_000);

  it('key-id: the id the books give a key, read from standard input, is the one in the report; no secret, no id', async () => {
    const cli = join(project, 'node_modules', '.bin', 'carbon-trace');
    const run = (env: Record<string, string>) => runProcess('sh', ['-c', 'printf "%s\\n%s\\n" "$K1" "Bearer $K2" | "$CLI" key-id'], { env: { ...childEnv(env), CLI: cli, K1: 'sk-team-alpha', K2: 'sk-team-beta' }, timeoutMs: 30_000 });
    const ok = await run({ CARBON_TRACE_KEY_ID_SECRET: KEY_ID_SECRET });
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim().split('\n')).toEqual([keyId('sk-team-alpha'), keyId('sk-team-beta')]);
    const none = await run({});
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^carbon-trace: key-id needs CARBON_TRACE_KEY_ID_SECRET/);
  });

  it('report formats: a table with its header and totals, a CSV file whose requests add up, groups by api_key,model that add up, and its refusals', async () => {
    const db = server.url('fleet');
    const period = ['--from', today(), '--to', tomorrow()];
    const csvPath = join(tempDir(), 'report.csv');
    // Run side by side: each is a node process of its own.
    const [json, table, csv, grouped, bad, both, empty] = await Promise.all([
      reportJson(['--db', db, ...period]),
      report(['--db', db, ...period, '--format', 'table']),
      report(['--db', db, ...period, '--by', 'instance', '--format', 'csv', '--output', csvPath]),
      reportJson(['--db', db, ...period, '--by', 'api_key,model']),
      report(['--db', db, '--from', 'last-tuesday']),
      report(['--db', db, '--ledger', members[0]?.ledger ?? join(tempDir(), 'x.csv'), '--from', today()]),
      report(['--db', server.url('empty'), '--from', today()]),
    ]);
    expect(json.totals.requests).toBeGreaterThan(0);

    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^carbon-trace report \S+ → \S+ \(from daily rollups\)$/);
    expect(lines).toContainEqual(expect.stringMatching(/^\s*requests\s+energy\s+CO2eq\s+measured\s+tokens in\s+tokens out$/));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^requests: ${json.totals.requests} \\(${json.totals.requestsWithEnergy} with an energy figure`)));

    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout).toBe('');
    const [header, ...records] = readFileSync(csvPath, 'utf8').trimEnd().split('\n');
    const columns = header!.split(',');
    expect(columns.slice(0, 3)).toEqual(['part', 'instance', 'requests']);
    const cells = records.map((r) => r.split(','));
    const requestRows = cells.filter((r) => r[0] === 'requests');
    expect(requestRows.map((r) => r[1]).sort()).toEqual([...NAMES]);
    expect(requestRows.reduce((s, r) => s + Number(r[columns.indexOf('requests')]), 0)).toBe(json.totals.requests);
    const energy = requestRows.reduce((s, r) => s + Number(r[columns.indexOf('energy_kwh')]), 0);
    expect(relative(energy, json.totals.energyKwh)).toBeLessThan(1e-9);

    expect(grouped.by).toEqual(['api_key', 'model']);
    expect(grouped.rows.reduce((s, r) => s + r.requests, 0)).toBe(json.totals.requests);
    expect(relative(grouped.rows.reduce((s, r) => s + r.energyKwh, 0), json.totals.energyKwh)).toBeLessThan(1e-9);
    expect(relative(grouped.rows.reduce((s, r) => s + r.emissionsKgco2eq, 0), json.totals.emissionsKgco2eq)).toBeLessThan(1e-9);
    expect(grouped.totals.requests).toBe(json.totals.requests);
    // One id per API key across the three proxies (the fleet's secret), and never the key itself.
    expect(new Set(grouped.rows.map((r) => r.group.api_key))).toEqual(new Set(API_KEYS.map(keyId)));
    expect(new Set(grouped.rows.map((r) => r.group.model))).toEqual(new Set(MODELS));

    // A bad --from: one line on stderr, non-zero.
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^carbon-trace: --from: "last-tuesday" is not a date/);

    // --db and --ledger together: refused.
    expect(both.code).not.toBe(0);
    expect(both.stdout).toBe('');
    expect(both.stderr.trim().split('\n')).toHaveLength(1);
    expect(both.stderr).toMatch(/^carbon-trace: report reads one place/);

    // A database no proxy wrote to: says so.
    expect(empty.code).not.toBe(0);
    expect(empty.stdout).toBe('');
    expect(empty.stderr.trim().split('\n')).toHaveLength(1);
    expect(empty.stderr).toMatch(/has no carbon-trace tables/);
    expect(empty.stderr).not.toContain(server.password);
  }, 60_000);

  it('the password shows nowhere: the proxies\' output, /carbon/stats, /carbon, every report\'s output — also with Postgres down', async () => {
    diagnose();
    const secret = server.password;
    // A proxy of its own (the URL from --db this time), and a report, while Postgres is down.
    const proxy = await startPackedProxy(project, ['--upstream', origin, '--port', '0', '--meter', 'estimate', '--ledger', join(tempDir(), 'd.csv'), '--instance', 'd', '--db', server.url('fleet')], { env: childEnv({ CARBON_TRACE_KEY_ID_SECRET: KEY_ID_SECRET }) });
    proxies.push(proxy);
    await until('proxy d connected', 10_000, () => stats(proxy), (s) => s.fleet?.connected === true);
    shown.push(await (await fetch(`${proxy.url}/carbon`)).text());
    await server.stop();
    try {
      const s = await until('proxy d sees the database down', 10_000, () => stats(proxy), (x) => x.fleet?.connected === false && x.fleet.error !== undefined);
      expect(s.fleet!.database).toContain('carbon:***@');
      shown.push(await (await fetch(`${proxy.url}/carbon`)).text());
      // A period's report through the proxy while its database is down.
      // This proxy's own ledger answers, said as such: not the fleet's books.
      const period = await fetch(`${proxy.url}/carbon/stats?from=${today()}&by=instance`);
      const text = await period.text();
      shown.push(text);
      expect(period.status).toBe(200);
      expect((JSON.parse(text) as { source: string; note: string }).source).toMatch(/^ledger/);
      expect((JSON.parse(text) as { note: string }).note).toMatch(/^fleet database postgres:\/\/carbon:\*\*\*@.*: this proxy's ledger only, not the fleet's$/);
      // The command, with the URL from CARBON_TRACE_DB.
      const down = await report(['--from', today()], childEnv({ CARBON_TRACE_DB: server.url('fleet') }));
      expect(down.code).not.toBe(0);
      expect(down.stderr.trim().split('\n')).toHaveLength(1);
      expect(down.stderr).toContain('carbon:***@');
    } finally {
      await server.start();
    }
    expect(await terminate(proxy.child)).toBe(0);
    // Every proxy of this file: what it printed, from its start to its end (kill -9 or not).
    for (const p of proxies) {
      const output = proxyOutput(p);
      expect(output).toContain('carbon:***@');
      expect(output).not.toContain(secret);
      expect(output).not.toContain(encodeURIComponent(secret));
    }
    for (const text of shown) expect(text).not.toContain(secret);
    for (const text of reportOutput) expect(text).not.toContain(secret);
  }, 40_000);

  it('proxy --db without --ledger, and --retention without --db: refused in one line', async () => {
    const secret = server.password;
    const cases: Array<{ args: string[]; env: NodeJS.ProcessEnv; says: RegExp }> = [
      { args: ['--db', server.url('fleet')], env: childEnv(), says: /^carbon-trace: --db needs --ledger FILE/ },
      { args: [], env: childEnv({ CARBON_TRACE_DB: server.url('fleet') }), says: /^carbon-trace: CARBON_TRACE_DB \(set in the environment\) needs --ledger FILE/ },
      { args: ['--ledger', join(tempDir(), 'l.csv'), '--retention', '90d'], env: childEnv(), says: /^carbon-trace: --retention applies to the database's rows: give --db too/ },
    ];
    const results = await Promise.all(cases.map(({ args, env }) => runPacked(project, ['proxy', '--upstream', origin, '--port', '0', '--meter', 'estimate', ...args], { env })));
    for (const [i, { says }] of cases.entries()) {
      const { code, stdout, stderr } = results[i]!;
      expect(code, stderr).not.toBe(0);
      expect(stderr.trim().split('\n'), stderr).toHaveLength(1);
      expect(stderr).toMatch(says);
      expect(`${stdout}${stderr}`).not.toContain(secret);
    }
  }, 30_000);
});
