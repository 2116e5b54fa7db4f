/**
 * The books as an earlier run left them: its snapshots where they belong to this very file, then
 * the ledger's rows written after each.
 */
import { readSnapshot, type Ledger } from './ledger';
import { isCarried, type MeterTotals } from './meter-totals';
import { companionOf, type FilePoint, type LegacySnapshot, type TablesSnapshot, type TotalsSnapshot } from './snapshots';
import { savedTablesOf, type SavedTables, type Tables } from './tables';
import { boundedName } from './bounded-rows';

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** The tables' snapshot as this version writes it (or the one before), or `undefined`: a damaged or foreign one is not trusted in part. */
function tablesSnapshotOf(value: unknown): (FilePoint & SavedTables) | undefined {
  const s = value as TablesSnapshot | null;
  if (s === null || typeof s !== 'object' || s.version !== 2 || !isCount(s.ledgerBytes) || typeof s.fingerprint !== 'string') return undefined;
  const saved = savedTablesOf(s);
  return saved && { ...saved, ledgerBytes: s.ledgerBytes, fingerprint: s.fingerprint };
}

function totalsSnapshotOf(value: unknown): TotalsSnapshot | undefined {
  const s = value as TotalsSnapshot | null;
  if (s === null || typeof s !== 'object' || s.version !== 2 || !isCount(s.ledgerBytes) || typeof s.fingerprint !== 'string' || !isCarried(s.carried)) return undefined;
  return s;
}

/**
 * A snapshot 0.1 wrote, read once on the way to this version's two: it names no fingerprint, so
 * it is trusted only where its length ends a row of this file.
 */
function legacyOf(value: unknown, ledger: Ledger): (LegacySnapshot & SavedTables) | undefined {
  const s = value as LegacySnapshot | null;
  if (s === null || typeof s !== 'object' || s.version !== 1 || !isCount(s.ledgerBytes) || s.ledgerBytes > ledger.bytes || !isCarried(s.carried)) return undefined;
  if (!ledger.endsRow(s.ledgerBytes)) return undefined;
  const saved = savedTablesOf(s);
  return saved && { ...s, ...saved };
}

/**
 * Puts the books back as the ledger and its snapshots left them: the tables from their snapshot
 * and the rows after it, the meter's totals from theirs and the rows after it. A snapshot that
 * does not belong to the file is dropped with a warning, and the books are rebuilt from the rows.
 *
 * @example
 * ```ts
 * restoreBooks({ ledger, tables, meterTotals, warn });
 * ```
 */
export function restoreBooks(options: { ledger: Ledger; tables: Tables; meterTotals: MeterTotals; warn: (key: string, message: string) => void }): void {
  const { ledger, tables, meterTotals, warn } = options;
  const matches = (s: FilePoint) => s.ledgerBytes <= ledger.bytes && ledger.fingerprint(s.ledgerBytes) === s.fingerprint;
  const readTables = readSnapshot(companionOf(ledger, 'snapshot.json'));
  const readTotals = readSnapshot(companionOf(ledger, 'meter.json'));
  const legacy = legacyOf(readTables, ledger);
  const tablesFile = tablesSnapshotOf(readTables);
  const totalsFile = totalsSnapshotOf(readTotals);
  let saved: (SavedTables & { ledgerBytes: number }) | undefined = tablesFile && matches(tablesFile) ? tablesFile : undefined;
  let totals: Pick<TotalsSnapshot, 'ledgerBytes' | 'carried'> | undefined = totalsFile && matches(totalsFile) ? totalsFile : undefined;
  if (legacy) {
    saved = legacy;
    totals ??= { ledgerBytes: legacy.ledgerBytes, carried: legacy.carried };
  }
  if ((readTables !== undefined && !saved) || (readTotals !== undefined && !totals)) {
    warn('ledger-snapshot', `ledger ${ledger.path}: its snapshot does not match the file (rotated, replaced or damaged); the books are rebuilt from the rows`);
  }
  if (saved) tables.restore(saved);
  const { carried } = meterTotals;
  if (totals) Object.assign(carried, totals.carried);
  // Rows written after each snapshot: into the tables, and (their energy was measured) into the totals.
  const tablesFrom = saved?.ledgerBytes ?? 0;
  const totalsFrom = totals?.ledgerBytes ?? 0;
  const replayed = ledger.replay(Math.min(tablesFrom, totalsFrom), (entry, end) => {
    // A row that does not say whether it expected usage (a ledger begun by 0.1) counts as
    // expecting it when it succeeded: then an unknown count leaves the token total unknown,
    // never a total that reads as complete.
    // The ledger keeps names as sent; the tables keep them as every view echoes them.
    if (end > tablesFrom) tables.book({ ...entry, model: boundedName(entry.model), user: boundedName(entry.user), expectsUsage: entry.expectsUsage ?? (entry.status >= 200 && entry.status < 300) }, entry.at);
    if (end > totalsFrom) meterTotals.carryRow(entry.energy.joules, entry.energy.totalJoules);
  });
  carried.since ??= replayed.firstAt;
  // A clock that was once ahead must not date the books from the future (a negative duration).
  if (carried.since !== undefined && Date.parse(carried.since) > Date.now()) {
    warn('ledger-since', `ledger ${ledger.path}: its books begin at ${carried.since}, which is later than now (a clock that was ahead): they are counted from now`);
    carried.since = new Date().toISOString();
  }
}
