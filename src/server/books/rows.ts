import { addJoules } from '../meter/attribution';
import type { RowSpec } from './bounded-rows';
import type { LedgerEntry } from './ledger';
import { gramsOf } from '../wires/trace-record';
import { ENERGY_COMPONENTS, type ComponentJoules } from '../types';

/**
 * The requests of a row whose usage reported one kind of token and that got an energy figure:
 * their energy, emissions and those tokens. A figure per token divides `joules` by `tokens` of
 * the same requests — never a row's whole energy by the tokens of only some of its requests.
 *
 * @example
 * ```ts
 * const { joules, tokens } = row.withTokens.completion;
 * const joulesPer1kCompletionTokens = tokens > 0 ? (1000 * joules) / tokens : undefined;
 * ```
 */
export type TokenBasis = {
  requests: number;
  joules: number;
  emissionsGrams: number;
  tokens: number;
};

/**
 * One row of the proxy's books (per model, API key, user or kind of call).
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
  /** Per kind of token, the energy and the tokens of the same requests: what a figure per token divides. */
  withTokens: { prompt: TokenBasis; completion: TokenBasis };
  /** Requests whose trace was put on the response and reached the client whole. */
  tracesDelivered: number;
  /**
   * Requests whose trace did not reach the client (none was put on the response, or the client did
   * not get it whole). Rows of a ledger older than its `trace_delivered` column count in neither.
   */
  tracesNotDelivered: number;
};

const newBasis = (): TokenBasis => ({ requests: 0, joules: 0, emissionsGrams: 0, tokens: 0 });

/**
 * An empty row.
 *
 * @example
 * ```ts
 * const row = newRow();
 * ```
 */
export const newRow = (): BookRow => ({
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
  withTokens: { prompt: newBasis(), completion: newBasis() },
  tracesDelivered: 0,
  tracesNotDelivered: 0,
});

function mergeBasis(into: TokenBasis, from: TokenBasis): void {
  into.requests += from.requests;
  into.joules += from.joules;
  into.emissionsGrams += from.emissionsGrams;
  into.tokens += from.tokens;
}

/**
 * Adds `from` into `into` (an evicted row into "other").
 *
 * @example
 * ```ts
 * mergeRows(other, evicted);
 * ```
 */
export function mergeRows(into: BookRow, from: BookRow): void {
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
  mergeBasis(into.withTokens.prompt, from.withTokens.prompt);
  mergeBasis(into.withTokens.completion, from.withTokens.completion);
  into.tracesDelivered += from.tracesDelivered;
  into.tracesNotDelivered += from.tracesNotDelivered;
}

/**
 * How the bounded tables make, merge and rank these rows.
 *
 * @example
 * ```ts
 * const byModel = createRowBook(1000, rowSpec);
 * ```
 */
export const rowSpec: RowSpec<BookRow> = { create: newRow, merge: mergeRows, requests: (row) => row.requests };

/**
 * One request, as every table books it: the same figures into each of its rows.
 *
 * @example
 * ```ts
 * const booking = bookingOf(request);
 * bookRow(byModel.row(request.model), booking);
 * ```
 */
export type Booking = {
  entry: Omit<LedgerEntry, 'at'>;
  /** Its emissions, 0 when it has no energy figure. */
  grams: number;
  status: string;
};

const tokenCount = (n: unknown): number | undefined => (typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : undefined);

/**
 * A usage as the books take it: a count that is not a finite, non-negative number is not a
 * count (NaN, a negative, a string from a strange server), so it is unknown — never added in.
 *
 * @example
 * ```ts
 * countedUsage({ promptTokens: 12, completionTokens: NaN }); // { promptTokens: 12 }
 * ```
 */
export function countedUsage(usage: { promptTokens?: unknown; completionTokens?: unknown } | undefined): { promptTokens?: number; completionTokens?: number } {
  const prompt = tokenCount(usage?.promptTokens);
  const completion = tokenCount(usage?.completionTokens);
  return { ...(prompt !== undefined ? { promptTokens: prompt } : {}), ...(completion !== undefined ? { completionTokens: completion } : {}) };
}

/**
 * What every row of one request is booked with, worked out once.
 *
 * @example
 * ```ts
 * const booking = bookingOf(entry);
 * ```
 */
export function bookingOf(entry: Omit<LedgerEntry, 'at'>): Booking {
  const total = entry.energy.totalJoules;
  return { entry, grams: total !== undefined ? gramsOf(total, entry.grid) : 0, status: String(entry.status) };
}

/**
 * Books one request into one row.
 *
 * @example
 * ```ts
 * bookRow(byModel.row('llama'), bookingOf(entry));
 * ```
 */
