/**
 * The ledger's index (`FILE.days.json`): derived from the rows, tied to them by a fingerprint, so a
 * report through it is always the report of the rows — across days written out of order, a file
 * replaced under a stale index, a damaged or hostile index, a folder that cannot take it, a day of
 * more groups than it keeps, and a torn last line.
 */
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ledgerLine, openLedger, type LedgerEntry } from '../../src/server/books/ledger';
import { indexLedger } from '../../src/server/fleet/ledger-index';
import { GROUP_KEYS, parseReportQuery, reportFromLedger, type Report } from '../../src/server/fleet/report';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-index-'));
  dirs.push(dir);
  return dir;
};

const entry = (at: string, i: number, joules: number | undefined = 360 * (1 + (i % 7))): LedgerEntry => ({
  at,
  model: `m${i % 4}`,
  apiKeyId: i % 5 === 0 ? undefined : `key:${String(i % 3).padStart(12, '0')}`,
  user: `user ${i % 6}\n"${i % 2}"`,
  status: 200,
  streamed: i % 2 === 0,
  energy: { joules: joules === undefined ? {} : { cpu: joules / 4, gpu: (3 * joules) / 4 }, totalJoules: joules, durationSeconds: 1, measured: i % 3 !== 0, warnings: [] },
  grid: { gCo2PerKwh: 50 + (i % 4) * 100, source: 'given' },
  usage: { promptTokens: i, completionTokens: 2 * i },
});

/** Rows over five days of November, out of order within and across days (a clock that jumped back), some with no energy figure. */
function writeLedger(path: string, n = 500): void {
  const ledger = openLedger({ path });
  for (let i = 0; i < n; i++) {
    const day = 1 + ((i * 7) % 5);
    const hour = (i * 13) % 24;
    ledger.append(entry(`2026-11-0${day}T${String(hour).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00.000Z`, i, i % 11 === 0 ? undefined : 360 * (1 + (i % 7))));
  }
  ledger.close();
}

const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30);
function expectSame(a: Report, b: Report): void {
  expect(a.totals.requests).toBe(b.totals.requests);
  expect(a.totals.requestsWithEnergy).toBe(b.totals.requestsWithEnergy);
  expect(a.totals.measuredRequests).toBe(b.totals.measuredRequests);
  expect(a.totals.promptTokens).toBe(b.totals.promptTokens);
  for (const key of ['energyKwh', 'cpuEnergyKwh', 'gpuEnergyKwh', 'measuredEnergyKwh', 'emissionsKgco2eq'] as const) expect(relative(a.totals[key], b.totals[key]), key).toBeLessThan(1e-12);
  const rows = (r: Report) => new Map(r.rows.map((x) => [JSON.stringify(x.group), x.requests]));
  expect(rows(a)).toEqual(rows(b));
}

