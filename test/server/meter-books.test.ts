/**
 * The meter's books under the cases that used to give wrong numbers: the running-index
 * attribution against a direct split of every slice, source outages, idle in `share` mode, no
 * source at all, 2,000 model names, and closing with requests in flight. Every clock here is moved
 * by hand: no number depends on how loaded the machine is.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extractCarbonMetrics, sumCarbonMetrics } from '../../src/index';
import { carbonTraceRecord, createEnergyMeter, splitSlice, WORLD_AVERAGE_GRID, type EnergySource, type RequestEnergy } from '../../src/server/index';

const NUM_RUNS = Number(process.env.CARBON_TRACE_FUZZ_RUNS ?? 200);

/** A machine at a constant power on a clock the test moves; `down` makes every read throw. */
function machine(watts: { cpu?: number; gpu?: number }) {
  const time = { nowMs: 0, down: false, reads: 0 };
  const source: EnergySource = {
    name: 'test counter',
    measured: true,
    read() {
      time.reads++;
      if (time.down) throw new Error('counter unreadable');
      const seconds = time.nowMs / 1000;
      return { ...(watts.cpu !== undefined ? { cpuJoules: watts.cpu * seconds } : {}), ...(watts.gpu !== undefined ? { gpuJoules: watts.gpu * seconds } : {}) };
    },
  };
  return { time, source, clock: () => time.nowMs };
}

describe('attribution by running indexes equals a direct split of every slice', () => {
  type Action = { kind: 'begin' } | { kind: 'tokens'; who: number; n: number } | { kind: 'end'; who: number };
  const action: fc.Arbitrary<Action> = fc.oneof(
    { weight: 2, arbitrary: fc.constant({ kind: 'begin' as const }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('tokens' as const), who: fc.nat(30), n: fc.integer({ min: 1, max: 4 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('end' as const), who: fc.nat(30) }) },
  );

  it('per request, to float error, and no request above the machine over its own span', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.array(action, { maxLength: 6 }), fc.double({ min: 0, max: 1000, noNaN: true })), { minLength: 1, maxLength: 40 }),
        async (steps) => {
          // A machine whose counters move only when the test moves its clock: every boundary
          // between two steps happens at one instant, and readings there see no new energy.
          let t = 0;
          let cpu = 0;
          const source: EnergySource = { name: 'scripted', measured: true, read: () => ({ cpuJoules: cpu, gpuJoules: 2 * cpu }) };
          const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock: () => t });
          await meter.sample(); // the baseline

          type Ref = { state: 'active' | 'done'; startReading: number; streaming: boolean; sliceTokens: number; cpu: number; gpu: number; machine: number; done?: Promise<RequestEnergy> };
          const refs: Ref[] = [];
          const handles: Array<ReturnType<typeof meter.begin>> = [];
          let reading = 0;
          // The reference: a slice of `joules` split directly among the requests active through it.
          const slice = (joules: number) => {
            const active = refs.map((r, id) => ({ r, id })).filter(({ r }) => r.state === 'active');
            const shares = splitSlice({ cpu: joules, gpu: 2 * joules }, active.map(({ r, id }) => (r.streaming ? { id: String(id), tokens: r.sliceTokens } : { id: String(id) })));
            for (const { r, id } of active) {
              r.cpu += shares.get(String(id))?.cpu ?? 0;
              r.gpu += shares.get(String(id))?.gpu ?? 0;
              r.machine += 3 * joules;
              r.sliceTokens = 0;
            }
            reading++;
          };
          for (const [actions, joules] of steps) {
            for (const a of actions) {
              if (a.kind === 'begin') {
                // A reading is recent (this instant): it opens the books at once.
                refs.push({ state: 'active', startReading: reading, streaming: false, sliceTokens: 0, cpu: 0, gpu: 0, machine: 0 });
                handles.push(meter.begin());
                continue;
              }
              if (refs.length === 0) continue;
              const i = a.who % refs.length;
              const ref = refs[i]!;
              if (ref.state === 'done') continue;
              if (a.kind === 'tokens') {
                handles[i]!.tokens(a.n);
                ref.streaming = true;
                ref.sliceTokens += a.n;
              } else {
                ref.done = handles[i]!.end();
                // Begun at the last reading: it must span two, so this end is read at once (no energy since).
                if (ref.startReading === reading) slice(0);
                ref.state = 'done';
              }
            }
            t += 10;
            cpu += joules;
            await meter.sample();
            slice(joules);
          }
          for (let i = 0; i < refs.length; i++) if (refs[i]!.state === 'active') refs[i]!.done = handles[i]!.end();
          const closedInSteps = refs.map((r) => r.state === 'done');
          await meter.close();
          const energies = await Promise.all(refs.map((r) => r.done!));
          let attributed = 0;
          energies.forEach((energy, i) => {
            const ref = refs[i]!;
            const scale = Math.max(1, ref.machine);
            if (closedInSteps[i]) {
              expect(Math.abs(energy.joules.cpu! - ref.cpu)).toBeLessThanOrEqual(1e-9 * scale);
              expect(Math.abs(energy.joules.gpu! - ref.gpu)).toBeLessThanOrEqual(1e-9 * scale);
              expect(energy.totalJoules!).toBeLessThanOrEqual(ref.machine + 1e-9 * scale);
            }
            attributed += energy.totalJoules!;
          });
          const stats = meter.stats();
          const tolerance = 1e-9 * Math.max(1, stats.totalJoules);
          expect(Math.abs(attributed - stats.attributedJoules)).toBeLessThanOrEqual(tolerance);
          expect(Math.abs(stats.attributedJoules + stats.inFlightJoules + stats.idleJoules + stats.unattributedJoules - stats.totalJoules)).toBeLessThanOrEqual(tolerance);
          expect(stats.inFlightJoules).toBe(0);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('one reading serves every boundary within coalesceMs; a boundary with no recent reading reads at once', async () => {
    const { time, source, clock } = machine({ cpu: 100 });
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock, coalesceMs: 1 });
    await meter.sample();
    const reads = time.reads;
    time.nowMs = 0.5;
    const requests = Array.from({ length: 50 }, () => meter.begin()); // all within 1 ms of the reading at 0
    expect(time.reads).toBe(reads);
    time.nowMs = 10; // 10 ms on: no recent reading, the first end reads, the others share it
    const energies = await Promise.all(requests.map((r) => r.end()));
    expect(time.reads).toBe(reads + 1);
    for (const e of energies) {
      expect(e.totalJoules).toBeCloseTo(1 / 50, 12); // 100 W × 10 ms, in 50 equal shares
      expect(e.durationSeconds).toBeCloseTo(0.01, 12);
    }
    await meter.close();
  });
});

