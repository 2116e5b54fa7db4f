/**
 * A ledger row and an idle-log line as the fleet's tables keep them, and the statements that store
 * a batch of them exactly once: the rows' keys make a batch sent twice land once, and the daily
 * rollups add only the rows that were new, in the same statement.
 */
import type { IdleInterval } from '../books/idle-log';
import type { LedgerEntry } from '../books/ledger';
import { JOULES_PER_KWH } from '../../core/units';

/**
 * Who wrote a row: the proxy's name in reports, its id (kept beside its ledger), and its host.
 *
 * @example
 * ```ts
 * const who: Instance = { name: 'gpu-fr-1', id: '6b1c…', host: hostname() };
 * ```
 */
export type Instance = { name: string; id: string; host: string };

/**
 * A ledger row with where it ends in its file and the run that wrote it.
 *
 * @example
 * ```ts
 * const row: ShippedRow = { runId, end: 1234, projectName: 'carbon-trace proxy', entry };
 * ```
 */
export type ShippedRow = { runId: string; end: number; projectName: string; entry: LedgerEntry };

/**
 * An idle-log line with where it ends in its file.
 *
 * @example
 * ```ts
 * const line: ShippedIdle = { end: 456, interval };
 * ```
 */
export type ShippedIdle = { end: number; interval: IdleInterval };

const kwh = (joules: number | undefined) => (joules === undefined ? null : joules / JOULES_PER_KWH);

const REQUEST_COLUMNS = [
  'run_id', 'ledger_offset', 'at', 'instance', 'instance_id', 'host', 'project', 'model', 'api_key_id', 'end_user', 'kind',
  'status', 'streamed', 'measured', 'trace_delivered', 'expects_usage', 'duration_s', 'cpu_energy_kwh', 'gpu_energy_kwh',
  'ram_energy_kwh', 'energy_kwh', 'emissions_kg', 'prompt_tokens', 'completion_tokens', 'grid_g_per_kwh', 'grid_source', 'warnings',
] as const;
const REQUEST_TYPES = [
  'uuid', 'int8', 'timestamptz', 'text', 'uuid', 'text', 'text', 'text', 'text', 'text', 'text',
  'int4', 'bool', 'bool', 'bool', 'bool', 'float8', 'float8', 'float8',
  'float8', 'float8', 'float8', 'int8', 'int8', 'float8', 'text', 'text',
];

/** A row's values, in REQUEST_COLUMNS' order. */
function requestValues(row: ShippedRow, who: Instance): unknown[] {
  const { entry } = row;
  const known = entry.energy.totalJoules !== undefined;
  const totalKwh = kwh(entry.energy.totalJoules);
  return [
    row.runId, row.end, entry.at, who.name, who.id, who.host, row.projectName, entry.model ?? null, entry.apiKeyId ?? null, entry.user ?? null, entry.kind ?? null,
    entry.status, entry.streamed, known ? entry.energy.measured : null, entry.traceDelivered ?? null, entry.expectsUsage ?? null, entry.energy.durationSeconds,
    known ? kwh(entry.energy.joules.cpu) : null, known ? kwh(entry.energy.joules.gpu) : null, known ? kwh(entry.energy.joules.ram) : null,
    totalKwh, known ? totalKwh! * (entry.grid.gCo2PerKwh / 1000) : null,
    entry.usage.promptTokens ?? null, entry.usage.completionTokens ?? null, known ? entry.grid.gCo2PerKwh : null, known ? entry.grid.source : null,
    entry.energy.warnings.length > 0 ? entry.energy.warnings.join(' | ') : null,
  ];
}

/**
 * The statement that stores a batch of rows once and adds the new ones to the daily rollups, and
 * its parameters: one array per column (`unnest`), so a batch of any size is one statement of 27
 * parameters, and every value is a parameter. A row is new when it lies after what its run has
 * stored (`carbon_trace_runs`), which stays when `--retention` removes the rows, so a ledger sent
 * again adds nothing twice. It answers one row: `inserted`, the rows that were new.
 *
 * @example
 * ```ts
 * const { text, values } = insertRequests(rows, who);
 * await client.query(text, values);
 * ```
 */
