import { createRowBook, type RowBook } from './bounded-rows';
import type { CallKind } from '../../core/types';
import type { LedgerEntry } from './ledger';
import type { ComponentJoules } from '../types';
import { bookingOf, bookRow, copyRow, mergeRows, newRow, rowFromSnapshot, rowSpec, type BookRow } from './rows';

/**
 * One request whose books are closed.
 *
 * @example
 * ```ts
 * const onBooked = (r: BookedRequest) => console.log(r.model, r.kind, r.energy.totalJoules, r.traceDelivered);
 * ```
 */
export type BookedRequest = Omit<LedgerEntry, 'at'> & {
  /** The trace added to the response; `undefined` when none was (an error, a cut stream, the upstream's own trace, another route). */
  trace: Record<string, unknown> | undefined;
  /** A completion answered 2xx: its usage should say its tokens (an unknown count then makes the total unknown). */
  expectsUsage?: boolean;
  /** The wire module that recognised the request (`'chat'`, `'responses'`, `'ollama'`…); `undefined` for a metered request no wire knows. */
  wire?: string;
  /**
   * The model and user names as the request gave them (up to 16 KiB each, control characters and
   * all): what the ledger and the fleet's database keep, byte for byte. `model` and `user` are the
   * bounded names every view echoes.
   */
  names?: { model?: string | undefined; user?: string | undefined };
};

/**
 * One recent request, as `/carbon/stats` lists it (newest first) for the dashboard.
 *
 * @example
 * ```ts
 * const newest: RecentRequest = (await (await fetch('/carbon/stats')).json()).recent[0];
 * ```
 */
export type RecentRequest = {
  /** When its books closed (ISO 8601). */
  at: string;
  model: string | null;
  apiKeyId: string | null;
  user: string | null;
  /** What the call was; `null` when no wire knew the request. */
  kind: CallKind | null;
  /** The wire module that recognised it (`'chat'`, `'ollama'`…); `null` when none did, or not known (a row read back from a ledger). */
  wire: string | null;
  status: number;
  streamed: boolean;
  /** Whether its trace reached the client whole; `null` when not known (a row of a ledger older than that column). */
  traceDelivered: boolean | null;
  joules: ComponentJoules;
  /** `null` when the meter had no figure for it. */
  totalJoules: number | null;
  emissionsGrams: number | null;
  durationSeconds: number;
  measured: boolean;
  promptTokens: number | null;
  completionTokens: number | null;
};

/**
 * Token counts over all the books: of the requests whose usage reported them, and how many
 * requests should have (a completion answered 2xx).
 *
 * @example
 * ```ts
 * const known = tokens.requestsWithUsage >= tokens.requestsExpectingUsage;
 * ```
 */
export type TokenTotals = { prompt: number; completion: number; requestsWithUsage: number; requestsExpectingUsage: number };

/**
 * The tables as a snapshot keeps them: rows least recent first, `recent` oldest first.
 *
 * @example
 * ```ts
 * const text = JSON.stringify(tables.save());
 * ```
 */
export type SavedTables = {
  tokens: TokenTotals;
  byModel: Array<[string, BookRow]>;
  byApiKey: Array<[string, BookRow]>;
  byUser: Array<[string, BookRow]>;
  /** Absent in snapshots of versions before the kind was booked. */
  byKind?: Array<[string, BookRow]>;
  metricModels: Array<[string, BookRow]>;
  metricKeys: Array<[string, BookRow]>;
  metricUsers: Array<[string, BookRow]>;
  recent: RecentRequest[];
};

/**
 * What `?top=N&recent=N` of `/carbon/stats` ask for.
 *
 * @example
 * ```ts
 * const limits: ViewLimits = { top: 10, recent: 60 };
 * ```
 */
export type ViewLimits = { top?: number; recent?: number };

const MAX_METRIC_LABELS = 100;
/** The row of the requests no wire knew (a metered route of the upstream's own). */
export const UNKNOWN_KIND = '(unknown)';

/**
 * The proxy's tables: rows per model, API key, user and kind of call (bounded), the smaller
 * tables Prometheus labels come from, the recent requests, and the token totals. Every view —
 * stats, the dashboard, `/metrics`, Model Garden's route — reads these.
 *
 * @example
 * ```ts
 * const tables = createTables({ maxRows: 1000, keepRecent: 60 });
 * tables.book(request, new Date().toISOString());
 * ```
 */
