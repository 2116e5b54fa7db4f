import { JOULES_PER_KWH } from '../core/units';
import { addJoules, sumJoules } from './attribution';
import { createRowBook, OTHER_ROW, type RowBook } from './books';
import { keyIdSecretBeside, openLedger, readSnapshot, writeSnapshot, type Ledger, type LedgerEntry } from './ledger';
import type { MeterStats } from './meter';
import { Exposition } from './prometheus';
import { gramsOf, type ResolvedGridIntensity } from './trace-record';
import { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent } from './types';

/**
 * One traced request whose books are closed.
 *
 * @example
 * ```ts
 * const onBooked = (r: BookedRequest) => console.log(r.model, r.energy.totalJoules, r.trace?.emissions_g_co2);
 * ```
 */
export type BookedRequest = Omit<LedgerEntry, 'at'> & {
  /** The trace added to the response; `undefined` when none was (an error, a cut stream, the upstream's own trace, another route). */
  trace: Record<string, unknown> | undefined;
  /** A completion answered 2xx: its usage should say its tokens (an unknown count then makes the total unknown). */
  expectsUsage?: boolean;
  /** The wire module that recognised the request (`'chat'`, `'responses'`, `'ollama'`…); `undefined` for a metered request no wire knows. */
  wire?: string;
  /** What the call was: a generation (`'chat'`), an embedding or a rerank/score. */
  kind?: 'chat' | 'embedding' | 'rerank';
  /** Whether the trace was put on the response and the client received that response whole. */
  traceDelivered?: boolean;
};

/**
 * One recent request, as `/carbon/stats` lists it for the dashboard.
 *
 * @example
 * ```ts
 * const last: RecentRequest = (await (await fetch('/carbon/stats')).json()).recent.at(-1);
 * ```
 */
export type RecentRequest = {
  /** When its books closed (ISO 8601). */
  at: string;
  model: string | null;
  apiKeyId: string | null;
  user: string | null;
  status: number;
  streamed: boolean;
  joules: ComponentJoules;
  /** `null` when the meter had no figure for it. */
  totalJoules: number | null;
  emissionsGrams: number | null;
  durationSeconds: number;
  measured: boolean;
  completionTokens: number | null;
};

/**
 * One row of the proxy's books (per model, API key or user).
 *
 * @example
 * ```ts
 * const row: BookRow = (await proxy.stats()).byModel['llama-3.1-8b']!;
 * ```
 */
export type BookRow = {
  /** Requests whose books are closed. */
  requests: number;
  /** Of those, the ones with a measured energy figure. */
  measuredRequests: number;
  /** Of those, the ones that got no energy figure. */
  requestsWithoutFigure: number;
  /** Per HTTP status the client got. */
  byStatus: Record<string, number>;
  joules: number;
  byComponent: ComponentJoules;
  emissionsGrams: number;
  /** The same per component, gCO2eq. */
  emissionsGramsByComponent: ComponentJoules;
  /** With `idle: 'share'` only: this row's part of the idle energy, in proportion to `joules`. */
  idleShareJoules?: number;
  /** Token counts of the requests whose usage reported them; `requestsWithUsage` says how many those are. */
  promptTokens: number;
  completionTokens: number;
  requestsWithUsage: number;
};

/** Totals the meter of an earlier run of the proxy measured, carried over through the ledger's snapshot. */
type Carried = {
  since?: string;
  requests: number;
  requestsWithoutFigure: number;
  total: ComponentJoules;
  attributed: ComponentJoules;
  idle: ComponentJoules;
  unattributed: ComponentJoules;
  idleGrams: number;
  unattributedGrams: number;
};

/** The meter's books, with what an earlier run carried over added in. */
export type CombinedStats = Omit<MeterStats, 'byModel'> & { carriedOver: boolean };

/**
 * What the books were when the ledger's file had `ledgerBytes` bytes, tied to that file by its
 * fingerprint there: a snapshot of another file (copied over it, rotated, cut) is not used.
 * Two of them: the tables (large, written now and then: the rows after them are read back at
 * start), and the meter's totals (small, written every second and before `/metrics` answers,
 * since idle energy is in no row).
 */
type Tables = {
  version: 2;
  ledgerBytes: number;
  fingerprint: string;
  tokens: { prompt: number; completion: number; requestsWithUsage: number; requestsExpectingUsage?: number };
  byModel: Array<[string, BookRow]>;
  byApiKey: Array<[string, BookRow]>;
  byUser: Array<[string, BookRow]>;
  metricModels: Array<[string, BookRow]>;
  metricKeys: Array<[string, BookRow]>;
  metricUsers: Array<[string, BookRow]>;
  recent: RecentRequest[];
};
type MeterTotals = { version: 2; ledgerBytes: number; fingerprint: string; carried: Carried };
/** What 0.1 wrote: tables and totals in one, tied to nothing but the file's length. */
type LegacySnapshot = Omit<Tables, 'version' | 'fingerprint'> & { version: 1; carried: Carried };

