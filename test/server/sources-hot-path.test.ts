/**
 * What the meter's hot path may rely on: the CPU estimate's energy does not depend on how often it
 * is read (the load is windowed and sampled in the background, on fake timers here), its read() is
 * synchronous and does no I/O, and RAPL reads are asynchronous and shared when concurrent.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { estimateSource, raplSource, RaplUnavailableError, type CpuTimes } from '../../src/server/index';

afterEach(() => {
  vi.useRealTimers();
});

const TDP = 100;
const xeon = { tdpWatts: TDP, ramGb: 16, architecture: 'x86' as const, components: ['cpu'] as const };

/**
 * A recorded load trace: one CPU's /proc/stat ticks at USER_HZ (10 ms), 20 s of bursts — busy
 * stretches of 5–400 ms at loads from 0 to 1, as a server under uneven traffic. A fixed seed, so
 * every run replays the same trace.
 */
function recordedTrace(): { busyTicks: Int32Array; ms: number } {
  const ms = 20_000;
  const busyTicks = new Int32Array(ms / 10 + 1);
  let seed = 20_250_601;
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  let load = 0;
  let segmentEnds = 0;
  for (let tick = 1; tick < busyTicks.length; tick++) {
    if (tick * 10 >= segmentEnds) {
      load = random() < 0.3 ? 0 : random();
      segmentEnds = tick * 10 + 5 + Math.floor(random() * 395);
    }
    busyTicks[tick] = busyTicks[tick - 1]! + (random() < load ? 1 : 0);
  }
  return { busyTicks, ms };
}

/** Replays the trace (or a steady load) through fake timers, reading every `everyMs`; mean CPU W. */
function meanWatts(everyMs: number, times: (nowMs: number) => CpuTimes, durationMs: number): { watts: number; reads: number } {
  vi.useFakeTimers({ now: 0 });
  const source = estimateSource({ ...xeon, cpuTimes: () => times(Date.now()), clock: () => Date.now() });
  let reads = 0;
  let last = 0;
  for (let t = 0; t < durationMs; ) {
    const step = Math.min(everyMs, durationMs - t);
    vi.advanceTimersByTime(step);
    t += step;
    const joules = source.read().cpuJoules!;
    expect(joules).toBeGreaterThanOrEqual(last);
    last = joules;
    reads++;
  }
  source.close();
  vi.useRealTimers();
  return { watts: last / (durationMs / 1000), reads };
}

