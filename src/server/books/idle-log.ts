/**
 * The idle log, `FILE.idle.csv` beside the ledger: the energy the meter measured that is in no
 * request's row (idle, and what it could not attribute), one line per interval of this proxy's
 * runs. The ledger's rows and this log's lines are the whole of what the meter measured, over any
 * period: a period's report sums both, and the fleet's database gets both.
 */
import { closeSync, fstatSync, fsync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { JOULES_PER_KWH } from '../../core/units';
import { ENERGY_COMPONENTS, type ComponentJoules } from '../types';
import { csvField } from '../../core/emissions-csv';

/**
 * The idle log's columns. Energy in kWh, emissions in kg CO2eq, per interval (not running totals).
 *
 * @example
 * ```ts
 * IDLE_LOG_COLUMNS[0]; // 'from'
 * ```
 */
export const IDLE_LOG_COLUMNS = [
  'from',
  'to',
  'run_id',
  'project_name',
  'cpu_idle_kwh',
  'gpu_idle_kwh',
  'ram_idle_kwh',
  'idle_kwh',
  'idle_emissions_kg',
  'cpu_unattributed_kwh',
  'gpu_unattributed_kwh',
  'ram_unattributed_kwh',
  'unattributed_kwh',
  'unattributed_emissions_kg',
] as const;

/**
 * One interval of the idle log.
 *
 * @example
 * ```ts
 * const line: IdleInterval = { from, to, runId, projectName, idle: { cpu: 360 }, idleGrams: 0.1, unattributed: {}, unattributedGrams: 0 };
 * ```
 */
export type IdleInterval = {
  from: string;
  to: string;
  runId: string;
  projectName: string;
  /** Joules per component. */
  idle: ComponentJoules;
  idleGrams: number;
  unattributed: ComponentJoules;
  unattributedGrams: number;
};

const HEADER = `${IDLE_LOG_COLUMNS.join(',')}\n`;
const kwh = (joules: number | undefined) => (joules === undefined ? '' : csvField(joules / JOULES_PER_KWH));
const sum = (j: ComponentJoules) => Object.values(j).reduce((a, b) => a + (b ?? 0), 0);

/**
 * The line of one interval, with its newline.
 *
 * @example
 * ```ts
 * appendFileSync(path, idleLine(interval));
 * ```
 */
export function idleLine(i: IdleInterval): string {
  const cells: string[] = [i.from, i.to, i.runId, csvField(i.projectName)];
  for (const c of ENERGY_COMPONENTS) cells.push(kwh(i.idle[c]));
  cells.push(kwh(sum(i.idle)), csvField(i.idleGrams / 1000));
  for (const c of ENERGY_COMPONENTS) cells.push(kwh(i.unattributed[c]));
  cells.push(kwh(sum(i.unattributed)), csvField(i.unattributedGrams / 1000));
  return `${cells.join(',')}\n`;
}

/**
 * An open idle log: lines are appended one `write` each; a torn last line (the process stopped
 * mid-write) is cut at open. Only the proxy that holds the ledger's lock opens it.
 *
 * @example
 * ```ts
 * const log = openIdleLog(`${ledger.realPath}.idle.csv`);
 * log.append(interval);
 * ```
 */
export function openIdleLog(path: string, warn: (message: string) => void = () => {}) {
  const fd = openSync(path, 'a+', 0o644);
  let bytes = fstatSync(fd).size;
  try {
    if (bytes > 0) {
      // Cut a torn last line: the next interval must start a line of its own.
      const tail = Buffer.alloc(Math.min(bytes, 64 * 1024));
      const n = readSync(fd, tail, 0, tail.length, bytes - tail.length);
      const last = tail.subarray(0, n).lastIndexOf(0x0a);
      const whole = last < 0 ? 0 : bytes - n + last + 1;
      if (whole < bytes) {
        ftruncateSync(fd, whole);
        warn(`idle log ${path}: dropped a torn last line (${bytes - whole} bytes)`);
        bytes = whole;
      }
    }
    if (bytes === 0) {
      writeSync(fd, HEADER);
      bytes = Buffer.byteLength(HEADER);
    }
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  let failing = false;
  return {
    path,
    /** What the file holds, in whole lines. */
    get bytes() {
      return bytes;
    },
    append(interval: IdleInterval): void {
      const line = Buffer.from(idleLine(interval));
      try {
        const written = writeSync(fd, line);
        if (written !== line.length) {
          ftruncateSync(fd, bytes);
          throw new Error('short write');
        }
        bytes += written;
        // A line a minute: each is put on disk, off the event loop (a power cut loses none that was said written).
        fsync(fd, () => {});
        if (failing) warn(`idle log ${path}: written again`);
        failing = false;
      } catch (error) {
        if (!failing) warn(`idle log ${path}: an interval could not be written (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): its idle energy is in the meter's totals, not in period reports`);
        failing = true;
      }
    },
    close(): void {
      closeSync(fd);
    },
  };
}

/**
 * An idle log's line read back: `undefined` when it is not one (the header, a damaged line).
 *
 * @example
 * ```ts
 * const interval = parseIdleLine(fields, index);
 * ```
 */
export function parseIdleLine(fields: readonly string[]): IdleInterval | undefined {
  if (fields.length < IDLE_LOG_COLUMNS.length) return undefined;
  const [from, to, runId, projectName] = fields as [string, string, string, string];
  if (Number.isNaN(Date.parse(from)) || Number.isNaN(Date.parse(to))) return undefined;
  const joules = (cell: string | undefined) => {
    if (cell === undefined || cell === '') return undefined;
    const n = Number(cell);
    return Number.isFinite(n) && n >= 0 ? n * JOULES_PER_KWH : undefined;
  };
  const idle: ComponentJoules = {};
  const unattributed: ComponentJoules = {};
  ENERGY_COMPONENTS.forEach((c, i) => {
    const a = joules(fields[4 + i]);
    if (a !== undefined) idle[c] = a;
    const b = joules(fields[9 + i]);
    if (b !== undefined) unattributed[c] = b;
  });
  const grams = (cell: string | undefined) => {
    const n = Number(cell);
    return Number.isFinite(n) && n >= 0 ? n * 1000 : 0;
  };
  return { from, to, runId, projectName, idle, idleGrams: grams(fields[8]), unattributed, unattributedGrams: grams(fields[13]) };
}
