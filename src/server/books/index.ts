/**
 * The proxy's books, put together from their parts (src/server/books/): the tables of rows
 * (`tables.ts`, `rows.ts`), the meter's totals (`meter-totals.ts`), the ledger and its snapshots
 * (`snapshots.ts`, read back by `restore.ts`), and the views written from them (`metrics-text.ts`,
 * `model-garden.ts`, `views`). Every view reads these books, so they cannot disagree.
 */
import { CALL_KINDS, keyIdSecretBeside, openLedger, type Ledger } from './ledger';
import type { MeterStats } from '../meter/meter';
import { metricsText } from './metrics-text';
import { createMeterTotals, type CombinedStats } from './meter-totals';
import { countedUsage } from './rows';
import { restoreBooks } from './restore';
import { companionOf, createSnapshotWriter } from './snapshots';
import { openIdleLog } from './idle-log';
import { addJoules } from '../meter/attribution';
import type { ComponentJoules } from '../types';
import { createTables, type BookedRequest, type ViewLimits } from './tables';
import type { ResolvedGridIntensity } from '../wires/trace-record';

export type { BookRow, TokenBasis } from './rows';
export type { BookedRequest, RecentRequest, ViewLimits } from './tables';
export type { CombinedStats } from './meter-totals';
export { modelGardenStats } from './model-garden';

/**
 * The proxy's books: per model, API key, user and kind of call, bounded; the ledger that keeps
 * them across restarts; and the views written from them (stats, Prometheus, Model Garden).
 *
 * @example
 * ```ts
 * const books = createProxyBooks({ ledger: 'ledger.csv', warn });
 * books.book({ … });
 * ```
 */
