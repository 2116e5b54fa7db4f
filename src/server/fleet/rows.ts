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
 * parameters, and every value is a parameter. It answers one row: `inserted`, the rows that were new.
 *
 * @example
 * ```ts
 * const { text, values } = insertRequests(rows, who);
 * await client.query(text, values);
 * ```
 */
export function insertRequests(rows: readonly ShippedRow[], who: Instance): { text: string; values: unknown[] } {
  const columns: unknown[][] = REQUEST_COLUMNS.map(() => []);
  for (const row of rows) requestValues(row, who).forEach((v, i) => columns[i]!.push(v));
  const unnest = REQUEST_COLUMNS.map((_, i) => `$${i + 1}::${REQUEST_TYPES[i]}[]`).join(', ');
  const text = `
WITH new_rows AS (
  INSERT INTO carbon_trace_requests (${REQUEST_COLUMNS.join(', ')})
  SELECT * FROM unnest(${unnest})
  ON CONFLICT (run_id, ledger_offset) DO NOTHING
  RETURNING *
), rolled AS (
INSERT INTO carbon_trace_daily AS d (day, instance, project, model, api_key_id, end_user, kind,
  requests, requests_with_energy, measured_requests, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, energy_kwh,
  measured_energy_kwh, emissions_kg, prompt_tokens, completion_tokens)
SELECT (at AT TIME ZONE 'UTC')::date, instance, project, coalesce(model, ''), coalesce(api_key_id, ''), coalesce(end_user, ''), coalesce(kind, ''),
  count(*), count(energy_kwh), count(*) FILTER (WHERE measured), coalesce(sum(cpu_energy_kwh), 0), coalesce(sum(gpu_energy_kwh), 0),
  coalesce(sum(ram_energy_kwh), 0), coalesce(sum(energy_kwh), 0), coalesce(sum(energy_kwh) FILTER (WHERE measured), 0),
  coalesce(sum(emissions_kg), 0), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
FROM new_rows
GROUP BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (day, instance, project, model, api_key_id, end_user, kind) DO UPDATE SET
  requests = d.requests + excluded.requests,
  requests_with_energy = d.requests_with_energy + excluded.requests_with_energy,
  measured_requests = d.measured_requests + excluded.measured_requests,
  cpu_energy_kwh = d.cpu_energy_kwh + excluded.cpu_energy_kwh,
  gpu_energy_kwh = d.gpu_energy_kwh + excluded.gpu_energy_kwh,
  ram_energy_kwh = d.ram_energy_kwh + excluded.ram_energy_kwh,
  energy_kwh = d.energy_kwh + excluded.energy_kwh,
  measured_energy_kwh = d.measured_energy_kwh + excluded.measured_energy_kwh,
  emissions_kg = d.emissions_kg + excluded.emissions_kg,
  prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
  completion_tokens = d.completion_tokens + excluded.completion_tokens
RETURNING 1
)
SELECT count(*)::int AS inserted FROM new_rows`;
  return { text, values: columns };
}

const IDLE_COLUMNS = [
  'run_id', 'log_offset', 'from_at', 'at', 'instance', 'instance_id', 'host', 'project', 'cpu_idle_kwh', 'gpu_idle_kwh', 'ram_idle_kwh',
  'idle_kwh', 'idle_emissions_kg', 'cpu_unattributed_kwh', 'gpu_unattributed_kwh', 'ram_unattributed_kwh', 'unattributed_kwh', 'unattributed_emissions_kg',
] as const;
const IDLE_TYPES = ['uuid', 'int8', 'timestamptz', 'timestamptz', 'text', 'uuid', 'text', 'text', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8', 'float8'];

const sumKwh = (j: Record<string, number | undefined>) => Object.values(j).reduce<number>((a, b) => a + (b ?? 0), 0) / JOULES_PER_KWH;

/**
 * The statement that stores a batch of idle-log lines once and adds the new ones to the idle
 * rollups.
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
    ].forEach((v, n) => columns[n]!.push(v));
  }
  const unnest = IDLE_COLUMNS.map((_, n) => `$${n + 1}::${IDLE_TYPES[n]}[]`).join(', ');
  const text = `
WITH new_lines AS (
  INSERT INTO carbon_trace_idle (${IDLE_COLUMNS.join(', ')})
  SELECT * FROM unnest(${unnest})
  ON CONFLICT (run_id, log_offset) DO NOTHING
  RETURNING *
), rolled AS (
INSERT INTO carbon_trace_idle_daily AS d (day, instance, project, cpu_idle_kwh, gpu_idle_kwh, ram_idle_kwh, idle_kwh, idle_emissions_kg, unattributed_kwh, unattributed_emissions_kg)
SELECT (at AT TIME ZONE 'UTC')::date, instance, project, coalesce(sum(cpu_idle_kwh), 0), coalesce(sum(gpu_idle_kwh), 0), coalesce(sum(ram_idle_kwh), 0),
  sum(idle_kwh), sum(idle_emissions_kg), sum(unattributed_kwh), sum(unattributed_emissions_kg)
FROM new_lines
GROUP BY 1, 2, 3
ON CONFLICT (day, instance, project) DO UPDATE SET
  cpu_idle_kwh = d.cpu_idle_kwh + excluded.cpu_idle_kwh,
  gpu_idle_kwh = d.gpu_idle_kwh + excluded.gpu_idle_kwh,
  ram_idle_kwh = d.ram_idle_kwh + excluded.ram_idle_kwh,
  idle_kwh = d.idle_kwh + excluded.idle_kwh,
  idle_emissions_kg = d.idle_emissions_kg + excluded.idle_emissions_kg,
  unattributed_kwh = d.unattributed_kwh + excluded.unattributed_kwh,
  unattributed_emissions_kg = d.unattributed_emissions_kg + excluded.unattributed_emissions_kg
RETURNING 1
)
SELECT count(*)::int AS inserted FROM new_lines`;
  return { text, values: columns };
}
