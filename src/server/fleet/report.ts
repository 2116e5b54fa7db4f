/**
 * The books over a period, grouped: from the fleet's Postgres (`reportFromDatabase`), or from one
 * proxy's ledger and idle log with no server at all (`reportFromLedger`). Both give the same
 * report for the same rows: requests, energy per component, emissions, tokens, measured against
 * estimated, and the energy in no request (idle and unattributed) per instance.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Pool } from 'pg';
import { JOULES_PER_KWH } from '../../core/units';
import { parseIdleLine } from '../books/idle-log';
import { entryOf } from '../books/ledger';
import { addRow, emptyRollup, indexLedger, readSpans, spansOf, type RollupFigures } from './ledger-index';
import { ENERGY_COMPONENTS } from '../types';

/**
 * What a report can be grouped by.
 *
 * @example
 * ```ts
 * GROUP_KEYS.includes('api_key'); // true
 * ```
 */
export const GROUP_KEYS = ['model', 'api_key', 'user', 'project', 'instance', 'day', 'hour'] as const;

/**
 * One thing a report can be grouped by.
 *
 * @example
 * ```ts
 * const by: GroupKey[] = ['api_key', 'model'];
 * ```
 */
export type GroupKey = (typeof GROUP_KEYS)[number];

/** The groups the energy in no request has: it has no model, key or user. */
const IDLE_KEYS: readonly GroupKey[] = ['project', 'instance', 'day', 'hour'];

/**
 * A period and a grouping. `from` is included and `to` is not: November is
 * `from 2026-11-01 to 2026-12-01`.
 *
 * @example
 * ```ts
 * const query: ReportQuery = parseReportQuery({ from: '2026-11-01', to: '2026-12-01', by: 'api_key,model' });
 * ```
 */
export type ReportQuery = { from: Date; to: Date; by: GroupKey[] };

/**
 * The figures of one group (or of the whole period). Energy in kWh and emissions in kg CO2eq; a
 * request with no energy figure counts in `requests` and in no sum of energy.
 *
 * @example
 * ```ts
 * const f: ReportFigures = report.totals;
 * console.log(f.emissionsKgco2eq * 1000, 'g');
 * ```
 */
export type ReportFigures = {
  requests: number;
  /** Requests with an energy figure. */
  requestsWithEnergy: number;
  /** Requests whose energy was measured (the others were estimated by a model of the machine). */
  measuredRequests: number;
  energyKwh: number;
  cpuEnergyKwh: number;
  gpuEnergyKwh: number;
  ramEnergyKwh: number;
  measuredEnergyKwh: number;
  estimatedEnergyKwh: number;
  emissionsKgco2eq: number;
  promptTokens: number;
  completionTokens: number;
};

/**
 * The energy in no request's row over the period: idle (no request in flight) and unattributed
 * (the meter could not say whose it was).
 *
 * @example
 * ```ts
 * const idle: IdleFigures = report.totals.idle;
 * ```
 */
export type IdleFigures = {
  idleEnergyKwh: number;
  cpuIdleEnergyKwh: number;
  gpuIdleEnergyKwh: number;
  ramIdleEnergyKwh: number;
  idleEmissionsKgco2eq: number;
  unattributedEnergyKwh: number;
  unattributedEmissionsKgco2eq: number;
};

/**
 * A group's values: `null` for a request that named none (no model, no key, no user).
 *
 * @example
 * ```ts
 * row.group.api_key; // 'key:4f1c2a9b0d3e'
 * ```
 */
export type ReportGroup = Partial<Record<GroupKey, string | null>>;

/**
 * A period's books.
 *
 * @example
 * ```ts
 * const report: Report = await reportFromDatabase(pool, query);
 * for (const row of report.rows) console.log(row.group.api_key, row.emissionsKgco2eq);
 * ```
 */
export type Report = {
  from: string;
  to: string;
  by: GroupKey[];
  /** Where the figures were read: the database's rows or daily rollups (whole days), or a ledger's rows or its index's daily rollups. */
  source: 'rows' | 'daily rollups' | 'ledger' | 'ledger rollups';
  rows: Array<{ group: ReportGroup } & ReportFigures>;
  /** With `/carbon/stats?…&top=N`: how many groups after the N largest were left out (the totals count them). */
  rowsOmitted?: number;
  /** Why these are not the books asked for, when they are not (the fleet's database down: this proxy's ledger only). */
  note?: string;
  /** The energy in no request, grouped by the keys of `by` it has (project, instance, day, hour). */
  idle: Array<{ group: ReportGroup } & IdleFigures>;
  /** The whole period: the requests' figures, and the energy in no request. Requests + idle + unattributed is what the meters measured. */
  totals: ReportFigures & { idle: IdleFigures; machineEnergyKwh: number; machineEmissionsKgco2eq: number };
};

