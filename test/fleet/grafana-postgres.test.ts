/**
 * The Grafana dashboard of the fleet's books read from Postgres
 * (deploy/grafana/carbon-trace-fleet-postgres.json), held to a real database: two boxes' ledgers
 * and idle logs are sent by the real shipper into a migrated Postgres, then every SQL query of the
 * dashboard — each panel's and the instance variable's — runs there, with Grafana's macros and the
 * variable replaced as Grafana replaces them. Each answers rows, in the columns its panel reads
 * (time, metric, value for a time series), and the figures are those of the report
 * (`reportFromDatabase`, the same as `carbon-trace report --db` and `/carbon/stats?from=…`).
 * The data source's provisioning file names the dashboard's data source and holds no password.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openIdleLog } from '../../src/server/books/idle-log';
import { openLedger, type LedgerEntry } from '../../src/server/books/ledger';
import { parseReportQuery, reportFromDatabase, type Report } from '../../src/server/fleet/report';
import { createFleetShipper } from '../../src/server/fleet/shipper';
import { describeWithPostgres, startPostgres, testPool, type PostgresServer } from '../fixtures/postgres';

const root = resolve(import.meta.dirname, '../..');
const DASHBOARD = join(root, 'deploy/grafana/carbon-trace-fleet-postgres.json');
const DATASOURCE = join(root, 'deploy/grafana/provisioning/datasources/postgres.yml');
const DAY = 86_400_000;

type Target = { refId: string; rawSql: string; format: 'time_series' | 'table'; datasource: { uid: string; type: string } };
type Panel = { id: number; type: string; title: string; datasource: { uid: string; type: string }; targets: Target[] };
type Variable = { name: string; type: string; query: string; datasource: { uid: string } };
type Dashboard = { uid: string; panels: Panel[]; templating: { list: Variable[] }; time: { from: string; to: string } };

/** As Go's time.RFC3339Nano writes a UTC time, which Grafana's Postgres macros use: no trailing zeros in the fraction. */
const rfc3339Nano = (d: Date) => d.toISOString().replace(/\.(\d*?)0*Z$/, (_, f: string) => (f ? `.${f}Z` : 'Z'));
const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * The SQL Grafana sends for a panel's query: its macros (pkg/tsdb/grafana-postgresql-datasource/macros.go)
 * and the multi-value variable, as the front end quotes one for a SQL data source (`'a','b'`).
 */