const MAX_METRIC_LABELS = 100;
// The tables are large (up to ~2 MB with full tables): written now and then, the rows after them are read back.
const TABLES_INTERVAL_MS = 10_000;
// The meter's totals are small: every second, so a crash loses at most a second of idle energy.
const TOTALS_INTERVAL_MS = 1_000;
const ACCRUE_INTERVAL_MS = 1_000;

const newRow = (): BookRow => ({
  requests: 0,
  measuredRequests: 0,
  requestsWithoutFigure: 0,
  byStatus: Object.create(null),
  joules: 0,
  byComponent: {},
  emissionsGrams: 0,
  emissionsGramsByComponent: {},
  promptTokens: 0,
  completionTokens: 0,
  requestsWithUsage: 0,
});

function mergeRows(into: BookRow, from: BookRow): void {
  into.requests += from.requests;
  into.measuredRequests += from.measuredRequests;
  into.requestsWithoutFigure += from.requestsWithoutFigure;
  for (const [status, n] of Object.entries(from.byStatus)) into.byStatus[status] = (into.byStatus[status] ?? 0) + n;
  into.joules += from.joules;
  addJoules(into.byComponent, from.byComponent);
  into.emissionsGrams += from.emissionsGrams;
  addJoules(into.emissionsGramsByComponent, from.emissionsGramsByComponent);
  into.promptTokens += from.promptTokens;
  into.completionTokens += from.completionTokens;
  into.requestsWithUsage += from.requestsWithUsage;
}


const rowSpec = { create: newRow, merge: mergeRows, requests: (row: BookRow) => row.requests };

