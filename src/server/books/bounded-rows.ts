/**
 * Books kept per name that a client chooses (a model, an API key id, a user): bounded, so that a
 * client sending ever new names cannot grow memory or metrics without end, and always adding up.
 * When the table is full, a new name takes the place of the least active one (fewest requests,
 * then least recently used), whose totals fold into the one "other" row — so the sum of the rows
 * is always the sum of everything booked, and the names in real use stay.
 */

/** The name of the row that holds what no longer has a row of its own. */
export const OTHER_ROW = '(other)';

/** Names are echoed back in stats, the dashboard, labels and the ledger: at most this many characters. */
export const MAX_NAME_LENGTH = 200;

/**
 * A name as carbon-trace echoes it: a string of at most {@link MAX_NAME_LENGTH} characters (longer
 * ones end in "…"), control characters replaced; `undefined` for anything that is not a non-empty
 * string.
 *
 * @example
 * ```ts
 * boundedName('x'.repeat(1e6)).length; // 200
 * ```
 */
export function boundedName(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  // eslint-disable-next-line no-control-regex
  const clean = value.length > MAX_NAME_LENGTH * 2 ? value.slice(0, MAX_NAME_LENGTH * 2) : value;
  // eslint-disable-next-line no-control-regex
  const printable = clean.replace(/[\u0000-\u001f\u007f]/g, '\uFFFD');
  const chars = Array.from(printable);
  return chars.length > MAX_NAME_LENGTH ? `${chars.slice(0, MAX_NAME_LENGTH - 1).join('')}…` : printable;
}

/**
 * How a book makes, counts and merges its rows.
 *
 * @example
 * ```ts
 * const spec: RowSpec<{ requests: number; joules: number }> = {
 *   create: () => ({ requests: 0, joules: 0 }),
 *   merge: (into, from) => { into.requests += from.requests; into.joules += from.joules; },
 *   requests: (row) => row.requests,
 * };
 * ```
 */
export type RowSpec<R> = {
  create(): R;
  /** Adds `from` into `into` (an evicted row into "other"). */
  merge(into: R, from: R): void;
  /** How active a row is: the fewest requests go first. */
  requests(row: R): number;
};

/**
 * A bounded table of rows keyed by name.
 *
 * @example
 * ```ts
 * const book = createRowBook(100, spec);
 * book.row('llama-3.1-8b').joules += 12;
 * ```
 */
export type RowBook<R> = {
  /** The row to book `name` into: its own, a new one (evicting the least active when full), or "other". */
  row(name: string | undefined, unknownName?: string): R;
  /** Every row, "other" last when it has anything; a prototype-free object. */
  rows(): Record<string, R>;
  entries(): IterableIterator<[string, R]>;
  /** Puts back rows saved from `entries()` (least recent first), as they were. */
  restore(entries: Iterable<[string, R]>): void;
  readonly size: number;
};

/**
 * Creates a {@link RowBook} of at most `maxRows` named rows plus "other" (with `fold: false`, an
 * evicted row is dropped rather than added to "other").
 *
 * @example
 * ```ts
 * const byModel = createRowBook(1000, spec);
 * ```
 */
export function createRowBook<R>(maxRows: number, spec: RowSpec<R>, options: { fold?: boolean } = {}): RowBook<R> {
  // Counters must never jump: a table that feeds Prometheus drops an evicted row instead of moving
  // its history into "other" at once.
  const fold = options.fold ?? true;
  // Insertion order is recency order: a used row is moved to the end.
  const rows = new Map<string, R>();
  let other: R | undefined;
  // The row used last is already last in recency order: no need to move it.
  let lastName: string | undefined;
  let lastRow: R | undefined;

  function evictLeastActive(): void {
    let victim: string | undefined;
    let fewest = Infinity;
    // The first row met with the fewest requests is the least recently used among them.
    for (const [name, row] of rows) {
      const requests = spec.requests(row);
      if (requests < fewest) {
        fewest = requests;
        victim = name;
        if (requests <= 1) break;
      }
    }
    if (victim === undefined) return;
    if (fold) spec.merge((other ??= spec.create()), rows.get(victim)!);
    rows.delete(victim);
  }

  return {
    row(name, unknownName = '(unknown)') {
      if (name !== undefined && name === lastName && lastRow !== undefined && rows.get(name) === lastRow) return lastRow;
      const key = boundedName(name) ?? unknownName;
      if (key === OTHER_ROW) return (other ??= spec.create());
      let row = rows.get(key);
      if (row !== undefined) {
        rows.delete(key);
        rows.set(key, row);
      } else {
        if (maxRows <= 0) return (other ??= spec.create());
        if (rows.size >= maxRows) evictLeastActive();
        rows.set(key, (row = spec.create()));
      }
      if (key === name) {
        lastName = key;
        lastRow = row;
      }
      return row;
    },
    rows() {
      const out = Object.create(null) as Record<string, R>;
      for (const [name, row] of rows) out[name] = row;
      if (other !== undefined) out[OTHER_ROW] = other;
      return out;
    },
    *entries() {
      yield* rows;
      if (other !== undefined) yield [OTHER_ROW, other];
    },
    restore(entries) {
      for (const [name, row] of entries) {
        if (name === OTHER_ROW) other = row;
        else if (rows.size < maxRows) rows.set(name, row);
        else spec.merge((other ??= spec.create()), row);
      }
    },
    get size() {
      return rows.size + (other === undefined ? 0 : 1);
    },
  };
}
