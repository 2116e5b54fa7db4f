import { superviseTool, toolSource, type ToolChannel, type ToolEnergySource, type ToolFigure, type ToolParser, type ToolSupervisionOptions } from './supervisor';

/**
 * Options of {@link amdSmiSource}. Its supervision defaults are wider than other tools': a hang
 * is declared after 10 s without a sample (or 5 intervals), and the first sample may take 30 s.
 *
 * @example
 * ```ts
 * amdSmiSource({ executable: '/opt/rocm/bin/amd-smi', sampleIntervalMs: 2_000 });
 * ```
 */
export type AmdSmiSourceOptions = ToolSupervisionOptions & {
  /** The amd-smi executable. Default `amd-smi` on the PATH. */
  executable?: string;
  /** How often amd-smi samples, ms. Its watch mode (`-w`) takes whole seconds: rounded up, at least 1 s. Default 1,000. */
  sampleIntervalMs?: number;
};

// amd-smi prints `{"value": 300.0, "unit": "W"}` since ROCm 6.1, a bare number in 6.0.
const JOULES: Record<string, number> = { J: 1, mJ: 1e-3, uJ: 1e-6, 'µJ': 1e-6, kJ: 1e3 };
const WATTS: Record<string, number> = { W: 1, mW: 1e-3, uW: 1e-6, 'µW': 1e-6, kW: 1e3 };

/**
 * GPU energy of every AMD GPU (Instinct, Radeon) from AMD's `amd-smi` (ROCm 6 and later), run in
 * its watch mode: `amd-smi metric --power --energy --json -w <s>`. Each GPU's energy accumulator
 * (`energy.total_energy_consumption`) is used where amd-smi gives one; where it says `"N/A"`,
 * the GPU's socket power is integrated over time. Reads every JSON shape amd-smi has printed: an
 * array of `{"gpu": N, …}` (ROCm 6.x), `{"gpu_data": […]}` (7.x), `{value, unit}` figures (6.1+)
 * or bare numbers (6.0, whose power key is `current_power`). `measured: true`.
 *
 * A read is current to its moment (the total at amd-smi's last sample plus the last power times
 * the time since). When amd-smi is missing, the first read rejects, naming it; when it exits or
 * stops printing, every read rejects until a restart brings it back. See {@link ToolStatus}.
 *
 * @example
 * ```ts
 * import { amdSmiSource, createEnergyMeter, estimateSource } from 'carbon-trace/server';
 * const meter = createEnergyMeter({ sources: [amdSmiSource(), estimateSource()] });
 * ```
 */
export function amdSmiSource(options: AmdSmiSourceOptions = {}): ToolEnergySource {
  const executable = options.executable ?? 'amd-smi';
  const seconds = Math.max(1, Math.ceil((options.sampleIntervalMs ?? 1_000) / 1000));
  const tool = superviseTool({
    // amd-smi is slow to start (Python, then the driver library) and, on a box of many GPUs, an
    // iteration can take seconds before watch mode sleeps its interval: wider margins than 3 × 1 s.
    staleAfterMs: Math.max(10_000, 5 * seconds * 1000),
    startTimeoutMs: 30_000,
    ...options,
    tool: 'amd-smi',
    command: executable,
    args: ['metric', '--power', '--energy', '--json', '-w', String(seconds)],
    // amd-smi is a Python program: without this, its samples would wait in a pipe buffer.
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    intervalMs: seconds * 1000,
    parser: amdSmiParser,
    install: `install AMD's amd-smi (ROCm 6 or later, e.g. the amd-smi-lib package), or give its path (--amd-smi, or { executable })`,
  });
  return toolSource('amd-smi', tool, () => describeChannels('amd-smi', tool.channels(), seconds * 1000));
}

function describeChannels(tool: string, channels: ToolChannel[], intervalMs: number): string {
  const gpus = channels.filter((c) => c.component === 'gpu');
  const counted = gpus.filter((c) => c.counter).length;
  const plural = (n: number) => `${n} GPU${n === 1 ? '' : 's'}`;
  const every = `every ${intervalMs / 1000} s`;
  if (counted === gpus.length) return `${tool} energy counter, ${plural(gpus.length)}, ${every}`;
  if (counted === 0) return `${tool} socket power (no energy counter), ${plural(gpus.length)}, ${every}`;
  return `${tool} energy counter (${plural(counted)}) and socket power (${plural(gpus.length - counted)}), ${every}`;
}

/**
 * Parses amd-smi's JSON output as it streams: one sample per JSON document.
 *
 * @example
 * ```ts
 * amdSmiParser().push('[{"gpu": 0, "energy": {"total_energy_consumption": {"value": 12.5, "unit": "J"}}}]\n');
 * // [[{ component: 'gpu', device: '0', joules: 12.5, watts: undefined }]]
 * ```
 */