describe('a source that could not be read', () => {
  it('an outage is not lumped onto the request in flight at recovery: that request gets no figure, the gap is unattributed', async () => {
    const { time, source, clock } = machine({ gpu: 300 });
    const warnings: string[] = [];
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock, onWarning: (w) => void warnings.push(w) });
    await meter.sample(); // t = 0
    time.down = true;
    for (const t of [1000, 2000, 2900]) {
      time.nowMs = t;
      await meter.sample();
    }
    const straddling = meter.begin(); // begins at 2900, while the source is down
    await meter.sample();
    time.nowMs = 3000;
    time.down = false;
    await meter.sample(); // back: 900 J since t = 0, which the meter cannot place in time
    time.nowMs = 3100;
    const energy = await straddling.end();
    expect(energy.totalJoules).toBeUndefined();
    expect(energy.measured).toBe(false);
    expect(energy.warnings.join('\n')).toMatch(/test counter could not be read/);
    expect(energy.warnings.join('\n')).toMatch(/no energy figure/);

    // A request wholly after the recovery is measured as usual.
    const after = meter.begin();
    await meter.sample(); // 3100
    time.nowMs = 3300;
    const clean = await after.end();
    expect(clean.totalJoules).toBeCloseTo(60, 9);
    expect(clean.measured).toBe(true);
    expect(clean.warnings).toEqual([]);

    const stats = meter.stats();
    expect(stats.totalJoules).toBeCloseTo(300 * 3.3, 9);
    expect(stats.unattributedJoules).toBeCloseTo(900 + 30, 9); // the gap, and the straddling request's own slice
    expect(stats.attributedJoules).toBeCloseTo(60, 9);
    expect(stats.attributedJoules + stats.idleJoules + stats.unattributedJoules + stats.inFlightJoules).toBeCloseTo(stats.totalJoules, 9);
    expect(warnings).toEqual(['test counter could not be read: counter unreadable', 'test counter can be read again after 3.0 s; the energy of that interval is booked as unattributed']);
  });

  it('with a source that always fails, or none at all, a trace says "no figure", never a measured zero', async () => {
    const broken: EnergySource = { name: 'broken', measured: true, read: () => Promise.reject(new Error('gone')) };
    for (const sources of [[broken], []]) {
      const meter = createEnergyMeter({ sources, sampleIntervalMs: 0, onWarning: false });
      const request = meter.begin();
      await meter.sample();
      const energy = await request.end();
      await meter.close();
      expect(energy.totalJoules).toBeUndefined();
      expect(energy.warnings.some((w) => w.startsWith('no energy figure'))).toBe(true);
      const record = carbonTraceRecord(energy, WORLD_AVERAGE_GRID, { completion_tokens: 3 });
      expect(record).not.toHaveProperty('energy_consumed_wh');
      expect(record).not.toHaveProperty('emissions_g_co2');
      expect(record).not.toHaveProperty('measured');
      // The package's own reader books it as a call without a figure, not as a measured zero.
      const metrics = extractCarbonMetrics({ x_carbon_trace: record });
      expect(metrics?.energyKwh).toBeUndefined();
      expect(metrics?.gwpKgco2eq).toBeUndefined();
      expect(sumCarbonMetrics([metrics]).measuredCalls).toBe(0);
    }
  });

  it('a read that never settles counts as not read: the request still ends', async () => {
    const hanging: EnergySource = { name: 'hanging', measured: true, read: () => new Promise(() => {}) };
    const meter = createEnergyMeter({ sources: [hanging], sampleIntervalMs: 0, readTimeoutMs: 20, onWarning: false });
    const request = meter.begin();
    const energy = await request.end();
    expect(energy.totalJoules).toBeUndefined();
    await meter.close();
  });
});

