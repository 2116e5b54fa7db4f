/**
 * Sends a proxy's ledger rows and idle-log lines to the fleet's Postgres, from the files, in the
 * background: the ledger stays the write-ahead record, so no request ever waits for the database,
 * and rows written while it is down or slow are sent once it is back. Each batch and how far the
 * file has been sent commit together, and each row's key (its run and where it ends in the file)
 * makes a batch sent again land once: exactly once in the table, whatever the retries.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type pg from 'pg';
import type { Pool, PoolClient } from 'pg';
import { IDLE_LOG_COLUMNS, parseIdleLine } from '../books/idle-log';
import { entryOf, type Ledger } from '../books/ledger';
import { fingerprintOf, parseCsvLine, readRecords } from '../books/ledger-read';
import { createFleetPool, redactDatabaseUrl, scrubbed } from './connect';
import { insertIdle, insertRequests, unstorable, type Instance, type ShippedIdle, type ShippedRow } from './rows';
import { migrate } from './schema';

/**
 * Options of {@link createFleetShipper}.
 *
 * @example
 * ```ts
 * createFleetShipper({ db: process.env.CARBON_TRACE_DB!, instance, files: () => books.files(), warn });
 * ```
 */
export type FleetShipperOptions = {
  /** `postgres://user:password@host:port/db`: its password is shown nowhere. */
  db: string;
  instance: Instance;
  /** The ledger and its idle log, as the books keep them. */
  files: () => { ledger: Ledger; idleLogPath: string | undefined } | undefined;
  warn: (key: string, message: string) => void;
  /** Rows per INSERT. Default 2000. */
  batchRows?: number;
  /** How often the files are looked at, ms. Default 1000. */
  intervalMs?: number;
  /** Rows older than this many days are deleted (the daily rollups stay). Default: kept. */
  retentionDays?: number;
  /** The id this proxy gives a fixed text (`keyIds.of(KEY_ID_CHECK)`): the fleet's proxies must agree on it, or one key has two ids. */
  keyIdCheck?: string;
};

/**
 * The fixed text whose key id every proxy of a fleet must give alike: it tells whether their
 * key-id secrets are the same, and nothing of the secret.
 *
 * @example
 * ```ts
 * createFleetShipper({ …, keyIdCheck: keyIds.of(KEY_ID_CHECK) });
 * ```
 */
export const KEY_ID_CHECK = 'Bearer carbon-trace fleet key-id check';

/**
 * What the shipper has done, for `/carbon/stats` and the dashboard.
 *
 * @example
 * ```ts
 * shipper.state(); // { database: 'postgres://carbon:***@db:5432/books', connected: true, … }
 * ```
 */
export type FleetShipperState = {
  /** The database's URL with its password masked. */
  database: string;
  connected: boolean;
  /** Rows and idle lines this run sent (new in the table). */
  sentRows: number;
  sentIdle: number;
  /** Bytes of the ledger not yet in the database; `undefined` until the database has said how far it has them. */
  waitingBytes: number | undefined;
  /** Why the last attempt failed, while it is failing (no password in it). */
  error?: string;
  /** Rows this run could not store (a hand-edited ledger, a value the database cannot hold): they stay in the ledger, with a warning. */
  setAsideRows: number;
};

type Stream = 'requests' | 'idle';
type Cursor = { bytes: number };

const BACKOFF_MAX_MS = 30_000;
const READ_BYTES = 1 << 20;
const RETENTION_EVERY_MS = 3_600_000;

/**
 * Starts sending the books' files to Postgres. The schema is made or migrated at the first
 * connection; until then (and while the database is down) the rows wait in the ledger, said once
 * when it starts and once when it ends.
 *
 * @example
 * ```ts
 * const shipper = createFleetShipper({ db, instance, files: () => books.files(), warn });
 * await shipper.flush(); // everything in the files is in the database
 * await shipper.close();
 * ```
 */
