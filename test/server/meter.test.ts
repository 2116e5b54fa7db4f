/**
 * The meter's books: conservation (attributed + idle = total, and the requests' energies add up
 * to attributed) as a property over random request lifetimes and token streams, fairness, and
 * faults of the sources.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEnergyMeter, splitSlice, type EnergySource, type RequestEnergy } from '../../src/server/index';

const NUM_RUNS = Number(process.env.CARBON_TRACE_FUZZ_RUNS ?? 200);

/** A source whose every read adds the next scripted increment (J) per component. */
function scriptedSource(increments: number[], measured = true) {
  let i = 0;
  const total = { cpuJoules: 0, gpuJoules: 0 };
  let read = 0;
  const source: EnergySource = {
    name: 'scripted',
    measured,
    read() {
      const step = increments[i++ % increments.length]!;
      if (read++ > 0) {
        total.cpuJoules += step;
        total.gpuJoules += 2 * step;
      }
      return { ...total };
    },
  };
  return { source, readTotal: () => total.cpuJoules + total.gpuJoules };
}

/** A clock that advances a fixed step per call: one step per reading. */
function steppingClock(stepMs = 10) {
  let now = 0;
  return () => (now += stepMs);
}

describe('splitSlice', () => {
  it('splits by tokens when every request streams, equally otherwise, and adds up', () => {
    const byTokens = splitSlice({ gpu: 100, cpu: 10 }, [{ id: 'a', tokens: 3 }, { id: 'b', tokens: 1 }]);
    expect(byTokens.get('a')).toEqual({ gpu: 75, cpu: 7.5 });
    expect(byTokens.get('b')).toEqual({ gpu: 25, cpu: 2.5 });
    const mixed = splitSlice({ gpu: 90 }, [{ id: 'a', tokens: 5 }, { id: 'b' }, { id: 'c', tokens: 0 }]);
    expect([...mixed.values()].map((s) => s.gpu)).toEqual([30, 30, 30]);
    const noTokensYet = splitSlice({ gpu: 10 }, [{ id: 'a', tokens: 0 }, { id: 'b', tokens: 0 }]);
    expect([...noTokensYet.values()].map((s) => s.gpu)).toEqual([5, 5]);
    expect(splitSlice({ gpu: 10 }, []).size).toBe(0);
  });

  it('conserves any slice among any participants', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.array(fc.option(fc.nat(1000), { nil: undefined }), { minLength: 1, maxLength: 30 }),
        (joules, tokens) => {
          const shares = splitSlice({ gpu: joules }, tokens.map((t, i) => (t === undefined ? { id: String(i) } : { id: String(i), tokens: t })));
          const sum = [...shares.values()].reduce((s, x) => s + (x.gpu ?? 0), 0);
          expect(sum).toBeCloseTo(joules, 6);
          for (const share of shares.values()) expect(share.gpu).toBeGreaterThanOrEqual(0);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('createEnergyMeter', () => {
  it('books balance over random request lifetimes, token streams and readings', async () => {
    type Op = { kind: 'begin' } | { kind: 'tokens'; who: number; n: number } | { kind: 'end'; who: number } | { kind: 'tick' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.constant({ kind: 'begin' as const }),
      fc.record({ kind: fc.constant('tokens' as const), who: fc.nat(20), n: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('end' as const), who: fc.nat(20) }),
      fc.constant({ kind: 'tick' as const }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 60 }),
        fc.array(fc.double({ min: 0, max: 500, noNaN: true }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom<'exclude' | 'share'>('exclude', 'share'),
        async (ops, increments, idle) => {
          const { source, readTotal } = scriptedSource(increments);
          const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock: steppingClock(), idle });
          const open: Array<ReturnType<typeof meter.begin>> = [];
          const done: Array<Promise<RequestEnergy>> = [];
          for (const o of ops) {
            if (o.kind === 'begin') open.push(meter.begin({ model: `m${open.length % 3}` }));
            else if (o.kind === 'tokens' && open.length > 0) open[o.who % open.length]!.tokens(o.n);
            else if (o.kind === 'end' && open.length > 0) done.push(open.splice(o.who % open.length, 1)[0]!.end());
            else if (o.kind === 'tick') await meter.sample();
          }
          for (const r of open) done.push(r.end());
          const energies = await Promise.all(done);
          await meter.close();
          const stats = meter.stats();
          const attributed = energies.reduce((sum, e) => sum + e.totalJoules!, 0);
          const tolerance = 1e-9 * Math.max(1, stats.totalJoules);
          expect(Math.abs(attributed - stats.attributedJoules)).toBeLessThanOrEqual(tolerance);
          expect(Math.abs(stats.attributedJoules + stats.idleJoules - stats.totalJoules)).toBeLessThanOrEqual(tolerance);
          expect(Math.abs(stats.totalJoules - readTotal())).toBeLessThanOrEqual(tolerance);
          expect(stats.requests).toBe(energies.length);
          for (const e of energies) {
            expect(e.totalJoules).toBeGreaterThanOrEqual(0);
            expect(e.durationSeconds).toBeGreaterThan(0); // every request spans two readings
          }
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  /** A machine drawing `watts` (CPU, and twice that on the GPU) on a clock the test moves by hand. */
  function handClock(watts = 100) {
    const time = { nowMs: 0 };
    const source: EnergySource = { name: 'hand', measured: true, read: () => ({ cpuJoules: (watts * time.nowMs) / 1000, gpuJoules: (2 * watts * time.nowMs) / 1000 }) };
    const tick = async (ms = 1000) => {
      time.nowMs += ms;
      await meter.sample();
    };
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock: () => time.nowMs });
    return { meter, tick, time };
  }

  it('gives no request energy from before it began or after it ended: that is idle', async () => {
    const { meter, tick } = handClock(100);
    await meter.sample(); // baseline
    await tick(); // 300 J idle (100 CPU + 200 GPU)
    const a = meter.begin();
    await tick(); // 300 J to a
    await tick(); // 300 J to a
    const energyA = await a.end();
    await tick(); // 300 J idle
    expect(energyA.totalJoules).toBe(600);
    expect(energyA.joules).toEqual({ cpu: 200, gpu: 400 });
    expect(meter.stats()).toMatchObject({ totalJoules: 1200, attributedJoules: 600, idleJoules: 600 });
  });

  it("idle: 'share' allocates idle in the per-model views only, never onto a trace, and the books still balance", async () => {
    const time = { nowMs: 0 };
    const source: EnergySource = { name: 'hand', measured: true, read: () => ({ cpuJoules: (300 * time.nowMs) / 1000 }) };
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock: () => time.nowMs, idle: 'share' });
    await meter.sample();
    time.nowMs = 2000;
    await meter.sample(); // 600 J with no request in flight
    const a = meter.begin({ model: 'a' });
    time.nowMs = 3000;
    const energy = await a.end(); // a's own second only
    expect(energy.totalJoules).toBe(300);
    const stats = meter.stats();
    expect(stats).toMatchObject({ totalJoules: 900, attributedJoules: 300, idleJoules: 600, idleMode: 'share' });
    expect(stats.byModel.a).toMatchObject({ joules: 300, idleShareJoules: 600 });
  });

  it('fairness: two requests fully overlapping with equal tokens get equal shares', async () => {
    const { meter, tick } = handClock(10);
    await meter.sample();
    const a = meter.begin();
    const b = meter.begin();
    for (let i = 0; i < 6; i++) {
      a.tokens(2);
      b.tokens(2);
      await tick(100 * (1 + (i % 3)));
    }
    const [ea, eb] = await Promise.all([a.end(), b.end()]);
    expect(ea!.totalJoules).toBeGreaterThan(0);
    expect(ea!.totalJoules).toBeCloseTo(eb!.totalJoules!, 9);
  });

  it('shares by tokens: the request that produced three times the tokens gets three times the energy', async () => {
    const { meter, tick } = handClock(40);
    await meter.sample();
    const a = meter.begin();
    const b = meter.begin();
    for (let i = 0; i < 4; i++) {
      a.tokens(3);
      b.tokens(1);
      await tick();
    }
    const [ea, eb] = await Promise.all([a.end(), b.end()]);
    expect(ea!.totalJoules! / eb!.totalJoules!).toBeCloseTo(3, 9);
    expect(ea!.totalJoules! + eb!.totalJoules!).toBeCloseTo(4 * 120, 9);
  });

  /** A constant-power source on a clock the test moves by hand: the meter and the source see one time. */
  function constantOnManualClock(watts: number) {
    const time = { nowMs: 0 };
    const source: EnergySource = { name: `${watts} W`, measured: true, read: () => ({ gpuJoules: (watts * time.nowMs) / 1000 }) };
    return { time, source, clock: () => time.nowMs };
  }

  it('a lone 1 s request at a constant 100 W gets 100 J', async () => {
    const { time, source, clock } = constantOnManualClock(100);
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock });
    await meter.sample();
    const request = meter.begin();
    await meter.sample(); // its first reading
    time.nowMs = 1000;
    const energy = await request.end();
    await meter.close();
    expect(energy.totalJoules).toBeCloseTo(100, 9);
    expect(energy.durationSeconds).toBeCloseTo(1, 9);
    expect(energy.measured).toBe(true);
  });

  it('a 5 ms request with no timer reading inside it is not a zero: its boundaries are readings', async () => {
    const { time, source, clock } = constantOnManualClock(100);
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock });
    await meter.sample();
    time.nowMs = 40;
    const request = meter.begin();
    await meter.sample(); // read at its begin…
    time.nowMs = 45;
    const energy = await request.end(); // …and at its end, with nothing between
    await meter.close();
    expect(energy.totalJoules).toBeCloseTo(0.5, 9);
    expect(energy.durationSeconds).toBeCloseTo(0.005, 9);
  });

  it('a source whose read throws: requests still end, with no energy figure (not a partial one) and a warning; the books still balance', async () => {
    let fail = false;
    const flaky: EnergySource = {
      name: 'flaky GPU',
      measured: true,
      read: () => {
        if (fail) throw new Error('NVML_ERROR_GPU_IS_LOST');
        return { gpuJoules: 0 };
      },
    };
    const { source } = scriptedSource([5]);
    const warnings: string[] = [];
    const meter = createEnergyMeter({ sources: [source, flaky], sampleIntervalMs: 0, clock: steppingClock(), onWarning: (w) => void warnings.push(w) });
    const request = meter.begin();
    await meter.sample();
    fail = true;
    const energy = await request.end();
    expect(energy.totalJoules).toBeUndefined();
    expect(energy.joules).toEqual({});
    expect(energy.warnings).toEqual([
      'flaky GPU could not be read: NVML_ERROR_GPU_IS_LOST',
      'no energy figure: the GPU energy of this request is not known (a source could not be read during it)',
    ]);
    expect(warnings).toEqual(['flaky GPU could not be read: NVML_ERROR_GPU_IS_LOST']);
    expect(meter.describe()).toContain('NVML_ERROR_GPU_IS_LOST');
    const stats = meter.stats();
    expect(stats).toMatchObject({ attributedJoules: 0, requestsWithoutFigure: 1 });
    expect(stats.unattributedJoules).toBe(stats.totalJoules);
  });

  it('measured only when every component with energy was measured', async () => {
    const measured = scriptedSource([5], true).source;
    const estimated: EnergySource = { ...scriptedSource([1], false).source, name: 'model', read: (() => { let t = 0; return () => ({ ramJoules: (t += 1) }); })() };
    const meter = createEnergyMeter({ sources: [measured, estimated], sampleIntervalMs: 0, clock: steppingClock() });
    const request = meter.begin();
    await meter.sample();
    const energy = await request.end();
    expect(energy.measured).toBe(false);
    expect(Object.keys(energy.joules).sort()).toEqual(['cpu', 'gpu', 'ram']);
    expect(meter.stats().byComponent).toMatchObject({ cpu: { measured: true }, ram: { measured: false, source: 'model' } });
  });

  it('books per model, under any model name', async () => {
    const { source } = scriptedSource([1]);
    const meter = createEnergyMeter({ sources: [source], sampleIntervalMs: 0, clock: steppingClock() });
    await Promise.all(['llama', '__proto__', 'llama'].map((model) => meter.begin({ model }).end()));
    const byModel = meter.stats().byModel;
    expect(Object.getPrototypeOf(byModel)).toBeNull();
    expect(byModel.llama!.requests).toBe(2);
    expect(byModel['__proto__']!.requests).toBe(1);
  });
});
