/**
 * The sources that run a command-line tool — amd-smi, powermetrics, nvidia-smi — against stub
 * executables the tests write (this machine has no GPU and is no Mac): every real output shape,
 * energy growing at a known power, a tool that is missing, refuses, dies, hangs or never speaks,
 * and autoSources choosing them. Rates are measured over spans the tests time themselves, with
 * the source on the stubs' clock (Date.now), never over a sleep assumed to last what it asked.
 */
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { amdSmiSource, autoSources, createEnergyMeter, nvmlSource, powermetricsSource, type EnergySource, type ToolEnergySource } from '../../src/server/index';
import { amdSmiFigures, amdSmiParser } from '../../src/server/sources/amd-smi';
import { powermetricsParser } from '../../src/server/sources/powermetrics';
import { alive, reapStubs, removeStubDirs, sudoOnPath, until, writeStub, type Stub, type StubOptions } from './tool-stubs';

const stubs: Stub[] = [];
const opened: Array<Pick<EnergySource, 'close'>> = [];
const stub = (name: string, options: StubOptions) => {
  const made = writeStub(name, options);
  stubs.push(made);
  return made;
};
const track = <T extends Pick<EnergySource, 'close'>>(source: T): T => {
  opened.push(source);
  return source;
};
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close?.()));
});
afterAll(() => {
  reapStubs(stubs);
  removeStubDirs();
});

const noGpu = { nvml: { library: '/nonexistent/libnvidia-ml.so', nvidiaSmi: '/nonexistent/nvidia-smi' } };
const noRapl = { rapl: { root: '/nonexistent/powercap' } };

/** Joules per second of `components` over a span of at least `samples` tool samples, on `clock`. */
async function rates(source: ToolEnergySource, components: Array<'cpu' | 'gpu'>, clock: () => number, samples = 5): Promise<Record<string, number>> {
  await until('two samples', () => (source.status().samples >= 2 ? true : undefined));
  const s1 = source.status().samples;
  const t1 = clock();
  const r1 = await source.read();
  await until(`${samples} more samples`, () => (source.status().samples >= s1 + samples ? true : undefined));
  const t2 = clock();
  const r2 = await source.read();
  const seconds = (t2 - t1) / 1000;
  return Object.fromEntries(components.map((c) => [c, (r2[`${c}Joules`]! - r1[`${c}Joules`]!) / seconds]));
}

/** Reads until one rejects; returns its error and every value read before. */
async function readUntilRejected(source: EnergySource, component: 'gpu' | 'cpu', seen: number[]): Promise<Error> {
  return until('a rejected read', async () => {
    try {
      seen.push((await source.read())[`${component}Joules`]!);
      return undefined;
    } catch (error) {
      return error as Error;
    }
  });
}

async function readUntilResolved(source: EnergySource, component: 'gpu' | 'cpu', seen: number[], above = -Infinity): Promise<number> {
  return until('a good read', async () => {
    try {
      const joules = (await source.read())[`${component}Joules`]!;
      seen.push(joules);
      return joules > above ? joules : undefined;
    } catch {
      return undefined;
    }
  });
}

const nonDecreasing = (values: number[]) => values.every((v, i) => i === 0 || v >= values[i - 1]!);

