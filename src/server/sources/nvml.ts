import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { EnergyReading, EnergySource } from '../types';

/**
 * Options of {@link nvmlSource}.
 *
 * @example
 * ```ts
 * nvmlSource({ mode: 'nvidia-smi', sampleIntervalMs: 200 });
 * ```
 */
export type NvmlSourceOptions = {
  /**
   * `'nvml'`: NVML's total-energy counter (Volta and newer) through `koffi`; `'nvidia-smi'`:
   * `nvidia-smi` in loop mode, integrating `power.draw`; `'auto'` (default): NVML, else nvidia-smi.
   */
  mode?: 'auto' | 'nvml' | 'nvidia-smi';
  /** The NVML library. Default `libnvidia-ml.so.1`. */
  library?: string;
  /** The nvidia-smi executable. Default `nvidia-smi` on the PATH. */
  nvidiaSmi?: string;
  /** How often nvidia-smi reports power, ms. Default 100. */
  sampleIntervalMs?: number;
};

// NVML return codes (nvml.h).
const NVML_SUCCESS = 0;

type Backend = { name: string; read(): Promise<number>; close(): void };

let deviceTypeRegistered = false;

/**
 * GPU energy of every NVIDIA GPU: NVML's total-energy counter (mJ since the driver loaded, Volta
 * and newer), read through an FFI binding to `libnvidia-ml.so.1` — `koffi`, an optional peer
 * loaded only when this source is used — or, where the counter is absent, `nvidia-smi` in loop
 * mode with `power.draw` integrated over time. The backend is chosen on first read; a failure
 * there surfaces as a read error the meter reports. `measured: true`.
 *
 * @example
 * ```ts
 * import { createEnergyMeter, estimateSource, nvmlSource } from 'carbon-trace/server';
 * const meter = createEnergyMeter({ sources: [nvmlSource(), estimateSource()] });
 * ```
 */
export function nvmlSource(options: NvmlSourceOptions = {}): EnergySource & { backend(): Promise<string> } {
  let backend: Promise<Backend> | undefined;
  const open = () => (backend ??= openBackend(options));
  return {
    name: 'NVML',
    measured: true,
    async backend() {
      return (await open()).name;
    },
    async read(): Promise<EnergyReading> {
      return { gpuJoules: await (await open()).read() };
    },
    async close() {
      if (backend) (await backend.catch(() => undefined))?.close();
    },
  };
}

async function openBackend(options: NvmlSourceOptions): Promise<Backend> {
  const mode = options.mode ?? 'auto';
  let nvmlError: unknown;
  if (mode !== 'nvidia-smi') {
    try {
      return await openNvml(options.library ?? 'libnvidia-ml.so.1');
    } catch (error) {
      if (mode === 'nvml') throw error;
      nvmlError = error;
    }
  }
  try {
    return await openNvidiaSmi(options.nvidiaSmi ?? 'nvidia-smi', options.sampleIntervalMs ?? 100);
  } catch (error) {
    const why = nvmlError === undefined ? '' : `NVML: ${(nvmlError as Error).message}; `;
    throw new Error(`no NVIDIA GPU energy: ${why}nvidia-smi: ${(error as Error).message}`);
  }
}

/** NVML through koffi: `nvmlDeviceGetTotalEnergyConsumption` per GPU, in mJ. */
async function openNvml(library: string): Promise<Backend> {
  type Koffi = typeof import('koffi');
  let koffi: Koffi;
  try {
    const loaded = (await import('koffi')) as unknown as Koffi & { default?: Koffi };
    koffi = loaded.default ?? loaded;
  } catch {
    throw new Error('the optional peer `koffi` is not installed (npm install koffi)');
  }
  const lib = koffi.load(library);
  // Registers the handle type the signatures below name; koffi refuses a second registration.
  if (!deviceTypeRegistered) {
    koffi.pointer('nvmlDevice_t', koffi.opaque());
    deviceTypeRegistered = true;
  }
  const init = lib.func('int nvmlInit_v2()');
  const count = lib.func('int nvmlDeviceGetCount_v2(_Out_ unsigned int *count)');
  const handleAt = lib.func('int nvmlDeviceGetHandleByIndex_v2(unsigned int index, _Out_ nvmlDevice_t *device)');
  const energy = lib.func('int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, _Out_ unsigned long long *energy)');
  const shutdown = lib.func('int nvmlShutdown()');
  check(init(), 'nvmlInit_v2');
  const n = [0];
  check(count(n), 'nvmlDeviceGetCount_v2');
  if (!(n[0]! > 0)) throw new Error('NVML sees no GPU');
  const devices: unknown[] = [];
  for (let i = 0; i < n[0]!; i++) {
    const out: unknown[] = [null];
    check(handleAt(i, out), `nvmlDeviceGetHandleByIndex_v2(${i})`);
    devices.push(out[0]);
  }
  const readMillijoules = () =>
    devices.reduce<number>((sum, d, i) => {
      const out = [0];
      check(energy(d, out), `nvmlDeviceGetTotalEnergyConsumption(${i})`);
      return sum + Number(out[0]);
    }, 0);
  const first = readMillijoules(); // throws NOT_SUPPORTED (3) on GPUs older than Volta
  return {
    name: `NVML energy counter, ${devices.length} GPU${devices.length === 1 ? '' : 's'}`,
    // Joules since this source opened, from the counter's mJ since driver load.
    read: async () => (readMillijoules() - first) / 1000,
    close: () => void shutdown(),
  };

  function check(code: unknown, call: string): void {
    if (code !== NVML_SUCCESS) throw new Error(`${call} returned ${String(code)}${code === 3 ? ' (not supported: no energy counter before Volta)' : ''}`);
  }
}

/** nvidia-smi in loop mode: power per GPU every interval, integrated (trapezoids) into joules. */
function openNvidiaSmi(executable: string, intervalMs: number): Promise<Backend> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(executable, ['--query-gpu=index,power.draw', '--format=csv,noheader,nounits', `-lms`, String(Math.max(10, Math.round(intervalMs)))], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (error) {
      reject(error);
      return;
    }
    const last = new Map<string, { at: number; watts: number }>();
    let joules = 0;
    let gpus = new Set<string>();
    let pending = '';
    let started = false;
    let stderr = '';
    const fail = (error: Error) => {
      if (!started) reject(error);
    };
    child.on('error', (error) => fail(new Error(`${executable}: ${(error as NodeJS.ErrnoException).code ?? error.message}`)));
    child.on('exit', (code) => fail(new Error(`${executable} exited with ${code}${stderr ? `: ${stderr.trim().split('\n')[0]}` : ''}`)));
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-1000)));
    child.stdout?.on('data', (data: Buffer) => {
      pending += data.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const now = performance.now();
      for (const line of lines) {
        const [index, power] = line.split(',').map((s) => s.trim());
        const watts = Number(power);
        if (!index || !Number.isFinite(watts) || watts < 0) continue; // "[N/A]" on GPUs that cannot report power
        const previous = last.get(index);
        if (previous) joules += ((previous.watts + watts) / 2) * ((now - previous.at) / 1000);
        last.set(index, { at: now, watts });
        gpus.add(index);
      }
      if (!started && gpus.size > 0) {
        started = true;
        resolve({
          name: `nvidia-smi power.draw every ${intervalMs} ms, ${gpus.size} GPU${gpus.size === 1 ? '' : 's'}`,
          read: async () => joules,
          close: () => {
            child.kill();
            gpus = new Set();
          },
        });
      }
    });
  });
}