describe("idle: 'share'", () => {
  it('spreads idle over the views, never onto one request: no trace above the machine\'s power', async () => {
    const { time, source, clock } = machine({ cpu: 100 });
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock, idle: 'share' });
    await meter.sample();
    time.nowMs = 3000;
    await meter.sample(); // 300 J idle
    const a = meter.begin({ model: 'a' });
    await meter.sample(); // a begins at 3000
    time.nowMs = 3010;
    const b = meter.begin({ model: 'b' });
    await meter.sample(); // b begins at 3010
    time.nowMs = 3060;
    const [ea, eb] = await Promise.all([a.end(), b.end()]);
    // a: 10 ms alone (1 J) + 50 ms shared with b (2.5 J); b: 2.5 J.
    expect(ea.totalJoules).toBeCloseTo(3.5, 9);
    expect(eb.totalJoules).toBeCloseTo(2.5, 9);
    for (const e of [ea, eb]) expect(e.totalJoules! / e.durationSeconds).toBeLessThanOrEqual(100 + 1e-9);
    const stats = meter.stats();
    expect(stats.idleJoules).toBeCloseTo(300, 9);
    const shares = Object.values(stats.byModel).map((row) => row.idleShareJoules!);
    expect(shares.reduce((x, y) => x + y, 0)).toBeCloseTo(300, 9);
    expect(stats.byModel.a!.idleShareJoules! / stats.byModel.b!.idleShareJoules!).toBeCloseTo(3.5 / 2.5, 9);
  });
});

describe('per-model books', () => {
  it('2,000 junk names do not crowd out a model in real use; the rows always add up; names are bounded', async () => {
    const { time, source, clock } = machine({ cpu: 50 });
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock, maxModels: 100 });
    await meter.sample();
    const ends: Array<Promise<RequestEnergy>> = [];
    for (let i = 0; i < 2000; i++) {
      const junk = meter.begin({ model: i === 7 ? 'x'.repeat(200_000) : `junk-${i}` });
      const real = i % 50 === 0 ? meter.begin({ model: 'llama-real' }) : undefined;
      await meter.sample();
      time.nowMs += 10;
      ends.push(junk.end());
      if (real) ends.push(real.end());
    }
    await Promise.all(ends);
    const stats = meter.stats();
    const rows = Object.entries(stats.byModel);
    expect(rows.length).toBeLessThanOrEqual(101);
    expect(stats.byModel['llama-real']?.requests).toBe(40);
    expect(stats.byModel['(other)']!.requests).toBeGreaterThan(1800);
    expect(rows.reduce((s, [, r]) => s + r.joules, 0)).toBeCloseTo(stats.attributedJoules, 6);
    expect(rows.reduce((s, [, r]) => s + r.requests, 0)).toBe(2040);
    for (const [name] of rows) expect(name.length).toBeLessThanOrEqual(200);
  });
});

describe('close()', () => {
  it('closes the books of requests still in flight and returns, without spinning', async () => {
    const { source } = machine({ cpu: 10 });
    let reads = 0;
    const counted: EnergySource = { ...source, read: () => (reads++, source.read()) };
    const meter = createEnergyMeter({ sources: [counted], sampleIntervalMs: 5 });
    await meter.sample();
    const open = meter.begin();
    const notYet = meter.begin();
    const before = reads;
    await meter.close();
    expect(reads - before).toBeLessThanOrEqual(3);
    const [a, b] = await Promise.all([open.end(), notYet.end()]);
    expect(a.durationSeconds).toBeGreaterThanOrEqual(0);
    expect(b.durationSeconds).toBeGreaterThanOrEqual(0);
    expect(meter.stats().activeRequests).toBe(0);
    // A request begun after close gets no figure, at once.
    expect((await meter.begin().end()).totalJoules).toBeUndefined();
  });
});
