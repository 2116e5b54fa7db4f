import type { EnergyReading, EnergySource } from '../types';
import { superviseTool, type ToolFigure, type ToolParser, type ToolStatus, type ToolSupervisionOptions } from './supervisor';

/**
 * Options of {@link nvmlSource}. The supervision options (`staleAfterMs`, `startTimeoutMs`,
 * `restartDelayMs`, `clock`) apply to nvidia-smi.
 *
 * @example
 * ```ts
 * nvmlSource({ mode: 'nvidia-smi', sampleIntervalMs: 200 });
 * ```
 */
export type NvmlSourceOptions = ToolSupervisionOptions & {
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

type Backend = { name: string; read(): Promise<number>; close(): void | Promise<void>; status?(): ToolStatus };

let deviceTypeRegistered = false;

/**
 * GPU energy of every NVIDIA GPU: NVML's total-energy counter (mJ since the driver loaded, Volta
 * and newer), read through an FFI binding to `libnvidia-ml.so.1` — `koffi`, an optional dependency
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
export function nvmlSource(options: NvmlSourceOptions = {}): EnergySource & { backend(): Promise<string>; status(): ToolStatus; close(): Promise<void> } {
  let backend: Promise<Backend> | undefined;
  let opened: Backend | undefined;
  let failure: string | undefined;
  const since = new Date().toISOString();
  const open = () =>
    (backend ??= openBackend(options).then(
      (b) => ((opened = b), b),
      (error: unknown) => {
        failure = (error as Error).message;
        throw error;
      },
    ));
  return {
    name: 'NVML',
    measured: true,
    async backend() {
      return (await open()).name;
    },
    async read(): Promise<EnergyReading> {
      return { gpuJoules: await (await open()).read() };
    },
    status(): ToolStatus {
      if (opened?.status) return opened.status();
      if (opened) return { state: 'running', since, detail: opened.name, restarts: 0, samples: 0 };
      if (failure !== undefined) return { state: 'failed', since, detail: failure, restarts: 0, samples: 0 };
      return { state: backend ? 'starting' : 'idle', since, detail: backend ? 'NVML is starting' : 'NVML not started', restarts: 0, samples: 0 };
    },
    async close() {
      if (backend) await (await backend.catch(() => undefined))?.close();
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
    return await openNvidiaSmi(options.nvidiaSmi ?? 'nvidia-smi', Math.max(10, Math.round(options.sampleIntervalMs ?? 100)), options);
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
    throw new Error('koffi, an optional dependency of carbon-trace, is not installed (npm install --include=optional)');
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

/**
 * nvidia-smi in loop mode (`-lms`), supervised: power per GPU every interval, each figure held
 * until the next; a dying or silent nvidia-smi makes reads reject, and is restarted.
 */
async function openNvidiaSmi(executable: string, intervalMs: number, options: NvmlSourceOptions): Promise<Backend> {
  const tool = superviseTool({
    ...options,
    tool: 'nvidia-smi',
    command: executable,
    args: ['--query-gpu=index,power.draw', '--format=csv,noheader,nounits', '-lms', String(intervalMs)],
    intervalMs,
    parser: nvidiaSmiParser,
    install: 'install the NVIDIA driver (it brings nvidia-smi), or give its path (--nvidia-smi, or { nvidiaSmi })',
  });
  try {
    await tool.start();
  } catch (error) {
    await tool.close();
    throw error;
  }
  const gpus = tool.channels().length;
  return {
    name: `nvidia-smi power.draw every ${intervalMs} ms, ${gpus} GPU${gpus === 1 ? '' : 's'}`,
    read: async () => tool.read().gpuJoules ?? 0,
    status: () => tool.status(),
    close: () => tool.close(),
  };
}

/** `index, power.draw` lines (W); `[N/A]` where a GPU cannot report power. One sample per batch of lines. */
function nvidiaSmiParser(): ToolParser {
  let pending = '';
  return {
    push(text) {
      pending += text;
      const lines = pending.split('\n');
      pending = (lines.pop() ?? '').slice(-4_096);
      const figures: ToolFigure[] = [];
      for (const line of lines) {
        const [index, power] = line.split(',').map((s) => s.trim());
        const watts = Number(power);
        if (!index || power === undefined || power === '' || !Number.isFinite(watts) || watts < 0) continue;
        figures.push({ component: 'gpu', device: index, watts });
      }
      return figures.length > 0 ? [figures] : [];
    },
  };
}
