import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, constants as fsConstants, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, linkSync, lstatSync, openSync, readFileSync, readSync, realpathSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { open as openFile, rename, type FileHandle } from 'node:fs/promises';
import { cpus, platform, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { csvField, EMISSIONS_CSV_COLUMNS } from '../../core/emissions-csv';
import type { CallKind } from '../../core/types';
import { JOULES_PER_KWH } from '../../core/units';
import { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent, type RequestEnergy } from '../types';
import { addJoules } from '../meter/attribution';
import { FileLockError, lockFile } from './file-lock';
import { FINGERPRINT_WINDOW_BYTES, fingerprintFrom, parseCsvLine, scanRecordsSync } from './ledger-read';
import type { ResolvedGridIntensity } from '../wires/trace-record';

/**
 * The ledger's columns: CodeCarbon's `emissions.csv` columns (so CodeCarbon's tools and a
 * spreadsheet read it), then carbon-trace's. An empty cell means unknown, never 0. Columns are
 * only ever added at the end: a ledger an earlier version began keeps the columns of its header.
 *
 * @example
 * ```ts
 * LEDGER_COLUMNS.slice(-4); // ['warnings', 'trace_delivered', 'kind', 'expects_usage']
 * ```
 */
export const LEDGER_COLUMNS = [
  ...EMISSIONS_CSV_COLUMNS,
  'model',
  'api_key_id',
  'user',
  'status',
  'streamed',
  'measured',
  'prompt_tokens',
  'completion_tokens',
  'grid_intensity_g_co2_per_kwh',
  'grid_intensity_source',
  'warnings',
  // Added in 0.2: a ledger begun by 0.1 has none of these (see openLedger).
  'trace_delivered',
  'kind',
  'expects_usage',
] as const;

/**
 * The kinds a call can be: anything else in a ledger's `kind` cell is not one.
 *
 * @example
 * ```ts
 * CALL_KINDS.has('embedding'); // true
 * ```
 */
export const CALL_KINDS: ReadonlySet<string> = new Set<CallKind>(['chat', 'embedding', 'rerank']);

/**
 * One closed request, as the ledger keeps it and gives it back.
 *
 * @example
 * ```ts
 * const entry: LedgerEntry = { at: new Date().toISOString(), status: 200, streamed: false, energy, grid, usage: {} };
 * ```
 */
export type LedgerEntry = {
  /** When its books closed (ISO 8601). */
  at: string;
  model?: string | undefined;
  /** The client's API key as a one-way id (`key:` + 12 hex of an HMAC), never the key. */
  apiKeyId?: string | undefined;
  user?: string | undefined;
  status: number;
  streamed: boolean;
  energy: RequestEnergy;
  grid: ResolvedGridIntensity;
  usage: { promptTokens?: number; completionTokens?: number };
  /** What the call was; `undefined` when no wire knew the request (or the row predates the column). */
  kind?: CallKind | undefined;
  /** Whether the trace was put on the response and the client got that response whole; `undefined` when not known (a row that predates the column). */
  traceDelivered?: boolean | undefined;
  /** Whether its answer should have said its tokens (a 2xx of a wire that reports usage); `undefined` when not known (a row that predates the column). */
  expectsUsage?: boolean | undefined;
};

/** What the machine is, once per process: CodeCarbon's descriptive columns. */
const machine = (() => {
  let cached: Record<string, string | number> | undefined;
  return () =>
    (cached ??= {
      os: platform(),
      cpu_count: cpus().length,
      cpu_model: cpus()[0]?.model ?? '',
      ram_total_size: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
      // The meter reads the whole machine's counters, as CodeCarbon's machine mode.
      tracking_mode: 'machine',
    });
})();

/**
 * The ledger line of one closed request (with its newline), in `columns` (the file's header's:
 * {@link LEDGER_COLUMNS} unless the file was begun by an earlier version).
 *
 * @example
 * ```ts
 * appendFileSync('ledger.csv', ledgerLine(entry, randomUUID(), 'carbon-trace proxy'));
 * ```
 */
export function ledgerLine(entry: LedgerEntry, runId: string, projectName: string, columns: readonly string[] = LEDGER_COLUMNS): string {
  const { energy } = entry;
  const seconds = energy.durationSeconds;
  const known = energy.totalJoules !== undefined;
  const row: Record<string, string | number> = {
    ...machine(),
    timestamp: entry.at,
    project_name: projectName,
    run_id: runId,
    duration: seconds,
    model: entry.model ?? '',
    api_key_id: entry.apiKeyId ?? '',
    user: entry.user ?? '',
    status: entry.status,
    streamed: entry.streamed ? 'true' : 'false',
    prompt_tokens: entry.usage.promptTokens ?? '',
    completion_tokens: entry.usage.completionTokens ?? '',
    warnings: energy.warnings.join(' | '),
    trace_delivered: entry.traceDelivered === undefined ? '' : entry.traceDelivered ? 'true' : 'false',
    kind: entry.kind ?? '',
    expects_usage: entry.expectsUsage === undefined ? '' : entry.expectsUsage ? 'true' : 'false',
  };
  if (known) {
    const kg = (energy.totalJoules! / JOULES_PER_KWH) * (entry.grid.gCo2PerKwh / 1000);
    row.emissions = kg;
    if (seconds > 0) row.emissions_rate = kg / seconds;
    row.energy_consumed = energy.totalJoules! / JOULES_PER_KWH;
    for (const component of ENERGY_COMPONENTS) {
      const joules = energy.joules[component];
      if (joules === undefined) continue;
      row[`${component}_energy`] = joules / JOULES_PER_KWH;
      if (seconds > 0) row[`${component}_power`] = joules / seconds;
    }
    row.measured = energy.measured ? 'true' : 'false';
    row.grid_intensity_g_co2_per_kwh = entry.grid.gCo2PerKwh;
    row.grid_intensity_source = entry.grid.source;
  }
  return `${columns.map((c) => csvField(row[c] ?? '')).join(',')}\n`;
}

const numberOf = (text: string | undefined): number | undefined => {
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
};

/**
 * A ledger line's fields back into the entry it was written from, by its header's `index` of
 * columns; `undefined` when it is not one.
 *
 * @example
 * ```ts
 * const entry = entryOf(parseCsvLine(line)!, new Map(columns.map((c, i) => [c, i])));
 * ```
 */
export function entryOf(fields: string[], index: Map<string, number>): LedgerEntry | undefined {
  const get = (column: string) => {
    const at = index.get(column);
    return at === undefined ? undefined : fields[at];
  };
  const at = get('timestamp');
  const status = numberOf(get('status'));
  if (!at || Number.isNaN(Date.parse(at)) || status === undefined) return undefined;
  const joules: ComponentJoules = {};
  for (const component of ENERGY_COMPONENTS) {
    const kwh = numberOf(get(`${component}_energy`));
    if (kwh !== undefined) joules[component as EnergyComponent] = kwh * JOULES_PER_KWH;
  }
  const kwh = numberOf(get('energy_consumed'));
  const measured = get('measured') === 'true';
  const grid = numberOf(get('grid_intensity_g_co2_per_kwh'));
  const warnings = get('warnings');
  const prompt = numberOf(get('prompt_tokens'));
  const completion = numberOf(get('completion_tokens'));
  const kind = get('kind');
  const delivered = get('trace_delivered');
  const expects = get('expects_usage');
  return {
    at,
    model: get('model') || undefined,
    apiKeyId: get('api_key_id') || undefined,
    user: get('user') || undefined,
    status,
    streamed: get('streamed') === 'true',
    energy: {
      joules: kwh === undefined ? {} : joules,
      totalJoules: kwh === undefined ? undefined : kwh * JOULES_PER_KWH,
      durationSeconds: numberOf(get('duration')) ?? 0,
      measured: kwh !== undefined && measured,
      warnings: warnings ? warnings.split(' | ') : [],
    },
    grid: { gCo2PerKwh: grid ?? 0, source: get('grid_intensity_source') ?? '' },
    usage: { ...(prompt !== undefined ? { promptTokens: prompt } : {}), ...(completion !== undefined ? { completionTokens: completion } : {}) },
    // A ledger begun before these columns has none: unknown, not "no".
    ...(kind !== undefined && CALL_KINDS.has(kind) ? { kind: kind as CallKind } : {}),
    ...(delivered === 'true' || delivered === 'false' ? { traceDelivered: delivered === 'true' } : {}),
    ...(expects === 'true' || expects === 'false' ? { expectsUsage: expects === 'true' } : {}),
  };
}

/**
 * Options of {@link openLedger}.
 *
 * @example
 * ```ts
 * openLedger({ path: '/var/lib/carbon-trace/ledger.csv', onWarning: console.warn });
 * ```
 */
export type LedgerOptions = {
  path: string;
  /** `project_name` of every row. Default `'carbon-trace proxy'`. */
  projectName?: string;
  /** How often the file is flushed to disk (fsync), ms. Default 1000. */
  syncIntervalMs?: number;
  /** How many rows are kept in memory while the file cannot take them (a full disk), before the oldest are counted lost. Default 100000. */
  maxPendingRows?: number;
  /** How often rows kept in memory are tried again, ms. Default 1000. */
  retryIntervalMs?: number;
  onWarning?: (message: string) => void;
};

/**
 * An open ledger: rows are appended one `write` each, so a row is in the file (the page cache)
 * before the client gets the response it books, and survives the process being killed; the file
 * is synced to disk every second and on close, so a machine that loses power loses at most that.
 * While the file cannot take a row (a full disk, a quota), no partial row stays in it: the rows
 * wait in memory, in order, and are written when it can; beyond `maxPendingRows` the oldest are
 * counted in `lostRows`, and both conditions are said once when they start and once when they end.
 *
 * @example
 * ```ts
 * const ledger = openLedger({ path: 'ledger.csv' });
 * ledger.append(entry);
 * ```
 */
export type Ledger = {
  /** The path as given. */
  readonly path: string;
  /** This run's id: the `run_id` of every row it writes. */
  readonly runId: string;
  /** The file's own path (symbolic links resolved): what its companion files are named after. */
  readonly realPath: string;
  /** Size in bytes of what the file holds now: every row up to here is whole. */
  readonly bytes: number;
  /** Rows booked but not yet in the file (it could not take them). */
  readonly pendingRows: number;
  /** Rows that could not be written and are gone (more than `maxPendingRows` waited, or they waited at close). */
  readonly lostRows: number;
  /** Whether the file held rows when it was opened (an earlier run's). */
  readonly hasRows: boolean;
  /** The columns rows are written in: its header's ({@link LEDGER_COLUMNS}, or fewer in a ledger an earlier version began). */
  readonly columns: readonly string[];
  /** The rows this run has put in the file, and their energy: what a restart reads back. */
  readonly written: { rows: number; withoutFigure: number; joules: ComponentJoules };
  /** Why the file at `path` is no longer the one written (moved, replaced, cut short), once seen; rows then wait in memory. */
  readonly detached: string | undefined;
  append(entry: LedgerEntry): void;
  /**
   * Reads the rows from byte `from` (0: all), in order, with the byte offset where each ends;
   * says how many lines were skipped as broken.
   */
  replay(from: number, onEntry: (entry: LedgerEntry, end: number) => void): { rows: number; skipped: number; firstAt?: string };
  /**
   * A fingerprint of the file's first `bytes` bytes (its head and the end of that span, and the
   * length): what a snapshot of the books up to there is tied to, so a snapshot is never applied to
   * another file, a rewritten one or a shorter one.
   */
  fingerprint(bytes: number): string;
  /** Whether byte offset `at` is where a line of the file ends (a row boundary). */
  endsRow(at: number): boolean;
  /** Tries the rows kept in memory now; true when none is left. */
  flush(): boolean;
  /**
   * Flushes what the file holds to disk (`fsync`, off the event loop): a snapshot of the books up
   * to `bytes` is put in place only after, so that after a power cut it never describes rows the
   * disk lost. Never rejects; resolves at once once the ledger is closed.
   */
  sync(): Promise<void>;
  close(): void;
};

const DEFAULT_MAX_PENDING_ROWS = 100_000;

/**
 * Opens (or creates) a ledger file, and locks it to this proxy: a `flock(2)` the kernel holds on
 * the file itself, so a second proxy on it (another process, another container on a shared
 * volume, another name of the same file) is refused. Only a regular file is taken (never a
 * device, a pipe or a directory), and only a ledger: another file is not cut or written into. A
 * torn last line — the process or the machine stopped mid-write — is dropped with one warning, so
 * that new rows start on a line of their own; it never stops the start.
 *
 * @throws when the path is not a regular file or a place where one can be created, is not a
 * ledger, or is locked by another proxy.
 *
 * @example
 * ```ts
 * const ledger = openLedger({ path: 'ledger.csv', onWarning: (m) => console.warn(m) });
 * ```
 */
export function openLedger(options: LedgerOptions): Ledger {
  const warn = options.onWarning ?? (() => {});
  const path = options.path;
  const runId = randomUUID();
  const projectName = options.projectName ?? 'carbon-trace proxy';
  const header = `${LEDGER_COLUMNS.join(',')}\n`;
  const maxPending = Math.max(1, options.maxPendingRows ?? DEFAULT_MAX_PENDING_ROWS);

  // A device reports size 0 and would be taken for a new file: only regular files are ledgers.
  let existing: Stats | undefined;
  try {
    existing = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (existing && !existing.isFile()) throw notRegular(path, existing);
  // O_NONBLOCK: should a pipe be swapped in after the check, opening it must not hang the start.
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_APPEND | fsConstants.O_CREAT | (fsConstants.O_NONBLOCK ?? 0), 0o644);
  let release: () => void = () => {};
  let realPath: string;
  let bytes: number;
  let hasRows = false;
  // The file's own columns, from its header: rows are written in these.
  let columns: string[] = [...LEDGER_COLUMNS];
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw notRegular(path, stat);
    try {
      release = lockFile(fd);
    } catch (error) {
      if (error instanceof FileLockError && error.reason === 'held') throw new Error(`${path}: in use by another carbon-trace proxy (it holds the file's lock); one proxy per ledger`);
      throw new Error(`${path}: the one-proxy lock could not be taken: ${(error as Error).message}`);
    }
    realPath = realpathSync(path);
    bytes = fstatSync(fd).size;
    if (bytes > 0) bytes = checkHeadAndTail(fd, bytes, path, warn);
    if (bytes === 0) {
      writeHeader(fd, header, path);
      bytes = Buffer.byteLength(header);
      // A new file: its name in the directory is made durable too, not only its bytes.
      syncDirectorySync(dirname(realPath));
    }
    const head = readHeader(fd, bytes);
    hasRows = bytes > head.bytes;
    columns = parseCsvLine(head.line) ?? head.line.split(',');
    if (!LEDGER_COLUMNS.every((c) => columns.includes(c))) {
      if (hasRows) {
        // Its rows are read by its header: a row of more cells than that header would be misread
        // by every CSV reader, so the file keeps its columns.
        const missing = LEDGER_COLUMNS.filter((c) => !columns.includes(c));
        warn(`ledger ${path}: begun by an earlier version, its header has no ${missing.join(', ')} column${missing.length === 1 ? '' : 's'}: rows are written in its own columns, without them (a new ledger file has them)`);
      } else {
        // A header and no row: nothing to misread, it takes this version's header.
        ftruncateSync(fd, 0);
        writeHeader(fd, header, path);
        bytes = Buffer.byteLength(header);
        columns = [...LEDGER_COLUMNS];
      }
    }
  } catch (error) {
    release();
    closeSync(fd);
    throw error;
  }
  const identity = fstatSync(fd);
  let open = true;
  // Why the file at `path` is no longer the one this proxy writes (moved, replaced, cut), once seen.
  let detached: string | undefined;
  const timer = setInterval(() => {
    fsync(fd, () => {});
    checkStillOurs();
  }, options.syncIntervalMs ?? 1_000);
  timer.unref();

  // Rows the file could not take yet, oldest first (with their energy, counted in `written` once
  // they are in), and the condition that keeps them out.
  const pending: Array<{ line: Buffer; entry: LedgerEntry }> = [];
  const written = { rows: 0, withoutFigure: 0, joules: {} as ComponentJoules };
  let lostRows = 0;
  let failing: { reason: string; since: string; rows: number } | undefined;
  let lostSaid = false;
  // A write cut short that could not be cut back leaves the file mid-line: the next row ends it first.
  let midLine = false;
  let retryTimer: ReturnType<typeof setInterval> | undefined;
  let lastFingerprint = { at: -1, value: '' };

  /**
   * Whether `path` is still this file, whole: a ledger moved or replaced under the proxy (another
   * proxy could then take the new one), or cut short (logrotate's copytruncate), is written no more.
   */
  function checkStillOurs(): boolean {
    if (detached !== undefined) return false;
    let why: string | undefined;
    try {
      const now = statSync(path);
      if (now.dev !== identity.dev || now.ino !== identity.ino) why = 'another file now has its name (moved, replaced or rotated)';
    } catch (error) {
      why = `its name no longer leads to it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}: moved or deleted)`;
    }
    if (why === undefined && fstatSync(fd).size < bytes) why = 'it was cut short (truncated: logrotate copytruncate, or by hand)';
    if (why === undefined) return true;
    detached = why;
    warn(`ledger ${path}: ${why} while the proxy wrote it: no more rows are written, and the books go on in memory only; stop the proxy, put the ledger back or move it away with its companions (${path}.*), and start it again`);
    return false;
  }

  /** One row into the file, or nothing of it: a short write is cut back to the last whole row. */
  const writeRow = (line: Buffer, entry: LedgerEntry): boolean => {
    if (detached !== undefined) return false;
    const out = midLine ? Buffer.concat([NEWLINE, line]) : line;
    let count = 0;
    let code: string | undefined;
    try {
      count = writeSync(fd, out);
    } catch (error) {
      code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    }
    if (count === out.length) {
      bytes += count;
      midLine = false;
      written.rows++;
      if (entry.energy.totalJoules === undefined) written.withoutFigure++;
      addJoules(written.joules, entry.energy.joules);
      return true;
    }
    if (count > 0) {
      try {
        ftruncateSync(fd, bytes);
      } catch {
        // The part stays: count it, and end its line before the next row.
        bytes += count;
        midLine = true;
      }
    }
    startFailing(code ?? `a short write (${count} of ${out.length} bytes)`);
    return false;
  };

  const startFailing = (reason: string) => {
    if (failing !== undefined) return;
    // Each episode says when it began: two episodes are two lines, never one said once.
    failing = { reason, since: new Date().toISOString(), rows: 0 };
    lostSaid = false;
    warn(`ledger ${path}: rows cannot be written since ${failing.since} (${reason}); they are kept in memory, up to ${maxPending}, and written when the file takes them again`);
    retryTimer = setInterval(flush, options.retryIntervalMs ?? 1_000);
    retryTimer.unref();
  };

  function flush(): boolean {
    while (pending.length > 0 && open) {
      if (!writeRow(pending[0]!.line, pending[0]!.entry)) return false;
      pending.shift();
    }
    if (failing !== undefined && pending.length === 0) {
      warn(`ledger ${path}: rows are written again, after ${failing.rows} waited since ${failing.since}${lostRows > 0 ? ` (${lostRows} rows in all were lost while it could not take them)` : ''}`);
      failing = undefined;
      clearInterval(retryTimer);
      retryTimer = undefined;
    }
    return pending.length === 0;
  }

  const keep = (line: Buffer, entry: LedgerEntry) => {
    pending.push({ line, entry });
    if (failing) failing.rows++;
    if (pending.length > maxPending) {
      pending.shift();
      lostRows++;
      if (!lostSaid) {
        lostSaid = true;
        warn(`ledger ${path}: more than ${maxPending} rows waited for the file: the oldest are lost from it (the books in memory still count them; stats say how many: ledger.lostRows)`);
      }
    }
  };

  return {
    path,
    runId,
    realPath,
    get bytes() {
      return bytes;
    },
    get pendingRows() {
      return pending.length;
    },
    get lostRows() {
      return lostRows;
    },
    get written() {
      return written;
    },
    hasRows,
    columns,
    get detached() {
      return detached;
    },
    append(entry) {
      if (!open) return;
      const line = Buffer.from(ledgerLine(entry, runId, projectName, columns));
      // A file moved, replaced or cut short under us: seen before the write, never after it
      // (a cut file would take rows with no header before them; a replaced one, none of ours).
      if (!checkStillOurs()) {
        keep(line, entry);
        return;
      }
      // In order: while rows wait, a new one waits behind them.
      if (pending.length > 0) {
        keep(line, entry);
        flush();
      } else if (!writeRow(line, entry)) {
        keep(line, entry);
      } else if (failing !== undefined) {
        flush();
      }
    },
    flush,
    sync() {
      if (!open) return Promise.resolve();
      return new Promise<void>((resolve) => fsync(fd, () => resolve()));
    },
    fingerprint(at) {
      const end = Math.min(Math.max(0, at), bytes);
      // The file only grows while it is ours: the bytes up to an offset, and so its fingerprint, stay.
      if (end === lastFingerprint.at) return lastFingerprint.value;
      const head = Buffer.alloc(Math.min(end, FINGERPRINT_WINDOW_BYTES));
      const headRead = readSync(fd, head, 0, head.length, 0);
      const tailFrom = Math.max(0, end - FINGERPRINT_WINDOW_BYTES);
      const tail = Buffer.alloc(end - tailFrom);
      const tailRead = readSync(fd, tail, 0, tail.length, tailFrom);
      const value = fingerprintFrom(head.subarray(0, headRead), tail.subarray(0, tailRead), end);
      lastFingerprint = { at: end, value };
      return value;
    },
    endsRow(at) {
      if (at <= 0 || at > bytes) return false;
      const byte = Buffer.alloc(1);
      return readSync(fd, byte, 0, 1, at - 1) === 1 && byte[0] === 0x0a;
    },
    replay(from, onEntry) {
      const header = readHeader(fd, bytes);
      const columns = parseCsvLine(header.line) ?? [];
      const index = new Map(columns.map((c, i) => [c, i]));
      let rows = 0;
      let skipped = 0;
      let firstAt: string | undefined;
      // Record by record: a quoted name may hold a newline (RFC 4180), and a row is still one record.
      const scan = scanRecordsSync(fd, Math.max(from, header.bytes), bytes, (line, end) => {
        if (line === '') return;
        const fields = parseCsvLine(line);
        const entry = fields && entryOf(fields, index);
        if (!entry) {
          skipped++;
          return;
        }
        firstAt ??= entry.at;
        rows++;
        onEntry(entry, end);
      });
      skipped += scan.tooLong;
      if (scan.end < bytes && written.rows === 0 && pending.length === 0) {
        // A last row cut inside a quoted name that holds a newline: the start's check saw a line
        // end there, but the row is not whole. Rows appended after it would be read as part of it.
        ftruncateSync(fd, scan.end);
        warn(`ledger ${path}: dropped a torn last line (${bytes - scan.end} bytes: the proxy stopped mid-write)`);
        bytes = scan.end;
      }
      if (skipped > 0) warn(`ledger ${path}: skipped ${skipped} line${skipped === 1 ? '' : 's'} that are not rows`);
      return { rows, skipped, ...(firstAt ? { firstAt } : {}) };
    },
    close() {
      if (!open) return;
      flush();
      open = false;
      clearInterval(timer);
      if (retryTimer) clearInterval(retryTimer);
      if (pending.length > 0) {
        lostRows += pending.length;
        warn(`ledger ${path}: ${pending.length} rows could not be written before the proxy stopped (${failing?.reason ?? detached ?? 'the file did not take them'}): they are lost from the file`);
        pending.length = 0;
      }
      try {
        fsyncSync(fd);
      } catch {
        // A full disk may refuse the sync too: what is in the file stays.
      } finally {
        release();
        closeSync(fd);
      }
    },
  };
}