export function amdSmiParser(): ToolParser {
  const values = jsonValues();
  return {
    push(text) {
      const samples: ToolFigure[][] = [];
      for (const value of values.push(text)) {
        const figures = amdSmiFigures(value);
        if (figures !== undefined && figures.length > 0) samples.push(figures);
      }
      return samples;
    },
  };
}

/**
 * The GPU figures of one amd-smi JSON document, or `undefined` when it is not a metric output.
 *
 * @example
 * ```ts
 * amdSmiFigures({ gpu_data: [{ gpu: 0, energy: { total_energy_consumption: { value: 12.5, unit: 'J' } } }] });
 * // [{ component: 'gpu', device: '0', joules: 12.5, watts: undefined }]
 * ```
 */
export function amdSmiFigures(value: unknown): ToolFigure[] | undefined {
  const entries = Array.isArray(value) ? value : isRecord(value) ? (Array.isArray(own(value, 'gpu_data')) ? (own(value, 'gpu_data') as unknown[]) : own(value, 'gpu') !== undefined ? [value] : undefined) : undefined;
  if (entries === undefined) return undefined;
  const figures: ToolFigure[] = [];
  entries.forEach((entry, index) => {
    if (!isRecord(entry)) return;
    const gpu = own(entry, 'gpu');
    const device = typeof gpu === 'number' || typeof gpu === 'string' ? String(gpu) : String(index);
    const energy = own(entry, 'energy');
    const joules = isRecord(energy) ? quantity(own(energy, 'total_energy_consumption'), JOULES, 'J') : undefined;
    const power = own(entry, 'power');
    let watts: number | undefined;
    if (isRecord(power)) {
      for (const key of ['socket_power', 'current_socket_power', 'current_power', 'average_socket_power']) {
        watts = quantity(own(power, key), WATTS, 'W');
        if (watts !== undefined) break;
      }
    }
    if (joules !== undefined || watts !== undefined) figures.push({ component: 'gpu', device, joules, watts });
  });
  return figures;
}

/** A figure as amd-smi prints it: a number, `"300 W"`, `{ value, unit }`, or `"N/A"` (→ undefined). */
function quantity(raw: unknown, units: Record<string, number>, unit: string): number | undefined {
  let value: unknown = raw;
  let label = unit;
  if (isRecord(raw)) {
    value = own(raw, 'value');
    const given = own(raw, 'unit');
    if (typeof given === 'string' && given.trim() !== '') label = given.trim();
  }
  if (typeof value === 'string') {
    const match = /^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Zµ]*)\s*$/.exec(value);
    if (!match) return undefined;
    if (match[2]) label = match[2];
    value = Number(match[1]);
  }
  // An unknown unit is no figure: never a guess at its scale.
  const scale = Object.hasOwn(units, label) ? units[label]! : undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || scale === undefined) return undefined;
  return value * scale;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

// Bounds what a runaway output can make us hold.
const MAX_JSON_CHARS = 4_000_000;

/**
 * Splits a stream of text into the JSON documents in it (amd-smi's watch mode prints one per
 * sample, pretty-printed, after a line of prose). A `[` or `{` at the start of a line always
 * starts a new document, so a stray bracket in a message cannot swallow the ones after it.
 */
function jsonValues(): { push(text: string): unknown[] } {
  let pending = '';
  let start = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let lineStart = true;
  return {
    push(text) {
      const from = pending.length;
      pending += text;
      const found: unknown[] = [];
      for (let i = from; i < pending.length; i++) {
        const c = pending[i]!;
        const atLineStart = lineStart;
        lineStart = c === '\n';
        if ((c === '[' || c === '{') && (depth === 0 || atLineStart)) {
          start = i;
          depth = 1;
          inString = false;
          escaped = false;
          continue;
        }
        if (depth === 0) continue;
        if (inString) {
          if (escaped) escaped = false;
          else if (c === '\\') escaped = true;
          else if (c === '"') inString = false;
          continue;
        }
        if (c === '"') inString = true;
        else if (c === '[' || c === '{') depth++;
        else if (c === ']' || c === '}') {
          depth--;
          if (depth === 0) {
            try {
              found.push(JSON.parse(pending.slice(start, i + 1)));
            } catch {
              // Not JSON after all (a message in brackets): skipped.
            }
          }
        }
      }
      if (depth > 0 && pending.length - start <= MAX_JSON_CHARS) {
        pending = pending.slice(start);
      } else {
        pending = '';
        depth = 0;
      }
      start = 0;
      return found;
    },
  };
}