export function createTables(options: { maxRows: number; keepRecent: number }) {
  const { maxRows, keepRecent } = options;
  const byModel: RowBook<BookRow> = createRowBook(maxRows, rowSpec);
  const byApiKey: RowBook<BookRow> = createRowBook(maxRows, rowSpec);
  const byUser: RowBook<BookRow> = createRowBook(maxRows, rowSpec);
  // Three kinds and "unknown": never full, so never folded.
  const byKind: RowBook<BookRow> = createRowBook(8, rowSpec);
  // Prometheus labels are fewer: each is a time series on every scrape.
  // An evicted label's series ends there (its history is not moved onto another label, which would
  // read as a jump): the unlabeled families keep the whole books.
  const metricModels: RowBook<BookRow> = createRowBook(MAX_METRIC_LABELS, rowSpec, { fold: false });
  const metricKeys: RowBook<BookRow> = createRowBook(MAX_METRIC_LABELS, rowSpec, { fold: false });
  const metricUsers: RowBook<BookRow> = createRowBook(MAX_METRIC_LABELS, rowSpec, { fold: false });
  // Oldest first, as they close: the views turn it around.
  let recent: RecentRequest[] = [];
  const tokens: TokenTotals = { prompt: 0, completion: 0, requestsWithUsage: 0, requestsExpectingUsage: 0 };

  /** Books a request into every table, closed at `at`. */
  function book(request: Omit<BookedRequest, 'trace'>, at: string): void {
    const booking = bookingOf(request);
    bookRow(byModel.row(request.model), booking);
    bookRow(byApiKey.row(request.apiKeyId, '(none)'), booking);
    bookRow(byUser.row(request.user, '(none)'), booking);
    bookRow(byKind.row(request.kind, UNKNOWN_KIND), booking);
    bookRow(metricModels.row(request.model), booking);
    bookRow(metricKeys.row(request.apiKeyId, '(none)'), booking);
    bookRow(metricUsers.row(request.user, '(none)'), booking);
    const { promptTokens, completionTokens } = request.usage;
    if (request.expectsUsage) tokens.requestsExpectingUsage++;
    if (promptTokens !== undefined || completionTokens !== undefined) {
      tokens.prompt += promptTokens ?? 0;
      tokens.completion += completionTokens ?? 0;
      tokens.requestsWithUsage++;
    }
    const { energy } = request;
    recent.push({
      at,
      model: request.model ?? null,
      apiKeyId: request.apiKeyId ?? null,
      user: request.user ?? null,
      kind: request.kind ?? null,
      wire: request.wire ?? null,
      status: request.status,
      streamed: request.streamed,
      traceDelivered: request.traceDelivered ?? null,
      joules: energy.joules,
      totalJoules: energy.totalJoules ?? null,
      emissionsGrams: energy.totalJoules !== undefined ? booking.grams : null,
      durationSeconds: energy.durationSeconds,
      measured: energy.measured,
      promptTokens: promptTokens ?? null,
      completionTokens: completionTokens ?? null,
    });
    if (recent.length > keepRecent) recent.shift();
  }

  /** A table's rows as the views give them: copies, the `top` largest by energy when asked, and how many were left out. */
  function rowsOf(table: RowBook<BookRow>, share: { idle: number; attributed: number } | undefined, top: number | undefined) {
    const out = Object.create(null) as Record<string, BookRow>;
    let entries = [...table.entries()];
    const all = entries.length;
    if (top !== undefined && all > top) entries = entries.sort((a, b) => b[1].joules - a[1].joules || b[1].requests - a[1].requests).slice(0, top);
    for (const [name, row] of entries) {
      const copy = (out[name] = copyRow(row));
      if (share) copy.idleShareJoules = share.attributed > 0 ? (share.idle * row.joules) / share.attributed : 0;
    }
    return { rows: out, omitted: all - entries.length };
  }

  return {
    book,

    /** Rows per model, key, user and kind (with `idle: 'share'`, each row's part of the idle energy), tokens, and the recent requests newest first. */
    view(share: { idle: number; attributed: number } | undefined, limits: ViewLimits = {}) {
      let attributedGrams = 0;
      for (const [, row] of byModel.entries()) attributedGrams += row.emissionsGrams;
      const models = rowsOf(byModel, share, limits.top);
      const keys = rowsOf(byApiKey, share, limits.top);
      const users = rowsOf(byUser, share, limits.top);
      const kinds = rowsOf(byKind, share, limits.top);
      // Newest first: `?recent=N` is the last N requests, and a reader reads from the top.
      const shown = limits.recent === undefined ? recent : limits.recent === 0 ? [] : recent.slice(-limits.recent);
      return {
        byModel: models.rows,
        byApiKey: keys.rows,
        byUser: users.rows,
        byKind: kinds.rows,
        /** With `top`: how many rows each table left out. */
        rowsOmitted: { byModel: models.omitted, byApiKey: keys.omitted, byUser: users.omitted, byKind: kinds.omitted },
        attributedGrams,
        tokens: { ...tokens },
        recent: shown.slice().reverse(),
      };
    },

    /** The model names the books keep, in the order they came. */
    modelNames(): string[] {
      return [...byModel.entries()].map(([name]) => name);
    },

    /** The rows `/metrics` labels: at most 100 per label, evicted ones dropped; kinds are few. */
    metricRows() {
      return { models: [...metricModels.entries()], keys: [...metricKeys.entries()], users: [...metricUsers.entries()], kinds: [...byKind.entries()] };
    },

    save(): SavedTables {
      return {
        tokens: { ...tokens },
        byModel: [...byModel.entries()],
        byApiKey: [...byApiKey.entries()],
        byUser: [...byUser.entries()],
        byKind: [...byKind.entries()],
        metricModels: [...metricModels.entries()],
        metricKeys: [...metricKeys.entries()],
        metricUsers: [...metricUsers.entries()],
        recent,
      };
    },

    /** Puts back what {@link SavedTables} kept (checked by {@link savedTablesOf}). */
    restore(saved: SavedTables): void {
      Object.assign(tokens, saved.tokens);
      byModel.restore(saved.byModel);
      byApiKey.restore(saved.byApiKey);
      byUser.restore(saved.byUser);
      if (saved.byKind) {
        byKind.restore(saved.byKind);
      } else {
        // Booked before the kind was: all of it is of unknown kind, so the kinds still add up to the books.
        const before = newRow();
        for (const [, row] of saved.byModel) mergeRows(before, row);
        if (before.requests > 0) byKind.restore([[UNKNOWN_KIND, before]]);
      }
      metricModels.restore(saved.metricModels);
      metricKeys.restore(saved.metricKeys);
      metricUsers.restore(saved.metricUsers);
      recent = saved.recent.slice(-keepRecent);
    },
  };
}

