import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, platform, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { csvField, EMISSIONS_CSV_COLUMNS } from '../core/emissions-csv';
import { JOULES_PER_KWH } from '../core/units';
import { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent, type RequestEnergy } from './types';
import type { ResolvedGridIntensity } from './trace-record';

/**
 * The ledger's columns: CodeCarbon's `emissions.csv` columns (so CodeCarbon's tools and a
 * spreadsheet read it), then carbon-trace's. An empty cell means unknown, never 0.
 *
 * @example
 * ```ts
 * LEDGER_COLUMNS.slice(-4); // ['prompt_tokens', 'completion_tokens', 'grid_intensity_g_co2_per_kwh', 'grid_intensity_source'] …
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
] as const;

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

/** The ledger line of one closed request (with its newline). */
export function ledgerLine(entry: LedgerEntry, runId: string, projectName: string): string {
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
  return `${LEDGER_COLUMNS.map((c) => csvField(row[c] ?? '')).join(',')}\n`;
}

/** Splits one CSV line (RFC 4180 quoting), undoing the ' that guards formulas. */
function parseCsvLine(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    let field = '';
    let quoted = false;
    if (line[i] === '"') {
      quoted = true;
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return undefined;
        field += line.slice(i, q);
        if (line[q + 1] === '"') {
          field += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      if (i < line.length && line[i] !== ',') return undefined;
    } else {
      const comma = line.indexOf(',', i);
      field = line.slice(i, comma < 0 ? line.length : comma);
      i = comma < 0 ? line.length : comma;
    }
    out.push(quoted && /^'['=+\-@]/.test(field) ? field.slice(1) : field);
    i++;
  }
  return out;
}

const numberOf = (text: string | undefined): number | undefined => {
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
};

/** A ledger line back into the entry it was written from; `undefined` when it is not one. */
function entryOf(fields: string[], index: Map<string, number>): LedgerEntry | undefined {
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
  onWarning?: (message: string) => void;
};

/**
 * An open ledger: rows are appended one `write` each, so a row is in the file (the page cache)
 * before the client gets the response it books, and survives the process being killed; the file
 * is synced to disk every second and on close, so a machine that loses power loses at most that.
 *
 * @example
 * ```ts
 * const ledger = openLedger({ path: 'ledger.csv' });
 * ledger.append(entry);
 * ```
 */
export type Ledger = {
  readonly path: string;
  /** Size in bytes of what the file holds now (every row up to here is whole). */
  readonly bytes: number;
  append(entry: LedgerEntry): void;
  /** Reads the rows from byte `from` (0: all), in order; says how many were skipped as broken. */
  replay(from: number, onEntry: (entry: LedgerEntry) => void): { rows: number; skipped: number; firstAt?: string };
  close(): void;
};

/**
 * Opens (or creates) a ledger file. A torn last line — the process or the machine stopped
 * mid-write — is dropped with one warning, so that new rows start on a line of their own; it never
 * stops the start.
 *
 * @example
 * ```ts
 * const ledger = openLedger({ path: 'ledger.csv', onWarning: (m) => console.warn(m) });
 * ```
 */
