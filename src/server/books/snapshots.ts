/**
 * The two snapshots kept beside the ledger, and their writer. Each is what the books were when
 * the ledger's file had `ledgerBytes` bytes, tied to that file by its fingerprint there: a
 * snapshot of another file (copied over it, rotated, cut) is not used. The tables (large, written
 * now and then: the rows after them are read back at start), and the meter's totals (small,
 * written every second and before `/metrics` answers, since idle energy is in no row).
 */
import { writeSnapshot, type Ledger } from './ledger';
import type { Carried } from './meter-totals';
import type { SavedTables } from './tables';

/**
 * Where a snapshot stands in the ledger's file.
 *
 * @example
 * ```ts
 * const at: FilePoint = { ledgerBytes: ledger.bytes, fingerprint: ledger.fingerprint(ledger.bytes) };
 * ```
 */
export type FilePoint = { ledgerBytes: number; fingerprint: string };

/**
 * `FILE.snapshot.json`: the tables.
 *
 * @example
 * ```ts
 * const snapshot: TablesSnapshot = { version: 2, ...at, ...tables.save() };
 * ```
 */
export type TablesSnapshot = { version: 2 } & FilePoint & SavedTables;

/**
 * `FILE.meter.json`: the meter's totals.
 *
 * @example
 * ```ts
 * const snapshot: TotalsSnapshot = { version: 2, ...at, carried };
 * ```
 */
export type TotalsSnapshot = { version: 2 } & FilePoint & { carried: Carried };

/**
 * What 0.1 wrote: tables and totals in one, tied to nothing but the file's length.
 *
 * @example
 * ```ts
 * const legacy = JSON.parse(text) as LegacySnapshot;
 * ```
 */
export type LegacySnapshot = SavedTables & { version: 1; ledgerBytes: number; carried: Carried };

/** The tables are large (up to ~2 MB with full tables): written now and then, the rows after them are read back. */
const TABLES_INTERVAL_MS = 10_000;
/** The meter's totals are small: every second, so a crash loses at most a second of idle energy. */
const TOTALS_INTERVAL_MS = 1_000;

/**
 * The companion file `suffix` of a ledger.
 *
 * @example
 * ```ts
 * companionOf(ledger, 'snapshot.json'); // '/var/lib/carbon-trace/ledger.csv.snapshot.json'
 * ```
 */
export const companionOf = (ledger: Ledger, suffix: 'snapshot.json' | 'meter.json' | 'idle.csv' | 'instance-id') => `${ledger.realPath}.${suffix}`;

/**
 * Writes the snapshots of one ledger: the tables every 10 s when rows were booked, the totals
 * every second when they changed and on demand, both at close — off the event loop, one write of
 * each file at a time, in order, each durably (the ledger flushed first, then the snapshot
 * flushed, renamed into place and its directory flushed). Nothing is written once the file at the ledger's name is not
 * this one (another proxy may own the companions), and the tables not while rows wait for the
 * file (they would count rows the file does not have).
 *
 * @example
 * ```ts
 * const writer = createSnapshotWriter({ ledger, tables: () => tables.save(), totals: () => meterTotals.toCarry(ledger.written), warn });
 * writer.booked();
 * await writer.close();
 * ```
 */
export function createSnapshotWriter(options: { ledger: Ledger; tables: () => SavedTables; totals: () => Carried; warn: (key: string, message: string) => void }) {
  const { ledger } = options;
  let closed = false;
  // Rows booked since the tables were last written; the totals as last written.
  let tablesDirty = false;
  let totalsWritten = '';
  let tablesWriting: Promise<void> = Promise.resolve();
  let totalsWriting: Promise<void> = Promise.resolve();

  /** The file's size and fingerprint now; `undefined` once the file at its name is not this one. */
  const fileNow = (): FilePoint | undefined => (ledger.detached === undefined ? { ledgerBytes: ledger.bytes, fingerprint: ledger.fingerprint(ledger.bytes) } : undefined);
  const totalsAt = (file: FilePoint): TotalsSnapshot => ({ version: 2, ...file, carried: options.totals() });
  const tablesAt = (file: FilePoint): TablesSnapshot => ({ version: 2, ...file, ...options.tables() });

  /**
   * A snapshot put in place only once the ledger is on disk up to the point it describes: after
   * a power cut, a snapshot that survived never names rows the disk lost (it would not match the
   * file, and the meter's totals it carries would be dropped with it).
   */
  const durably = async (path: string, text: string) => {
    await ledger.sync();
    await writeSnapshot(path, text);
  };

  function failed(path: string, error: unknown): void {
    options.warn('ledger-snapshot-write', `ledger snapshot ${path} could not be written (${(error as Error).message}): a restart will read more of the ledger`);
  }

  /** The meter's totals, written when they changed; resolves once they are on file. */
  function writeTotals(): Promise<void> {
    if (closed) return totalsWriting;
    const file = fileNow();
    if (!file) return totalsWriting;
    const text = JSON.stringify(totalsAt(file));
    if (text === totalsWritten) return totalsWriting;
    totalsWritten = text;
    const path = companionOf(ledger, 'meter.json');
    return (totalsWriting = totalsWriting.then(() => durably(path, text)).catch((error: unknown) => failed(path, error)));
  }

  function writeTables(): Promise<void> {
    if (closed) return tablesWriting;
    const file = ledger.pendingRows === 0 ? fileNow() : undefined;
    if (!file || !tablesDirty) return tablesWriting;
    tablesDirty = false;
    const text = JSON.stringify(tablesAt(file));
    const path = companionOf(ledger, 'snapshot.json');
    return (tablesWriting = tablesWriting.then(() => durably(path, text)).catch((error: unknown) => failed(path, error)));
  }

  const timers = [setInterval(() => void writeTables(), TABLES_INTERVAL_MS), setInterval(() => void writeTotals(), TOTALS_INTERVAL_MS)];
  for (const timer of timers) timer.unref();

  return {
    /** A row was booked: the tables are written at their next turn. */
    booked(): void {
      tablesDirty = true;
    },

    writeTotals,

    /** Stops the timers and writes both snapshots as the books are now, once the writes under way are done (the tables only when no row waits for the file). */
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearInterval(timer);
      await Promise.all([tablesWriting, totalsWriting]);
      ledger.flush();
      const file = fileNow();
      if (!file) return;
      const files: Array<[string, unknown]> = [[companionOf(ledger, 'meter.json'), totalsAt(file)]];
      if (ledger.pendingRows === 0) files.push([companionOf(ledger, 'snapshot.json'), tablesAt(file)]);
      await Promise.all(files.map(([path, value]) => durably(path, JSON.stringify(value)).catch((error: unknown) => failed(path, error))));
    },
  };
}
