/**
 * The energy sources against stand-ins the tests build, since this machine has no readable RAPL
 * and no GPU: powercap trees written to a temp dir (a counter the kernel refuses stood in for by
 * node:fs answering EACCES), a stub NVML library compiled with the system's C compiler and loaded
 * through koffi, and a stub nvidia-smi executable.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, type PathOrFileDescriptor } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { requireSystemTool } from '../setup/system-tools';
import { autoSources, cpuTdpWatts, estimateSource, nvmlSource, raplSource, ramPowerWatts, RaplUnavailableError } from '../../src/server/index';

// Counter files every read of which fails with EACCES, as the kernel answers a user it does not let
// read RAPL (CVE-2020-8694). No chmod can build that for whoever runs the suite: a file's owner
// and root read a 0400 file all the same.
const refused = vi.hoisted(() => new Set<string>());
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readFileSync = ((path: PathOrFileDescriptor, ...rest: unknown[]) => {
    if (typeof path === 'string' && refused.has(path)) {
      throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES', errno: -13, syscall: 'open', path });
    }
    return (fs.readFileSync as (...args: unknown[]) => unknown)(path, ...rest);
  }) as typeof fs.readFileSync;
  return { ...fs, readFileSync, default: { ...fs, readFileSync } };
});

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'carbon-trace-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Writes a powercap domain: name, energy_uj, max_energy_range_uj. */
function domain(root: string, entry: string, name: string, uj: number, maxUj = 262143328850) {
  mkdirSync(join(root, entry), { recursive: true });
  writeFileSync(join(root, entry, 'name'), `${name}\n`);
  writeFileSync(join(root, entry, 'energy_uj'), `${uj}\n`);
  writeFileSync(join(root, entry, 'max_energy_range_uj'), `${maxUj}\n`);
}
const setUj = (root: string, entry: string, uj: number) => writeFileSync(join(root, entry, 'energy_uj'), `${uj}\n`);