/**
 * The proxy's books: per model, API key and user, bounded; the ledger that keeps them across
 * restarts; and the views written from them (stats, Prometheus, Model Garden). Every view reads
 * these books, so they cannot disagree.
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
}) {
  const maxRows = options.maxRows ?? 1000;
  const keepRecent = options.recentRequests ?? 60;
  const byModel: RowBook<BookRow> = createRowBook(maxRows, rowSpec);
  const byApiKey: RowBook<BookRow> = createRowBook(maxRows, rowSpec);
  const byUser: RowBook<BookRow> = createRowBook(maxRows, rowSpec);
  // Prometheus labels are fewer: each is a time series on every scrape.
  // An evicted label's series ends there (its history is not moved onto another label, which would
  // read as a jump): the unlabeled families keep the whole books.
  const metricModels: RowBook<BookRow> = createRowBook(MAX_METRIC_LABELS, rowSpec, { fold: false });
  const metricKeys: RowBook<BookRow> = createRowBook(MAX_METRIC_LABELS, rowSpec, { fold: false });
  const metricUsers: RowBook<BookRow> = createRowBook(MAX_METRIC_LABELS, rowSpec, { fold: false });
  let recent: RecentRequest[] = [];
  const tokens = { prompt: 0, completion: 0, requestsWithUsage: 0, requestsExpectingUsage: 0 };
  const carried: Carried = { requests: 0, requestsWithoutFigure: 0, total: {}, attributed: {}, idle: {}, unattributed: {}, idleGrams: 0, unattributedGrams: 0 };
  // Requests booked in this run: every view counts these (the meter does not see a request whose body never came).
  const booked = { requests: 0, withoutFigure: 0 };
  // Idle and unattributed emissions accrue at the intensity of their time.
  let idleGrams = 0;
  let unattributedGrams = 0;
  let idleSeen = 0;
  let unattributedSeen = 0;

  function bookRow(row: BookRow, booked: BookedRequest, grams: number, status: string): void {
    const { energy } = booked;
    row.requests++;
    row.byStatus[status] = (row.byStatus[status] ?? 0) + 1;
    if (energy.totalJoules !== undefined) {
      row.joules += energy.totalJoules;
      row.emissionsGrams += grams;
      for (const component of ENERGY_COMPONENTS) {
        const joules = energy.joules[component];
        if (joules === undefined) continue;
        row.byComponent[component] = (row.byComponent[component] ?? 0) + joules;
        row.emissionsGramsByComponent[component] = (row.emissionsGramsByComponent[component] ?? 0) + gramsOf(joules, booked.grid);
      }
      if (energy.measured) row.measuredRequests++;
    } else {
      row.requestsWithoutFigure++;
    }
    const { promptTokens, completionTokens } = booked.usage;
    if (promptTokens !== undefined || completionTokens !== undefined) {
      row.promptTokens += promptTokens ?? 0;
      row.completionTokens += completionTokens ?? 0;
      row.requestsWithUsage++;
    }
  }

  /** Books a request into every table; `at` when it comes from the ledger. */
  function bookInto(booked: BookedRequest, at: string): void {
    const { energy } = booked;
    const grams = energy.totalJoules !== undefined ? gramsOf(energy.totalJoules, booked.grid) : 0;
    const status = String(booked.status);
    bookRow(byModel.row(booked.model), booked, grams, status);
    bookRow(byApiKey.row(booked.apiKeyId, '(none)'), booked, grams, status);
    bookRow(byUser.row(booked.user, '(none)'), booked, grams, status);
    bookRow(metricModels.row(booked.model), booked, grams, status);
    bookRow(metricKeys.row(booked.apiKeyId, '(none)'), booked, grams, status);
    bookRow(metricUsers.row(booked.user, '(none)'), booked, grams, status);
    const { promptTokens, completionTokens } = booked.usage;
    if (booked.expectsUsage) tokens.requestsExpectingUsage++;
    if (promptTokens !== undefined || completionTokens !== undefined) {
      tokens.prompt += promptTokens ?? 0;
      tokens.completion += completionTokens ?? 0;
      tokens.requestsWithUsage++;
    }
    recent.push({
      at,
      model: booked.model ?? null,
      apiKeyId: booked.apiKeyId ?? null,
      user: booked.user ?? null,
      status: booked.status,
      streamed: booked.streamed,
      joules: energy.joules,
      totalJoules: energy.totalJoules ?? null,
      emissionsGrams: energy.totalJoules !== undefined ? grams : null,
      durationSeconds: energy.durationSeconds,
      measured: energy.measured,
      completionTokens: completionTokens ?? null,
    });
    if (recent.length > keepRecent) recent.shift();
  }

  // The ledger: what an earlier run booked comes back first.
  let ledger: Ledger | undefined;
  let keyIdSecret: Buffer | undefined;
  const timers: Array<ReturnType<typeof setInterval>> = [];
  const companion = (suffix: string) => `${ledger!.realPath}.${suffix}`;
  // Rows booked since the tables were last written; the totals as last written.
  let closed = false;
  let tablesDirty = false;
  let totalsWritten = '';
  // One write of each file at a time, in order.
  let tablesWriting: Promise<void> = Promise.resolve();
  let totalsWriting: Promise<void> = Promise.resolve();
  if (options.ledger !== undefined) {
    ledger = openLedger({ path: options.ledger, onWarning: (m) => options.warn(`ledger\0${m}`, m), ...(options.projectName ? { projectName: options.projectName } : {}) });
    try {
      // After the lock: one proxy makes the secret, and the one that keeps the ledger uses it.
      if (options.keyIdSecret === 'beside-ledger') keyIdSecret = keyIdSecretBeside(ledger.realPath, { hasRows: ledger.hasRows });
      restore(ledger);
    } catch (error) {
      ledger.close();
      throw error;
    }
    timers.push(setInterval(() => void writeTables(), TABLES_INTERVAL_MS), setInterval(() => void writeTotals(), TOTALS_INTERVAL_MS));
    for (const timer of timers) timer.unref();
  }

  /** The books as the ledger and its snapshots left them. */
  function restore(ledger: Ledger): void {
    const matches = (s: { ledgerBytes: number; fingerprint: string }) => s.ledgerBytes <= ledger.bytes && ledger.fingerprint(s.ledgerBytes) === s.fingerprint;
    const readTables = readSnapshot(companion('snapshot.json'));
    const readTotals = readSnapshot(companion('meter.json'));
    const legacy = validLegacy(readTables, ledger);
    let tables = validTables(readTables);
    let totals = validTotals(readTotals);
    if (tables && !matches(tables)) tables = undefined;
    if (totals && !matches(totals)) totals = undefined;
    if (legacy) {
      tables = { ...legacy, version: 2, fingerprint: '' };
      totals ??= { version: 2, ledgerBytes: legacy.ledgerBytes, fingerprint: '', carried: legacy.carried };
    }
    if ((readTables !== undefined && !tables) || (readTotals !== undefined && !totals)) {
      options.warn('ledger-snapshot', `ledger ${options.ledger}: its snapshot does not match the file (rotated, replaced or damaged); the books are rebuilt from the rows`);
    }
    if (tables) {
      Object.assign(tokens, tables.tokens);
      byModel.restore(tables.byModel);
      byApiKey.restore(tables.byApiKey);
      byUser.restore(tables.byUser);
      metricModels.restore(tables.metricModels);
      metricKeys.restore(tables.metricKeys);
      metricUsers.restore(tables.metricUsers);
      recent = tables.recent.slice(-keepRecent);
    }
    if (totals) Object.assign(carried, totals.carried);
    // Rows written after each snapshot: into the tables, and (their energy was measured) into the totals.
    const tablesFrom = tables?.ledgerBytes ?? 0;
    const totalsFrom = totals?.ledgerBytes ?? 0;
    const replayed = ledger.replay(Math.min(tablesFrom, totalsFrom), (entry, end) => {
      if (end > tablesFrom) bookInto({ ...entry, trace: undefined }, entry.at);
      if (end > totalsFrom) {
        carried.requests++;
        if (entry.energy.totalJoules === undefined) carried.requestsWithoutFigure++;
        addJoules(carried.attributed, entry.energy.joules);
        addJoules(carried.total, entry.energy.joules);
      }
    });
    carried.since ??= replayed.firstAt;
    // A clock that was once ahead must not date the books from the future (a negative duration).
    if (carried.since !== undefined && Date.parse(carried.since) > Date.now()) {
      options.warn('ledger-since', `ledger ${options.ledger}: its books begin at ${carried.since}, which is later than now (a clock that was ahead): they are counted from now`);
      carried.since = new Date().toISOString();
    }
  }

  /** The totals to carry over, as of now: what earlier runs left, and this run's settled books. */
  function totalsNow(): Carried {
    const m = options.meterStats?.();
    const g = options.gridNow?.();
    if (m && g) accrue(m, g);
    const now: Carried = { ...carried, total: { ...carried.total }, attributed: { ...carried.attributed }, idle: { ...carried.idle }, unattributed: { ...carried.unattributed } };
    // The requests in the file, and their energy — not the meter's attributed energy, nor rows
    // still waiting for a full disk: a restart reads those back from the file, once.
    const inFile = ledger!.written;
    now.requests += inFile.rows;
    now.requestsWithoutFigure += inFile.withoutFigure;
    addJoules(now.attributed, inFile.joules);
    addJoules(now.total, inFile.joules);
    if (m) {
      for (const component of ENERGY_COMPONENTS) {
        const c = m.byComponent[component];
        if (!c) continue;
        // What is in flight is left out: a request that finishes later brings its whole energy in
        // with its ledger row; one the crash cut has no row, and its energy is not carried over.
        now.total[component] = (now.total[component] ?? 0) + c.idleJoules + c.unattributedJoules;
        now.idle[component] = (now.idle[component] ?? 0) + c.idleJoules;
        now.unattributed[component] = (now.unattributed[component] ?? 0) + c.unattributedJoules;
      }
      now.since ??= m.since;
    }
    now.idleGrams += idleGrams;
    now.unattributedGrams += unattributedGrams;
    return now;
  }

  /** The file's size and fingerprint now; `undefined` once the file at its name is not this one (another proxy may own the companions). */
  const fileNow = () => (ledger && ledger.detached === undefined ? { ledgerBytes: ledger.bytes, fingerprint: ledger.fingerprint(ledger.bytes) } : undefined);

  /** The meter's totals, written when they changed; resolves once they are on file. */
  function writeTotals(): Promise<void> {
    if (closed) return totalsWriting;
    const file = fileNow();
    if (!file) return totalsWriting;
    const text = JSON.stringify(totalsAt(file));
    if (text === totalsWritten) return totalsWriting;
    totalsWritten = text;
    const path = companion('meter.json');
    return (totalsWriting = totalsWriting.then(() => writeSnapshot(path, text)).catch((error: unknown) => snapshotFailed(path, error)));
  }

  const totalsAt = (file: { ledgerBytes: number; fingerprint: string }): MeterTotals => ({ version: 2, ...file, carried: totalsNow() });

  function tablesNow(file: { ledgerBytes: number; fingerprint: string }): Tables {
    return {
      version: 2,
      ...file,
      tokens: { ...tokens },
      byModel: [...byModel.entries()],
      byApiKey: [...byApiKey.entries()],
      byUser: [...byUser.entries()],
      metricModels: [...metricModels.entries()],
      metricKeys: [...metricKeys.entries()],
      metricUsers: [...metricUsers.entries()],
      recent,
    };
  }

  function writeTables(): Promise<void> {
    if (closed) return tablesWriting;
    // The tables hold every booked row: not written while some wait for the file.
    const file = ledger?.pendingRows === 0 ? fileNow() : undefined;
    if (!file || !tablesDirty) return tablesWriting;
    tablesDirty = false;
    const text = JSON.stringify(tablesNow(file));
    const path = companion('snapshot.json');
    return (tablesWriting = tablesWriting.then(() => writeSnapshot(path, text)).catch((error: unknown) => snapshotFailed(path, error)));
  }

  function snapshotFailed(path: string, error: unknown): void {
    options.warn('ledger-snapshot-write', `ledger snapshot ${path} could not be written (${(error as Error).message}): a restart will read more of the ledger`);
  }

  /** Both snapshots, as the books are at close (the tables only when no row waits for the file). */
  async function writeAll(): Promise<void> {
    if (!ledger) return;
    ledger.flush();
    const file = fileNow();
    if (!file) return;
    const files: Array<[string, unknown]> = [[companion('meter.json'), totalsAt(file)]];
    if (ledger.pendingRows === 0) files.push([companion('snapshot.json'), tablesNow(file)]);
    await Promise.all(files.map(([path, value]) => writeSnapshot(path, JSON.stringify(value)).catch((error: unknown) => snapshotFailed(path, error))));
  }

  // Idle and unattributed emissions accrue at the grid of their time, not only when someone looks.
  const accrueTimer = setInterval(() => {
    const m = options.meterStats?.();
    const g = options.gridNow?.();
    if (m && g) accrue(m, g);
  }, ACCRUE_INTERVAL_MS);
  accrueTimer.unref();

  /** The meter's books with the earlier runs' added; accrues idle and unattributed emissions at the grid of now. */
  function accrue(m: MeterStats, grid: ResolvedGridIntensity): void {
    if (m.idleJoules > idleSeen) idleGrams += gramsOf(m.idleJoules - idleSeen, grid);
    if (m.unattributedJoules > unattributedSeen) unattributedGrams += gramsOf(m.unattributedJoules - unattributedSeen, grid);
    idleSeen = m.idleJoules;
    unattributedSeen = m.unattributedJoules;
  }

  function combine(m: MeterStats, grid: ResolvedGridIntensity): CombinedStats {
    accrue(m, grid);
    const byComponent: MeterStats['byComponent'] = {};
    for (const component of ENERGY_COMPONENTS) {
      const now = m.byComponent[component];
      const before = { total: carried.total[component], attributed: carried.attributed[component], idle: carried.idle[component], unattributed: carried.unattributed[component] };
      if (!now && before.total === undefined) continue;
      byComponent[component] = {
        totalJoules: (now?.totalJoules ?? 0) + (before.total ?? 0),
        attributedJoules: (now?.attributedJoules ?? 0) + (before.attributed ?? 0),
        inFlightJoules: now?.inFlightJoules ?? 0,
        idleJoules: (now?.idleJoules ?? 0) + (before.idle ?? 0),
        unattributedJoules: (now?.unattributedJoules ?? 0) + (before.unattributed ?? 0),
        measured: now?.measured ?? false,
        source: now?.source ?? 'an earlier run of the proxy',
      };
    }
    const { byModel: _ignored, ...rest } = m;
    void _ignored;
    return {
      ...rest,
      since: carried.since ?? m.since,
      totalJoules: m.totalJoules + sumJoules(carried.total),
      attributedJoules: m.attributedJoules + sumJoules(carried.attributed),
      idleJoules: m.idleJoules + sumJoules(carried.idle),
      unattributedJoules: m.unattributedJoules + sumJoules(carried.unattributed),
      requests: booked.requests + carried.requests,
      requestsWithoutFigure: booked.withoutFigure + carried.requestsWithoutFigure,
      byComponent,
      carriedOver: carried.since !== undefined,
    };
  }

  /** A table's rows as the views give them: copies, the `top` largest by energy when asked, and how many were left out. */
  const rowsOf = (book: RowBook<BookRow>, share: { idle: number; attributed: number } | undefined, top: number | undefined) => {
    const out = Object.create(null) as Record<string, BookRow>;
    let entries = [...book.entries()];
    const all = entries.length;
    if (top !== undefined && all > top) entries = entries.sort((a, b) => b[1].joules - a[1].joules || b[1].requests - a[1].requests).slice(0, top);
    for (const [name, row] of entries) {
      out[name] = { ...row, byStatus: { ...row.byStatus }, byComponent: { ...row.byComponent }, emissionsGramsByComponent: { ...row.emissionsGramsByComponent } };
      if (share) out[name]!.idleShareJoules = share.attributed > 0 ? (share.idle * row.joules) / share.attributed : 0;
    }
    return { rows: out, omitted: all - entries.length };
  };

  return {
    book(request: BookedRequest): void {
      const at = new Date().toISOString();
      booked.requests++;
      if (request.energy.totalJoules === undefined) booked.withoutFigure++;
      tablesDirty = true;
      // Written before the client gets the response it books: a row in the file is a request served.
      ledger?.append({ at, model: request.model, apiKeyId: request.apiKeyId, user: request.user, status: request.status, streamed: request.streamed, energy: request.energy, grid: request.grid, usage: request.usage });
      bookInto(request, at);
    },

    /** The key-id secret kept beside the ledger (with `keyIdSecret: 'beside-ledger'` and a ledger). */
    keyIdSecret,

    /** The ledger's state: rows waiting for the file, rows lost from it. */
    ledgerState(): { path: string; pendingRows: number; lostRows: number } | undefined {
      return ledger ? { path: ledger.path, pendingRows: ledger.pendingRows, lostRows: ledger.lostRows } : undefined;
    },

    combine,

    /** The stats' books: rows per model, key and user, emissions, tokens, recent requests. */
    views(c: CombinedStats, limits: { top?: number; recent?: number } = {}) {
      const share = c.idleMode === 'share' ? { idle: c.idleJoules, attributed: c.attributedJoules } : undefined;
      let attributedGrams = 0;
      for (const [, row] of byModel.entries()) attributedGrams += row.emissionsGrams;
      const models = rowsOf(byModel, share, limits.top);
      const keys = rowsOf(byApiKey, share, limits.top);
      const users = rowsOf(byUser, share, limits.top);
      return {
        byModel: models.rows,
        byApiKey: keys.rows,
        byUser: users.rows,
        /** With `top`: how many rows each table left out. */
        rowsOmitted: { byModel: models.omitted, byApiKey: keys.omitted, byUser: users.omitted },
        attributedGrams,
        idleGrams: idleGrams + carried.idleGrams,
        unattributedGrams: unattributedGrams + carried.unattributedGrams,
        tokens: { ...tokens },
        recent: limits.recent === undefined ? [...recent] : limits.recent === 0 ? [] : recent.slice(-limits.recent),
      };
    },

    /** The model names the books keep, in the order they came. */
    modelNames(): string[] {
      return [...byModel.entries()].map(([name]) => name);
    },

    /** `/metrics`, written from the books. */
    prometheus(c: CombinedStats, grid: ResolvedGridIntensity): string {
      const text = new Exposition();
      const models = [...metricModels.entries()];
      const keys = [...metricKeys.entries()];
      text.family('carbon_trace_energy_joules_total', 'counter', 'Energy attributed to requests whose books are closed, J');
      for (const [model, row] of models) for (const [component, joules] of Object.entries(row.byComponent)) text.sample({ component, model }, joules ?? 0);
      text.family('carbon_trace_emissions_grams_total', 'counter', 'Emissions attributed to requests whose books are closed, gCO2eq');
      for (const [model, row] of models) for (const [component, grams] of Object.entries(row.emissionsGramsByComponent)) text.sample({ component, model }, grams ?? 0);
      text.family('carbon_trace_closed_requests_total', 'counter', 'Requests whose books are closed, all models');
      text.sample({}, c.requests);
      text.family('carbon_trace_requests_total', 'counter', 'Requests whose books are closed; measured="false" includes those with no energy figure');
      for (const [model, row] of models) {
        text.sample({ model, measured: 'true' }, row.measuredRequests);
        text.sample({ model, measured: 'false' }, row.requests - row.measuredRequests);
      }
      text.family('carbon_trace_responses_total', 'counter', 'Requests whose books are closed, by the HTTP status the client got (499: it went away; 502: the upstream could not be reached)');
      for (const [model, row] of models) for (const [status, n] of Object.entries(row.byStatus)) text.sample({ model, status }, n);
      text.family('carbon_trace_tokens_total', 'counter', 'Tokens of the requests whose usage reported them (kind: prompt or completion)');
      for (const [model, row] of models) {
        text.sample({ model, kind: 'prompt' }, row.promptTokens);
        text.sample({ model, kind: 'completion' }, row.completionTokens);
      }
      const users = [...metricUsers.entries()];
      for (const [label, rows, what] of [['api_key', keys, 'API key (a one-way id, never the key)'], ['user', users, 'end user (the request\'s user field)']] as const) {
        text.family(`carbon_trace_${label}_energy_joules_total`, 'counter', `Energy attributed to requests, per ${what}, J`);
        for (const [name, row] of rows) text.sample({ [label]: name }, row.joules);
        text.family(`carbon_trace_${label}_emissions_grams_total`, 'counter', `Emissions attributed to requests, per ${what}, gCO2eq`);
        for (const [name, row] of rows) text.sample({ [label]: name }, row.emissionsGrams);
        text.family(`carbon_trace_${label}_requests_total`, 'counter', `Requests whose books are closed, per ${what}`);
        for (const [name, row] of rows) text.sample({ [label]: name }, row.requests);
      }
      const perComponent = (name: string, type: 'counter' | 'gauge', help: string, pick: (component: NonNullable<CombinedStats['byComponent'][EnergyComponent]>) => number) => {
        text.family(name, type, help);
        for (const component of ENERGY_COMPONENTS) {
          const entry = c.byComponent[component];
          if (entry) text.sample({ component }, pick(entry));
        }
      };
      perComponent('carbon_trace_attributed_energy_joules_total', 'counter', 'Energy attributed to requests whose books are closed, all models, J (the per-model family keeps 100 labels)', (x) => x.attributedJoules);
      perComponent('carbon_trace_idle_energy_joules_total', 'counter', 'Energy with no request in flight, J', (x) => x.idleJoules);
      perComponent('carbon_trace_unattributed_energy_joules_total', 'counter', 'Energy the meter could not place (a source could not be read), J', (x) => x.unattributedJoules);
      perComponent('carbon_trace_in_flight_energy_joules', 'gauge', 'Energy given so far to requests still in flight, J', (x) => x.inFlightJoules);
      // Settled energy only, so that it never goes back, even across a crash (in-flight energy is a gauge).
      perComponent('carbon_trace_meter_energy_joules_total', 'counter', 'Energy the meter measured whose books are settled: attributed + idle + unattributed, J (requests still in flight: carbon_trace_in_flight_energy_joules)', (x) => x.totalJoules - x.inFlightJoules);
      text.family('carbon_trace_idle_emissions_grams_total', 'counter', 'Emissions of the energy with no request in flight, gCO2eq');
      text.sample({}, idleGrams + carried.idleGrams);
      text.family('carbon_trace_unattributed_emissions_grams_total', 'counter', 'Emissions of the energy the meter could not place, gCO2eq');
      text.sample({}, unattributedGrams + carried.unattributedGrams);
      text.family('carbon_trace_power_watts', 'gauge', 'Power the machine draws now, per component, W');
      for (const [component, watts] of Object.entries(c.powerWatts)) text.sample({ component }, watts ?? 0);
      text.family('carbon_trace_grid_intensity_grams_per_kwh', 'gauge', 'The grid intensity emissions are booked at now, gCO2eq/kWh');
      // A live figure's source names its hour: the label says only what kind it is, so the series stays one.
      text.sample({ source: grid.live === undefined ? grid.source : grid.live ? 'live' : 'yearly average', ...(grid.zone ? { zone: grid.zone } : {}) }, grid.gCo2PerKwh);
      text.family('carbon_trace_measured', 'gauge', 'Whether each component is measured by hardware (1) or estimated (0): an alert when a meter falls back');
      for (const component of ENERGY_COMPONENTS) {
        const entry = c.byComponent[component];
        if (entry) text.sample({ component, source: entry.source }, entry.measured ? 1 : 0);
      }
      text.family('carbon_trace_source_errors', 'gauge', 'Energy sources that could not be read at the last reading');
      text.sample({}, c.sourceErrors.length);
      return text.render();
    },

    /** Writes the meter's totals now, off the event loop: before a scrape is answered, so that no counter it showed can come back lower after a crash. */
    persistTotals(): Promise<void> {
      return writeTotals();
    },

    /** Stops the timers, writes both snapshots once the writes under way are done, and closes the ledger. */
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(accrueTimer);
      for (const timer of timers) clearInterval(timer);
      await Promise.all([tablesWriting, totalsWriting]);
      await writeAll();
      ledger?.close();
    },
  };
}

