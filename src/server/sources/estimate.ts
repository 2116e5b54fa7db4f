import { readFileSync } from 'node:fs';
import { arch, cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { CPU_POWER_CSV, CPU_POWER_SOURCE } from '../data/cpu-power';
import type { EnergyReading, EnergySource } from '../types';
import { kernelFileReader } from './file-reader';

/**
 * The machine's cumulative CPU time, all CPUs together: `busy` (user, nice, system, irq, softirq,
 * steal) and `total` (busy plus idle and iowait), in any one unit (kernel ticks, ms).
 *
 * @example
 * ```ts
 * const times: CpuTimes = { busy: 1_520_400, total: 9_870_100 };
 * ```
 */
export type CpuTimes = { busy: number; total: number };

/**
 * Options of {@link estimateSource}. Everything defaults to what this machine reports.
 *
 * @example
 * ```ts
 * estimateSource({ components: ['ram'] }); // RAM only, beside a RAPL source for the CPU
 * ```
 */
export type EstimateSourceOptions = {
  /** Which components to estimate. Default `['cpu', 'ram']`. */
  components?: ReadonlyArray<'cpu' | 'ram'>;
  /** The CPU model to look up. Default: `os.cpus()[0].model`. */
  cpuModel?: string;
  /** The CPU's TDP, W, when you know it better than the table. */
  tdpWatts?: number;
  /** Logical CPUs. Default: `os.cpus().length`. */
  threads?: number;
  /** Installed memory, GB (GiB, as CodeCarbon counts). Default: `os.totalmem()`. */
  ramGb?: number;
  /** `'arm'` or `'x86'`. Default: from `os.arch()`. */
  architecture?: 'arm' | 'x86';
  /**
   * The machine's cumulative CPU times, sampled in the background every `loadSampleMs`. Default:
   * the first line of /proc/stat, read asynchronously through a handle kept open (`os.cpus()`
   * where there is no /proc/stat).
   */
  cpuTimes?: () => CpuTimes | Promise<CpuTimes>;
  /** How often the CPU times are sampled, ms. Default 250. */
  loadSampleMs?: number;
  /** The window the load is averaged over, ms. Default 1,000: the load of the last second. */
  loadWindowMs?: number;
  /** A monotonic clock in ms. Default `performance.now`. */
  clock?: () => number;
};

// CodeCarbon, codecarbon/core/cpu.py: DEFAULT_POWER_PER_CORE, W per thread of an unknown CPU.
const DEFAULT_WATTS_PER_THREAD = 4;
// CodeCarbon, codecarbon/external/ram.py: RAM_SLOT_POWER_X86, and 1.5 W per DIMM on ARM.
const WATTS_PER_DIMM_X86 = 5;
const WATTS_PER_DIMM_ARM = 1.5;

/**
 * CodeCarbon's own estimate when no counter can be read, so that the numbers agree with
 * CodeCarbon users': CPU power = TDP × (0.1 + 0.9 × load³) from the machine's CPU load, the TDP
 * looked up in CodeCarbon's CPU table (4 W per thread for a CPU it does not know); RAM power from
 * the DIMM count CodeCarbon v3 guesses from the installed memory. `measured: false`.
 *
 * The load is the machine's, averaged over a fixed window: the CPU times are sampled in the
 * background every 250 ms (`loadSampleMs`), and at each sample the load over the last 1 s
 * (`loadWindowMs`) sets the power until the next sample. The energy is that step function
 * integrated over time, so it does not depend on when or how often `read()` is called: a reader
 * every 3 ms and one every 5 s see the same mean power. `read()` is synchronous and does no I/O;
 * until the first load is known it reports 0 J, and the first load then covers the time since
 * the source started. `close()` stops the sampling.
 *
 * @example
 * ```ts
 * import { createEnergyMeter, estimateSource } from 'carbon-trace/server';
 * const meter = createEnergyMeter({ sources: [estimateSource()] });
 * ```
 */
export function estimateSource(
  options: EstimateSourceOptions = {},
): Omit<EnergySource, 'read'> & { cpuTdpWatts: number; ramWatts: number; read(): EnergyReading; currentLoad(): number | undefined; close(): void } {
  const components = new Set(options.components ?? ['cpu', 'ram']);
  const clock = options.clock ?? (() => performance.now());
  const model = options.cpuModel ?? cpus()[0]?.model ?? 'unknown CPU';
  const threads = options.threads ?? Math.max(1, cpus().length);
  const tdp = options.tdpWatts ?? cpuTdpWatts(model) ?? threads * DEFAULT_WATTS_PER_THREAD;
  const known = options.tdpWatts !== undefined ? 'given' : cpuTdpWatts(model) !== undefined ? CPU_POWER_SOURCE : `unknown CPU: ${DEFAULT_WATTS_PER_THREAD} W × ${threads} threads`;
  const ramGb = options.ramGb ?? totalmem() / 1024 ** 3;
  const architecture = options.architecture ?? (/^arm|^aarch/.test(arch()) ? 'arm' : 'x86');
  const ramWatts = ramPowerWatts(ramGb, architecture);
  const sampleMs = positive(options.loadSampleMs, 250);
  const windowMs = positive(options.loadWindowMs, 1_000);

  const startedAt = clock();
  // The CPU power is a step function: `cpuWatts` from `cpuSince` on, `cpuJoules` before.
  let cpuJoules = 0;
  let cpuSince = startedAt;
  let cpuWatts: number | undefined;
  let load: number | undefined;
  const history: Array<{ at: number; busy: number; total: number }> = [];
  let timer: NodeJS.Timeout | undefined;
  let stopTimes: (() => void) | undefined;

  const parts: string[] = [];
  if (components.has('cpu')) parts.push(`CPU modelled: TDP ${tdp} W × (0.1 + 0.9·load³), load over ${windowMs / 1000} s sampled every ${sampleMs} ms (${model}; TDP ${known})`);
  if (components.has('ram')) parts.push(`RAM modelled: ${round(ramWatts)} W (${round(ramGb)} GB, CodeCarbon v3 DIMM rule)`);

  /** A background sample of the CPU times: the windowed load sets the power from now on. */
  function sampled(times: CpuTimes, now: number): void {
    if (!Number.isFinite(times?.busy) || !Number.isFinite(times?.total) || times.total < times.busy) return;
    const last = history[history.length - 1];
    // Counters that went back (a reset, another source): start the window again.
    if (last !== undefined && (times.total < last.total || times.busy < last.busy || now < last.at)) history.length = 0;
    history.push({ at: now, busy: times.busy, total: times.total });
    // Keep one sample at or before the window's start, and everything after it.
    while (history.length > 2 && history[1]!.at <= now - windowMs) history.shift();
    const first = history[0]!;
    const ticks = times.total - first.total;
    // No tick in the window: the load is not known anew, the last one stands.
    if (ticks > 0) load = Math.min(1, Math.max(0, (times.busy - first.busy) / ticks));
    if (load === undefined) return;
    // CodeCarbon, codecarbon/external/hardware.py (_get_power_from_cpu_load, machine mode).
    const watts = tdp * (0.1 + 0.9 * load ** 3);
    // The first known power also covers the time before it, since the source started.
    cpuJoules += (cpuWatts ?? watts) * (Math.max(0, now - cpuSince) / 1000);
    cpuSince = Math.max(cpuSince, now);
    cpuWatts = watts;
  }

  if (components.has('cpu')) {
    const source = options.cpuTimes !== undefined ? { read: options.cpuTimes, close: () => {} } : machineCpuTimes();
    stopTimes = source.close;
    let busy = false;
    const tick = () => {
      if (busy) return;
      let times: CpuTimes | Promise<CpuTimes>;
      try {
        times = source.read();
      } catch {
        return;
      }
      if (typeof (times as Promise<CpuTimes>).then === 'function') {
        busy = true;
        (times as Promise<CpuTimes>).then(
          (t) => ((busy = false), timer !== undefined && sampled(t, clock())),
          () => (busy = false),
        );
      } else {
        sampled(times as CpuTimes, clock());
      }
    };
    timer = setInterval(tick, sampleMs);
    // A sampler must never be what keeps a process alive.
    timer.unref();
    tick();
  }

  return {
    name: parts.join('; '),
    measured: false,
    cpuTdpWatts: tdp,
    ramWatts,
    read(): EnergyReading {
      const now = clock();
      const reading: EnergyReading = {};
      if (components.has('cpu')) reading.cpuJoules = cpuJoules + (cpuWatts ?? 0) * (Math.max(0, now - cpuSince) / 1000);
      if (components.has('ram')) reading.ramJoules = ramWatts * (Math.max(0, now - startedAt) / 1000);
      return reading;
    },
    currentLoad: () => load,
    close() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      stopTimes?.();
      stopTimes = undefined;
    },
  };
}