describe('raplSource (fixture powercap trees)', () => {
  it('sums the package domains, skips core/uncore/dram sub-domains, in joules', async () => {
    const root = tempDir();
    domain(root, 'intel-rapl:0', 'package-0', 1_000_000);
    domain(root, 'intel-rapl:1', 'package-1', 5_000_000);
    domain(root, 'intel-rapl:0:0', 'core', 900_000);
    domain(root, 'intel-rapl:0:2', 'dram', 300_000);
    const rapl = raplSource({ root });
    expect(rapl.domains).toEqual(['package-0', 'package-1']);
    expect(rapl.name).toBe('RAPL package-0,1');
    expect(rapl.measured).toBe(true);
    expect(await rapl.read()).toEqual({ cpuJoules: 0 });
    setUj(root, 'intel-rapl:0', 3_500_000); // +2.5 J
    setUj(root, 'intel-rapl:1', 6_000_000); // +1 J
    setUj(root, 'intel-rapl:0:0', 99_000_000); // a sub-domain: never counted
    setUj(root, 'intel-rapl:0:2', 99_000_000);
    expect((await rapl.read()).cpuJoules).toBeCloseTo(3.5, 9);
    await rapl.close();
  });

  it('corrects a counter that wrapped at max_energy_range_uj', async () => {
    const root = tempDir();
    domain(root, 'intel-rapl:0', 'package-0', 999_000, 1_000_000);
    const rapl = raplSource({ root });
    await rapl.read();
    setUj(root, 'intel-rapl:0', 500); // wrapped: 1,000 µJ to the top, then 500 µJ
    expect((await rapl.read()).cpuJoules).toBeCloseTo(0.0015, 12);
    setUj(root, 'intel-rapl:0', 2_500);
    expect((await rapl.read()).cpuJoules).toBeCloseTo(0.0035, 12);
    await rapl.close();
  });

  it('counts a top-level DRAM domain as RAM only when asked, as CodeCarbon', async () => {
    const root = tempDir();
    domain(root, 'intel-rapl:0', 'package-0', 0);
    domain(root, 'intel-rapl:1', 'dram', 0);
    expect(raplSource({ root }).domains).toEqual(['package-0']);
    const withDram = raplSource({ root, includeDram: true });
    await withDram.read();
    setUj(root, 'intel-rapl:1', 2_000_000);
    expect(await withDram.read()).toEqual({ cpuJoules: 0, ramJoules: 2 });
    await withDram.close();
  });

  it('reads a domain exposed through MMIO and MSR once; uses psys only without packages', () => {
    const root = tempDir();
    domain(root, 'intel-rapl:0', 'package-0', 0);
    domain(root, 'intel-rapl-mmio:0', 'package-0', 0);
    expect(raplSource({ root }).domains).toEqual(['package-0']);
    const psysOnly = tempDir();
    domain(psysOnly, 'intel-rapl:1', 'psys', 0);
    expect(raplSource({ root: psysOnly }).domains).toEqual(['psys']);
  });

  it('no tree, or no package domain: a clear error', () => {
    expect(() => raplSource({ root: join(tempDir(), 'missing') })).toThrow(RaplUnavailableError);
    const empty = tempDir();
    domain(empty, 'intel-rapl:0:0', 'core', 0);
    expect(() => raplSource({ root: empty })).toThrow(/no RAPL package domain/);
  });

  it('root-only counters (CVE-2020-8694): an error that names the fix, and auto falls back to the estimate', async () => {
    const root = tempDir();
    domain(root, 'intel-rapl:0', 'package-0', 1_000);
    const counter = join(root, 'intel-rapl:0', 'energy_uj');
    refused.add(counter);
    try {
      let error: unknown;
      try {
        raplSource({ root });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(RaplUnavailableError);
      expect((error as Error).message).toBe(
        `RAPL counters are not readable by this user (${counter}): grant read access with \`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj\` (until reboot), ` +
          'or a sysfsutils rule (`mode class/powercap/intel-rapl:0/energy_uj = 0444` in /etc/sysfs.conf), or run as root',
      );
      const auto = await autoSources({ rapl: { root }, nvml: { nvidiaSmi: '/nonexistent', library: '/nonexistent.so' }, amdSmi: { executable: '/nonexistent/amd-smi' } });
      try {
        expect(auto.description).toMatch(/^CPU: modelled, TDP \d+(\.\d+)? W × \(0\.1 \+ 0\.9·load³\) — RAPL not used: RAPL counters are not readable by this user .*chmod a\+r \/sys\/class\/powercap\/intel-rapl:\*\/energy_uj.*sysfsutils/);
        expect(auto.description).toMatch(/GPU: none found; RAM: modelled \d+(\.\d+)? W$/);
        expect(auto.sources.map((s) => s.measured)).toEqual([false]);
      } finally {
        await Promise.all(auto.sources.map((s) => s.close?.()));
      }
    } finally {
      refused.delete(counter);
    }
  });
});

describe('estimateSource (CodeCarbon\'s model)', () => {
  it('CPU: TDP × (0.1 + 0.9 × load³) of the load over the last second, sampled every 250 ms, integrated over time; RAM: constant', () => {
    vi.useFakeTimers({ now: 0 });
    try {
      // The machine's busy time: idle for 10 s, then 50 % until 13 s, then 100 %.
      const busyMs = (t: number) => 0.5 * (Math.min(t, 13_000) - Math.min(t, 10_000)) + Math.max(0, t - 13_000);
      const source = estimateSource({ cpuModel: 'Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz', ramGb: 64, architecture: 'x86', cpuTimes: () => ({ busy: busyMs(Date.now()), total: Date.now() }), clock: () => Date.now() });
      expect(source.cpuTdpWatts).toBe(150); // CodeCarbon's table
      expect(source.ramWatts).toBe(20); // 64 GB → 4 DIMMs × 5 W
      expect(source.measured).toBe(false);
      expect(source.read()).toEqual({ cpuJoules: 0, ramJoules: 0 });
      vi.advanceTimersByTime(10_000); // 10 s idle: 10% of TDP
      expect(source.read()).toEqual({ cpuJoules: 150, ramJoules: 200 });
      // The window [9.5 s, 10.5 s] is half at 50 %: load 0.25, held from 10.5 s to the next sample.
      vi.advanceTimersByTime(500);
      const at10500 = source.read().cpuJoules!;
      vi.advanceTimersByTime(250);
      expect(source.read().cpuJoules! - at10500).toBeCloseTo(150 * (0.1 + 0.9 * 0.25 ** 3) * 0.25, 9);
      // From 11 s the whole window is at 50 %: 150 × (0.1 + 0.9 × 0.125) = 31.875 W.
      vi.advanceTimersByTime(250);
      const at11 = source.read().cpuJoules!;
      vi.advanceTimersByTime(2_000);
      expect(source.read().cpuJoules! - at11).toBeCloseTo(31.875 * 2, 9);
      vi.advanceTimersByTime(1_000);
      const at14 = source.read().cpuJoules!;
      vi.advanceTimersByTime(1_000);
      expect(source.read().cpuJoules! - at14).toBeCloseTo(150, 9);
      source.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('looks CPUs up as CodeCarbon does, and falls back to 4 W per thread', () => {
    expect(cpuTdpWatts('AMD EPYC 7763')).toBe(280);
    expect(cpuTdpWatts('amd epyc 7763')).toBe(280);
    expect(cpuTdpWatts('Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz')).toBe(150);
    expect(cpuTdpWatts('AMD EPYC')).toBeUndefined(); // matches many rows equally: no guess
    expect(cpuTdpWatts('Quantum Flux 9000')).toBeUndefined();
    expect(estimateSource({ cpuModel: 'Quantum Flux 9000', threads: 16 }).cpuTdpWatts).toBe(64);
    expect(estimateSource({ tdpWatts: 95 }).cpuTdpWatts).toBe(95);
  });

  it('RAM: CodeCarbon v3\'s DIMM rule, with its minimums', () => {
    expect(ramPowerWatts(1, 'x86')).toBe(10); // 1 DIMM, at least 2 × 5 W
    expect(ramPowerWatts(16, 'x86')).toBe(10); // 2 × 5 W
    expect(ramPowerWatts(32, 'x86')).toBe(20); // 4 × 5 W
    expect(ramPowerWatts(128, 'x86')).toBe(5 * 4 + 5 * 0.9 * 4); // 8 DIMMs
    expect(ramPowerWatts(512, 'x86')).toBe(5 * 4 + 5 * 0.9 * 4); // the largest size ≤ 512/8 is 64 GB: 8 DIMMs
    expect(ramPowerWatts(2048, 'x86')).toBe(5 * 4 + 5 * 0.9 * 4 + 5 * 0.8 * 8); // 16 × 128 GB
    expect(ramPowerWatts(8192, 'x86')).toBe(5 * 4 + 5 * 0.9 * 4 + 5 * 0.8 * 8 + 5 * 0.7 * 16); // capped at 32 DIMMs
    expect(ramPowerWatts(4, 'arm')).toBe(3); // 2 × 1.5 W, the ARM minimum
  });
});

/** A stub NVML: GPUs whose energy counters advance by a fixed step on every read. */
// The NVML stand-in is a small C library the tests compile: without a C compiler they do not run, and say so.
const CC = requireSystemTool(import.meta.filename, { name: 'a C compiler', candidates: ['/usr/bin/cc', '/usr/bin/gcc', '/usr/local/bin/cc'], install: 'sudo apt-get install -y gcc' });
const itWithCc = CC ? it : it.skip;

function buildStubNvml(dir: string, gpus: number, stepMj: number, supported = true): string {
  const c = `
    #include <stdint.h>
    static unsigned long long energy[8];
    int nvmlInit_v2(void) { return 0; }
    int nvmlShutdown(void) { return 0; }
    int nvmlDeviceGetCount_v2(unsigned int *count) { *count = ${gpus}; return 0; }
    int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device) { *device = (void *)(uintptr_t)(index + 1); return 0; }
    int nvmlDeviceGetTotalEnergyConsumption(void *device, unsigned long long *out) {
      if (!${supported ? 1 : 0}) return 3;
      unsigned int i = (unsigned int)(uintptr_t)device - 1;
      energy[i] += ${stepMj} * (i + 1);
      *out = 1000000000ULL + energy[i];
      return 0;
    }`;
  writeFileSync(join(dir, 'nvml.c'), c);
  const lib = join(dir, 'libnvidia-ml-stub.so');
  execFileSync(CC!, ['-shared', '-fPIC', '-o', lib, join(dir, 'nvml.c')]);
  return lib;
}

describe('nvmlSource (stand-ins)', () => {
  itWithCc('reads NVML\'s total-energy counter of every GPU through koffi, in joules since it opened', async () => {
    const lib = buildStubNvml(tempDir(), 2, 500);
    const nvml = nvmlSource({ library: lib, mode: 'nvml' });
    expect(await nvml.backend()).toBe('NVML energy counter, 2 GPUs');
    // Each read advances GPU 0 by 0.5 J and GPU 1 by 1 J.
    expect((await nvml.read()).gpuJoules).toBeCloseTo(1.5, 9);
    expect((await nvml.read()).gpuJoules).toBeCloseTo(3, 9);
    await nvml.close?.();
  });

  itWithCc('falls back to nvidia-smi when the counter is not supported (before Volta)', async () => {
    const dir = tempDir();
    const lib = buildStubNvml(dir, 1, 1, false);
    const smi = join(dir, 'nvidia-smi');
    // Two GPUs at a constant 100 W and 50 W, as nvidia-smi -lms prints them.
    writeFileSync(smi, '#!/bin/sh\nwhile true; do echo "0, 100.00"; echo "1, 50.00"; sleep 0.05; done\n');
    chmodSync(smi, 0o755);
    const gpu = nvmlSource({ library: lib, nvidiaSmi: smi, sampleIntervalMs: 50 });
    expect(await gpu.backend()).toMatch(/^nvidia-smi power\.draw every 50 ms, [12] GPUs?$/);
    const first = (await gpu.read()).gpuJoules!;
    await new Promise((resolve) => setTimeout(resolve, 400));
    const watts = ((await gpu.read()).gpuJoules! - first) / 0.4;
    await gpu.close?.();
    // 150 W in all, integrated from the lines nvidia-smi printed.
    expect(watts).toBeGreaterThan(150 * 0.7);
    expect(watts).toBeLessThan(150 * 1.3);
  });

  it('no NVML and no nvidia-smi: a read error that says both, and auto reports no GPU', async () => {
    const gpu = nvmlSource({ library: '/nonexistent/libnvidia-ml.so.1', nvidiaSmi: '/nonexistent/nvidia-smi' });
    await expect(gpu.read()).rejects.toThrow(/no NVIDIA GPU energy: NVML: .*nvidia-smi: .*ENOENT/);
    const auto = await autoSources({ rapl: { root: join(tempDir(), 'none') }, nvml: { library: '/nonexistent.so', nvidiaSmi: '/nonexistent' } });
    expect(auto.description).toMatch(/GPU: none found/);
    expect(auto.sources.map((s) => s.measured)).toEqual([false]);
  });

  itWithCc('auto picks RAPL and NVML where readable, the estimate for RAM', async () => {
    const root = tempDir();
    domain(root, 'intel-rapl:0', 'package-0', 0);
    const lib = buildStubNvml(tempDir(), 1, 100);
    const auto = await autoSources({ rapl: { root }, nvml: { library: lib } });
    expect(auto.description).toMatch(/^CPU: RAPL package-0 \(measured\); GPU: NVML energy counter, 1 GPU \(measured\); RAM: modelled \d+(\.\d+)? W$/);
    expect(auto.sources.map((s) => s.measured)).toEqual([true, true, false]);
    await Promise.all(auto.sources.map((s) => s.close?.()));
  });
});
