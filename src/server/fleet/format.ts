/**
 * A period's report as a person reads it (a table), as a spreadsheet reads it (CSV) — JSON is the
 * report itself.
 */
import { csvField } from '../../core/emissions-csv';
import { formatEmissions, formatEnergy } from '../../core/format';
import type { IdleFigures, Report, ReportFigures, ReportGroup } from './report';

const FIGURE_COLUMNS: Array<[string, keyof ReportFigures]> = [
  ['requests', 'requests'],
  ['requests_with_energy', 'requestsWithEnergy'],
  ['measured_requests', 'measuredRequests'],
  ['energy_kwh', 'energyKwh'],
  ['cpu_energy_kwh', 'cpuEnergyKwh'],
  ['gpu_energy_kwh', 'gpuEnergyKwh'],
  ['ram_energy_kwh', 'ramEnergyKwh'],
  ['measured_energy_kwh', 'measuredEnergyKwh'],
  ['estimated_energy_kwh', 'estimatedEnergyKwh'],
  ['emissions_kg', 'emissionsKgco2eq'],
  ['prompt_tokens', 'promptTokens'],
  ['completion_tokens', 'completionTokens'],
];
const IDLE_COLUMNS: Array<[string, keyof IdleFigures]> = [
  ['idle_energy_kwh', 'idleEnergyKwh'],
  ['idle_emissions_kg', 'idleEmissionsKgco2eq'],
  ['unattributed_energy_kwh', 'unattributedEnergyKwh'],
  ['unattributed_emissions_kg', 'unattributedEmissionsKgco2eq'],
];

/**
 * The report as CSV: a `part` column (`requests` for each group's requests, `idle` for the energy
 * in no request), the group's columns, then every figure (kWh, kg CO2eq, counts). Names are written
 * whole, quoted as RFC 4180 says, with a formula's first character guarded.
 *
 * @example
 * ```ts
 * writeFileSync('november.csv', reportCsv(report));
 * ```
 */
export function reportCsv(report: Report): string {
  const header = ['part', ...report.by, ...FIGURE_COLUMNS.map(([name]) => name), ...IDLE_COLUMNS.map(([name]) => name)];
  const lines = [header.join(',')];
  const groupCells = (group: ReportGroup) => report.by.map((key) => csvField(group[key] ?? ''));
  for (const row of report.rows) {
    lines.push(['requests', ...groupCells(row.group), ...FIGURE_COLUMNS.map(([, key]) => csvField(row[key])), ...IDLE_COLUMNS.map(() => '')].join(','));
  }
  for (const row of report.idle) {
    lines.push(['idle', ...groupCells(row.group), ...FIGURE_COLUMNS.map(() => ''), ...IDLE_COLUMNS.map(([, key]) => csvField(row[key]))].join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** A name as a table cell: one line, at most `width` characters. */
function cell(value: string | null | undefined, width: number): string {
  if (value === null || value === undefined) return '—';
  const oneLine = value.replace(/\r\n|\r|\n/g, '⏎').replace(/[\u0000-\u001f\u007f]/g, '�');
  return oneLine.length > width ? `${oneLine.slice(0, width - 1)}…` : oneLine;
}

/**
 * The report as a plain-text table: a line per group (largest emissions first) with its requests,
 * energy, emissions and tokens, then the energy in no request and the period's totals.
 *
 * @example
 * ```ts
 * process.stdout.write(reportTable(report));
 * ```
 */
export function reportTable(report: Report): string {
  const headings = [...report.by, 'requests', 'energy', 'CO2eq', 'measured', 'tokens in', 'tokens out'];
  const body: string[][] = report.rows.map((row) => [
    ...report.by.map((key) => cell(row.group[key], 40)),
    String(row.requests),
    formatEnergy(row.requestsWithEnergy > 0 ? row.energyKwh : undefined),
    formatEmissions(row.requestsWithEnergy > 0 ? row.emissionsKgco2eq : undefined),
    row.requestsWithEnergy > 0 ? `${Math.round((100 * row.measuredEnergyKwh) / (row.energyKwh || 1))} %` : '—',
    String(row.promptTokens),
    String(row.completionTokens),
  ]);
  const widths = headings.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < report.by.length ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [`carbon-trace report ${report.from} → ${report.to}${report.by.length ? ` by ${report.by.join(', ')}` : ''} (from ${report.source})`, ''];
  if (report.note) out.push(`note: ${report.note}`, '');
  out.push(...(body.length > 0 ? [line(headings), ...body.map(line)] : ['no request in this period']));
  const t = report.totals;
  out.push('');
  // The idle log gets a line a minute: a period of its first minute, or of no proxy running, has none.
  if (report.idle.length === 0) out.push('idle: none logged in this period (the idle log gets a line a minute)');
  for (const row of report.idle) {
    const where = Object.entries(row.group).map(([k, v]) => `${k} ${cell(v, 40)}`).join(', ');
    out.push(`idle${where ? ` (${where})` : ''}: ${formatEnergy(row.idleEnergyKwh)}, ${formatEmissions(row.idleEmissionsKgco2eq)}; unattributed: ${formatEnergy(row.unattributedEnergyKwh)}, ${formatEmissions(row.unattributedEmissionsKgco2eq)}`);
  }
  out.push(
    `requests: ${t.requests} (${t.requestsWithEnergy} with an energy figure, ${t.measuredRequests} measured) · ${formatEnergy(t.energyKwh)}, ${formatEmissions(t.emissionsKgco2eq)}`,
    `machine (requests + idle + unattributed): ${formatEnergy(t.machineEnergyKwh)}, ${formatEmissions(t.machineEmissionsKgco2eq)}`,
  );
  return `${out.join('\n')}\n`;
}