function positive(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback;
}

/**
 * The TDP (W) CodeCarbon's table gives a CPU model, matched as CodeCarbon matches it: the exact
 * name (case aside), then the name without "(R)", "(TM)", "CPU" and the clock speed, then the one
 * table entry whose words all appear in it (or it in them); `undefined` when none or several do.
 *
 * @example
 * ```ts
 * cpuTdpWatts('Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz'); // 150
 * ```
 */
export function cpuTdpWatts(model: string): number | undefined {
  const table = cpuTable();
  const exact = table.byName.get(model.trim().toLowerCase());
  if (exact !== undefined) return exact;
  const cleaned = model
    .replace(/\((R|TM)\)/gi, '')
    .replace(/ CPU @ .*$/i, '')
    .replace(/ CPU\b/i, '')
    .replace(/ @\s*\d+\.\d+GHz/i, '')
    .replace(/\s+/g, ' ')
    .trim();
  const direct = table.byName.get(cleaned.toLowerCase());
  if (direct !== undefined) return direct;
  const words = tokens(cleaned);
  if (words.size === 0) return undefined;
  const matches = new Map<string, number>();
  for (const entry of table.entries) {
    if (subset(entry.words, words) || subset(words, entry.words)) {
      if (!matches.has(entry.name)) matches.set(entry.name, entry.tdp);
    }
  }
  // Non-greedy, as CodeCarbon: two equally good candidates mean no answer rather than a guess.
  return matches.size === 1 ? [...matches.values()][0] : undefined;
}