/**
 * The tables of the books.
 *
 * @example
 * ```ts
 * const tables: Tables = createTables({ maxRows: 1000, keepRecent: 60 });
 * ```
 */
export type Tables = ReturnType<typeof createTables>;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** Rows as a snapshot has them, each checked and made as the books keep it; `undefined` if any is not a row. */
function rowsFrom(value: unknown): Array<[string, BookRow]> | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: Array<[string, BookRow]> = [];
  for (const e of value) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || e[0].length > 200) return undefined;
    const row = rowFromSnapshot(e[1]);
    if (!row) return undefined;
    out.push([e[0], row]);
  }
  return out;
}

/**
 * The tables' part of a snapshot, checked: `undefined` when any of it is not what the books
 * write (a damaged or foreign snapshot is not trusted in part). Snapshots of earlier versions
 * (no `byKind`, rows without per-token bases or trace counts) are taken, what they lack at 0.
 *
 * @example
 * ```ts
 * const saved = savedTablesOf(JSON.parse(readFileSync('ledger.csv.snapshot.json', 'utf8')));
 * ```
 */
export function savedTablesOf(value: unknown): SavedTables | undefined {
  const s = value as Record<string, unknown> | null;
  if (s === null || typeof s !== 'object') return undefined;
  const t = s.tokens as Partial<TokenTotals> | null;
  if (t === null || typeof t !== 'object' || ![t.prompt, t.completion, t.requestsWithUsage].every(isCount)) return undefined;
  if (t.requestsExpectingUsage !== undefined && !isCount(t.requestsExpectingUsage)) return undefined;
  const tables = ['byModel', 'byApiKey', 'byUser', 'metricModels', 'metricKeys', 'metricUsers'] as const;
  const rows = Object.fromEntries(tables.map((name) => [name, rowsFrom(s[name])]));
  if (tables.some((name) => rows[name] === undefined) || !Array.isArray(s.recent)) return undefined;
  const byKind = s.byKind === undefined ? undefined : rowsFrom(s.byKind);
  if (s.byKind !== undefined && byKind === undefined) return undefined;
  return {
    tokens: { prompt: t.prompt!, completion: t.completion!, requestsWithUsage: t.requestsWithUsage!, requestsExpectingUsage: t.requestsExpectingUsage ?? 0 },
    ...(rows as Record<(typeof tables)[number], Array<[string, BookRow]>>),
    ...(byKind ? { byKind } : {}),
    recent: (s.recent as unknown[]).filter((r): r is RecentRequest => r !== null && typeof r === 'object').slice(-1000).map(recentFromSnapshot),
  };
}

/** A recent request an earlier version saved lacks the fields added since: unknown, not made up. */
const recentFromSnapshot = (r: RecentRequest): RecentRequest => ({ ...r, kind: r.kind ?? null, wire: r.wire ?? null, traceDelivered: r.traceDelivered ?? null, promptTokens: r.promptTokens ?? null });