export function openLedger(options: LedgerOptions): Ledger {
  const warn = options.onWarning ?? (() => {});
  const runId = randomUUID();
  const projectName = options.projectName ?? 'carbon-trace proxy';
  const header = `${LEDGER_COLUMNS.join(',')}\n`;
  const release = lock(options.path);
  let fd: number;
  try {
    fd = openSync(options.path, 'a+');
  } catch (error) {
    release();
    throw error;
  }
  let bytes = fstatSync(fd).size;
  if (bytes > 0) {
    // Only a ledger is appended to: another file is not cut or written into.
    const head = Buffer.alloc(Math.min(bytes, 4096));
    const first = head.subarray(0, readSync(fd, head, 0, head.length, 0)).toString('utf8').split('\n', 1)[0]!;
    if (!first.startsWith('timestamp,project_name,run_id,') || !first.includes(',api_key_id,')) {
      closeSync(fd);
      release();
      throw new Error(`${options.path} is not a carbon-trace ledger (its first line is not a ledger's header): give --ledger a new file`);
    }
    // Where the last whole line ends.
    const tail = Buffer.alloc(Math.min(bytes, 64 * 1024));
    let end = bytes;
    let whole = -1;
    while (whole < 0 && end > 0) {
      const from = Math.max(0, end - tail.length);
      const n = readSync(fd, tail, 0, end - from, from);
      const at = tail.subarray(0, n).lastIndexOf(0x0a);
      if (at >= 0) whole = from + at + 1;
      end = from;
    }
    if (whole !== bytes) {
      const dropped = bytes - Math.max(whole, 0);
      ftruncateSync(fd, Math.max(whole, 0));
      bytes = Math.max(whole, 0);
      warn(`ledger ${options.path}: dropped a torn last line (${dropped} bytes: the proxy stopped mid-write)`);
    }
  }
  if (bytes === 0) {
    writeSync(fd, header);
    bytes = Buffer.byteLength(header);
  }
  const timer = setInterval(() => fsync(fd, () => {}), options.syncIntervalMs ?? 1_000);
  timer.unref();
  let open = true;

  return {
    path: options.path,
    get bytes() {
      return bytes;
    },
    append(entry) {
      if (!open) return;
      const line = Buffer.from(ledgerLine(entry, runId, projectName));
      try {
        writeSync(fd, line);
        bytes += line.length;
      } catch (error) {
        warn(`ledger ${options.path}: a row could not be written (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); the books go on in memory`);
      }
    },
    replay(from, onEntry) {
      const head = Buffer.alloc(Math.min(bytes, 64 * 1024));
      const headerEnd = head.subarray(0, readSync(fd, head, 0, head.length, 0)).indexOf(0x0a);
      const columns = parseCsvLine(head.toString('utf8', 0, Math.max(0, headerEnd))) ?? [];
      const index = new Map(columns.map((c, i) => [c, i]));
      let rows = 0;
      let skipped = 0;
      let firstAt: string | undefined;
      // Read in chunks, line by line: a ledger of millions of rows is larger than a string may be.
      const chunk = Buffer.alloc(1 << 20);
      let carry: Buffer = Buffer.alloc(0);
      let position = Math.max(from, headerEnd + 1);
      while (position < bytes) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, bytes - position), position);
        if (n <= 0) break;
        position += n;
        const data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
        let lineStart = 0;
        for (let newline = data.indexOf(0x0a); newline >= 0; newline = data.indexOf(0x0a, lineStart)) {
          const line = data.toString('utf8', lineStart, newline);
          lineStart = newline + 1;
          if (line === '') continue;
          const fields = parseCsvLine(line);
          const entry = fields && entryOf(fields, index);
          if (!entry) {
            skipped++;
            continue;
          }
          firstAt ??= entry.at;
          rows++;
          onEntry(entry);
        }
        carry = Buffer.from(data.subarray(lineStart));
      }
      if (skipped > 0) warn(`ledger ${options.path}: skipped ${skipped} line${skipped === 1 ? '' : 's'} that are not rows`);
      return { rows, skipped, ...(firstAt ? { firstAt } : {}) };
    },
    close() {
      if (!open) return;
      open = false;
      clearInterval(timer);
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
        release();
      }
    },
  };
}

/**
 * Takes `<ledger>.lock` for this process, so that two proxies never write one ledger (their rows
 * and snapshots would mix); a lock whose process is gone is taken over. Returns its release.
 */
function lock(path: string): () => void {
  const lockPath = `${path}.lock`;
  const key = resolve(path);
  if (heldHere.has(key)) throw new Error(`${path} is in use by another carbon-trace proxy of this process; one proxy per ledger`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx' });
      heldHere.add(key);
      const release = () => {
        heldHere.delete(key);
        process.off('exit', release);
        try {
          if (readFileSync(lockPath, 'utf8').trim() === String(process.pid)) unlinkSync(lockPath);
        } catch {
          // Gone already.
        }
      };
      process.once('exit', release);
      return release;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(lockPath, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new Error(`${path} is in use by another carbon-trace (pid ${holder}); one proxy per ledger`);
      }
      unlinkSync(lockPath); // left by a process that is gone (kill -9)
    }
  }
  throw new Error(`${path}: its lock could not be taken`);
}

// Ledgers this process holds: another proxy in it must not take one over as if its lock were stale.
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Writes a JSON snapshot next to the ledger atomically (a temporary file renamed over it), so a
 * crash leaves the old snapshot or the new one, never half of one.
 *
 * @example
 * ```ts
 * writeSnapshot('ledger.csv.snapshot.json', { ledgerBytes: ledger.bytes, books });
 * ```
 */
export function writeSnapshot(path: string, value: unknown): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, JSON.stringify(value));
  renameSync(temporary, path);
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
