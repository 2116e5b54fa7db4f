/**
 * The ledger's index, `FILE.days.json` beside it: for each UTC day, where its rows are in the file
 * and their daily rollups (per project, model, API key and user). A report of whole days reads the
 * rollups; any other reads only the bytes of the days it covers. The index is derived data: it is
 * tied to the ledger by the fingerprint of the bytes it covers, extended from there at each report,
 * and rebuilt from the rows when the file is not the one it describes — so it can never make a
 * report differ from the rows.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { JOULES_PER_KWH } from '../../core/units';
import { entryOf, type LedgerEntry } from '../books/ledger';
import { fingerprintOf, parseCsvLine, readRecords } from '../books/ledger-read';

/**
 * The figures of one rollup group of one day, in the order the index keeps them (a compact array:
 * a year of a busy box is hundreds of thousands of groups).
 *
 * @example
 * ```ts
 * const [requests, withEnergy, measured, energyKwh] = figures;
 * ```
 */
export type RollupFigures = [
  requests: number,
  requestsWithEnergy: number,
  measuredRequests: number,
  energyKwh: number,
  cpuEnergyKwh: number,
  gpuEnergyKwh: number,
  ramEnergyKwh: number,
  measuredEnergyKwh: number,
  emissionsKgco2eq: number,
  promptTokens: number,
  completionTokens: number,
];

/**
 * One day of the index: the byte span that holds all its rows (other days' rows may sit inside it,
 * and are filtered out when read), and its rollups, keyed by `JSON.stringify([project, model,
 * apiKeyId, user])` (`null` for none) — or `null` when the day had more groups than an index keeps.
 *
 * @example
 * ```ts
 * const day: IndexedDay = index.days['2026-11-05']!;
 * ```
 */
export type IndexedDay = { from: number; to: number; rollups: Record<string, RollupFigures> | null };

/**
 * The index of one ledger, as kept in `FILE.days.json`.
 *
 * @example
 * ```ts
 * const index: LedgerIndex = await indexLedger('ledger.csv');
 * ```
 */
export type LedgerIndex = { version: 1; bytes: number; fingerprint: string; days: Record<string, IndexedDay> };

// A day with more groups than this keeps no rollups: its reports read its rows.
const MAX_GROUPS_PER_DAY = 20_000;
const READ_BYTES = 1 << 20;

/**
 * A rollup with nothing in it.
 *
 * @example
 * ```ts
 * const figures = emptyRollup();
 * ```
 */
export const emptyRollup = (): RollupFigures => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/**
 * A row's figures, as a rollup adds them.
 *
 * @example
 * ```ts
 * addRow(figures, entry);
 * ```
 */
export function addRow(into: RollupFigures, entry: LedgerEntry): void {
  into[0]++;
  const joules = entry.energy.totalJoules;
  if (joules !== undefined) {
    const kwh = joules / JOULES_PER_KWH;
    into[1]++;
    into[3] += kwh;
    into[4] += (entry.energy.joules.cpu ?? 0) / JOULES_PER_KWH;
    into[5] += (entry.energy.joules.gpu ?? 0) / JOULES_PER_KWH;
    into[6] += (entry.energy.joules.ram ?? 0) / JOULES_PER_KWH;
    if (entry.energy.measured) {
      into[2]++;
      into[7] += kwh;
    }
    into[8] += kwh * (entry.grid.gCo2PerKwh / 1000);
  }
  into[9] += entry.usage.promptTokens ?? 0;
  into[10] += entry.usage.completionTokens ?? 0;
}

const isCount = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** The index on file, when it is one this version wrote; `undefined` otherwise (it is then rebuilt). */
function readIndex(path: string): LedgerIndex | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  const index = parsed as LedgerIndex | null;
  if (index === null || typeof index !== 'object' || index.version !== 1 || !isCount(index.bytes) || typeof index.fingerprint !== 'string') return undefined;
  if (index.days === null || typeof index.days !== 'object') return undefined;
  // Keys a file gives become keys of prototype-free objects: a day or group named __proto__ is data.
  const days: Record<string, IndexedDay> = Object.create(null);
  for (const [day, value] of Object.entries(index.days)) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || value === null || typeof value !== 'object' || !isCount(value.from) || !isCount(value.to)) return undefined;
    let rollups: Record<string, RollupFigures> | null = null;
    if (value.rollups !== null) {
      if (typeof value.rollups !== 'object') return undefined;
      rollups = Object.create(null) as Record<string, RollupFigures>;
      for (const [key, figures] of Object.entries(value.rollups)) {
        if (!Array.isArray(figures) || figures.length !== 11 || !figures.every(isCount)) return undefined;
        rollups[key] = figures as RollupFigures;
      }
    }
    days[day] = { from: value.from, to: value.to, rollups };
  }
  return { version: 1, bytes: index.bytes, fingerprint: index.fingerprint, days };
}

/**
 * Brings a ledger's index up to the file's end and returns it: read from `FILE.days.json` when it
 * describes this very file (its fingerprint), extended with the rows after it; built from the rows
 * otherwise. Written back (aside, then renamed) when it changed and the folder lets it; a reader
 * who may not write there still gets it, in memory. Rows are read in slices off the event loop.
 *
 * @example
 * ```ts
 * const index = await indexLedger('/var/lib/carbon-trace/ledger.csv');
 * Object.keys(index.days); // ['2026-11-01', …]
 * ```
 */