const DATE = /^\d{4}-\d{2}-\d{2}$/;
// An ISO 8601 time with its offset: a time without one would be read in the reader's zone.
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * A period's bound: a date (`2026-11-01`, midnight UTC) or an ISO 8601 time with its offset.
 *
 * @throws on anything else, naming the option.
 *
 * @example
 * ```ts
 * parseBound('2026-11-01', 'from').toISOString(); // '2026-11-01T00:00:00.000Z'
 * ```
 */
export function parseBound(text: string, name: string): Date {
  const trimmed = text.trim();
  const date = DATE.test(trimmed) ? new Date(`${trimmed}T00:00:00Z`) : TIME.test(trimmed) ? new Date(trimmed) : undefined;
  if (!date || Number.isNaN(date.getTime())) throw new Error(`${name}: ${JSON.stringify(text.slice(0, 40))} is not a date (2026-11-01) or an ISO 8601 time with its zone (2026-11-01T08:00:00Z)`);
  // A date that rolled over (2026-02-30) is not the date that was meant.
  if (DATE.test(trimmed) && date.toISOString().slice(0, 10) !== trimmed) throw new Error(`${name}: ${trimmed} is not a date`);
  return date;
}

/**
 * A report's query from its text options (`from`, `to`, `by` as `api_key,model`).
 *
 * @throws on a bound that is not a date or time, `to` not after `from`, or an unknown group.
 *
 * @example
 * ```ts
 * parseReportQuery({ from: '2026-11-01', to: '2026-12-01', by: 'api_key' });
 * ```
 */
export function parseReportQuery(options: { from?: string | null; to?: string | null; by?: string | null }): ReportQuery {
  if (!options.from) throw new Error('from: a period needs its start (a date such as 2026-11-01)');
  const from = parseBound(options.from, 'from');
  const to = options.to ? parseBound(options.to, 'to') : new Date();
  if (to.getTime() <= from.getTime()) throw new Error(`to: ${to.toISOString()} is not after from (${from.toISOString()})`);
  const by: GroupKey[] = [];
  for (const part of (options.by ?? '').split(',').map((p) => p.trim().toLowerCase()).filter(Boolean)) {
    if (!(GROUP_KEYS as readonly string[]).includes(part)) throw new Error(`by: ${JSON.stringify(part.slice(0, 40))} is not one of ${GROUP_KEYS.join(', ')}`);
    if (!by.includes(part as GroupKey)) by.push(part as GroupKey);
  }
  return { from, to, by };
}

const zeroFigures = (): ReportFigures => ({
  requests: 0, requestsWithEnergy: 0, measuredRequests: 0, energyKwh: 0, cpuEnergyKwh: 0, gpuEnergyKwh: 0, ramEnergyKwh: 0,
  measuredEnergyKwh: 0, estimatedEnergyKwh: 0, emissionsKgco2eq: 0, promptTokens: 0, completionTokens: 0,
});
const zeroIdle = (): IdleFigures => ({ idleEnergyKwh: 0, cpuIdleEnergyKwh: 0, gpuIdleEnergyKwh: 0, ramIdleEnergyKwh: 0, idleEmissionsKgco2eq: 0, unattributedEnergyKwh: 0, unattributedEmissionsKgco2eq: 0 });

function addFigures(into: ReportFigures, f: ReportFigures): void {
  for (const key of Object.keys(into) as Array<keyof ReportFigures>) into[key] += f[key];
}
function addIdle(into: IdleFigures, f: IdleFigures): void {
  for (const key of Object.keys(into) as Array<keyof IdleFigures>) into[key] += f[key];
}

/** A rollup's figures added to a report row. */
function addRollup(row: ReportFigures, f: RollupFigures): void {
  row.requests += f[0];
  row.requestsWithEnergy += f[1];
  row.measuredRequests += f[2];
  row.energyKwh += f[3];
  row.cpuEnergyKwh += f[4];
  row.gpuEnergyKwh += f[5];
  row.ramEnergyKwh += f[6];
  row.measuredEnergyKwh += f[7];
  row.estimatedEnergyKwh += f[3] - f[7];
  row.emissionsKgco2eq += f[8];
  row.promptTokens += f[9];
  row.completionTokens += f[10];
}

