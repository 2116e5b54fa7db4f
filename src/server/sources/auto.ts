import type { EnergySource } from '../types';
import { amdSmiSource, type AmdSmiSourceOptions } from './amd-smi';
import { estimateSource, type EstimateSourceOptions } from './estimate';
import { nvmlSource, type NvmlSourceOptions } from './nvml';
import { powermetricsSource, type PowermetricsSourceOptions } from './powermetrics';
import { raplSource, type RaplSourceOptions } from './rapl';

/**
 * How `createEnergyMeter({ sources: 'auto' })` chooses its sources.
 *
 * @example
 * ```ts
 * createEnergyMeter({ auto: { mode: 'rapl', rapl: { root: '/host/sys/class/powercap' } } });
 * ```
 */
export type AutoSourceOptions = {
  /**
   * `'auto'` (default): on macOS, powermetrics for the CPU and GPU where it can run; elsewhere RAPL
   * for the CPU, and NVML (or nvidia-smi) for GPUs, else amd-smi, where readable; CodeCarbon's
   * estimate for what is left. `'rapl'` / `'nvml'` / `'amd-smi'` / `'powermetrics'`: that source
   * is required (an error when it cannot be read), the rest as in auto. `'estimate'`:
   * CodeCarbon's estimate only.
   */
  mode?: 'auto' | 'rapl' | 'nvml' | 'amd-smi' | 'powermetrics' | 'estimate';
  rapl?: RaplSourceOptions;
  nvml?: NvmlSourceOptions;
  amdSmi?: AmdSmiSourceOptions;
  powermetrics?: PowermetricsSourceOptions;
  estimate?: Omit<EstimateSourceOptions, 'components'>;
  /** The platform to choose for. Default `process.platform` (`'darwin'` tries powermetrics). */
  platform?: NodeJS.Platform;
};

/**
 * Picks the sources for this machine and says what it picked, per component:
 * `"CPU: RAPL package-0,1 (measured); GPU: amd-smi energy counter, 8 GPUs, every 1 s (measured); RAM: modelled 10 W (…)"`,
 * with the fix when a source is there but unreadable. Every tool it tried and does not use is
 * stopped.
 *
 * @example
 * ```ts
 * const { sources, description } = await autoSources();
 * ```
 */
export async function autoSources(options: AutoSourceOptions = {}): Promise<{ sources: EnergySource[]; description: string }> {
  const mode = options.mode ?? 'auto';
  const platform = options.platform ?? process.platform;
  const sources: EnergySource[] = [];
  const estimated: Array<'cpu' | 'ram'> = [];
  let cpuPart: string | undefined;
  let gpu = 'GPU: none';
  const notes: string[] = [];

  // Apple silicon: one tool measures both the CPU and the GPU.
  let macDone = false;
  if (mode === 'powermetrics' || (mode === 'auto' && platform === 'darwin')) {
    const mac = powermetricsSource(options.powermetrics);
    try {
      const what = await mac.start();
      sources.push(mac);
      cpuPart = `CPU: ${what} (measured)`;
      gpu = `GPU: ${what} (measured)`;
      macDone = true;
    } catch (error) {
      await mac.close();
      if (mode === 'powermetrics') throw error;
      notes.push(`powermetrics not used: ${(error as Error).message}`);
    }
  }

  if (!macDone && mode !== 'estimate') {
    try {
      const rapl = raplSource(options.rapl);
      sources.push(rapl);
      cpuPart = `CPU: ${rapl.name} (measured)`;
    } catch (error) {
      if (mode === 'rapl') throw error;
      // On a Mac RAPL is never there: no need to say so.
      if (platform !== 'darwin') notes.unshift(`RAPL not used: ${(error as Error).message}`);
    }
  }
  if (cpuPart === undefined) estimated.push('cpu');

  if (!macDone && mode !== 'estimate') {
    gpu = 'GPU: none found';
    let found = false;
    if (mode !== 'amd-smi') {
      const nvml = nvmlSource(options.nvml);
      try {
        const backend = await nvml.backend();
        sources.push(nvml);
        gpu = `GPU: ${backend} (measured)`;
        found = true;
      } catch (error) {
        await nvml.close();
        if (mode === 'nvml') throw error;
      }
    }
    // AMD where no NVIDIA tool answers.
    if (!found && mode !== 'nvml') {
      const amd = amdSmiSource(options.amdSmi);
      try {
        gpu = `GPU: ${await amd.start()} (measured)`;
        sources.push(amd);
      } catch (error) {
        await amd.close();
        if (mode === 'amd-smi') throw error;
      }
    }
  }

  const ramMeasured = options.rapl?.includeDram === true && sources.some((s) => s.name.includes('dram'));
  if (!ramMeasured) estimated.push('ram');
  // Built only when needed: its CPU load sampler runs until it is closed.
  const estimate = estimated.length > 0 ? estimateSource({ ...options.estimate, components: estimated }) : undefined;
  if (estimate !== undefined) sources.push(estimate);
  const note = notes.length > 0 ? ` — ${notes.join('; ')}` : '';
  if (cpuPart === undefined) cpuPart = `CPU: modelled, TDP ${estimate!.cpuTdpWatts} W × (0.1 + 0.9·load³)${note}`;
  const ramPart = ramMeasured ? 'RAM: RAPL dram (measured)' : `RAM: modelled ${Math.round(estimate!.ramWatts * 10) / 10} W`;
  return { sources, description: `${cpuPart}; ${gpu}; ${ramPart}` };
}