export function createFleetShipper(options: FleetShipperOptions) {
  const database = redactDatabaseUrl(options.db);
  const pool: Pool = createFleetPool(options.db, (error) => failed(error));
  const batchRows = Math.max(1, options.batchRows ?? 2000);
  const cursors: Partial<Record<Stream, Cursor>> = {};
  const state: FleetShipperState = { database, connected: false, sentRows: 0, sentIdle: 0, waitingBytes: undefined, setAsideRows: 0 };
  // How far the ledger is in the database, as last committed (kept while the database is down).
  let storedBytes: number | undefined;
  let migrated = false;
  let down: { since: number } | undefined;
  let backoffMs = 0;
  let nextTryAt = 0;
  let running: Promise<boolean> | undefined;
  let closed = false;
  let lastRetentionAt = 0;
  // The connection a pass holds: a close that cannot wait for it any longer ends it.
  let active: PoolClient | undefined;

  function failed(error: unknown): void {
    const why = scrubbed(error, options.db);
    state.connected = false;
    state.error = why;
    // Offsets are read again from the database: what committed there is what counts.
    migrated = false;
    delete cursors.requests;
    delete cursors.idle;
    backoffMs = Math.min(BACKOFF_MAX_MS, backoffMs === 0 ? 1000 : backoffMs * 2);
    nextTryAt = Date.now() + backoffMs;
    if (!down) {
      down = { since: Date.now() };
      const code = (error as { code?: unknown } | null)?.code;
      // A refused login never heals by waiting: say what to fix.
      const fix = code === '28P01' || code === '28000' || /password must be a string/.test(why) ? ' — the user or password is refused: fix the URL (--db or CARBON_TRACE_DB; a password in it, or PGPASSWORD) and restart the proxy' : '';
      options.warn('fleet-db', `fleet database ${database}: ${why}${fix}: rows wait in the ledger and are sent once it answers (tried again every ${BACKOFF_MAX_MS / 1000} s at most)`);
    }
  }

  /** The fleet agrees on the key-id secret: the first proxy sets the check value, the others compare. */
  async function checkFleet(client: PoolClient): Promise<void> {
    if (options.keyIdCheck === undefined) return;
    await client.query('INSERT INTO carbon_trace_fleet (name, value, set_by) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', ['key_id_check', options.keyIdCheck, options.instance.name]);
    const { rows } = await client.query<{ value: string; set_by: string }>('SELECT value, set_by FROM carbon_trace_fleet WHERE name = $1', ['key_id_check']);
    const fleet = rows[0];
    if (fleet && fleet.value !== options.keyIdCheck) {
      options.warn('fleet-key-id-secret', `fleet database ${database}: this proxy's key-id secret is not the fleet's (the one ${fleet.set_by} brought first): the same API key gets another id here, and the fleet's books by api_key split it; give every proxy the same CARBON_TRACE_KEY_ID_SECRET`);
    }
  }

  /** Notes this proxy as seen; says once when another live proxy uses its name (their books would merge). */
  async function seen(client: PoolClient): Promise<void> {
    const { rows } = await client.query<{ host: string }>(
      "SELECT host FROM carbon_trace_instances WHERE name = $1 AND instance_id <> $2 AND last_seen > now() - interval '10 minutes' LIMIT 1",
      [options.instance.name, options.instance.id],
    );
    if (rows[0]) {
      options.warn('fleet-instance-name', `fleet database ${database}: another proxy (on ${rows[0].host}, with another ledger) also calls itself ${options.instance.name}: their books merge under that name; give each proxy its own --instance`);
    }
    await client.query(
      `INSERT INTO carbon_trace_instances (instance_id, name, host, last_seen) VALUES ($1, $2, $3, now())
       ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name, host = excluded.host, last_seen = now()`,
      [options.instance.id, options.instance.name, options.instance.host],
    );
  }

  /** Bytes of the ledger not in the database, as far as is known. */
  function waiting(): number | undefined {
    const files = options.files();
    return storedBytes === undefined || !files ? undefined : Math.max(0, files.ledger.bytes - storedBytes);
  }

  /** Sets a row aside: it stays in the ledger, is not in the database, and is said once per reason. */
  function setAside(end: number, why: string): void {
    state.setAsideRows++;
    options.warn(`fleet-set-aside\0${why}`, `fleet database ${database}: a row (ending at byte ${end} of its file) cannot be stored (${why}): it stays in the file and is not in the fleet's books; the rows after it are sent`);
  }

  /**
   * Stores a batch in the open transaction; a batch the database refuses for its data (a value it
   * cannot hold, a key too large) is split until the refused rows are found, and those are set
   * aside: one bad row never holds back the rows after it. Any other failure (the connection, a
   * timeout) fails the whole pass, and the batch is sent again later.
   */
  async function storeAll<T>(client: PoolClient, items: readonly T[], statement: (batch: readonly T[]) => { text: string; values: unknown[] }, check: (item: T) => { end: number; why: string | undefined }): Promise<number> {
    const good = items.filter((item) => {
      const { end, why } = check(item);
      if (why !== undefined) setAside(end, why);
      return why === undefined;
    });
    const store = async (batch: readonly T[]): Promise<number> => {
      if (batch.length === 0) return 0;
      await client.query('SAVEPOINT batch');
      try {
        const q = statement(batch);
        const r = await client.query<{ inserted: number }>(q.text, q.values);
        await client.query('RELEASE SAVEPOINT batch');
        return r.rows[0]?.inserted ?? 0;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        // Class 22 (data exception) and 54 (program limit exceeded): this data, not the link.
        if (typeof code !== 'string' || !/^(22|54)/.test(code)) throw error;
        await client.query('ROLLBACK TO SAVEPOINT batch');
        await client.query('RELEASE SAVEPOINT batch');
        if (batch.length === 1) {
          setAside(check(batch[0]!).end, `the database refused it: ${scrubbed(error, options.db)}`);
          return 0;
        }
        const half = Math.ceil(batch.length / 2);
        return (await store(batch.slice(0, half))) + (await store(batch.slice(half)));
      }
    };
    return store(good);
  }

  async function cursorOf(client: PoolClient, stream: Stream, handle: FileHandle, size: number): Promise<Cursor> {
    const { rows } = await client.query<{ bytes: string; fingerprint: string }>('SELECT bytes, fingerprint FROM carbon_trace_shipped WHERE instance_id = $1 AND stream = $2', [options.instance.id, stream]);
    const kept = rows[0];
    if (kept) {
      const bytes = Number(kept.bytes);
      // The offset belongs to this file only if the file still has those bytes: a replaced ledger is sent from its start.
      if (bytes <= size && (await fingerprintOf(handle, bytes)) === kept.fingerprint) return { bytes };
      options.warn(`fleet-db-restart\0${stream}`, `fleet database ${database}: the ${stream === 'requests' ? 'ledger' : 'idle log'} is not the file sent before (replaced or cut): it is sent from its start, and rows already in the database are kept once`);
    }
    return { bytes: 0 };
  }

  /** Sends one stream from its cursor to the file's whole size now; false when there was nothing to send. */
  async function send(client: PoolClient, stream: Stream, path: string, upTo: number): Promise<boolean> {
    const handle = await open(path, 'r');
    try {
      const size = Math.min(upTo, (await handle.stat()).size);
      const cursor = (cursors[stream] ??= await cursorOf(client, stream, handle, size));
      if (stream === 'requests') storedBytes = cursor.bytes;
      if (cursor.bytes >= size) return false;
      // The header: its columns name the cells of every record after it.
      const head = await readRecords(handle, 0, size, 64 * 1024);
      const header = head.records[0];
      if (!header) return false;
      const columns = parseCsvLine(header.text) ?? [];
      const index = new Map(columns.map((c, i) => [c, i]));
      let at = Math.max(cursor.bytes, header.end);
      // The header is no row: a ledger of a header only has nothing waiting.
      if (stream === 'requests') storedBytes = at;
      let sentAny = false;
      while (at < size && !closed) {
        const rows: ShippedRow[] = [];
        const lines: ShippedIdle[] = [];
        let end = at;
        // Up to a batch of whole records.
        while (end < size && rows.length + lines.length < batchRows) {
          const { records, next } = await readRecords(handle, end, size, READ_BYTES);
          if (records.length === 0 && next === end) break;
          for (const record of records) {
            const fields = parseCsvLine(record.text);
            if (fields && stream === 'requests') {
              const entry = entryOf(fields, index);
              const runId = fields[index.get('run_id') ?? -1];
              if (entry) rows.push({ runId: runId ?? '', end: record.end, projectName: fields[index.get('project_name') ?? -1] ?? '', entry });
            } else if (fields && stream === 'idle' && fields[0] !== IDLE_LOG_COLUMNS[0]) {
              const interval = parseIdleLine(fields);
              if (interval) lines.push({ end: record.end, interval });
            }
            end = record.end;
            if (rows.length + lines.length >= batchRows) break;
          }
          if (records.length === 0) end = next;
        }
        if (end === at) break;
        const fingerprint = await fingerprintOf(handle, end);
        let sentRows = 0;
        let sentIdle = 0;
        await client.query('BEGIN');
        try {
          sentRows = await storeAll(client, rows, (batch) => insertRequests(batch, options.instance), (row) => ({ end: row.end, why: unstorable(row) }));
          sentIdle = await storeAll(client, lines, (batch) => insertIdle(batch, options.instance), (line) => ({ end: line.end, why: undefined }));
          await client.query(
            `INSERT INTO carbon_trace_shipped (instance_id, stream, bytes, fingerprint) VALUES ($1, $2, $3, $4)
             ON CONFLICT (instance_id, stream) DO UPDATE SET bytes = excluded.bytes, fingerprint = excluded.fingerprint, updated_at = now()`,
            [options.instance.id, stream, end, fingerprint],
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw error;
        }
        state.sentRows += sentRows;
        state.sentIdle += sentIdle;
        cursor.bytes = end;
        at = end;
        sentAny = true;
        if (stream === 'requests') storedBytes = end;
      }
      return sentAny;
    } finally {
      await handle.close();
    }
  }

  async function retention(client: PoolClient): Promise<void> {
    if (options.retentionDays === undefined || Date.now() - lastRetentionAt < RETENTION_EVERY_MS) return;
    lastRetentionAt = Date.now();
    const cutoff = new Date(Date.now() - options.retentionDays * 86_400_000);
    await client.query(
      `INSERT INTO carbon_trace_retention (id, rows_kept_since) VALUES (true, $1)
       ON CONFLICT (id) DO UPDATE SET rows_kept_since = greatest(carbon_trace_retention.rows_kept_since, excluded.rows_kept_since)`,
      [cutoff],
    );
    // In slices: one DELETE of a hundred million rows would hold its locks and WAL for minutes.
    for (const table of ['carbon_trace_requests', 'carbon_trace_idle']) {
      for (;;) {
        const r = await client.query(`DELETE FROM ${table} WHERE ctid IN (SELECT ctid FROM ${table} WHERE at < $1 LIMIT 50000)`, [cutoff]);
        if (!r.rowCount || closed) break;
      }
    }
  }

  /** One pass over both files; true when everything in them was sent. */
  async function pass(): Promise<boolean> {
    const files = options.files();
    if (!files) return true;
    let client: PoolClient | undefined;
    try {
      client = await pool.connect();
      active = client;
      if (!migrated) {
        await migrate(client);
        migrated = true;
        await checkFleet(client);
      }
      await seen(client);
      await send(client, 'requests', files.ledger.realPath, files.ledger.bytes);
      if (files.idleLogPath) await send(client, 'idle', files.idleLogPath, Number.MAX_SAFE_INTEGER);
      await retention(client);
      active = undefined;
      client.release();
      client = undefined;
      state.connected = true;
      delete state.error;
      backoffMs = 0;
      if (down) {
        options.warn('fleet-db-back', `fleet database ${database}: answering again after ${Math.round((Date.now() - down.since) / 1000)} s; the rows that waited are sent`);
        down = undefined;
      }
      return waiting() === 0;
    } catch (error) {
      active = undefined;
      client?.release(error as Error);
      failed(error);
      return false;
    }
  }

  function tick(): Promise<boolean> {
    if (running) return running;
    if (Date.now() < nextTryAt) return Promise.resolve(false);
    running = pass().finally(() => {
      running = undefined;
    });
    return running;
  }

  const timer = setInterval(() => void tick(), options.intervalMs ?? 1000);
  timer.unref();
  void tick();

  return {
    /** The shipper's state now. */
    state(): FleetShipperState {
      return { ...state, waitingBytes: waiting() };
    },

    /** Sends everything in the files now (waiting out a pass under way); true when all of it is in the database. */
    async flush(): Promise<boolean> {
      await running;
      nextTryAt = 0;
      return tick();
    },

    /** The pool, for the period reports of the same database. */
    pool,

    /**
     * Stops the timer, sends what it can within `graceMs` (default 5000), and closes the
     * connections — within about `graceMs` whatever the database does: a pass still running then
     * has its connection ended (its batch is rolled back, and sent by the next start).
     */
    async close(graceMs = 5000): Promise<void> {
      if (closed) return;
      clearInterval(timer);
      const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
      const last = (async () => {
        await running;
        nextTryAt = 0;
        await tick();
      })().catch(() => {});
      await Promise.race([last, wait(graceMs)]);
      closed = true;
      if (running) {
        // A pooled client is a pg.Client: ending it fails the statement it waits on.
        await (active as unknown as pg.Client | undefined)?.end().catch(() => {});
        await Promise.race([running.catch(() => {}), wait(1000)]);
      }
      await Promise.race([pool.end().catch(() => {}), wait(1000)]);
    },
  };
}

/**
 * The shipper of one proxy.
 *
 * @example
 * ```ts
 * const shipper: FleetShipper = createFleetShipper({ db, instance, files, warn });
 * ```
 */
export type FleetShipper = ReturnType<typeof createFleetShipper>;