describe('the ledger index', () => {
  it('whole days from its rollups give the same report as the rows, every grouping, rows out of order', async () => {
    const path = join(tempDir(), 'ledger.csv');
    writeLedger(path);
    for (const by of ['', ...GROUP_KEYS.filter((k) => k !== 'hour'), 'api_key,model', 'user,project,instance,day', 'model,api_key,user,project,instance,day']) {
      const rollups = await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06', by }), { instance: 'box' });
      // One millisecond off midnight: the rows are read instead.
      const rows = await reportFromLedger(path, parseReportQuery({ from: '2026-10-31T23:59:59.999Z', to: '2026-11-06', by }), { instance: 'box' });
      expect(rollups.source).toBe('ledger rollups');
      expect(rows.source).toBe('ledger');
      expectSame(rollups, rows);
      expect(rollups.totals.requests).toBe(500);
    }
    // A part of the period: only its days, exactly.
    const two = await reportFromLedger(path, parseReportQuery({ from: '2026-11-02', to: '2026-11-04', by: 'day' }));
    const whole = await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06', by: 'day' }));
    expect(two.rows.map((r) => r.group.day).sort()).toEqual(['2026-11-02', '2026-11-03']);
    for (const row of two.rows) expect(row.requests).toBe(whole.rows.find((r) => r.group.day === row.group.day)!.requests);
    // Hours: from the rows of the days touched, filtered to the hour.
    const hour = await reportFromLedger(path, parseReportQuery({ from: '2026-11-03T05:00:00Z', to: '2026-11-03T06:00:00Z', by: 'hour' }));
    const byHour = await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06', by: 'hour' }));
    expect(hour.totals.requests).toBe(byHour.rows.find((r) => r.group.hour === '2026-11-03T05:00Z')?.requests ?? 0);
  });

  it('is kept beside the ledger, extended with the rows written after it, and never counts a row twice', async () => {
    const path = join(tempDir(), 'ledger.csv');
    writeLedger(path, 100);
    const first = await indexLedger(path);
    const onFile = JSON.parse(readFileSync(`${path}.days.json`, 'utf8'));
    expect(onFile.bytes).toBe(first.bytes);
    const ledger = openLedger({ path });
    for (let i = 0; i < 10; i++) ledger.append(entry('2026-11-05T12:00:00.000Z', 1000 + i));
    ledger.close();
    const report = await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06' }));
    expect(report.totals.requests).toBe(110);
    // Again, unchanged file: the same.
    expect((await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06' }))).totals.requests).toBe(110);
  });

  it('a ledger replaced under its index, or a damaged or hostile index: rebuilt from the rows', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.csv');
    const b = join(dir, 'b.csv');
    writeLedger(a, 200);
    writeLedger(b, 50);
    const truth = await reportFromLedger(b, parseReportQuery({ from: '2026-11-01', to: '2026-11-06', by: 'model' }));
    await indexLedger(a);
    // b copied over a, a's index left in place.
    copyFileSync(b, a);
    expectSame(await reportFromLedger(a, parseReportQuery({ from: '2026-11-01', to: '2026-11-06', by: 'model' })), truth);
    for (const damage of ['not json', '{"version":1,"bytes":-5,"fingerprint":"x","days":{}}', JSON.stringify({ version: 1, bytes: 10, fingerprint: 'x', days: { __proto__: { from: 0, to: 1, rollups: {} } } }), JSON.stringify({ version: 1, bytes: 1e15, fingerprint: 'x', days: {} }), '{"version":1,"bytes":0,"fingerprint":"","days":{"2026-11-01":{"from":0,"to":1,"rollups":{"k":[1,2,3]}}}}']) {
      writeFileSync(`${a}.days.json`, damage);
      expectSame(await reportFromLedger(a, parseReportQuery({ from: '2026-11-01', to: '2026-11-06', by: 'model' })), truth);
    }
  });

  it('a folder that cannot take the index: the report is still right (from memory)', async () => {
    const dir = tempDir();
    const path = join(dir, 'ledger.csv');
    writeLedger(path, 80);
    // The index's name is taken by a directory: it cannot be written.
    mkdirSync(`${path}.days.json`);
    const report = await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06' }));
    expect(report.totals.requests).toBe(80);
  });

  it('a day of more groups than the index keeps is read from its rows, whole', async () => {
    const path = join(tempDir(), 'ledger.csv');
    const ledger = openLedger({ path });
    for (let i = 0; i < 20_050; i++) ledger.append({ ...entry('2026-11-02T10:00:00.000Z', i), user: `u${i}` });
    ledger.close();
    const index = await indexLedger(path);
    expect(index.days['2026-11-02']!.rollups).toBeNull();
    const report = await reportFromLedger(path, parseReportQuery({ from: '2026-11-02', to: '2026-11-03', by: 'model' }));
    expect(report.source).toBe('ledger');
    expect(report.totals.requests).toBe(20_050);
  }, 60_000);

  it('a torn last line is not read until it is whole', async () => {
    const path = join(tempDir(), 'ledger.csv');
    writeLedger(path, 30);
    // One more row, as the proxy writes it (its user name holds a newline, inside quotes).
    const lastRow = ledgerLine(entry('2026-11-03T01:00:00.000Z', 7), '00000000-0000-4000-8000-000000000000', 'p');
    appendFileSync(path, lastRow.slice(0, 40));
    expect((await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06' }))).totals.requests).toBe(30);
    appendFileSync(path, lastRow.slice(40));
    expect((await reportFromLedger(path, parseReportQuery({ from: '2026-11-01', to: '2026-11-06' }))).totals.requests).toBe(31);
  });
});