export function insertRequests(rows: readonly ShippedRow[], who: Instance): { text: string; values: unknown[] } {
  const columns: unknown[][] = REQUEST_COLUMNS.map(() => []);
  for (const row of rows) requestValues(row, who).forEach((v, i) => columns[i]!.push(typeof v === 'string' ? storable(v) : v));
  const text = `
${storeOnceHead({ table: 'carbon_trace_requests', columns: REQUEST_COLUMNS, types: REQUEST_TYPES, offset: 'ledger_offset', stream: 'requests', stored: 'new_rows' })}), rolled AS (
INSERT INTO carbon_trace_daily AS d (day, group_key, instance, project, model, api_key_id, end_user, kind,
  requests, requests_with_energy, measured_requests, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, energy_kwh,
  measured_energy_kwh, emissions_kg, prompt_tokens, completion_tokens)
SELECT (at AT TIME ZONE 'UTC')::date, sha256(convert_to(json_build_array(instance, project, model, api_key_id, end_user, kind)::text, 'UTF8')),
  instance, project, model, api_key_id, end_user, kind,
  count(*), count(energy_kwh), count(*) FILTER (WHERE measured), coalesce(sum(cpu_energy_kwh), 0), coalesce(sum(gpu_energy_kwh), 0),
  coalesce(sum(ram_energy_kwh), 0), coalesce(sum(energy_kwh), 0), coalesce(sum(energy_kwh) FILTER (WHERE measured), 0),
  coalesce(sum(emissions_kg), 0), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
FROM new_rows
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT (day, group_key) DO UPDATE SET ${addedUp(['requests', 'requests_with_energy', 'measured_requests', 'cpu_energy_kwh', 'gpu_energy_kwh', 'ram_energy_kwh', 'energy_kwh', 'measured_energy_kwh', 'emissions_kg', 'prompt_tokens', 'completion_tokens'])}
RETURNING 1
)
SELECT count(*)::int AS inserted FROM new_rows`;
  return { text, values: columns };
}

/**
 * The head every store-once statement shares: the batch as rows (`input`, one array parameter per
 * column), those after what their run has stored (`fresh`), inserted unless already there (the
 * CTE named `stored`, returning the rows that were new), and the runs' stored marks moved on.
 */
function storeOnceHead(spec: { table: string; columns: readonly string[]; types: readonly string[]; offset: string; stream: string; stored: string }): string {
  const unnest = spec.columns.map((_, i) => `$${i + 1}::${spec.types[i]}[]`).join(', ');
  return `WITH input AS (
  SELECT * FROM unnest(${unnest}) AS t(${spec.columns.join(', ')})
), fresh AS (
  SELECT i.* FROM input i
  LEFT JOIN carbon_trace_runs r ON r.run_id = i.run_id AND r.stream = '${spec.stream}'
  WHERE r.stored_through IS NULL OR i.${spec.offset} > r.stored_through
), ${spec.stored} AS (
  INSERT INTO ${spec.table} (${spec.columns.join(', ')})
  SELECT * FROM fresh
  ON CONFLICT (run_id, ${spec.offset}) DO NOTHING
  RETURNING *
), runs AS (
  INSERT INTO carbon_trace_runs (run_id, stream, stored_through)
  SELECT run_id, '${spec.stream}', max(${spec.offset}) FROM input GROUP BY run_id
  ON CONFLICT (run_id, stream) DO UPDATE SET stored_through = greatest(carbon_trace_runs.stored_through, excluded.stored_through)`;
}

/** A rollup row's sums, each added to by the new rows' (the rollup table is aliased `d`). */
const addedUp = (sums: readonly string[]) => sums.map((c) => `${c} = d.${c} + excluded.${c}`).join(', ');

/**
 * A string as Postgres' `text` can hold it: a NUL (U+0000), which no `text` value may contain, is
 * written as U+FFFD — the one change the database makes to a name as sent.
 *
 * @example
 * ```ts
 * storable('evil\u0000'); // 'evil\uFFFD'
 * ```
 */