export async function indexLedger(ledgerPath: string): Promise<LedgerIndex> {
  const indexPath = `${ledgerPath}.days.json`;
  const handle = await open(ledgerPath, 'r');
  try {
    const size = (await handle.stat()).size;
    const kept = readIndex(indexPath);
    const fresh = kept && kept.bytes <= size && (await fingerprintOf(handle, kept.bytes)) === kept.fingerprint;
    const index: LedgerIndex = fresh ? kept : { version: 1, bytes: 0, fingerprint: '', days: Object.create(null) };
    if (index.bytes >= size) return index;
    const header = await readRecords(handle, 0, size, 64 * 1024);
    const first = header.records[0];
    if (!first) return index;
    const columns = parseCsvLine(first.text) ?? [];
    const columnIndex = new Map(columns.map((c, i) => [c, i]));
    const projectAt = columnIndex.get('project_name') ?? -1;
    let at = Math.max(index.bytes, first.end);
    let end = at;
    // Groups per day, counted once: a day's rollups stop at MAX_GROUPS_PER_DAY.
    const groupCount = new Map<string, number>();
    while (at < size) {
      const { records, next } = await readRecords(handle, at, size, READ_BYTES);
      if (next <= at) break;
      // Records are contiguous: each begins where the one before it ended.
      let start = at;
      for (const record of records) {
        const recordStart = start;
        start = record.end;
        end = record.end;
        const fields = parseCsvLine(record.text);
        const entry = fields && entryOf(fields, columnIndex);
        if (!entry) continue;
        const dayKey = new Date(entry.at).toISOString().slice(0, 10);
        let day = index.days[dayKey];
        if (!day) index.days[dayKey] = day = { from: recordStart, to: record.end, rollups: Object.create(null) };
        day.from = Math.min(day.from, recordStart);
        day.to = Math.max(day.to, record.end);
        if (day.rollups) {
          const key = JSON.stringify([fields[projectAt] ?? '', entry.model ?? null, entry.apiKeyId ?? null, entry.user ?? null]);
          let figures = day.rollups[key];
          if (!figures) {
            const count = groupCount.get(dayKey) ?? Object.keys(day.rollups).length;
            if (count >= MAX_GROUPS_PER_DAY) {
              day.rollups = null;
              continue;
            }
            groupCount.set(dayKey, count + 1);
            day.rollups[key] = figures = emptyRollup();
          }
          addRow(figures, entry);
        }
      }
      at = next;
    }
    // Only whole rows are indexed: a last line still being written is read next time.
    index.bytes = end;
    index.fingerprint = await fingerprintOf(handle, end);
    await writeIndex(indexPath, index);
    return index;
  } finally {
    await handle.close();
  }
}

async function writeIndex(path: string, index: LedgerIndex): Promise<void> {
  const aside = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(aside, JSON.stringify(index), { mode: 0o644 });
    await rename(aside, path);
  } catch {
    // A reader who may not write beside the ledger: the index serves this report from memory.
    await rm(aside, { force: true }).catch(() => {});
  }
}

/**
 * The byte spans of the days a period touches, merged, in order.
 *
 * @example
 * ```ts
 * for (const [from, to] of spansOf(index, query.from, query.to)) { … }
 * ```
 */
export function spansOf(index: LedgerIndex, from: Date, to: Date): Array<[number, number]> {
  const first = from.toISOString().slice(0, 10);
  const last = new Date(to.getTime() - 1).toISOString().slice(0, 10);
  const spans = Object.entries(index.days)
    .filter(([day]) => day >= first && day <= last)
    .map(([, d]): [number, number] => [d.from, d.to])
    .sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const span of spans) {
    const prev = merged.at(-1);
    if (prev && span[0] <= prev[1]) prev[1] = Math.max(prev[1], span[1]);
    else merged.push([...span]);
  }
  return merged;
}

/**
 * Reads the rows of the given spans of a ledger, calling `onRow` with each row's fields and the
 * header's index of columns.
 *
 * @example
 * ```ts
 * await readSpans('ledger.csv', spans, (fields, columns) => { … });
 * ```
 */
export async function readSpans(ledgerPath: string, spans: Array<[number, number]>, onRow: (fields: string[], columns: Map<string, number>) => void): Promise<void> {
  const handle: FileHandle = await open(ledgerPath, 'r');
  try {
    const size = (await handle.stat()).size;
    const header = (await readRecords(handle, 0, size, 64 * 1024)).records[0];
    if (!header) return;
    const columns = new Map((parseCsvLine(header.text) ?? []).map((c, i) => [c, i]));
    for (const [from, to] of spans) {
      for (let at = Math.max(from, header.end); at < Math.min(to, size); ) {
        const { records, next } = await readRecords(handle, at, Math.min(to, size), READ_BYTES);
        if (next <= at) break;
        at = next;
        for (const { text } of records) {
          const fields = parseCsvLine(text);
          if (fields) onRow(fields, columns);
        }
      }
    }
  } finally {
    await handle.close();
  }
}
