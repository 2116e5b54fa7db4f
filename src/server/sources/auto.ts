import type { EnergySource } from '../types';
import { estimateSource, type EstimateSourceOptions } from './estimate';
import { nvmlSource, type NvmlSourceOptions } from './nvml';
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
   * `'auto'` (default): RAPL for the CPU and NVML for GPUs where readable, CodeCarbon's estimate
   * for what is left. `'rapl'` / `'nvml'`: that counter is required (an error when unreadable),
   * the rest as in auto. `'estimate'`: CodeCarbon's estimate only.
   */
  mode?: 'auto' | 'rapl' | 'nvml' | 'estimate';
  rapl?: RaplSourceOptions;
  nvml?: NvmlSourceOptions;
  estimate?: Omit<EstimateSourceOptions, 'components'>;
};

/**
 * Picks the sources for this machine and says what it picked, per component:
 * `"CPU: RAPL package-0,1 (measured); GPU: none; RAM: modelled 10 W (…)"`, with the fix when RAPL
 * is there but unreadable.
 *
 * @example
 * ```ts
 * const { sources, description } = await autoSources();
 * ```
 */
export async function autoSources(options: AutoSourceOptions = {}): Promise<{ sources: EnergySource[]; description: string }> {
  const mode = options.mode ?? 'auto';
  const sources: EnergySource[] = [];
  const parts: string[] = [];
  const estimated: Array<'cpu' | 'ram'> = [];
  let cpuNote = '';

  if (mode !== 'estimate') {
    try {
      const rapl = raplSource(options.rapl);
      sources.push(rapl);
      parts.push(`CPU: ${rapl.name} (measured)`);
    } catch (error) {
      if (mode === 'rapl') throw error;
      estimated.push('cpu');
      cpuNote = ` — RAPL not used: ${(error as Error).message}`;
    }
  } else {
    estimated.push('cpu');
  }

  let gpu = 'GPU: none';
  if (mode !== 'estimate') {
    const nvml = nvmlSource(options.nvml);
    try {
      const backend = await nvml.backend();
      sources.push(nvml);
      gpu = `GPU: ${backend} (measured)`;
    } catch (error) {
      await nvml.close?.();
      if (mode === 'nvml') throw error;
      gpu = 'GPU: none found';
    }
  }

  const ramMeasured = options.rapl?.includeDram === true && sources.some((s) => s.name.includes('dram'));
  if (!ramMeasured) estimated.push('ram');
  const estimate = estimateSource({ ...options.estimate, components: estimated });
  if (estimated.length > 0) sources.push(estimate);
  const cpuPart = estimated.includes('cpu') ? `CPU: modelled, TDP ${estimate.cpuTdpWatts} W × (0.1 + 0.9·load³)${cpuNote}` : parts[0]!;
  const ramPart = ramMeasured ? 'RAM: RAPL dram (measured)' : `RAM: modelled ${Math.round(estimate.ramWatts * 10) / 10} W`;
  return { sources, description: `${cpuPart}; ${gpu}; ${ramPart}` };
}