describe('estimateSource: the mean power does not depend on how often it is read', () => {
  it('one recorded trace, re-read every 5 s, 1 s, 100 ms, 9 ms and 3 ms: the same mean power', () => {
    const { busyTicks, ms } = recordedTrace();
    const times = (now: number): CpuTimes => {
      const tick = Math.min(busyTicks.length - 1, Math.floor(now / 10));
      return { busy: busyTicks[tick]!, total: tick };
    };
    const results = [5_000, 1_000, 100, 9, 3].map((every) => meanWatts(every, times, ms));
    expect(results.map((r) => r.reads)).toEqual([4, 20, 200, 2223, 6667]);
    const reference = results[0]!.watts;
    // Between idle (10 % of TDP) and full load, and not merely one of the two.
    expect(reference).toBeGreaterThan(TDP * 0.1 + 1);
    expect(reference).toBeLessThan(TDP - 1);
    for (const { watts } of results) expect(Math.abs(watts - reference)).toBeLessThanOrEqual(reference * 1e-12);
  });

  it('a steady 0.99 load at 100 W TDP is CodeCarbon\'s 100 × (0.1 + 0.9 × 0.99³) ≈ 97.33 W, read every 5 s or every 3 ms', () => {
    const expected = 100 * (0.1 + 0.9 * 0.970299); // 0.99³ = 0.970299
    for (const every of [5_000, 1_000, 100, 9, 3]) {
      const { watts } = meanWatts(every, (now) => ({ busy: 0.99 * now, total: now }), 10_000);
      expect(watts).toBeCloseTo(expected, 9);
    }
    expect(expected).toBeCloseTo(97.33, 2);
  });

  it('the load is sampled in the background every 250 ms, whatever the reads; read() is synchronous and never samples', () => {
    vi.useFakeTimers({ now: 0 });
    const calls: number[] = [];
    const source = estimateSource({ ...xeon, cpuTimes: () => (calls.push(Date.now()), { busy: Date.now() / 2, total: Date.now() }), clock: () => Date.now() });
    expect(calls).toEqual([0]); // one sample at creation
    for (let i = 0; i < 10_000; i++) expect(source.read()).not.toBeInstanceOf(Promise);
    expect(calls).toEqual([0]);
    vi.advanceTimersByTime(10_000);
    expect(calls.length).toBe(1 + 40);
    expect(calls.slice(1, 4)).toEqual([250, 500, 750]);
    expect(source.currentLoad()).toBeCloseTo(0.5, 12);
    source.close();
    vi.advanceTimersByTime(10_000);
    expect(calls.length).toBe(41); // closed: no more sampling
  });

  it('loadSampleMs and loadWindowMs set the period and the window', () => {
    vi.useFakeTimers({ now: 0 });
    // Idle until 10 s, then full load: a 2 s window reaches load 1 two seconds later.
    const busy = (t: number) => Math.max(0, t - 10_000);
    const source = estimateSource({ ...xeon, loadSampleMs: 500, loadWindowMs: 2_000, cpuTimes: () => ({ busy: busy(Date.now()), total: Date.now() }), clock: () => Date.now() });
    vi.advanceTimersByTime(11_000);
    expect(source.currentLoad()).toBeCloseTo(0.5, 12);
    vi.advanceTimersByTime(1_000);
    expect(source.currentLoad()).toBe(1);
    expect(source.name).toMatch(/load over 2 s sampled every 500 ms/);
    source.close();
  });

  it('bad CPU times (NaN, negative, going back, a throw, a rejection) never give NaN, a negative, or a step back', async () => {
    vi.useFakeTimers({ now: 0 });
    const script: Array<() => CpuTimes | Promise<CpuTimes>> = [
      () => ({ busy: 0, total: 0 }),
      () => ({ busy: 100, total: 250 }),
      () => ({ busy: Number.NaN, total: 500 }),
      () => {
        throw new Error('no /proc');
      },
      () => Promise.reject(new Error('EIO')),
      () => ({ busy: -5, total: -1 }),
      () => ({ busy: 10, total: 20 }), // went back: the window starts again
      () => ({ busy: 'x' as unknown as number, total: null as unknown as number }),
      () => ({ busy: 1e308, total: Number.POSITIVE_INFINITY }),
      () => ({ busy: 300, total: 270 }), // busy above total
    ];
    let i = 0;
    const source = estimateSource({ ...xeon, cpuTimes: () => script[Math.min(i++, script.length - 1)]!(), clock: () => Date.now() });
    let last = 0;
    for (let step = 0; step < 20; step++) {
      await vi.advanceTimersByTimeAsync(250);
      const joules = source.read().cpuJoules!;
      expect(Number.isFinite(joules)).toBe(true);
      expect(joules).toBeGreaterThanOrEqual(last);
      last = joules;
    }
    const load = source.currentLoad();
    expect(load === undefined || (load >= 0 && load <= 1)).toBe(true);
    source.close();
  });

  it('on this machine (no cpuTimes): /proc/stat read in the background gives a load and energy', async () => {
    const source = estimateSource({ ...xeon });
    try {
      const deadline = Date.now() + 5_000;
      while (source.currentLoad() === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const load = source.currentLoad();
      expect(load).toBeGreaterThanOrEqual(0);
      expect(load).toBeLessThanOrEqual(1);
      expect(source.read().cpuJoules).toBeGreaterThan(0);
    } finally {
      source.close();
    }
  });
});

describe('raplSource: reads off the event loop', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const tree = () => {
    const root = mkdtempSync(join(tmpdir(), 'carbon-trace-rapl-'));
    dirs.push(root);
    mkdirSync(join(root, 'intel-rapl:0'));
    writeFileSync(join(root, 'intel-rapl:0', 'name'), 'package-0\n');
    writeFileSync(join(root, 'intel-rapl:0', 'max_energy_range_uj'), '262143328850\n');
    writeFileSync(join(root, 'intel-rapl:0', 'energy_uj'), '1000000\n');
    return { root, set: (uj: string) => writeFileSync(join(root, 'intel-rapl:0', 'energy_uj'), uj) };
  };

  it('read() returns a promise; reads called together share one reading, so the counter is taken once', async () => {
    const { root, set } = tree();
    const rapl = raplSource({ root });
    try {
      await rapl.read();
      set('3000000\n');
      const a = rapl.read();
      const b = rapl.read();
      expect(a).toBeInstanceOf(Promise);
      expect(b).toBe(a);
      expect(await a).toEqual({ cpuJoules: 2 });
      set('4000000\n');
      expect(await rapl.read()).toEqual({ cpuJoules: 3 });
    } finally {
      await rapl.close();
    }
  });

  it('a counter that reads as garbage rejects with the reason; the next good value reads again', async () => {
    const { root, set } = tree();
    const rapl = raplSource({ root });
    try {
      await rapl.read();
      for (const bad of ['', 'abc\n', '-5\n', 'NaN\n']) {
        set(bad);
        await expect(rapl.read()).rejects.toThrow(RaplUnavailableError);
      }
      set('1500000\n');
      expect(await rapl.read()).toEqual({ cpuJoules: 0.5 });
    } finally {
      await rapl.close();
    }
  });
});
