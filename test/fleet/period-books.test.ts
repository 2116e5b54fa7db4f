/**
 * A period's books balance: the requests' rows, the idle log's idle and unattributed energy add up
 * to what the meter measured, whatever the grouping — with a meter whose counters and clock the
 * test moves by hand, through the real proxy and its ledger (no database: `reportFromLedger`, the
 * same figures the fleet's database gets).
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCarbonProxy, createEnergyMeter, type EnergySource } from '../../src/server/index';
import { GROUP_KEYS, parseReportQuery, reportFromLedger, type Report } from '../../src/server/fleet/report';
import { reportCsv, reportTable } from '../../src/server/fleet/format';
import { startFixtureServer } from '../fixtures/openai-compatible-server';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** 100 W of CPU and 300 W of GPU on a clock the test moves. */
function machine() {
  const time = { nowMs: 0 };
  const source: EnergySource = { name: 'hand-driven', measured: true, read: () => ({ cpuJoules: (100 * time.nowMs) / 1000, gpuJoules: (300 * time.nowMs) / 1000 }) };
  return { time, source, clock: () => time.nowMs };
}

describe('a period: rows + idle + unattributed = what the meter measured', () => {
  it('every grouping of the ledger\'s report comes to the meter\'s total, split by component', async () => {
    // The model works 0.5 s on the test's clock for each request: the requests' rows have energy.
    let advance = () => {};
    const upstream = await startFixtureServer(() => {
      advance();
      return { content: 'ok' };
    });
    const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-period-'));
    dirs.push(dir);
    const ledger = join(dir, 'ledger.csv');
    const { time, source, clock } = machine();
    advance = () => void (time.nowMs += 500);
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock, onWarning: false });
    await meter.sample();
    const proxy = createCarbonProxy({ upstream: upstream.baseURL.replace(/\/v1$/, ''), meter, ledger, instance: 'box-1', gridIntensity: { gCo2PerKwh: 200 }, onWarning: () => {} });
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    const url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    try {
      // Idle, then requests one by one and two at once, with the clock moved between them.
      for (let i = 0; i < 6; i++) {
        time.nowMs += 1000;
        await meter.sample();
        const bodies = [0, 1].slice(0, i % 2 === 0 ? 1 : 2).map((k) =>
          fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer k${k}` }, body: JSON.stringify({ model: `m${(i + k) % 3}`, user: `u${k}`, messages: [] }) }).then((r) => r.text()),
        );
        await Promise.all(bodies);
      }
      time.nowMs += 5000;
      await meter.sample();
    } finally {
      await proxy.close();
    }
    const measured = meter.stats();
    await meter.close();
    await upstream.close();
    expect(measured.inFlightJoules).toBe(0);
    expect(measured.idleJoules).toBeGreaterThan(0);
    expect(measured.attributedJoules).toBeGreaterThan(0);

    const idleLog = readFileSync(`${ledger}.idle.csv`, 'utf8');
    expect(idleLog.split('\n')[0]).toMatch(/^from,to,run_id,project_name,cpu_idle_kwh/);

    const day = new Date().toISOString().slice(0, 10);
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 3_600_000).toISOString();
    for (const by of ['', ...GROUP_KEYS, 'api_key,model,user', GROUP_KEYS.join(',')]) {
      const report = await reportFromLedger(ledger, parseReportQuery({ from, to, by }), { instance: 'box-1' });
      const t = report.totals;
      expect(t.requests).toBe(9);
      // The whole machine, in kWh: the meter's joules over 3.6e6.
      expect(t.machineEnergyKwh * 3.6e6).toBeCloseTo(measured.totalJoules, 6);
      expect(t.energyKwh * 3.6e6).toBeCloseTo(measured.attributedJoules, 6);
      expect(t.idle.idleEnergyKwh * 3.6e6).toBeCloseTo(measured.idleJoules, 6);
      expect((t.cpuEnergyKwh + t.idle.cpuIdleEnergyKwh) * 3.6e6).toBeCloseTo(measured.byComponent.cpu!.totalJoules - measured.byComponent.cpu!.unattributedJoules, 6);
      // Emissions at 200 g/kWh, requests and idle alike.
      expect(t.machineEmissionsKgco2eq).toBeCloseTo(t.machineEnergyKwh * 0.2, 12);
      // The groups add up to the totals.
      expect(report.rows.reduce((s, r) => s + r.requests, 0)).toBe(9);
      expect(report.rows.reduce((s, r) => s + r.energyKwh, 0)).toBeCloseTo(t.energyKwh, 15);
      expect(report.idle.reduce((s, r) => s + r.idleEnergyKwh, 0)).toBeCloseTo(t.idle.idleEnergyKwh, 15);
    }
    // The day, by instance: one row, named as given.
    const byInstance = await reportFromLedger(ledger, parseReportQuery({ from: day, by: 'instance' }), { instance: 'box-1' });
    expect(byInstance.rows.map((r) => r.group.instance)).toEqual(['box-1']);
    expect(byInstance.idle.map((r) => r.group.instance)).toEqual(['box-1']);

    // The CSV's requests column sums to the totals; the table ends with the machine's line.
    const report = await reportFromLedger(ledger, parseReportQuery({ from, to, by: 'model' }), { instance: 'box-1' });
    const [header, ...lines] = reportCsv(report).trimEnd().split('\n');
    const columns = header!.split(',');
    const requests = lines.filter((l) => l.startsWith('requests,')).map((l) => Number(l.split(',')[columns.indexOf('requests')]));
    expect(requests.reduce((a, b) => a + b, 0)).toBe(9);
    expect(reportTable(report)).toMatch(/machine \(requests \+ idle \+ unattributed\): /);
  }, 30_000);

  it('/carbon/stats?from=…&by=…&top=N: the N groups with the most emissions, how many more, and the whole totals', async () => {
    const upstream = await startFixtureServer(() => ({ content: 'ok' }));
    const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-period-'));
    dirs.push(dir);
    const meter = createEnergyMeter({ sources: [{ name: 'flat', measured: true, read: () => ({ cpuJoules: performance.now() / 10 }) }], sampleIntervalMs: 0, onWarning: false });
    const proxy = createCarbonProxy({ upstream: upstream.baseURL.replace(/\/v1$/, ''), meter, ledger: join(dir, 'l.csv'), onWarning: () => {} });
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    const url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    try {
      for (let i = 0; i < 7; i++) {
        await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', user: `u${i % 5}`, messages: [] }) }).then((r) => r.text());
      }
      const day = new Date().toISOString().slice(0, 10);
      const all = (await (await fetch(`${url}/carbon/stats?from=${day}&by=user`)).json()) as Report;
      const top = (await (await fetch(`${url}/carbon/stats?from=${day}&by=user&top=2`)).json()) as Report;
      expect(all.rows).toHaveLength(5);
      expect(top.rows).toEqual(all.rows.slice(0, 2));
      expect(top.rowsOmitted).toBe(3);
      expect(top.totals).toEqual(all.totals);
      expect(all.rowsOmitted).toBeUndefined();
    } finally {
      await proxy.close();
      await meter.close();
      await upstream.close();
    }
  });

  it('a period outside the rows is empty, not an error; bad bounds and groups are refused by name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-period-'));
    dirs.push(dir);
    const { openLedger } = await import('../../src/server/books/ledger');
    const ledger = openLedger({ path: join(dir, 'l.csv') });
    ledger.append({ at: '2026-11-05T10:00:00.000Z', model: 'm', status: 200, streamed: false, energy: { joules: { gpu: 3600 }, totalJoules: 3600, durationSeconds: 1, measured: false, warnings: [] }, grid: { gCo2PerKwh: 500, source: 'given' }, usage: {} });
    ledger.close();
    const empty = await reportFromLedger(join(dir, 'l.csv'), parseReportQuery({ from: '2026-10-01', to: '2026-11-01' }));
    expect(empty.totals.requests).toBe(0);
    expect(empty.rows).toEqual([]);
    const november = await reportFromLedger(join(dir, 'l.csv'), parseReportQuery({ from: '2026-11-01', to: '2026-12-01', by: 'day' }));
    expect(november.rows).toHaveLength(1);
    expect(november.rows[0]!.group.day).toBe('2026-11-05');
    // 3600 J = 1 Wh, estimated (not measured), at 500 g/kWh: 0.5 g.
    expect(november.totals.estimatedEnergyKwh).toBeCloseTo(0.001, 15);
    expect(november.totals.measuredEnergyKwh).toBe(0);
    expect(november.totals.emissionsKgco2eq).toBeCloseTo(0.0005, 15);
    // From is included, to is not.
    const atTo = await reportFromLedger(join(dir, 'l.csv'), parseReportQuery({ from: '2026-11-04', to: '2026-11-05T10:00:00Z' }));
    expect(atTo.totals.requests).toBe(0);
    const atFrom = await reportFromLedger(join(dir, 'l.csv'), parseReportQuery({ from: '2026-11-05T10:00:00Z', to: '2026-11-06' }));
    expect(atFrom.totals.requests).toBe(1);

    for (const [query, message] of [
      [{ from: 'yesterday' }, /from: "yesterday" is not a date/],
      [{ from: '2026-02-30' }, /not a date/],
      [{ from: '2026-11-01T08:00:00' }, /with its zone/],
      [{ from: '2026-11-02', to: '2026-11-01' }, /is not after from/],
      [{ from: '2026-11-01', by: 'model,__proto__' }, /by: "__proto__" is not one of/],
      [{ from: '' }, /needs its start/],
    ] as const) {
      expect(() => parseReportQuery(query)).toThrow(message);
    }
  });
});
