/**
 * What an adversarial review of the fleet's books found, each reproduced against a real Postgres:
 * a database that dies while a batch is in flight (the proxy must not crash), a name no Postgres
 * key or text can hold (it must not stop the rows after it), a hand-edited row, a ledger sent again
 * after --retention or after a line was deleted (the rollups must not double), a close that cannot
 * wait for a stuck database, and passwords quoted back in odd spellings.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ledgerLine, openLedger, type Ledger, type LedgerEntry } from '../../src/server/books/ledger';
import { redactDatabaseUrl, scrubbed } from '../../src/server/fleet/connect';
import { parseReportQuery, reportFromDatabase } from '../../src/server/fleet/report';
import { createFleetShipper, type FleetShipper } from '../../src/server/fleet/shipper';
import { describeWithPostgres, startPostgres, testClient, testPool, type PostgresServer } from '../fixtures/postgres';

let server: PostgresServer;
const dirs: string[] = [];
const shippers: FleetShipper[] = [];
let databases = 0;

const entry = (model: string, joules = 3600, at = new Date().toISOString()): LedgerEntry => ({
  at,
  model,
  user: 'u',
  status: 200,
  streamed: false,
  energy: { joules: { gpu: joules }, totalJoules: joules, durationSeconds: 1, measured: true, warnings: [] },
  grid: { gCo2PerKwh: 100, source: 'given' },
  usage: { promptTokens: 1, completionTokens: 2 },
});

async function freshDatabase(): Promise<string> {
  const name = `adv${++databases}`;
  const admin = testClient(server.url('postgres'));
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return server.url(name);
}

function ledgerIn(): { path: string; ledger: Ledger } {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-adv-'));
  dirs.push(dir);
  const path = join(dir, 'ledger.csv');
  return { path, ledger: openLedger({ path }) };
}

function ship(db: string, ledger: Ledger, warnings: string[], more: { id?: string; retentionDays?: number; name?: string; keyIdCheck?: string } = {}): FleetShipper {
  const shipper = createFleetShipper({
    db,
    instance: { name: more.name ?? 'box', id: more.id ?? '00000000-0000-4000-8000-00000000000a', host: 'h' },
    ...(more.keyIdCheck !== undefined ? { keyIdCheck: more.keyIdCheck } : {}),
    files: () => ({ ledger, idleLogPath: undefined }),
    warn: (_key, message) => warnings.push(message),
    intervalMs: 60_000,
    ...(more.retentionDays !== undefined ? { retentionDays: more.retentionDays } : {}),
  });
  shippers.push(shipper);
  return shipper;
}

async function count(db: string, sql: string): Promise<number> {
  const pool = testPool(db);
  try {
    return Number((await pool.query<{ n: string }>(sql)).rows[0]!.n);
  } finally {
    await pool.end();
  }
}

const wholeDay = (at: Date) => {
  const day = at.toISOString().slice(0, 10);
  return parseReportQuery({ from: day, to: new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10) });
};

describeWithPostgres(import.meta.filename, 'the fleet under attack', () => {
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    for (const s of shippers) await s.close(500).catch(() => {});
    await server?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('Postgres killed while a batch waits in it: no crash (no unheard error event), and the rows go once it is back', async () => {
    const db = await freshDatabase();
    const { ledger } = ledgerIn();
    const warnings: string[] = [];
    const shipper = ship(db, ledger, warnings);
    ledger.append(entry('first'));
    expect(await shipper.flush()).toBe(true);
    // A batch that waits on a lock, on a connection the shipper holds, when the server dies.
    const locker = testClient(db);
    locker.on('error', () => {});
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE carbon_trace_shipped IN ACCESS EXCLUSIVE MODE');
    for (let i = 0; i < 5; i++) ledger.append(entry(`during ${i}`));
    const flushing = shipper.flush();
    for (let i = 0; i < 200; i++) {
      const waiting = await locker.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'carbon-trace'");
      if (Number(waiting.rows[0]!.n) > 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await server.kill9();
    expect(await flushing).toBe(false);
    await server.start();
    let done = false;
    for (let i = 0; i < 60 && !done; i++) {
      done = await shipper.flush();
      if (!done) await new Promise((r) => setTimeout(r, 250));
    }
    expect(done).toBe(true);
    expect(await count(db, 'SELECT count(*) AS n FROM carbon_trace_requests')).toBe(6);
    expect(await count(db, 'SELECT sum(requests) AS n FROM carbon_trace_daily')).toBe(6);
    expect(warnings.join('\n')).not.toContain(server.password);
  }, 60_000);

  it('names Postgres cannot key or hold (a NUL, 16 KiB of random bytes) and hand-edited rows never stop the rows after them', async () => {
    const db = await freshDatabase();
    const { path, ledger } = ledgerIn();
    const warnings: string[] = [];
    const random = randomBytes(12 * 1024).toString('base64');
    ledger.append(entry('evil\u0000name'));
    ledger.append({ ...entry(random), user: random });
    ledger.append(entry('plain before'));
    // A hand-edited ledger: a status no HTTP has, a token count that is not whole, a run id that is not one.
    const edited = ledgerLine({ ...entry('edited'), status: 1e10 }, '00000000-0000-4000-8000-000000000001', 'p', ledger.columns);
    const fractional = ledgerLine({ ...entry('fractional'), usage: { promptTokens: 1.5 } }, '00000000-0000-4000-8000-000000000001', 'p', ledger.columns);
    const noRun = ledgerLine(entry('no run'), 'not-a-run', 'p', ledger.columns);
    ledger.close();
    appendFileSync(path, edited + fractional + noRun);
    const again = openLedger({ path, onWarning: () => {} });
    again.append(entry('plain after'));
    const shipper = ship(db, again, warnings);
    expect(await shipper.flush()).toBe(true);
    const pool = testPool(db);
    try {
      const models = (await pool.query<{ model: string }>('SELECT model FROM carbon_trace_requests ORDER BY ledger_offset')).rows.map((r) => r.model);
      expect(models).toEqual(['evil\uFFFDname', random, 'plain before', 'plain after']);
      expect(Number((await pool.query<{ n: string }>('SELECT sum(requests) AS n FROM carbon_trace_daily')).rows[0]!.n)).toBe(4);
    } finally {
      await pool.end();
    }
    expect(shipper.state().setAsideRows).toBe(3);
    expect(warnings.filter((w) => w.includes('cannot be stored'))).toHaveLength(3);
    expect(warnings.join('\n')).toMatch(/status 10000000000 is not an HTTP status/);
    again.close();
  }, 60_000);

  it('a ledger sent again — after --retention removed its rows, or with a line deleted — adds nothing twice', async () => {
    const db = await freshDatabase();
    const { path, ledger } = ledgerIn();
    const warnings: string[] = [];
    const old = new Date(Date.now() - 40 * 86_400_000);
    for (let i = 0; i < 5; i++) ledger.append(entry(`old ${i}`, 3600, old.toISOString()));
    for (let i = 0; i < 5; i++) ledger.append(entry(`new ${i}`));
    const first = ship(db, ledger, warnings, { retentionDays: 30 });
    expect(await first.flush()).toBe(true);
    await first.close();
    const reader = testPool(db);
    try {
      expect((await reportFromDatabase(reader, wholeDay(old))).totals.requests).toBe(5);
    } finally {
      await reader.end();
    }
    expect(await count(db, 'SELECT count(*) AS n FROM carbon_trace_requests')).toBe(5);

    // The same ledger under another instance id (a copied folder, a cloned VM): sent from its start.
    const second = ship(db, ledger, warnings, { id: '00000000-0000-4000-8000-00000000000b', retentionDays: 30 });
    expect(await second.flush()).toBe(true);
    await second.close();
    const pool = testPool(db);
    try {
      expect((await reportFromDatabase(pool, wholeDay(old))).totals.requests).toBe(5);
      expect((await reportFromDatabase(pool, wholeDay(new Date()))).totals.requests).toBe(5);
    } finally {
      await pool.end();
    }
    ledger.close();

    // A line deleted by hand: every later row moves to a new offset; none is stored again.
    const text = readFileSync(path, 'utf8');
    const lines = text.split('\n');
    writeFileSync(path, [...lines.slice(0, 3), ...lines.slice(4)].join('\n'));
    const edited = openLedger({ path, onWarning: () => {} });
    edited.append(entry('after the edit'));
    const third = ship(db, edited, warnings);
    expect(await third.flush()).toBe(true);
    await third.close();
    edited.close();
    expect(await count(db, 'SELECT count(*) AS n FROM carbon_trace_requests')).toBe(6);
    expect(await count(db, 'SELECT sum(requests) AS n FROM carbon_trace_daily')).toBe(11);
    expect(warnings.filter((w) => w.includes('is not the file sent before'))).not.toHaveLength(0);
  }, 60_000);

  it('a proxy whose key-id secret is not the fleet\'s, or that takes a live proxy\'s name, is told so', async () => {
    const db = await freshDatabase();
    const a = ledgerIn();
    const b = ledgerIn();
    const c = ledgerIn();
    const first: string[] = [];
    const same: string[] = [];
    const other: string[] = [];
    expect(await ship(db, a.ledger, first, { name: 'gpu-a', keyIdCheck: 'key:111111111111' }).flush()).toBe(true);
    expect(await ship(db, b.ledger, same, { name: 'gpu-b', id: '00000000-0000-4000-8000-00000000000b', keyIdCheck: 'key:111111111111' }).flush()).toBe(true);
    expect(await ship(db, c.ledger, other, { name: 'gpu-a', id: '00000000-0000-4000-8000-00000000000c', keyIdCheck: 'key:222222222222' }).flush()).toBe(true);
    expect(first).toEqual([]);
    expect(same).toEqual([]);
    expect(other.some((w) => /this proxy's key-id secret is not the fleet's \(the one gpu-a brought first\)/.test(w))).toBe(true);
    expect(other.some((w) => /another proxy \(on h, with another ledger\) also calls itself gpu-a/.test(w))).toBe(true);
    for (const l of [a, b, c]) l.ledger.close();
  }, 30_000);

  it('close() ends within its grace even while the database holds the batch on a lock', async () => {
    const db = await freshDatabase();
    const { ledger } = ledgerIn();
    const shipper = ship(db, ledger, []);
    ledger.append(entry('first'));
    expect(await shipper.flush()).toBe(true);
    const locker = testClient(db);
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE carbon_trace_shipped IN ACCESS EXCLUSIVE MODE');
    ledger.append(entry('stuck'));
    void shipper.flush();
    // The lock is held until close() has returned: a close that waited for it would never return.
    let closed = false;
    await shipper.close(300).then(() => (closed = true));
    expect(closed).toBe(true);
    await locker.query('ROLLBACK');
    await locker.end();
    ledger.close();
  }, 30_000);
});

describe('the password, however a message spells it', () => {
  // Each URL, and its password as a driver or a person might quote it.
  const cases: Array<[string, string[]]> = [
    ['postgres://carbon:s3cr%ZZet@db:5432/books', ['s3cr%ZZet']],
    ['postgres://carbon@db:5432/books?password=p%40ss%2Bword', ['p%40ss%2Bword', 'p@ss+word']],
    ['postgres://carbon:hunter2@db:5432/books?sslmode=require&password=hunter22', ['hunter2', 'hunter22']],
    ['postgres//carbon:unparsable@db/books', ['unparsable']],
    ['postgres://carbon:p%40ss@db/books', ['p%40ss', 'p@ss']],
  ];
  it('is masked in every spelling: as written, decoded, in a query, in a URL that does not parse, and one password that begins another', () => {
    for (const [url, secrets] of cases) {
      const message = `could not connect with ${url}: password authentication failed (${secrets.join(', ')}) ${decodeURIComponentSafe(url)}`;
      const out = scrubbed(new Error(message), url);
      for (const secret of secrets) expect(out, `${url} → ${out}`).not.toContain(secret);
      for (const secret of secrets) expect(redactDatabaseUrl(url)).not.toContain(secret);
    }
  });
});

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