describe('amd-smi output, parsed (every shape the CLI has printed)', () => {
  const j = (value: number) => ({ value, unit: 'J' });
  const w = (value: number) => ({ value, unit: 'W' });

  it('ROCm 6.1+ arrays, 7.x {"gpu_data"}, 6.0 bare numbers, one GPU or many', () => {
    const entry = (gpu: number, joules: unknown, watts: unknown) => ({ gpu, power: { socket_power: watts, gfx_voltage: { value: 800, unit: 'mV' } }, energy: { total_energy_consumption: joules } });
    expect(amdSmiFigures([entry(0, j(10.5), w(300)), entry(1, j(20), w(250))])).toEqual([
      { component: 'gpu', device: '0', joules: 10.5, watts: 300 },
      { component: 'gpu', device: '1', joules: 20, watts: 250 },
    ]);
    expect(amdSmiFigures({ gpu_data: [entry(3, j(1), w(2))] })).toEqual([{ component: 'gpu', device: '3', joules: 1, watts: 2 }]);
    // 6.0: bare numbers, the power as current_power.
    expect(amdSmiFigures([{ gpu: 0, power: { current_power: 120 }, energy: { total_energy_consumption: 5.25 } }])).toEqual([{ component: 'gpu', device: '0', joules: 5.25, watts: 120 }]);
    // A single object, as some commands print for one GPU.
    expect(amdSmiFigures({ gpu: 0, energy: { total_energy_consumption: j(7) } })).toEqual([{ component: 'gpu', device: '0', joules: 7, watts: undefined }]);
  });

  it('"N/A" is no figure: energy N/A leaves the power; both N/A leave nothing', () => {
    expect(amdSmiFigures([{ gpu: 0, power: { socket_power: w(300) }, energy: 'N/A' }])).toEqual([{ component: 'gpu', device: '0', joules: undefined, watts: 300 }]);
    expect(amdSmiFigures([{ gpu: 0, power: { socket_power: 'N/A' }, energy: { total_energy_consumption: 'N/A' } }])).toEqual([]);
    expect(amdSmiFigures([{ gpu: 0, power: 'N/A', energy: 'N/A' }])).toEqual([]);
  });

  it('units are read, never guessed; bad values are dropped', () => {
    const one = (joules: unknown, watts: unknown) => amdSmiFigures([{ gpu: 0, power: { socket_power: watts }, energy: { total_energy_consumption: joules } }])?.[0];
    expect(one({ value: 2500, unit: 'mJ' }, { value: 300000, unit: 'mW' })).toMatchObject({ joules: 2.5, watts: 300 });
    expect(one('12.5 J', '300 W')).toMatchObject({ joules: 12.5, watts: 300 });
    expect(one({ value: 1, unit: 'MJ' }, { value: 1, unit: 'horsepower' })).toBeUndefined(); // unknown units
    for (const bad of [-5, Number.NaN, 'abc', null, '', true, { value: -1, unit: 'J' }, { value: '1e400', unit: 'J' }]) {
      expect(one(bad, bad)).toBeUndefined();
    }
    expect(amdSmiFigures({ error: 'no GPU' })).toBeUndefined();
    expect(amdSmiFigures('N/A')).toBeUndefined();
  });

  it('GPU ids from outside are only map keys: "__proto__" and "constructor" are GPUs like any other', () => {
    const figures = amdSmiFigures(JSON.parse('[{"gpu":"__proto__","energy":{"total_energy_consumption":{"value":5,"unit":"J"}},"__proto__":{"polluted":1}},{"gpu":"constructor","power":{"socket_power":{"value":9,"unit":"W"}}}]'));
    expect(figures).toEqual([
      { component: 'gpu', device: '__proto__', joules: 5, watts: undefined },
      { component: 'gpu', device: 'constructor', joules: undefined, watts: 9 },
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a watch stream (a line of prose, then one pretty-printed document per sample) parses the same however it is cut', () => {
    const doc = (joules: number) => JSON.stringify([{ timestamp: 1, gpu: 0, power: { socket_power: w(300) }, energy: { total_energy_consumption: j(joules) } }], null, 4);
    const text = `'CTRL' + 'C' to stop watching output:\n${doc(1)}\n[WARNING] a message in brackets\n${doc(2)}\n${JSON.stringify({ gpu_data: [{ gpu: 0, energy: { total_energy_consumption: j(3) } }] }, null, 4)}\n`;
    const whole = amdSmiParser().push(text);
    expect(whole.map((sample) => sample[0]!.joules)).toEqual([1, 2, 3]);
    for (let cut = 0; cut <= text.length; cut++) {
      const parser = amdSmiParser();
      expect([...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))]).toEqual(whole);
    }
  });

  it('an unbalanced bracket in a message cannot swallow the documents after it', () => {
    const text = `error [unclosed\n${JSON.stringify([{ gpu: 0, energy: { total_energy_consumption: j(4) } }], null, 4)}\n`;
    expect(amdSmiParser().push(text)).toEqual([[{ component: 'gpu', device: '0', joules: 4, watts: undefined }]]);
  });
});

