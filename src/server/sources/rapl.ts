import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EnergyReading, EnergySource } from '../types';
import { kernelFileReader, type KernelFileReader } from './file-reader';

/**
 * Options of {@link raplSource}.
 *
 * @example
 * ```ts
 * raplSource({ root: '/sys/class/powercap', includeDram: true });
 * ```
 */
export type RaplSourceOptions = {
  /** Where the powercap tree is. Default `/sys/class/powercap`. */
  root?: string;
  /**
   * Count top-level DRAM domains as RAM energy. Default `false`, as CodeCarbon
   * (`rapl_include_dram`): RAM is then estimated. DRAM sub-domains of a package are never
   * counted, since the package already includes them on some CPUs.
   */
  includeDram?: boolean;
};

/**
 * Why RAPL cannot be used, with the fix in the message.
 *
 * @example
 * ```ts
 * try { raplSource(); } catch (error) { if (error instanceof RaplUnavailableError) console.log(error.message); }
 * ```
 */
export class RaplUnavailableError extends Error {
  override name = 'RaplUnavailableError';
}

type Domain = { name: string; path: string; component: 'cpu' | 'ram'; maxUj: number; lastUj?: number; totalUj: number; energy: KernelFileReader };

// energy_uj is at most 20 digits and a newline.
const ENERGY_UJ_BYTES = 32;

// Since CVE-2020-8694 (the PLATYPUS power side channel) the counters are root-only on most
// distributions; these are the two ways to open them to a service user.
const PERMISSION_FIX =
  'grant read access with `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot), or a sysfsutils rule ' +
  '(`mode class/powercap/intel-rapl:0/energy_uj = 0444` in /etc/sysfs.conf), or run as root';

/**
 * CPU energy from Intel and AMD (Linux ≥ 5.8) RAPL counters under `/sys/class/powercap`: the
 * `package-N` domains' `energy_uj` (µJ), wraparound corrected with `max_energy_range_uj`, as
 * CodeCarbon reads them (codecarbon/core/cpu.py, `IntelRAPL`): sub-domains (core, uncore, dram
 * under a package) are skipped so nothing is counted twice, `psys` is used only when there is no
 * package domain, and top-level DRAM domains only with `includeDram`. A domain exposed both
 * through MMIO and MSR is read once. `measured: true`.
 *
 * Reads are asynchronous and never block the event loop: each counter file stays open and is
 * read again at position 0 on libuv's thread pool (on real RAPL that read is an MSR read, possibly
 * on another CPU). A read called while one is in flight shares it. The probe at creation is
 * synchronous, once.
 *
 * Throws a {@link RaplUnavailableError} naming the fix when there is no domain, or when the
 * counters are not readable by this user.
 *
 * @example
 * ```ts
 * import { createEnergyMeter, raplSource, estimateSource } from 'carbon-trace/server';
 * const meter = createEnergyMeter({ sources: [raplSource(), estimateSource({ components: ['ram'] })] });
 * ```
 */
