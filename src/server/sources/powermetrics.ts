import { userInfo } from 'node:os';
import { superviseTool, toolSource, type ToolEnergySource, type ToolFigure, type ToolParser, type ToolSupervisionOptions } from './supervisor';

/**
 * Options of {@link powermetricsSource}.
 *
 * @example
 * ```ts
 * powermetricsSource({ sampleIntervalMs: 500, sudo: true });
 * ```
 */
export type PowermetricsSourceOptions = ToolSupervisionOptions & {
  /** The powermetrics executable. Default `powermetrics` on the PATH (macOS ships it as /usr/bin/powermetrics). */
  executable?: string;
  /** How often powermetrics samples (`-i`), ms. Default 1,000. */
  sampleIntervalMs?: number;
  /**
   * Run it as `sudo -n powermetrics …` (`-n`: fail at once rather than prompt for a password).
   * Default: when this process is not root. powermetrics refuses to run without root.
   */
  sudo?: boolean;
};

/**
 * CPU and GPU energy of an Apple silicon Mac from Apple's `powermetrics`, run continuously:
 * `powermetrics --samplers cpu_power,gpu_power -i <ms> -b 1` (`-b 1`: a line at a time, so each
 * sample reaches us when it is printed). Each sample's `CPU Power: N mW` and `GPU Power: N mW`
 * (the same lines CodeCarbon reads, in codecarbon/core/powermetrics.py) times the sample's own
 * length, from its `(N ms elapsed)` header, is its energy. `ANE Power` (the Neural Engine) and
 * `Combined Power (CPU + GPU + ANE)` are not counted, as in CodeCarbon. `measured: true`
 * (powermetrics' figures are Apple's on-chip estimates, the best a Mac offers).
 *
 * powermetrics needs root: run as root, or let `sudo -n` run it without a password (a sudoers
 * line; the error says which). A read is current to its moment; a powermetrics that exits or stops
 * printing makes every read reject until a restart brings it back, as for `amdSmiSource`.
 *
 * @example
 * ```ts
 * import { createEnergyMeter, estimateSource, powermetricsSource } from 'carbon-trace/server';
 * const meter = createEnergyMeter({ sources: [powermetricsSource(), estimateSource({ components: ['ram'] })] });
 * ```
 */
export function powermetricsSource(options: PowermetricsSourceOptions = {}): ToolEnergySource {
  const executable = options.executable ?? 'powermetrics';
  const intervalMs = Math.max(10, Math.round(options.sampleIntervalMs ?? 1_000));
  const sudo = options.sudo ?? process.getuid?.() !== 0;
  const args = ['--samplers', 'cpu_power,gpu_power', '-i', String(intervalMs), '-b', '1'];
  const tool = superviseTool({
    ...options,
    tool: 'powermetrics',
    command: sudo ? 'sudo' : executable,
    args: sudo ? ['-n', executable, ...args] : args,
    intervalMs,
    parser: () => powermetricsParser(intervalMs),
    install: sudo
      ? 'powermetrics runs through sudo when carbon-trace is not root, and there is no sudo this user can run: run carbon-trace as root instead'
      : 'powermetrics comes with macOS (/usr/bin/powermetrics), on Macs only; or give its path (--powermetrics, or { executable })',
    explain: (stderr) => (/password|terminal is required|sudoers|not allowed|superuser|root/i.test(stderr) ? rootHint(executable) : undefined),
  });
  return toolSource('powermetrics', tool, () => {
    const parts = tool.channels().map((c) => c.component.toUpperCase());
    return `powermetrics ${parts.join(' + ')} power, every ${intervalMs} ms`;
  });
}

/** What to do when powermetrics will not run without root. */
function rootHint(executable: string): string {
  let user = '<user>';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry: the placeholder stays.
  }
  const path = executable.includes('/') ? executable : `/usr/bin/${executable}`;
  return (
    `powermetrics needs root: run carbon-trace as root (sudo), or let this user run powermetrics without a password: ` +
    `\`echo '${user} ALL=(root) NOPASSWD: ${path}' | sudo tee /etc/sudoers.d/powermetrics\` (check it with \`sudo visudo -c\`)`
  );
}

type Block = { elapsedMs?: number; cpuWatts?: number; gpuWatts?: number; done: boolean };

// A line longer than this is no powermetrics line: dropped, so memory stays bounded.
const MAX_LINE_CHARS = 65_536;

/**
 * Parses powermetrics' text output as it streams. A sample starts at its
 * `*** Sampled system activity (…) (1002.90ms elapsed) ***` header and is complete at its
 * `Combined Power` line (or at the next header, on versions without one). The first `CPU Power`
 * and `GPU Power` of a sample count (the gpu_power sampler repeats `GPU Power` in its own
 * section); `mW` and `W` are both read. Energy is power × the sample's elapsed time, summed.
 *
 * @example
 * ```ts
 * const parser = powermetricsParser(1000);
 * parser.push('*** Sampled system activity (Mon Jun 2 10:00:00 2025 +0200) (1000.00ms elapsed) ***\nCPU Power: 5000 mW\nGPU Power: 10000 mW\nCombined Power (CPU + GPU + ANE): 15000 mW\n');
 * // [[{ component: 'cpu', device: 'soc', joules: 5, watts: 5 }, { component: 'gpu', device: 'soc', joules: 10, watts: 10 }]]
 * ```
 */
export function powermetricsParser(intervalMs: number): ToolParser {
  let pending = '';
  let block: Block | undefined;
  let cpuJoules = 0;
  let gpuJoules = 0;

  const finish = (b: Block | undefined, out: ToolFigure[][]) => {
    if (b === undefined || b.done) return;
    b.done = true;
    const seconds = (b.elapsedMs ?? intervalMs) / 1000;
    const figures: ToolFigure[] = [];
    if (b.cpuWatts !== undefined) {
      cpuJoules += b.cpuWatts * seconds;
      figures.push({ component: 'cpu', device: 'soc', joules: cpuJoules, watts: b.cpuWatts });
    }
    if (b.gpuWatts !== undefined) {
      gpuJoules += b.gpuWatts * seconds;
      figures.push({ component: 'gpu', device: 'soc', joules: gpuJoules, watts: b.gpuWatts });
    }
    if (figures.length > 0) out.push(figures);
  };

  return {
    push(text) {
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      if (pending.length > MAX_LINE_CHARS) pending = '';
      const out: ToolFigure[][] = [];
      for (const line of lines) {
        const header = /^\*\*\* Sampled system activity\b.*\(\s*([0-9]+(?:\.[0-9]+)?)\s*ms elapsed\)/.exec(line);
        if (header) {
          finish(block, out);
          const elapsedMs = Number(header[1]);
          block = { done: false, ...(Number.isFinite(elapsedMs) && elapsedMs > 0 ? { elapsedMs } : {}) };
          continue;
        }
        if (block === undefined || block.done) continue;
        const power = /^\s*(CPU|GPU) Power:\s*([0-9]+(?:\.[0-9]+)?)\s*(mW|W)\b/.exec(line);
        if (power) {
          const watts = Number(power[2]) / (power[3] === 'mW' ? 1000 : 1);
          if (power[1] === 'CPU') block.cpuWatts ??= watts;
          else block.gpuWatts ??= watts;
        } else if (/^\s*Combined Power\b/.test(line)) {
          finish(block, out);
        }
      }
      return out;
    },
  };
}