const NEWLINE = Buffer.from('\n');

/**
 * Writes all of `data` at the file's end; throws, saying how much went in, when the file takes
 * less (a full disk, a quota, a file-size limit).
 */
function writeAllSync(fd: number, data: Buffer): void {
  let done = 0;
  while (done < data.length) {
    let count: number;
    try {
      count = writeSync(fd, data, done);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new Error(done > 0 ? `${code} after ${done} of ${data.length} bytes` : code, { cause: error });
    }
    if (count <= 0) throw new Error(`a short write (${done} of ${data.length} bytes)`);
    done += count;
  }
}

/**
 * The header of a new (or emptied) ledger, whole and on disk, or nothing: a file that cannot take
 * it (a full disk, a file-size limit) is cut back to empty and the start refused with one line.
 */
function writeHeader(fd: number, header: string, path: string): void {
  try {
    writeAllSync(fd, Buffer.from(header));
    syncFileSync(fd);
  } catch (error) {
    let left = 'the file is left empty';
    try {
      ftruncateSync(fd, 0);
    } catch (cut) {
      left = `the file could not be cut back (${(cut as NodeJS.ErrnoException).code ?? (cut as Error).message}): remove it`;
    }
    throw new Error(`${path}: the ledger's header could not be written (${(error as Error).message}): ${left}; free space on its disk (or lift the file-size limit) and start again`);
  }
}