/** The report from its grouped rows: sorted by emissions (largest first), then by group; totals summed. */
function assemble(query: ReportQuery, source: Report['source'], rows: Report['rows'], idle: Report['idle']): Report {
  const totals = zeroFigures();
  for (const row of rows) addFigures(totals, row);
  const idleTotals = zeroIdle();
  for (const row of idle) addIdle(idleTotals, row);
  const order = (a: { group: ReportGroup }, b: { group: ReportGroup }) => JSON.stringify(a.group) < JSON.stringify(b.group) ? -1 : 1;
  rows.sort((a, b) => b.emissionsKgco2eq - a.emissionsKgco2eq || order(a, b));
  idle.sort(order);
  return {
    from: query.from.toISOString(),
    to: query.to.toISOString(),
    by: query.by,
    source,
    rows,
    idle,
    totals: {
      ...totals,
      idle: idleTotals,
      machineEnergyKwh: totals.energyKwh + idleTotals.idleEnergyKwh + idleTotals.unattributedEnergyKwh,
      machineEmissionsKgco2eq: totals.emissionsKgco2eq + idleTotals.idleEmissionsKgco2eq + idleTotals.unattributedEmissionsKgco2eq,
    },
  };
}

const dayOf = (iso: string) => new Date(iso).toISOString().slice(0, 10);
const hourOf = (iso: string) => `${new Date(iso).toISOString().slice(0, 13)}:00Z`;

/** Whether the period is whole UTC days: the daily rollups can answer it. */
const wholeDays = (q: ReportQuery) => q.from.getTime() % 86_400_000 === 0 && q.to.getTime() % 86_400_000 === 0;

// ——— Postgres ———

/** The SQL of each group key, over the rows and over the rollups. */
const ROW_SQL: Record<GroupKey, string> = {
  model: 'model',
  api_key: 'api_key_id',
  user: 'end_user',
  project: 'project',
  instance: 'instance',
  day: `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
  hour: `to_char(date_trunc('hour', at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24":00Z"')`,
};
const ROLLUP_SQL: Partial<Record<GroupKey, string>> = {
  model: 'model',
  api_key: 'api_key_id',
  user: 'end_user',
  project: 'project',
  instance: 'instance',
  day: `to_char(day, 'YYYY-MM-DD')`,
};

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));

/**
 * The period's books from the fleet's database: from the daily rollups when the period is whole
 * UTC days and not grouped by hour (a month over a hundred million rows reads a few thousand
 * rollup rows), from the rows otherwise.
 *
 * @throws when the rows the period needs were removed by `--retention` (the rollups cannot answer
 * an hour or part of a day).
 *
 * @example
 * ```ts
 * const report = await reportFromDatabase(pool, parseReportQuery({ from: '2026-11-01', to: '2026-12-01', by: 'api_key' }));
 * ```
 */