export function createProxyBooks(options: {
  ledger?: string;
  maxRows?: number;
  recentRequests?: number;
  warn: (key: string, message: string) => void;
  projectName?: string;
  /** The meter's books now, and the grid of now, for the snapshot. */
  meterStats?: () => MeterStats;
  /** `'beside-ledger'`: keep the key-id secret beside the ledger (made after its lock is taken), read back as `keyIdSecret`. */
  keyIdSecret?: 'beside-ledger';
  gridNow?: () => ResolvedGridIntensity | undefined;
  /** How often the idle log beside the ledger gets a line (the energy in no request's row, for period reports), ms. Default 60000. */
  idleLogIntervalMs?: number;
}) {
  const tables = createTables({ maxRows: options.maxRows ?? 1000, keepRecent: options.recentRequests ?? 60 });
  const meterTotals = createMeterTotals({ ...(options.meterStats ? { meterStats: options.meterStats } : {}), ...(options.gridNow ? { gridNow: options.gridNow } : {}) });

  // The ledger: what an earlier run booked comes back first.
  let ledger: Ledger | undefined;
  let keyIdSecret: Buffer | undefined;
  let writer: ReturnType<typeof createSnapshotWriter> | undefined;
  let idleLog: ReturnType<typeof openIdleLog> | undefined;
  if (options.ledger !== undefined) {
    const opened = openLedger({ path: options.ledger, onWarning: (m) => options.warn(`ledger\0${m}`, m), ...(options.projectName ? { projectName: options.projectName } : {}) });
    try {
      // After the lock: one proxy makes the secret, and the one that keeps the ledger uses it.
      if (options.keyIdSecret === 'beside-ledger') keyIdSecret = keyIdSecretBeside(opened.realPath, { hasRows: opened.hasRows });
      restoreBooks({ ledger: opened, tables, meterTotals, warn: options.warn });
    } catch (error) {
      opened.close();
      meterTotals.close();
      throw error;
    }
    ledger = opened;
    try {
      idleLog = openIdleLog(companionOf(opened, 'idle.csv'), (m) => options.warn(`idle-log\0${m}`, m));
    } catch (error) {
      options.warn('idle-log', `idle log ${companionOf(opened, 'idle.csv')} could not be opened (${(error as Error).message}): period reports will have no idle energy for this run`);
    }
    writer = createSnapshotWriter({ ledger: opened, tables: () => tables.save(), totals: () => meterTotals.toCarry(opened.written), warn: options.warn });
  }
  let closed = false;

  // The idle log: every interval, this run's idle and unattributed energy since the last line.
  let idleLogged = { at: new Date().toISOString(), idle: {} as ComponentJoules, unattributed: {} as ComponentJoules, idleGrams: 0, unattributedGrams: 0 };
  const minus = (now: ComponentJoules, before: ComponentJoules) => {
    const out: ComponentJoules = {};
    for (const [c, j] of Object.entries(now) as Array<[keyof ComponentJoules, number]>) out[c] = Math.max(0, j - (before[c] ?? 0));
    return out;
  };
  function logIdle(): void {
    const now = meterTotals.runIdle();
    if (!idleLog || !ledger || !now) return;
    const at = new Date().toISOString();
    const idle = minus(now.idle, idleLogged.idle);
    const unattributed = minus(now.unattributed, idleLogged.unattributed);
    const idleGrams = Math.max(0, now.idleGrams - idleLogged.idleGrams);
    const unattributedGrams = Math.max(0, now.unattributedGrams - idleLogged.unattributedGrams);
    if (Object.values(idle).some((j) => j! > 0) || Object.values(unattributed).some((j) => j! > 0)) {
      idleLog.append({ from: idleLogged.at, to: at, runId: ledger.runId, projectName: options.projectName ?? 'carbon-trace proxy', idle, idleGrams, unattributed, unattributedGrams });
    }
    idleLogged = { at, idle: addJoules({}, now.idle), unattributed: addJoules({}, now.unattributed), idleGrams: now.idleGrams, unattributedGrams: now.unattributedGrams };
  }
  const idleTimer = idleLog ? setInterval(logIdle, options.idleLogIntervalMs ?? 60_000) : undefined;
  idleTimer?.unref();

  return {
    book(booked: BookedRequest): void {
      const at = new Date().toISOString();
      // A count no number could be, or a kind no wire has, is unknown: into no file, no total.
      const request: BookedRequest = { ...booked, usage: countedUsage(booked.usage), kind: booked.kind !== undefined && CALL_KINDS.has(booked.kind) ? booked.kind : undefined };
      meterTotals.book(request.energy.totalJoules);
      writer?.booked();
      // Written before the client gets the response it books: a row in the file is a request served.
      ledger?.append({
        at,
        // The names as sent: the ledger and the fleet's database keep them whole; the views bound them.
        model: request.names?.model ?? request.model,
        apiKeyId: request.apiKeyId,
        user: request.names?.user ?? request.user,
        status: request.status,
        streamed: request.streamed,
        energy: request.energy,
        grid: request.grid,
        usage: request.usage,
        kind: request.kind,
        traceDelivered: request.traceDelivered,
        expectsUsage: request.expectsUsage === true,
      });
      tables.book(request, at);
    },

    /** The ledger and the idle log beside it, for the fleet's shipper; `undefined` without a ledger. */
    files(): { ledger: Ledger; idleLogPath: string | undefined } | undefined {
      return ledger ? { ledger, idleLogPath: idleLog?.path } : undefined;
    },

    /** Writes the idle log's line for the time since its last one now (tests, and before a close). */
    logIdle,

    /** The key-id secret kept beside the ledger (with `keyIdSecret: 'beside-ledger'` and a ledger). */
    keyIdSecret,

    /** The ledger's state: rows waiting for the file, rows lost from it. */
    ledgerState(): { path: string; pendingRows: number; lostRows: number } | undefined {
      return ledger ? { path: ledger.path, pendingRows: ledger.pendingRows, lostRows: ledger.lostRows } : undefined;
    },

    combine: meterTotals.combine,

    /** The stats' books: rows per model, key, user and kind, emissions, tokens, the recent requests newest first. */
    views(c: CombinedStats, limits: ViewLimits = {}) {
      const share = c.idleMode === 'share' ? { idle: c.idleJoules, attributed: c.attributedJoules } : undefined;
      const grams = meterTotals.grams();
      return { ...tables.view(share, limits), idleGrams: grams.idle, unattributedGrams: grams.unattributed };
    },

    /** The model names the books keep, in the order they came. */
    modelNames: tables.modelNames,

    /** `/metrics`, written from the books. */
    prometheus(c: CombinedStats, grid: ResolvedGridIntensity): string {
      return metricsText(tables, c, grid, meterTotals.grams());
    },

    /** Writes the meter's totals now, off the event loop: before a scrape is answered, so that no counter it showed can come back lower after a crash. */
    persistTotals(): Promise<void> {
      return writer?.writeTotals() ?? Promise.resolve();
    },

    /** Stops the timers, writes both snapshots once the writes under way are done, and closes the ledger. */
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (idleTimer) clearInterval(idleTimer);
      logIdle();
      idleLog?.close();
      meterTotals.close();
      await writer?.close();
      ledger?.close();
    },
  };
}

/**
 * The books of one proxy.
 *
 * @example
 * ```ts
 * const books: ProxyBooks = createProxyBooks({ warn: () => {} });
 * ```
 */
export type ProxyBooks = ReturnType<typeof createProxyBooks>;