export function storable(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

const INT8_SAFE = Number.MAX_SAFE_INTEGER;
const whole = (n: number | undefined, max: number) => n === undefined || (Number.isInteger(n) && n >= 0 && n <= max);
const finite = (n: number | undefined) => n === undefined || (Number.isFinite(n) && n >= 0 && n < 1e300);

/**
 * Why a ledger row cannot be stored as it is (a hand-edited ledger: a status or a token count no
 * request has, an energy no meter measured), or `undefined` when it can: such a row is set aside
 * with a warning, never stored as another number, and never in the way of the rows after it.
 *
 * @example
 * ```ts
 * unstorable(row); // 'status 1e10 is not an HTTP status'
 * ```
 */
export function unstorable(row: ShippedRow): string | undefined {
  const { entry } = row;
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(row.runId)) return 'its run_id is not a run id';
  if (!whole(entry.status, 999)) return `status ${entry.status} is not an HTTP status`;
  if (!whole(entry.usage.promptTokens, INT8_SAFE) || !whole(entry.usage.completionTokens, INT8_SAFE)) return 'a token count is not a whole number';
  const joules = [entry.energy.totalJoules, entry.energy.durationSeconds, entry.grid.gCo2PerKwh, ...Object.values(entry.energy.joules)];
  if (!joules.every(finite)) return 'an energy, duration or grid figure is out of range';
  if (Number.isNaN(Date.parse(entry.at))) return 'its timestamp is not a time';
  return undefined;
}

const IDLE_COLUMNS = [
  'run_id', 'log_offset', 'from_at', 'at', 'instance', 'instance_id', 'host', 'project', 'cpu_idle_kwh', 'gpu_idle_kwh', 'ram_idle_kwh',
  'idle_kwh', 'idle_emissions_kg', 'cpu_unattributed_kwh', 'gpu_unattributed_kwh', 'ram_unattributed_kwh', 'unattributed_kwh', 'unattributed_emissions_kg',
] as const;
const IDLE_TYPES = ['uuid', 'int8', 'timestamptz', 'timestamptz', 'text', 'uuid', 'text', 'text', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8'];

const sumKwh = (j: Record<string, number | undefined>) => Object.values(j).reduce<number>((a, b) => a + (b ?? 0), 0) / JOULES_PER_KWH;

/**
 * The statement that stores a batch of idle-log lines once and adds the new ones to the idle
 * rollups (new: after what their run has stored, as for the rows).
 *
 * @example
 * ```ts
 * const { text, values } = insertIdle(lines, who);
 * await client.query(text, values);
 * ```
 */
export function insertIdle(lines: readonly ShippedIdle[], who: Instance): { text: string; values: unknown[] } {
  const columns: unknown[][] = IDLE_COLUMNS.map(() => []);
  for (const { end, interval: i } of lines) {
    [
      i.runId, end, i.from, i.to, who.name, who.id, who.host, i.projectName, kwh(i.idle.cpu), kwh(i.idle.gpu), kwh(i.idle.ram),
      sumKwh(i.idle), i.idleGrams / 1000, kwh(i.unattributed.cpu), kwh(i.unattributed.gpu), kwh(i.unattributed.ram), sumKwh(i.unattributed), i.unattributedGrams / 1000,
    ].forEach((v, n) => columns[n]!.push(typeof v === 'string' ? storable(v) : v));
  }
  const text = `
${storeOnceHead({ table: 'carbon_trace_idle', columns: IDLE_COLUMNS, types: IDLE_TYPES, offset: 'log_offset', stream: 'idle', stored: 'new_lines' })}), rolled AS (
INSERT INTO carbon_trace_idle_daily AS d (day, group_key, instance, project, cpu_idle_kwh, gpu_idle_kwh, ram_idle_kwh, idle_kwh, idle_emissions_kg, unattributed_kwh, unattributed_emissions_kg)
SELECT (at AT TIME ZONE 'UTC')::date, sha256(convert_to(json_build_array(instance, project)::text, 'UTF8')), instance, project,
  coalesce(sum(cpu_idle_kwh), 0), coalesce(sum(gpu_idle_kwh), 0), coalesce(sum(ram_idle_kwh), 0),
  sum(idle_kwh), sum(idle_emissions_kg), sum(unattributed_kwh), sum(unattributed_emissions_kg)
FROM new_lines
GROUP BY 1, 2, 3, 4
ON CONFLICT (day, group_key) DO UPDATE SET ${addedUp(['cpu_idle_kwh', 'gpu_idle_kwh', 'ram_idle_kwh', 'idle_kwh', 'idle_emissions_kg', 'unattributed_kwh', 'unattributed_emissions_kg'])}
RETURNING 1
)
SELECT count(*)::int AS inserted FROM new_lines`;
  return { text, values: columns };
}