export function bookRow(row: BookRow, { entry, grams, status }: Booking): void {
  const { energy } = entry;
  const total = energy.totalJoules;
  row.requests++;
  row.byStatus[status] = (row.byStatus[status] ?? 0) + 1;
  if (total !== undefined) {
    row.joules += total;
    row.emissionsGrams += grams;
    for (const component of ENERGY_COMPONENTS) {
      const joules = energy.joules[component];
      if (joules === undefined) continue;
      row.byComponent[component] = (row.byComponent[component] ?? 0) + joules;
      row.emissionsGramsByComponent[component] = (row.emissionsGramsByComponent[component] ?? 0) + gramsOf(joules, entry.grid);
    }
    if (energy.measured) row.measuredRequests++;
  } else {
    row.requestsWithoutFigure++;
  }
  const { promptTokens, completionTokens } = entry.usage;
  if (promptTokens !== undefined || completionTokens !== undefined) {
    row.promptTokens += promptTokens ?? 0;
    row.completionTokens += completionTokens ?? 0;
    row.requestsWithUsage++;
  }
  // Per kind of token, only requests that reported it and have a figure: an embedding (prompt
  // tokens only) must not add its energy to what completion tokens are divided into.
  if (total !== undefined) {
    if (promptTokens !== undefined) addBasis(row.withTokens.prompt, total, grams, promptTokens);
    if (completionTokens !== undefined) addBasis(row.withTokens.completion, total, grams, completionTokens);
  }
  if (entry.traceDelivered === true) row.tracesDelivered++;
  else if (entry.traceDelivered === false) row.tracesNotDelivered++;
}

function addBasis(basis: TokenBasis, joules: number, grams: number, tokens: number): void {
  basis.requests++;
  basis.joules += joules;
  basis.emissionsGrams += grams;
  basis.tokens += tokens;
}

/**
 * A copy of a row for a view: the books' own objects never leave them.
 *
 * @example
 * ```ts
 * const shown = copyRow(byModel.row('llama'));
 * ```
 */
export function copyRow(row: BookRow): BookRow {
  return {
    ...row,
    byStatus: { ...row.byStatus },
    byComponent: { ...row.byComponent },
    emissionsGramsByComponent: { ...row.emissionsGramsByComponent },
    withTokens: { prompt: { ...row.withTokens.prompt }, completion: { ...row.withTokens.completion } },
  };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isJoules = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.entries(v).every(([k, j]) => (ENERGY_COMPONENTS as readonly string[]).includes(k) && isCount(j));
const isBasis = (v: unknown): v is TokenBasis => {
  const b = v as TokenBasis;
  return b !== null && typeof b === 'object' && [b.requests, b.joules, b.emissionsGrams, b.tokens].every(isCount);
};

/**
 * A row read back from a snapshot, as the books keep it (prototype-free statuses), or `undefined`
 * when it is not one. A row an earlier version wrote has no `withTokens` or trace counts: they
 * start at 0 — the per-token figures then cover the requests booked since, which still divide
 * like by like, and `withTokens.*.requests` says how many those are.
 *
 * @example
 * ```ts
 * const row = rowFromSnapshot(JSON.parse(text).byModel[0][1]);
 * ```
 */
export function rowFromSnapshot(value: unknown): BookRow | undefined {
  const r = value as Partial<BookRow> | null;
  if (r === null || typeof r !== 'object') return undefined;
  if (![r.requests, r.measuredRequests, r.requestsWithoutFigure, r.joules, r.emissionsGrams, r.promptTokens, r.completionTokens, r.requestsWithUsage].every(isCount)) return undefined;
  if (!isJoules(r.byComponent) || !isJoules(r.emissionsGramsByComponent)) return undefined;
  if (r.byStatus === null || typeof r.byStatus !== 'object' || !Object.values(r.byStatus).every(isCount)) return undefined;
  if (r.withTokens !== undefined && (r.withTokens === null || typeof r.withTokens !== 'object' || !isBasis(r.withTokens.prompt) || !isBasis(r.withTokens.completion))) return undefined;
  if ((r.tracesDelivered !== undefined && !isCount(r.tracesDelivered)) || (r.tracesNotDelivered !== undefined && !isCount(r.tracesNotDelivered))) return undefined;
  return {
    requests: r.requests!,
    measuredRequests: r.measuredRequests!,
    requestsWithoutFigure: r.requestsWithoutFigure!,
    byStatus: Object.assign(Object.create(null), r.byStatus),
    joules: r.joules!,
    byComponent: { ...r.byComponent },
    emissionsGrams: r.emissionsGrams!,
    emissionsGramsByComponent: { ...r.emissionsGramsByComponent },
    promptTokens: r.promptTokens!,
    completionTokens: r.completionTokens!,
    requestsWithUsage: r.requestsWithUsage!,
    withTokens: r.withTokens ? { prompt: pickBasis(r.withTokens.prompt), completion: pickBasis(r.withTokens.completion) } : { prompt: newBasis(), completion: newBasis() },
    tracesDelivered: r.tracesDelivered ?? 0,
    tracesNotDelivered: r.tracesNotDelivered ?? 0,
  };
}

const pickBasis = (b: TokenBasis): TokenBasis => ({ requests: b.requests, joules: b.joules, emissionsGrams: b.emissionsGrams, tokens: b.tokens });