export function raplSource(options: RaplSourceOptions = {}): Omit<EnergySource, 'read'> & { domains: string[]; read(): Promise<EnergyReading>; close(): Promise<void> } {
  const root = options.root ?? '/sys/class/powercap';
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (error) {
    throw new RaplUnavailableError(`no RAPL powercap tree at ${root} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const found = new Map<string, { name: string; path: string; mmio: boolean }>();
  const unreadable: string[] = [];
  for (const entry of entries.sort()) {
    // Top-level domains only: intel-rapl:0, intel-rapl-mmio:0 — not intel-rapl:0:1.
    const match = /^intel-rapl(-mmio)?:\d+$/.exec(entry);
    if (!match) continue;
    const path = join(root, entry);
    const name = readText(join(path, 'name'))?.trim() ?? entry;
    try {
      readFileSync(join(path, 'energy_uj'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EACCES' || (error as NodeJS.ErrnoException).code === 'EPERM') unreadable.push(join(path, 'energy_uj'));
      continue;
    }
    const mmio = match[1] !== undefined;
    const previous = found.get(name);
    if (previous === undefined || (mmio && !previous.mmio)) found.set(name, { name, path, mmio });
  }
  const all = [...found.values()];
  const packages = all.filter((d) => /package/i.test(d.name));
  const psys = all.filter((d) => d.name.toLowerCase() === 'psys');
  const dram = all.filter((d) => /dram/i.test(d.name));
  const cpu = packages.length > 0 ? packages : psys;
  if (cpu.length === 0) {
    if (unreadable.length > 0) {
      throw new RaplUnavailableError(`RAPL counters are not readable by this user (${unreadable[0]}): ${PERMISSION_FIX}`);
    }
    throw new RaplUnavailableError(`no RAPL package domain under ${root}`);
  }
  const domains: Domain[] = [
    ...cpu.map((d) => domain(d, 'cpu')),
    ...(options.includeDram ? dram.map((d) => domain(d, 'ram')) : []),
  ];
  // The first reading must work, or the source is of no use.
  for (const d of domains) parseMicrojoules(d, readSync(d));

  const names = (component: 'cpu' | 'ram') => domains.filter((d) => d.component === component).map((d) => d.name);
  const cpuNames = names('cpu');
  let inFlight: Promise<EnergyReading> | undefined;
  const label = `RAPL ${cpuNames.length > 1 ? `${cpuNames[0]!.replace(/-\d+$/, '')}-${cpuNames.map((n) => n.replace(/^.*-/, '')).join(',')}` : cpuNames[0]}${options.includeDram && names('ram').length > 0 ? ` + ${names('ram').join(',')}` : ''}`;
  return {
    name: label,
    measured: true,
    domains: domains.map((d) => d.name),
    read(): Promise<EnergyReading> {
      // One reading at a time: concurrent calls share it, so the wrap check sees readings in order.
      inFlight ??= readAll().finally(() => (inFlight = undefined));
      return inFlight;
    },
    async close() {
      await Promise.all(domains.map((d) => d.energy.close()));
    },
  };

  async function readAll(): Promise<EnergyReading> {
    const values = await Promise.all(domains.map(readMicrojoules));
    const reading: EnergyReading = {};
    domains.forEach((d, i) => {
      const uj = values[i]!;
      if (d.lastUj !== undefined) {
        // The counter wraps at max_energy_range_uj back to 0.
        d.totalUj += uj >= d.lastUj ? uj - d.lastUj : d.maxUj - d.lastUj + uj;
      }
      d.lastUj = uj;
      const key = d.component === 'cpu' ? 'cpuJoules' : 'ramJoules';
      reading[key] = (reading[key] ?? 0) + d.totalUj / 1e6;
    });
    return reading;
  }

  function domain(d: { name: string; path: string }, component: 'cpu' | 'ram'): Domain {
    const max = Number(readText(join(d.path, 'max_energy_range_uj')));
    return { name: d.name, path: d.path, component, maxUj: Number.isFinite(max) && max > 0 ? max : 2 ** 32, totalUj: 0, energy: kernelFileReader(join(d.path, 'energy_uj'), ENERGY_UJ_BYTES) };
  }
}

async function readMicrojoules(d: Domain): Promise<number> {
  let text: string;
  try {
    text = await d.energy.read();
  } catch (error) {
    throw unreadable(d, error);
  }
  return parseMicrojoules(d, text);
}

function readSync(d: Domain): string {
  try {
    return readFileSync(join(d.path, 'energy_uj'), 'utf8');
  } catch (error) {
    throw unreadable(d, error);
  }
}

function unreadable(d: Domain, error: unknown): RaplUnavailableError {
  const code = (error as NodeJS.ErrnoException).code;
  return new RaplUnavailableError(
    code === 'EACCES' || code === 'EPERM' ? `RAPL counter ${d.name} is not readable by this user: ${PERMISSION_FIX}` : `RAPL counter ${d.name} could not be read (${code ?? String(error)})`,
  );
}

function parseMicrojoules(d: Domain, text: string): number {
  const value = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new RaplUnavailableError(`RAPL counter ${d.name} gave ${JSON.stringify(text.trim())}`);
  return value;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