export type ProxyBooks = ReturnType<typeof createProxyBooks>;

/**
 * The proxy's totals in the shape Model Garden's `/api/v1/carbon/inference/stats` has, so
 * seeds-clients' `ModelGardenClient.get_carbon_stats()` reads them unchanged. As there, the
 * totals are the whole session's, idle time included. Tokens are prompt + completion as the
 * responses' usage gave them, and `null` (unknown) when a request reported no usage.
 */
export function modelGardenStats(stats: {
  since: string;
  requests: number;
  totalJoules: number;
  attributedJoules: number;
  idleJoules: number;
  unattributedJoules: number;
  emissionsGrams: { total: number };
  tokens: { prompt: number; completion: number; requestsWithUsage: number; requestsExpectingUsage?: number };
  /** The model names the books keep. */
  modelNames: readonly string[];
  byComponent: Partial<Record<EnergyComponent, { measured: boolean }>>;
}): Record<string, unknown> {
  // Never negative: books dated by a clock that was ahead are counted from now.
  const seconds = Math.max(0, (Date.now() - Date.parse(stats.since)) / 1000);
  const requestCount = stats.requests;
  // Unknown once a completion answered 2xx without saying its tokens; errors and other routes have none to say.
  const tokensKnown = stats.tokens.requestsWithUsage >= (stats.tokens.requestsExpectingUsage ?? requestCount);
  const totalTokens = tokensKnown ? stats.tokens.prompt + stats.tokens.completion : null;
  const kg = stats.emissionsGrams.total / 1000;
  const kwh = stats.totalJoules / JOULES_PER_KWH;
  const models = stats.modelNames.filter((m) => m !== OTHER_ROW);
  const shown = models.slice(0, 10);
  const more = models.length - shown.length + (stats.modelNames.includes(OTHER_ROW) ? 1 : 0);
  return {
    tracking: true,
    model_name: models.length === 0 ? null : `${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`,
    request_count: requestCount,
    total_tokens: totalTokens,
    requests_with_usage: stats.tokens.requestsWithUsage,
    duration_seconds: seconds,
    requests_per_second: seconds > 0 ? requestCount / seconds : 0,
    tokens_per_second: totalTokens !== null && seconds > 0 ? totalTokens / seconds : null,
    emissions_kg_co2: kg,
    emissions_g_co2: kg * 1000,
    energy_consumed_kwh: kwh,
    energy_kwh: kwh,
    ...(requestCount > 0 ? { emissions_per_request_g: (kg * 1000) / requestCount, energy_per_request_wh: (kwh * 1000) / requestCount } : {}),
    ...(totalTokens ? { emissions_per_1k_tokens_g: (kg * 1e6) / totalTokens } : {}),
    attributed_energy_kwh: stats.attributedJoules / JOULES_PER_KWH,
    idle_energy_kwh: stats.idleJoules / JOULES_PER_KWH,
    unattributed_energy_kwh: stats.unattributedJoules / JOULES_PER_KWH,
    measured: Object.values(stats.byComponent).every((c) => c?.measured),
  };
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isJoules = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.entries(v).every(([k, j]) => ENERGY_COMPONENTS.includes(k as EnergyComponent) && isNumber(j));
const isRow = (v: unknown): v is BookRow => {
  const r = v as BookRow;
  return (
    r !== null && typeof r === 'object' &&
    [r.requests, r.measuredRequests, r.requestsWithoutFigure, r.joules, r.emissionsGrams, r.promptTokens, r.completionTokens, r.requestsWithUsage].every(isNumber) &&
    isJoules(r.byComponent) && isJoules(r.emissionsGramsByComponent) &&
    r.byStatus !== null && typeof r.byStatus === 'object' && Object.values(r.byStatus).every(isNumber)
  );
};
const isRows = (v: unknown): v is Array<[string, BookRow]> => Array.isArray(v) && v.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && e[0].length <= 200 && isRow(e[1]));