export async function reportFromDatabase(pool: Pool, query: ReportQuery): Promise<Report> {
  const rollups = wholeDays(query) && !query.by.includes('hour');
  if (!rollups) {
    const kept = await pool.query<{ rows_kept_since: Date }>('SELECT rows_kept_since FROM carbon_trace_retention').catch(() => ({ rows: [] as Array<{ rows_kept_since: Date }> }));
    const since = kept.rows[0]?.rows_kept_since;
    if (since && query.from.getTime() < since.getTime()) {
      throw new Error(`the rows before ${since.toISOString()} were removed (--retention): a period before then is answered in whole days, not grouped by hour`);
    }
  }
  const keys = query.by;
  const idleKeys = keys.filter((k) => IDLE_KEYS.includes(k));
  const select = (sql: Partial<Record<GroupKey, string>>, ks: readonly GroupKey[]) => ks.map((k, i) => `${sql[k]} AS g${i}`);
  const groupBy = (ks: readonly GroupKey[]) => (ks.length > 0 ? `GROUP BY ${ks.map((_, i) => i + 1).join(', ')}` : '');
  const figures = rollups
    ? `sum(requests) AS requests, sum(requests_with_energy) AS requests_with_energy, sum(measured_requests) AS measured_requests,
       sum(energy_kwh) AS energy_kwh, sum(cpu_energy_kwh) AS cpu, sum(gpu_energy_kwh) AS gpu, sum(ram_energy_kwh) AS ram,
       sum(measured_energy_kwh) AS measured_energy_kwh, sum(emissions_kg) AS emissions_kg,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens`
    : `count(*) AS requests, count(energy_kwh) AS requests_with_energy, count(*) FILTER (WHERE measured) AS measured_requests,
       sum(energy_kwh) AS energy_kwh, sum(cpu_energy_kwh) AS cpu, sum(gpu_energy_kwh) AS gpu, sum(ram_energy_kwh) AS ram,
       sum(energy_kwh) FILTER (WHERE measured) AS measured_energy_kwh, sum(emissions_kg) AS emissions_kg,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens`;
  const where = rollups ? 'day >= $1::date AND day < $2::date' : 'at >= $1 AND at < $2';
  const bounds: unknown[] = rollups ? [query.from.toISOString().slice(0, 10), query.to.toISOString().slice(0, 10)] : [query.from, query.to];
  const requestSql = `SELECT ${[...select(rollups ? ROLLUP_SQL : ROW_SQL, keys), figures].join(', ')} FROM ${rollups ? 'carbon_trace_daily' : 'carbon_trace_requests'} WHERE ${where} ${groupBy(keys)}`;
  const idleFigures = `sum(idle_kwh) AS idle, sum(cpu_idle_kwh) AS cpu, sum(gpu_idle_kwh) AS gpu, sum(ram_idle_kwh) AS ram, sum(idle_emissions_kg) AS idle_kg,
       sum(unattributed_kwh) AS unattributed, sum(unattributed_emissions_kg) AS unattributed_kg`;
  const idleSql = `SELECT ${[...select(rollups ? ROLLUP_SQL : ROW_SQL, idleKeys), idleFigures].join(', ')} FROM ${rollups ? 'carbon_trace_idle_daily' : 'carbon_trace_idle'} WHERE ${where} ${groupBy(idleKeys)}`;
  const [requests, idle] = await Promise.all([pool.query<Record<string, unknown>>(requestSql, bounds), pool.query<Record<string, unknown>>(idleSql, bounds)]);
  const groupOf = (row: Record<string, unknown>, ks: readonly GroupKey[]): ReportGroup =>
    Object.fromEntries(ks.map((k, i) => [k, (row[`g${i}`] as string | null) ?? null]));
  const rows: Report['rows'] = requests.rows
    .filter((r) => num(r.requests) > 0)
    .map((r) => {
      const energy = num(r.energy_kwh);
      const measured = num(r.measured_energy_kwh);
      return {
        group: groupOf(r, keys),
        requests: num(r.requests),
        requestsWithEnergy: num(r.requests_with_energy),
        measuredRequests: num(r.measured_requests),
        energyKwh: energy,
        cpuEnergyKwh: num(r.cpu),
        gpuEnergyKwh: num(r.gpu),
        ramEnergyKwh: num(r.ram),
        measuredEnergyKwh: measured,
        estimatedEnergyKwh: Math.max(0, energy - measured),
        emissionsKgco2eq: num(r.emissions_kg),
        promptTokens: num(r.prompt_tokens),
        completionTokens: num(r.completion_tokens),
      };
    });
  const idleRows: Report['idle'] = idle.rows
    .filter((r) => r.idle !== null)
    .map((r) => ({
      group: groupOf(r, idleKeys),
      idleEnergyKwh: num(r.idle),
      cpuIdleEnergyKwh: num(r.cpu),
      gpuIdleEnergyKwh: num(r.gpu),
      ramIdleEnergyKwh: num(r.ram),
      idleEmissionsKgco2eq: num(r.idle_kg),
      unattributedEnergyKwh: num(r.unattributed),
      unattributedEmissionsKgco2eq: num(r.unattributed_kg),
    }));
  return assemble(query, rollups ? 'daily rollups' : 'rows', rows, idleRows);
}

// ——— One ledger ———

/**
 * The instance name a proxy gives its rows when none is given: the machine's host name.
 *
 * @example
 * ```ts
 * defaultInstanceName(); // 'gpu-fr-1'
 * ```
 */
export const defaultInstanceName = (): string => hostname();

/**
 * The period's books from one proxy's ledger (and its idle log beside it, `FILE.idle.csv`), without
 * the proxy's lock: the report of one box, with no server. Through the ledger's index
 * (`FILE.days.json`, see `indexLedger`): a period of whole UTC days not grouped by hour is summed
 * from its daily rollups; any other reads only the bytes of the days it touches. Rows are the
 * ledger's as written; `instance` is the name the proxy uses (`--instance`, or the host name). The
 * files are read in slices off the event loop, so a proxy answering a period keeps serving.
 *
 * @throws when the file cannot be read.
 *
 * @example
 * ```ts
 * const report = await reportFromLedger('/var/lib/carbon-trace/ledger.csv', parseReportQuery({ from: '2026-11-01', to: '2026-12-01', by: 'api_key' }));
 * ```
 */