describe('powermetrics output, parsed (text: the lines CodeCarbon reads)', () => {
  const sample = (elapsedMs: string, cpu: string, gpu: string, combined = true) =>
    `*** Sampled system activity (Fri Sep 11 13:41:46 2026 -0700) (${elapsedMs}ms elapsed) ***\n\n\n**** Processor usage ****\n\n` +
    `E-Cluster HW active frequency: 1248 MHz\nCPU 0 frequency: 1359 MHz\n\nCPU Power: ${cpu}\nGPU Power: ${gpu}\nANE Power: 323 mW\n` +
    (combined ? 'Combined Power (CPU + GPU + ANE): 99999 mW\n' : '') +
    `\n**** GPU usage ****\n\nGPU HW active frequency: 389 MHz\nGPU Power: 77777 mW\n\n`;

  it('energy is each sample\'s power times its own elapsed time; the first CPU and GPU Power of a sample count, in mW or W', () => {
    const text = `Machine model: Mac14,2\nOS version: 23A344\n\n${sample('1000.00', '5000 mW', '10000 mW')}${sample('500.00', '4 W', '2.5 W')}`;
    const out = powermetricsParser(1000).push(text);
    expect(out).toEqual([
      [
        { component: 'cpu', device: 'soc', joules: 5, watts: 5 },
        { component: 'gpu', device: 'soc', joules: 10, watts: 10 },
      ],
      [
        { component: 'cpu', device: 'soc', joules: 7, watts: 4 },
        { component: 'gpu', device: 'soc', joules: 11.25, watts: 2.5 },
      ],
    ]);
    for (let cut = 0; cut <= text.length; cut += 7) {
      const parser = powermetricsParser(1000);
      expect([...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))]).toEqual(out);
    }
  });

  it('a version without the Combined line completes a sample at the next header', () => {
    const parser = powermetricsParser(1000);
    expect(parser.push(sample('1000.00', '1000 mW', '2000 mW', false))).toEqual([]);
    expect(parser.push(sample('1000.00', '1000 mW', '2000 mW', false)).map((s) => s.map((f) => f.joules))).toEqual([[1, 2]]);
  });
});