function expand(sql: string, range: { from: Date; to: Date }, variables: Record<string, string[]>): string {
  let out = sql
    .replace(/\$__timeFilter\(([^)]*)\)/g, (_, col: string) => `${col.trim()} BETWEEN '${rfc3339Nano(range.from)}' AND '${rfc3339Nano(range.to)}'`)
    .replace(/\$__timeFrom\(\)/g, `'${rfc3339Nano(range.from)}'`)
    .replace(/\$__timeTo\(\)/g, `'${rfc3339Nano(range.to)}'`);
  for (const [name, values] of Object.entries(variables)) out = out.replace(new RegExp(`\\$\\{${name}\\}|\\$${name}\\b|\\[\\[${name}\\]\\]`, 'g'), values.map(quote).join(','));
  // Nothing of Grafana's left: a macro or variable this test does not know would reach Postgres as is.
  expect(out, sql).not.toMatch(/\$\w|\[\[/);
  return out;
}

// Two boxes, three API keys, over the last days; one row 40 days back, outside the dashboard's 30 days.
const KEYS = ['key:0a1b2c3d4e5f', 'key:111111111111', 'key:fedcba987654', undefined];
const entry = (at: Date, i: number): LedgerEntry => ({
  at: at.toISOString(),
  model: ['llama-3.1-8b', 'mistral-7b'][i % 2],
  apiKeyId: KEYS[i % KEYS.length],
  user: `user-${i % 3}`,
  status: 200,
  streamed: i % 2 === 0,
  energy: { joules: { cpu: 40 + i, gpu: 300 + 7 * i }, totalJoules: 340 + 8 * i, durationSeconds: 1 + i / 10, measured: i % 5 !== 0, warnings: [] },
  grid: { gCo2PerKwh: [56, 650][i % 2]!, source: 'given' },
  usage: { promptTokens: 10 + i, completionTokens: 100 + 3 * i },
});

let server: PostgresServer;
let dir: string;
let dashboard: Dashboard;

describeWithPostgres(import.meta.filename, 'the Grafana dashboard of the fleet, on a real Postgres', () => {
  beforeAll(async () => {
    dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
    server = await startPostgres({ databases: ['fleet'] });
    dir = mkdtempSync(join(tmpdir(), 'carbon-trace-grafana-'));
    const now = Date.now();
    for (const [b, name] of ['gpu-fr', 'gpu-pl'].entries()) {
      const path = join(dir, `${name}.csv`);
      const ledger = openLedger({ path });
      const idle = openIdleLog(`${path}.idle.csv`);
      try {
        for (const daysAgo of [0, 1, 3, 8, 40]) {
          const at = new Date(now - daysAgo * DAY - 60_000);
          for (let i = 0; i < 6 + b; i++) ledger.append(entry(new Date(at.getTime() + i * 1000), i + b));
          const joules = { cpu: 900 + 100 * b, gpu: 3600 };
          idle.append({ from: new Date(at.getTime() - 600_000).toISOString(), to: at.toISOString(), runId: ledger.runId, projectName: 'carbon-trace proxy', idle: joules, idleGrams: (4500 / 3.6e6) * 56, unattributed: { cpu: b * 36 }, unattributedGrams: ((b * 36) / 3.6e6) * 56 });
        }
        // The real shipper, as a proxy started with --db sends its files: the rows, the idle intervals, the daily rollups.
        const shipper = createFleetShipper({ db: server.url('fleet'), instance: { name, id: `00000000-0000-4000-8000-00000000000${b + 1}`, host: name }, files: () => ({ ledger, idleLogPath: `${path}.idle.csv` }), warn: () => {} });
        try {
          expect(await shipper.flush()).toBe(true);
        } finally {
          await shipper.close();
        }
      } finally {
        idle.close();
        ledger.close();
      }
    }
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is valid JSON, every panel on the provisioned Postgres data source, whose file holds no password', () => {
    const provisioning = readFileSync(DATASOURCE, 'utf8');
    const uid = /^\s+uid:\s*(\S+)\s*$/m.exec(provisioning)?.[1];
    expect(uid).toBe('carbon-trace-postgres');
    expect(provisioning).toMatch(/^\s+type:\s*grafana-postgresql-datasource\s*$/m);
    // Where, who and the password come from the environment.
    for (const key of ['url', 'user', 'database', 'password']) expect(provisioning, key).toMatch(new RegExp(`^\\s+${key}:\\s*\\$\\{[A-Z_]+\\}\\s*$`, 'm'));
    expect(provisioning).not.toMatch(/postgres(ql)?:\/\/[^\s$]*:[^\s$]*@/);

    expect(dashboard.uid).toBe('carbon-trace-fleet-postgres');
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) {
      expect(p.datasource.uid, p.title).toBe(uid);
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource.uid, p.title).toBe(uid);
    }
    for (const v of dashboard.templating.list) expect(v.datasource.uid).toBe(uid);
    // The panels the fleet's books need.
    const titles = dashboard.panels.map((p) => p.title).join('\n');
    expect(titles).toMatch(/CO2eq per day, by API key/);
    expect(titles).toMatch(/Energy of requests per day, by instance/);
    expect(titles).toMatch(/Top API keys this month/);
    expect(titles).toMatch(/Idle energy per day, by instance/);
  });

  it('every query runs on the migrated database, answers rows in the columns its panel reads, and the figures are the report\'s', async () => {
    const pool = testPool(server.url('fleet'));
    try {
      // The dashboard's own range: the last 30 days.
      expect(dashboard.time).toEqual({ from: 'now-30d', to: 'now' });
      const to = new Date();
      const range = { from: new Date(to.getTime() - 30 * DAY), to };

      // The variable first: its values are what "All" stands for in the panels' SQL.
      const [instanceVar] = dashboard.templating.list;
      expect(instanceVar!.name).toBe('instance');
      const listed = await pool.query<Record<string, string>>(expand(instanceVar!.query, range, {}));
      expect(listed.fields).toHaveLength(1);
      const instances = listed.rows.map((r) => Object.values(r)[0]!);
      expect(instances).toEqual(['gpu-fr', 'gpu-pl']);

      // The report over the same whole UTC days ($__timeFilter on a date column keeps the days the range touches).
      const days = { from: rfc3339Nano(range.from).slice(0, 10), to: new Date(Date.parse(`${rfc3339Nano(to).slice(0, 10)}T00:00:00Z`) + DAY).toISOString().slice(0, 10) };
      const report = (by: string, period = days) => reportFromDatabase(pool, parseReportQuery({ ...period, by }));
      const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-12 + 1e-9 * Math.abs(b));
      const whole = await report('');
      expect(whole.source).toBe('daily rollups');
      expect(whole.totals.requests).toBe(4 * 6 + 4 * 7); // 40 days back is outside the range

      const ran: string[] = [];
      for (const panel of dashboard.panels) {
        for (const target of panel.targets) {
          const sql = expand(target.rawSql, range, { instance: instances });
          const result = await pool.query(sql).catch((error: Error) => {
            throw new Error(`${panel.title}: ${error.message}\n${sql}`);
          });
          ran.push(panel.title);
          const columns = result.fields.map((f) => f.name);
          expect(result.rows.length, panel.title).toBeGreaterThan(0);

          if (panel.type === 'timeseries') {
            // Long format: Grafana makes one series per metric.
            expect(target.format).toBe('time_series');
            expect(columns, panel.title).toEqual(['time', 'metric', 'value']);
            for (const row of result.rows as Array<{ time: Date; metric: string; value: number }>) {
              expect(row.time).toBeInstanceOf(Date);
              expect(row.time.getTime() % DAY, panel.title).toBe(0); // a UTC day
              expect(typeof row.metric).toBe('string');
              expect(typeof row.value).toBe('number');
            }
            const sum = (metric?: string) => (result.rows as Array<{ metric: string; value: number }>).filter((r) => metric === undefined || r.metric === metric).reduce((s, r) => s + r.value, 0);
            if (/by API key/.test(panel.title)) {
              const byKey = await report('api_key');
              for (const row of byKey.rows) close(sum(row.group.api_key ?? '(none)'), row.emissionsKgco2eq);
              close(sum(), whole.totals.emissionsKgco2eq);
            } else if (/Idle/.test(panel.title)) {
              const byInstanceDay = await report('instance,day');
              for (const row of byInstanceDay.idle) {
                const point = (result.rows as Array<{ time: Date; metric: string; value: number }>).find((r) => r.metric === row.group.instance && r.time.toISOString().slice(0, 10) === row.group.day);
                close(point?.value ?? Number.NaN, row.idleEnergyKwh);
              }
              close(sum(), whole.totals.idle.idleEnergyKwh);
            } else {
              const byInstanceDay = await report('instance,day');
              expect(result.rows).toHaveLength(byInstanceDay.rows.length);
              for (const row of byInstanceDay.rows) {
                const point = (result.rows as Array<{ time: Date; metric: string; value: number }>).find((r) => r.metric === row.group.instance && r.time.toISOString().slice(0, 10) === row.group.day);
                close(point?.value ?? Number.NaN, row.energyKwh);
              }
            }
          } else if (panel.type === 'stat') {
            expect(target.format).toBe('table');
            expect(columns, panel.title).toEqual(['value']);
            expect(result.rows).toHaveLength(1);
            const value = Number((result.rows[0] as { value: number }).value);
            const t = whole.totals;
            const expected: Record<string, number> = {
              'CO2eq of requests (range)': t.emissionsKgco2eq,
              'CO2eq idle (range)': t.idle.idleEmissionsKgco2eq,
              'CO2eq, the machines in all (range)': t.machineEmissionsKgco2eq,
              "Requests' energy measured (range)": t.measuredEnergyKwh / t.energyKwh,
            };
            expect(Object.keys(expected), panel.title).toContain(panel.title);
            close(value, expected[panel.title]!);
          } else if (panel.type === 'table') {
            expect(target.format).toBe('table');
            expect(columns, panel.title).toEqual(['API key', 'requests', 'energy', 'CO2eq', 'tokens in', 'tokens out', 'measured']);
            // This month (UTC) up to the range's end: the report from the 1st to tomorrow.
            const month = await report('api_key', { from: `${to.toISOString().slice(0, 7)}-01`, to: days.to });
            const rows = result.rows as Array<Record<string, string | number | null>>;
            expect(rows.map((r) => r['API key'])).toEqual(month.rows.slice(0, 10).map((r: Report['rows'][number]) => r.group.api_key ?? '(none)'));
            for (const [i, r] of month.rows.slice(0, 10).entries()) {
              const row = rows[i]!;
              expect(Number(row.requests)).toBe(r.requests);
              close(Number(row.energy), r.energyKwh);
              close(Number(row['CO2eq']), r.emissionsKgco2eq);
              expect(Number(row['tokens in'])).toBe(r.promptTokens);
              expect(Number(row['tokens out'])).toBe(r.completionTokens);
              close(Number(row.measured), r.measuredEnergyKwh / r.energyKwh);
            }
          } else {
            throw new Error(`${panel.title}: a panel of type ${panel.type} this test does not check`);
          }
        }
      }
      expect(ran).toHaveLength(dashboard.panels.length);
    } finally {
      await pool.end();
    }
  });
});