/**
 * CodeCarbon v3's RAM power (codecarbon/external/ram.py): DIMMs guessed from the memory size,
 * 5 W each on x86 (1.5 W on ARM), 0.9× / 0.8× / 0.7× for DIMMs beyond 4 / 8 / 16, at least 10 W
 * (x86) or 3 W (ARM).
 *
 * @example
 * ```ts
 * ramPowerWatts(64, 'x86'); // 20: 4 DIMMs × 5 W
 * ```
 */
export function ramPowerWatts(memoryGb: number, architecture: 'arm' | 'x86'): number {
  const dimms = dimmCount(memoryGb);
  const perDimm = architecture === 'arm' ? WATTS_PER_DIMM_ARM : WATTS_PER_DIMM_X86;
  const minimum = architecture === 'arm' ? 3 : perDimm * 2;
  let watts: number;
  if (dimms <= 4) watts = perDimm * dimms;
  else if (dimms <= 8) watts = perDimm * 4 + perDimm * 0.9 * (dimms - 4);
  else if (dimms <= 16) watts = perDimm * 4 + perDimm * 0.9 * 4 + perDimm * 0.8 * (dimms - 8);
  else watts = perDimm * 4 + perDimm * 0.9 * 4 + perDimm * 0.8 * 8 + perDimm * 0.7 * (dimms - 16);
  return Math.max(minimum, watts);
}

/** CodeCarbon v3's guess of the DIMM count from the memory size (codecarbon/external/ram.py). */
function dimmCount(gb: number): number {
  if (gb <= 2) return 1;
  if (gb <= 16) return 2;
  if (gb <= 32) return 4;
  if (gb <= 64) return 4;
  if (gb <= 128) return 8;
  for (const size of [128, 64, 32, 16, 8, 4]) {
    if (size <= gb / 8) return Math.min(Math.ceil(gb / size), 32);
  }
  return 8;
}

/**
 * The machine's cumulative CPU times: the first line of /proc/stat on Linux (a quarter of the cost
 * of `os.cpus()`, which also parses /proc/cpuinfo), read asynchronously through one handle kept
 * open; `os.cpus()` elsewhere.
 */
function machineCpuTimes(): { read(): CpuTimes | Promise<CpuTimes>; close(): void } {
  const fromOs = (): CpuTimes => {
    let busy = 0;
    let total = 0;
    for (const cpu of cpus()) {
      const { user, nice, sys, irq, idle } = cpu.times;
      busy += user + nice + sys + irq;
      total += user + nice + sys + irq + idle;
    }
    return { busy, total };
  };
  let hasProc = true;
  try {
    readFileSync('/proc/stat', 'latin1');
  } catch {
    hasProc = false;
  }
  if (!hasProc) return { read: fromOs, close: () => {} };
  const stat = kernelFileReader('/proc/stat', 512);
  return {
    read: async () => parseProcStat(await stat.read()) ?? fromOs(),
    close: () => void stat.close(),
  };
}

/** The `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal (guest is inside user). */
function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split('\n', 1)[0] ?? '';
  if (!line.startsWith('cpu ')) return undefined;
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  const total = busy + idle + iowait;
  return Number.isFinite(total) ? { busy, total } : undefined;
}

type CpuTable = { byName: Map<string, number>; entries: Array<{ name: string; tdp: number; words: Set<string> }> };
let table: CpuTable | undefined;

/** Parsed once, on first use: most processes never estimate. */
function cpuTable(): CpuTable {
  if (table) return table;
  const byName = new Map<string, number>();
  const entries: CpuTable['entries'] = [];
  for (const line of CPU_POWER_CSV.split('\n').slice(1)) {
    const [name, tdpText] = splitCsvLine(line);
    const tdp = Number(tdpText);
    if (!name || !Number.isFinite(tdp) || tdp <= 0) continue;
    // The first row of a name wins, as CodeCarbon reads `.values[0]`.
    if (!byName.has(name.toLowerCase())) byName.set(name.toLowerCase(), tdp);
    entries.push({ name, tdp, words: tokens(name) });
  }
  table = { byName, entries };
  return table;
}

function splitCsvLine(line: string): [string, string] {
  if (!line.startsWith('"')) {
    const comma = line.lastIndexOf(',');
    return [line.slice(0, comma), line.slice(comma + 1)];
  }
  const close = line.lastIndexOf('",');
  return [line.slice(1, close).replace(/""/g, '"'), line.slice(close + 2)];
}

function tokens(text: string): Set<string> {
  return new Set(text.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean));
}

function subset(small: Set<string>, large: Set<string>): boolean {
  if (small.size === 0 || small.size > large.size) return false;
  for (const word of small) if (!large.has(word)) return false;
  return true;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