export async function reportFromLedger(path: string, query: ReportQuery, options: { instance?: string } = {}): Promise<Report> {
  const instance = options.instance ?? defaultInstanceName();
  const from = query.from.getTime();
  const to = query.to.getTime();
  const groups = new Map<string, { group: ReportGroup } & ReportFigures>();
  const idleGroups = new Map<string, { group: ReportGroup } & IdleFigures>();
  const idleKeys = query.by.filter((k) => IDLE_KEYS.includes(k));

  const valueOf = (key: GroupKey, at: string, fields: { model?: string | null | undefined; apiKeyId?: string | null | undefined; user?: string | null | undefined; project: string }): string | null => {
    switch (key) {
      case 'model': return fields.model ?? null;
      case 'api_key': return fields.apiKeyId ?? null;
      case 'user': return fields.user ?? null;
      case 'project': return fields.project;
      case 'instance': return instance;
      case 'day': return dayOf(at);
      case 'hour': return hourOf(at);
    }
  };
  const rowFor = (group: ReportGroup) => {
    const key = JSON.stringify(query.by.map((k) => group[k]));
    let row = groups.get(key);
    if (!row) groups.set(key, (row = { group, ...zeroFigures() }));
    return row;
  };

  const index = await indexLedger(path);
  const days = Object.entries(index.days).filter(([day]) => {
    const t = Date.parse(`${day}T00:00:00Z`);
    return t >= from && t < to;
  });
  const fromRollups = wholeDays(query) && !query.by.includes('hour') && days.every(([, d]) => d.rollups !== null);
  if (fromRollups) {
    for (const [day, d] of days) {
      for (const [key, f] of Object.entries(d.rollups!)) {
        const [project, model, apiKeyId, user] = JSON.parse(key) as [string, string | null, string | null, string | null];
        const row = rowFor(Object.fromEntries(query.by.map((k) => [k, valueOf(k, `${day}T00:00:00Z`, { model, apiKeyId, user, project })])));
        addRollup(row, f);
      }
    }
  } else {
    await readSpans(path, spansOf(index, query.from, query.to), (fields, columns) => {
      const entry = entryOf(fields, columns);
      if (!entry) return;
      const t = Date.parse(entry.at);
      if (!(t >= from && t < to)) return;
      const project = fields[columns.get('project_name') ?? -1] ?? '';
      const f = emptyRollup();
      addRow(f, entry);
      const row = rowFor(Object.fromEntries(query.by.map((k) => [k, valueOf(k, entry.at, { model: entry.model, apiKeyId: entry.apiKeyId, user: entry.user, project })])));
      addRollup(row, f);
    });
  }

  const idlePath = `${path}.idle.csv`;
  if (existsSync(idlePath)) {
    // The whole idle log, after its header, with the same reader as the ledger's spans.
    await readSpans(idlePath, [[0, Number.MAX_SAFE_INTEGER]], (fields) => {
      const line = parseIdleLine(fields);
      if (!line) return;
      const t = Date.parse(line.to);
      if (!(t >= from && t < to)) return;
      const group: ReportGroup = Object.fromEntries(idleKeys.map((k) => [k, valueOf(k, line.to, { project: line.projectName })]));
      const key = JSON.stringify(idleKeys.map((k) => group[k]));
      let row = idleGroups.get(key);
      if (!row) idleGroups.set(key, (row = { group, ...zeroIdle() }));
      for (const c of ENERGY_COMPONENTS) {
        const kwh = (line.idle[c] ?? 0) / JOULES_PER_KWH;
        row.idleEnergyKwh += kwh;
        row[`${c}IdleEnergyKwh`] += kwh;
        row.unattributedEnergyKwh += (line.unattributed[c] ?? 0) / JOULES_PER_KWH;
      }
      row.idleEmissionsKgco2eq += line.idleGrams / 1000;
      row.unattributedEmissionsKgco2eq += line.unattributedGrams / 1000;
    });
  }
  return assemble(query, fromRollups ? 'ledger rollups' : 'ledger', [...groups.values()], [...idleGroups.values()]);
}