const isCarried = (c: Carried): boolean =>
  c !== null && typeof c === 'object' &&
  [c.requests, c.requestsWithoutFigure, c.idleGrams, c.unattributedGrams].every(isNumber) &&
  [c.total, c.attributed, c.idle, c.unattributed].every(isJoules) &&
  (c.since === undefined || (typeof c.since === 'string' && !Number.isNaN(Date.parse(c.since))));

/** The tables' part as this version writes it, or `undefined`: a damaged or foreign one is not trusted in part. */
function validTables(value: unknown): Tables | undefined {
  const s = value as Tables;
  if (s === null || typeof s !== 'object' || s.version !== 2 || !isNumber(s.ledgerBytes) || typeof s.fingerprint !== 'string') return undefined;
  return validRows(s);
}

function validRows<T extends Omit<Tables, 'version' | 'fingerprint'>>(s: T): T | undefined {
  const t = s.tokens;
  if (t === null || typeof t !== 'object' || ![t.prompt, t.completion, t.requestsWithUsage].every(isNumber)) return undefined;
  if (![s.byModel, s.byApiKey, s.byUser, s.metricModels, s.metricKeys, s.metricUsers].every(isRows) || !Array.isArray(s.recent)) return undefined;
  // Rows come back prototype-free, as the books keep them.
  for (const rows of [s.byModel, s.byApiKey, s.byUser, s.metricModels, s.metricKeys, s.metricUsers]) for (const [, row] of rows) row.byStatus = Object.assign(Object.create(null), row.byStatus);
  return { ...s, recent: s.recent.filter((r) => r !== null && typeof r === 'object').slice(-1000) };
}

function validTotals(value: unknown): MeterTotals | undefined {
  const s = value as MeterTotals;
  if (s === null || typeof s !== 'object' || s.version !== 2 || !isNumber(s.ledgerBytes) || typeof s.fingerprint !== 'string' || !isCarried(s.carried)) return undefined;
  return s;
}

/**
 * A snapshot 0.1 wrote, read once on the way to this version's two: it names no fingerprint, so
 * it is trusted only where its length ends a row of this file.
 */
function validLegacy(value: unknown, ledger: Ledger): LegacySnapshot | undefined {
  const s = value as LegacySnapshot;
  if (s === null || typeof s !== 'object' || s.version !== 1 || !isNumber(s.ledgerBytes) || s.ledgerBytes > ledger.bytes || !isCarried(s.carried)) return undefined;
  if (!ledger.endsRow(s.ledgerBytes)) return undefined;
  return validRows(s);
}