/** Errors of an `fsync` (or of opening a directory for one) that mean the filesystem does not do it, not that a write failed: some network, FUSE and Windows filesystems. */
const SYNC_REFUSED = new Set(['EINVAL', 'EISDIR', 'EPERM', 'EACCES', 'EBADF', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);
const refusedSync = (error: unknown) => SYNC_REFUSED.has((error as NodeJS.ErrnoException).code ?? '');

function syncFileSync(fd: number): void {
  try {
    fsyncSync(fd);
  } catch (error) {
    if (!refusedSync(error)) throw error;
  }
}

/** Makes the entries of directory `dir` durable (a rename, a link, a new file in it); a filesystem that refuses a directory's `fsync` is left as it is. */
function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (error) {
    if (!refusedSync(error)) throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** {@link syncDirectorySync}, off the event loop. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await openFile(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (!refusedSync(error)) throw error;
  } finally {
    await handle?.close();
  }
}

function notRegular(path: string, stat: Stats): Error {
  const kind = stat.isDirectory() ? 'a directory' : stat.isBlockDevice() ? 'a block device' : stat.isCharacterDevice() ? 'a character device' : stat.isFIFO() ? 'a pipe' : stat.isSocket() ? 'a socket' : 'not a regular file';
  return new Error(`${path}: ${kind}, not a regular file: a ledger is a file (such as /var/lib/carbon-trace/ledger.csv)`);
}

/** The file's first line (its header), and how many bytes it takes with its newline. */
function readHeader(fd: number, size: number): { line: string; bytes: number } {
  const head = Buffer.alloc(Math.min(size, 64 * 1024));
  const read = head.subarray(0, readSync(fd, head, 0, head.length, 0));
  const end = read.indexOf(0x0a);
  return end < 0 ? { line: read.toString('utf8'), bytes: size } : { line: read.toString('utf8', 0, end), bytes: end + 1 };
}

/** Checks the file is a ledger and drops a torn last line; returns where its last whole line ends. */
function checkHeadAndTail(fd: number, size: number, path: string, warn: (message: string) => void): number {
  const head = Buffer.alloc(Math.min(size, 4096));
  const first = head.subarray(0, readSync(fd, head, 0, head.length, 0)).toString('utf8').split('\n', 1)[0]!;
  if (!first.startsWith('timestamp,project_name,run_id,') || !first.includes(',api_key_id,')) {
    throw new Error(`${path}: not a carbon-trace ledger (its first line is not a ledger's header): give --ledger a new file`);
  }
  const tail = Buffer.alloc(Math.min(size, 64 * 1024));
  let end = size;
  let whole = -1;
  while (whole < 0 && end > 0) {
    const from = Math.max(0, end - tail.length);
    const n = readSync(fd, tail, 0, end - from, from);
    const at = tail.subarray(0, n).lastIndexOf(0x0a);
    if (at >= 0) whole = from + at + 1;
    end = from;
  }
  if (whole === size) return size;
  const kept = Math.max(whole, 0);
  ftruncateSync(fd, kept);
  warn(`ledger ${path}: dropped a torn last line (${size - kept} bytes: the proxy stopped mid-write)`);
  return kept;
}

/**
 * The secret API key ids are made with, kept beside a ledger (`<ledger>.key-id-secret`, 32 random
 * bytes in hex, readable by its owner only) so that a key keeps its id across restarts. Call it
 * with the ledger's lock held: it is created once, complete (written aside and flushed to disk,
 * then linked into place, which fails if another got there first, and the directory flushed, so
 * a power cut never leaves it empty), and never replaced.
 *
 * @throws when the file is there but unusable (not a file, unreadable, not a secret): a new secret
 * would give every key a second id, so the start is refused instead.
 *
 * @example
 * ```ts
 * const secret = keyIdSecretBeside(ledger.realPath);
 * ```
 */
export function keyIdSecretBeside(ledgerPath: string, options: { hasRows?: boolean } = {}): Buffer {
  const path = `${ledgerPath}.key-id-secret`;
  const unusable = (why: string) =>
    new Error(`the key-id secret ${path} is ${why}: fix it (a file of 64 hex digits, readable by this user) or remove it, which gives every API key a new id`);
  const read = (): Buffer | undefined => {
    let stat: Stats;
    try {
      stat = statSync(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw unusable(`not reachable (${code ?? (error as Error).message})`);
      // A name that is there but leads nowhere is not "no secret": a new one would replace the one it meant.
      let link = false;
      try {
        link = lstatSync(path).isSymbolicLink();
      } catch {
        // Not there at all.
      }
      if (link) throw unusable('a link to a file that does not exist');
      return undefined;
    }
    if (!stat.isFile()) throw unusable(stat.isDirectory() ? 'a directory' : 'not a regular file');
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch (error) {
      throw unusable(`unreadable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    if (!/^[0-9a-f]{32,}$/i.test(text)) throw unusable('not a secret (it should hold at least 32 hex digits)');
    return Buffer.from(text, 'hex');
  };
  const kept = read();
  if (kept) return kept;
  // Rows made with a secret that is not here (kept under another name of the file, or given in
  // CARBON_TRACE_KEY_ID_SECRET): a new one would give their keys a second id.
  if (options.hasRows) {
    throw new Error(
      `the ledger ${ledgerPath} has rows but no key-id secret beside it (${path}): their API key ids were made with another — set CARBON_TRACE_KEY_ID_SECRET to it, or copy the secret file here from beside the name the ledger had`,
    );
  }
  const secret = randomBytes(32);
  const aside = `${path}.${randomUUID()}.tmp`;
  try {
    // On disk before it has its name, and its name on disk before any row is made with it: after
    // a power cut the secret is there whole, or not at all (and then no row used it either).
    const fd = openSync(aside, 'wx', 0o600);
    try {
      writeAllSync(fd, Buffer.from(`${secret.toString('hex')}\n`));
      syncFileSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(aside, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const there = read();
      if (there === undefined) throw unusable('there but cannot be read back');
      return there;
    }
    rmSync(aside, { force: true });
    syncDirectorySync(dirname(path));
    return secret;
  } catch (error) {
    if ((error as Error).message.startsWith('the key-id secret')) throw error;
    throw new Error(`the key-id secret ${path} could not be created (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  } finally {
    rmSync(aside, { force: true });
  }
}

/**
 * Writes a JSON snapshot next to the ledger atomically and durably: a temporary file, flushed to
 * disk (`fsync`), renamed over the old one, then the directory flushed — so a crash or a power
 * cut leaves the old snapshot or the new one, whole, never an empty one or half of one, and once
 * this resolves the new one survives a power cut. The writing is off the event loop; the caller
 * makes sure two writes of one path do not overlap.
 *
 * @example
 * ```ts
 * await writeSnapshot('ledger.csv.snapshot.json', JSON.stringify({ ledgerBytes: ledger.bytes, books }));
 * ```
 */
export async function writeSnapshot(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp`;
  const handle = await openFile(temporary, 'w');
  try {
    await handle.writeFile(text);
    try {
      await handle.sync();
    } catch (error) {
      if (!refusedSync(error)) throw error;
    }
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
  await syncDirectory(dirname(path));
}

/**
 * The snapshot next to a ledger, or `undefined` when there is none or it does not parse.
 *
 * @example
 * ```ts
 * const snapshot = readSnapshot('ledger.csv.snapshot.json');
 * ```
 */
export function readSnapshot(path: string): unknown {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}