describe('amdSmiSource (stub amd-smi)', () => {
  for (const shape of ['amd-6x', 'amd-7x', 'amd-6.0', 'amd-na'] as const) {
    it(`${shape}: two GPUs at 300 W each grow at 600 W ± 10 %`, async () => {
      const tool = stub('amd-smi', { shape, gpus: 2, watts: 300, periodMs: 100 });
      const gpu = track(amdSmiSource({ executable: tool.path, clock: () => Date.now() }));
      expect(gpu.name).toBe('amd-smi');
      expect(gpu.measured).toBe(true);
      expect(await gpu.start()).toBe(shape === 'amd-na' ? 'amd-smi socket power (no energy counter), 2 GPUs, every 1 s' : 'amd-smi energy counter, 2 GPUs, every 1 s');
      const { gpu: watts } = await rates(gpu, ['gpu'], () => Date.now());
      expect(watts).toBeGreaterThan(600 * 0.9);
      expect(watts).toBeLessThan(600 * 1.1);
    });
  }

  it('GPU ids "__proto__" and "constructor" are two GPUs (600 W), and nothing is polluted', async () => {
    const tool = stub('amd-smi', { shape: 'amd-6x', ids: ['__proto__', 'constructor'], watts: 300 });
    const gpu = track(amdSmiSource({ executable: tool.path, clock: () => Date.now() }));
    expect(await gpu.start()).toMatch(/, 2 GPUs,/);
    const { gpu: watts } = await rates(gpu, ['gpu'], () => Date.now());
    expect(watts).toBeGreaterThan(600 * 0.9);
    expect(watts).toBeLessThan(600 * 1.1);
    expect(({} as Record<string, unknown>).gpu).toBeUndefined();
  });

  it('a meter over it gives a request the GPUs\' 600 W over the request\'s own span (± 15 %), measured', async () => {
    for (const shape of ['amd-6x', 'amd-na'] as const) {
      const tool = stub('amd-smi', { shape, gpus: 2, watts: 300, periodMs: 100 });
      const meter = createEnergyMeter({ sources: [amdSmiSource({ executable: tool.path })], sampleIntervalMs: 50, onWarning: false });
      try {
        await meter.ready;
        await until('the meter reads the GPUs', async () => {
          await meter.sample();
          return meter.stats().byComponent.gpu !== undefined ? true : undefined;
        });
        const request = meter.begin();
        await new Promise((resolve) => setTimeout(resolve, 300));
        const energy = await request.end();
        expect(energy.measured).toBe(true);
        expect(energy.warnings).toEqual([]);
        expect(energy.joules.gpu!).toBeGreaterThan(600 * energy.durationSeconds * 0.85);
        expect(energy.joules.gpu!).toBeLessThan(600 * energy.durationSeconds * 1.15);
      } finally {
        await meter.close();
      }
    }
  });

  it('read() is current to its moment: the last power carried forward, then the next sample continues from there', async () => {
    // The source's clock is the test's: samples arrive stamped with whatever it says.
    let now = 0;
    const tool = stub('amd-smi', { shape: 'amd-na', gpus: 1, watts: 100, periodMs: 20 });
    const gpu = track(amdSmiSource({ executable: tool.path, clock: () => now, staleAfterMs: 1e9 }));
    await gpu.start();
    expect((await gpu.read()).gpuJoules).toBe(0);
    now = 2_000; // 2 s since the last sample, at 100 W
    expect((await gpu.read()).gpuJoules).toBe(200);
    const seen = gpu.status().samples;
    await until('a sample at 2 s', () => (gpu.status().samples > seen ? true : undefined));
    expect((await gpu.read()).gpuJoules).toBe(200); // the sample books what was carried: no jump
    now = 2_500;
    expect((await gpu.read()).gpuJoules).toBe(250);
  });

  it('a missing amd-smi: the first read rejects, naming it and what to install', async () => {
    const gpu = track(amdSmiSource({ executable: '/nonexistent/amd-smi' }));
    await expect(gpu.read()).rejects.toThrow(/^amd-smi not found \(\/nonexistent\/amd-smi: ENOENT\): install AMD's amd-smi \(ROCm 6 or later/);
    await expect(gpu.start()).rejects.toThrow(/not found/);
    expect(gpu.status().state).toBe('failed');
  });

  it('an amd-smi that refuses: its own words; one that never prints: a timeout; both killed', async () => {
    const refusing = stub('amd-smi', { shape: 'amd-6x', refuse: 'ERROR: amdgpu driver not loaded' });
    await expect(track(amdSmiSource({ executable: refusing.path })).start()).rejects.toThrow(/^amd-smi exited with code 1 before its first sample: ERROR: amdgpu driver not loaded$/);
    const silent = stub('amd-smi', { shape: 'amd-6x', silent: true });
    // 1.5 s: long enough that a loaded machine has started the stub (and noted its pid) by then.
    const quiet = track(amdSmiSource({ executable: silent.path, startTimeoutMs: 1_500 }));
    await expect(quiet.read()).rejects.toThrow(/^amd-smi printed no sample within 1\.5 s \(.*amd-smi metric --power --energy --json -w 1\)$/);
    await until('the silent amd-smi is gone', () => (silent.pids().length > 0 && !silent.pids().some(alive) ? true : undefined), 5_000);
  });

  it('dies after ~1 s: every later read rejects, a restart brings them back, and the total never goes back', async () => {
    const tool = stub('amd-smi', { shape: 'amd-6x', gpus: 2, watts: 300, periodMs: 50, dieAfterMs: 1_000 });
    const gpu = track(amdSmiSource({ executable: tool.path, restartDelayMs: { initial: 300 } }));
    await gpu.start();
    const seen: number[] = [];
    const error = await readUntilRejected(gpu, 'gpu', seen);
    expect(error.message).toMatch(/^amd-smi down since \d{4}-\d\d-\d\dT[\d:.]+Z \(exited with code 1: stub: GPU reset\); (restart 1 in \d+(\.\d)? s|restarted, waiting for its first sample): this interval is not measured$/);
    expect(gpu.status()).toMatchObject({ state: 'down', restarts: 1 });
    expect(gpu.status().detail).toMatch(/^amd-smi down since .* \(exited with code 1: stub: GPU reset\)/);
    // Still down a moment later: not a frozen total passed off as measured.
    await expect(gpu.read()).rejects.toThrow(/down since/);
    const back = await readUntilResolved(gpu, 'gpu', seen);
    expect(back).toBeGreaterThanOrEqual(Math.max(...seen.slice(0, -1)));
    expect(gpu.status()).toMatchObject({ state: 'running', restarts: 1 });
    await readUntilResolved(gpu, 'gpu', seen, back);
    expect(nonDecreasing(seen)).toBe(true);
    expect(tool.pids().length).toBe(2); // the first run and one restart
  });

  it('stops answering while alive: reads reject after staleAfterMs, the hung tool is killed and restarted', async () => {
    const tool = stub('amd-smi', { shape: 'amd-7x', gpus: 1, watts: 300, periodMs: 50, hangAfterMs: 600 });
    const gpu = track(amdSmiSource({ executable: tool.path, staleAfterMs: 400, restartDelayMs: { initial: 200 } }));
    await gpu.start();
    const seen: number[] = [];
    const error = await readUntilRejected(gpu, 'gpu', seen);
    expect(error.message).toMatch(/^amd-smi down since .* \(no sample for 0\.\d s\); .*: this interval is not measured$/);
    const hung = tool.pids()[0]!;
    await until('the hung amd-smi is killed', () => (!alive(hung) ? true : undefined), 3_000);
    const back = await readUntilResolved(gpu, 'gpu', seen);
    await readUntilResolved(gpu, 'gpu', seen, back);
    expect(nonDecreasing(seen)).toBe(true);
  });

  it('close() kills amd-smi and what it started, and stops restarting it', async () => {
    const tool = stub('amd-smi', { shape: 'amd-6x', grandchild: true, dieAfterMs: 400 });
    const gpu = amdSmiSource({ executable: tool.path, restartDelayMs: { initial: 5_000 } });
    await gpu.start();
    expect(tool.pids().length).toBe(2);
    await gpu.close();
    await until('amd-smi and its child are gone', () => (tool.pids().every((pid) => !alive(pid)) ? true : undefined), 3_000);
    await expect(gpu.read()).rejects.toThrow(/^amd-smi was closed$/);
    expect(gpu.status().state).toBe('closed');
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(tool.pids().length).toBe(2); // no restart after close
  });
});

describe('powermetricsSource (stub powermetrics)', () => {
  it('CPU at 5 W and GPU at 10 W grow at 5 W and 10 W ± 10 %', async () => {
    const tool = stub('powermetrics', { shape: 'powermetrics', cpuWatts: 5, gpuWatts: 10, periodMs: 100 });
    const mac = track(powermetricsSource({ executable: tool.path, sudo: false, clock: () => Date.now() }));
    expect(mac.name).toBe('powermetrics');
    expect(await mac.start()).toBe('powermetrics CPU + GPU power, every 1000 ms');
    const measured = await rates(mac, ['cpu', 'gpu'], () => Date.now());
    expect(measured.cpu).toBeGreaterThan(5 * 0.9);
    expect(measured.cpu).toBeLessThan(5 * 1.1);
    expect(measured.gpu).toBeGreaterThan(10 * 0.9);
    expect(measured.gpu).toBeLessThan(10 * 1.1);
  });

  it('without root: the error says powermetrics needs root, and what to do', async () => {
    const tool = stub('powermetrics', { shape: 'powermetrics', refuse: 'powermetrics must be invoked as the superuser' });
    await expect(track(powermetricsSource({ executable: tool.path, sudo: false })).start()).rejects.toThrow(
      /^powermetrics exited with code 1 before its first sample: powermetrics must be invoked as the superuser\. powermetrics needs root: run carbon-trace as root \(sudo\), or let this user run powermetrics without a password: `echo '.+ ALL=\(root\) NOPASSWD: .*\/powermetrics' \| sudo tee \/etc\/sudoers\.d\/powermetrics`/,
    );
  });

  // Not root: powermetrics runs as `sudo -n powermetrics …`, with the sudo found on the PATH. Each
  // case gives the source a PATH of its own, so the machine's sudo (or none, or one this user may
  // not run) plays no part.
  describe('through sudo -n', () => {
    afterEach(() => {
      vi.unstubAllEnvs();
    });

    it('sudo missing: the error says so, and to run as root', async () => {
      const tool = stub('powermetrics', { shape: 'powermetrics', cpuWatts: 1, gpuWatts: 1 });
      vi.stubEnv('PATH', sudoOnPath('none'));
      await expect(track(powermetricsSource({ executable: tool.path, sudo: true })).start()).rejects.toThrow(
        /^powermetrics not found \(sudo: ENOENT\): powermetrics runs through sudo when carbon-trace is not root, and there is no sudo this user can run: run carbon-trace as root instead$/,
      );
      expect(tool.pids()).toEqual([]);
    });

    it('a sudo this user cannot execute: the error says so, and to run as root', async () => {
      const tool = stub('powermetrics', { shape: 'powermetrics', cpuWatts: 1, gpuWatts: 1 });
      vi.stubEnv('PATH', sudoOnPath('not-executable'));
      await expect(track(powermetricsSource({ executable: tool.path, sudo: true })).start()).rejects.toThrow(
        /^powermetrics could not be run \(sudo: EACCES\): .*there is no sudo this user can run: run carbon-trace as root instead$/,
      );
      expect(tool.pids()).toEqual([]);
    });

    it('a sudo that asks for a password: the error quotes it and gives the sudoers line', async () => {
      const tool = stub('powermetrics', { shape: 'powermetrics', cpuWatts: 1, gpuWatts: 1 });
      vi.stubEnv('PATH', sudoOnPath('refuses'));
      await expect(track(powermetricsSource({ executable: tool.path, sudo: true })).start()).rejects.toThrow(
        /^powermetrics exited with code 1 before its first sample: sudo: a password is required\. powermetrics needs root: run carbon-trace as root \(sudo\), or let this user run powermetrics without a password: `echo '.+ ALL=\(root\) NOPASSWD: .*\/powermetrics' \| sudo tee \/etc\/sudoers\.d\/powermetrics`/,
      );
      expect(tool.pids()).toEqual([]);
    });

    it('a sudo that allows it: powermetrics runs through it', async () => {
      const tool = stub('powermetrics', { shape: 'powermetrics', cpuWatts: 1, gpuWatts: 1 });
      vi.stubEnv('PATH', sudoOnPath('allows'));
      expect(await track(powermetricsSource({ executable: tool.path, sudo: true })).start()).toBe('powermetrics CPU + GPU power, every 1000 ms');
      expect(tool.pids().length).toBe(1);
    });
  });

  it('a missing powermetrics: the error names it', async () => {
    await expect(track(powermetricsSource({ executable: '/nonexistent/powermetrics', sudo: false })).read()).rejects.toThrow(/^powermetrics not found \(\/nonexistent\/powermetrics: ENOENT\): powermetrics comes with macOS/);
  });
});

describe('nvidia-smi on the supervisor', () => {
  it('dies after ~1 s: later reads reject, a restart brings them back, monotonic', async () => {
    const tool = stub('nvidia-smi', { shape: 'nvidia-smi', gpus: 2, watts: 100, periodMs: 50, dieAfterMs: 1_000 });
    const gpu = track(nvmlSource({ mode: 'nvidia-smi', nvidiaSmi: tool.path, sampleIntervalMs: 50, restartDelayMs: { initial: 300 } }));
    expect(await gpu.backend()).toBe('nvidia-smi power.draw every 50 ms, 2 GPUs');
    const seen: number[] = [];
    const error = await readUntilRejected(gpu, 'gpu', seen);
    expect(error.message).toMatch(/^nvidia-smi down since .* \(exited with code 1: stub: GPU reset\); .*: this interval is not measured$/);
    expect(gpu.status().state).toBe('down');
    const back = await readUntilResolved(gpu, 'gpu', seen);
    await readUntilResolved(gpu, 'gpu', seen, back);
    expect(nonDecreasing(seen)).toBe(true);
    expect(gpu.status()).toMatchObject({ state: 'running', restarts: 1 });
  });
});

describe('autoSources with the stubs', () => {
  it('picks amd-smi for the GPU where no NVIDIA tool answers, and names it', async () => {
    const tool = stub('amd-smi', { shape: 'amd-6x', gpus: 2 });
    const auto = await autoSources({ ...noRapl, ...noGpu, amdSmi: { executable: tool.path } });
    auto.sources.forEach(track);
    expect(auto.description).toMatch(/^CPU: modelled, .*; GPU: amd-smi energy counter, 2 GPUs, every 1 s \(measured\); RAM: modelled \d+(\.\d+)? W$/);
    expect(auto.sources.map((s) => [s.name, s.measured])).toEqual([
      ['amd-smi', true],
      [expect.stringMatching(/^CPU modelled/), false],
    ]);
  });

  it('--meter amd-smi without amd-smi: an error naming it; auto without it: no GPU, and nothing left running', async () => {
    await expect(autoSources({ ...noRapl, ...noGpu, mode: 'amd-smi', amdSmi: { executable: '/nonexistent/amd-smi' } })).rejects.toThrow(/^amd-smi not found/);
    const auto = await autoSources({ ...noRapl, ...noGpu, amdSmi: { executable: '/nonexistent/amd-smi' } });
    auto.sources.forEach(track);
    expect(auto.description).toMatch(/GPU: none found/);
  });

  it('on macOS: powermetrics for the CPU and the GPU, the estimate for RAM', async () => {
    const tool = stub('powermetrics', { shape: 'powermetrics', cpuWatts: 5, gpuWatts: 10 });
    const auto = await autoSources({ ...noGpu, platform: 'darwin', powermetrics: { executable: tool.path, sudo: false }, amdSmi: { executable: '/nonexistent/amd-smi' } });
    auto.sources.forEach(track);
    expect(auto.description).toMatch(/^CPU: powermetrics CPU \+ GPU power, every 1000 ms \(measured\); GPU: powermetrics CPU \+ GPU power, every 1000 ms \(measured\); RAM: modelled \d+(\.\d+)? W$/);
    expect(auto.sources.map((s) => s.measured)).toEqual([true, false]);
  });

  it('on macOS without root: the estimate, and the description says why powermetrics was not used', async () => {
    const tool = stub('powermetrics', { shape: 'powermetrics', refuse: 'powermetrics must be invoked as the superuser' });
    const auto = await autoSources({ ...noGpu, platform: 'darwin', powermetrics: { executable: tool.path, sudo: false }, amdSmi: { executable: '/nonexistent/amd-smi' } });
    auto.sources.forEach(track);
    expect(auto.description).toMatch(/^CPU: modelled, TDP .* — powermetrics not used: powermetrics exited with code 1 .* powermetrics needs root: .*; GPU: none found; RAM: modelled/);
    // Elsewhere than macOS, auto does not try powermetrics at all.
    const linux = await autoSources({ ...noRapl, ...noGpu, platform: 'linux', powermetrics: { executable: tool.path, sudo: false }, amdSmi: { executable: '/nonexistent/amd-smi' } });
    linux.sources.forEach(track);
    expect(linux.description).not.toMatch(/powermetrics/);
    expect(tool.pids().length).toBe(1);
  });
});

describe('hygiene', () => {
  it('every stub process these tests started is gone', async () => {
    await Promise.all(opened.splice(0).map((s) => s.close?.()));
    const left = await until('stubs to exit', () => {
      const running = stubs.flatMap((s) => s.pids()).filter(alive);
      return running.length === 0 ? running : undefined;
    }, 5_000).catch(() => reapStubs(stubs));
    expect(left).toEqual([]);
  });
});
