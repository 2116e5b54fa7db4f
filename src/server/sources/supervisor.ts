import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { EnergyComponent, EnergyReading, EnergySource } from '../types';

/**
 * How a source that runs a command-line tool (`nvidia-smi`, `amd-smi`, `powermetrics`) watches it.
 *
 * @example
 * ```ts
 * amdSmiSource({ staleAfterMs: 5_000, restartDelayMs: { initial: 500, max: 30_000 } });
 * ```
 */
export type ToolSupervisionOptions = {
  /**
   * How long without a sample before the tool counts as hung, ms: every read then rejects, and
   * the tool is killed and restarted. Default: 3 sampling intervals, at least 2,000.
   */
  staleAfterMs?: number;
  /** How long the tool may take to print its first sample, ms. Default: 5 intervals, at least 10,000. */
  startTimeoutMs?: number;
  /** Back-off between restarts, ms: `initial` (default 1,000), doubling up to `max` (default 60,000). */
  restartDelayMs?: { initial?: number; max?: number };
  /** A monotonic clock in ms. Default `performance.now`; a test can drive its own. */
  clock?: () => number;
};

/**
 * What a tool-driven source is doing now. `state`: `'idle'` (not started), `'starting'` (waiting
 * for its first sample), `'running'`, `'down'` (exited or stopped answering: reads reject until a
 * restart brings samples back), `'failed'` (it never started: reads reject for good), `'closed'`.
 *
 * @example
 * ```ts
 * const { state, detail } = source.status(); // 'down', 'amd-smi down since 2025-06-01T12:00:01.000Z (exited with code 1); restart 2 in 2 s'
 * ```
 */
export type ToolStatus = {
  state: 'idle' | 'starting' | 'running' | 'down' | 'failed' | 'closed';
  /** When it entered this state (ISO 8601). */
  since: string;
  /** One line for people: what it measures, or why it is down and when it restarts. */
  detail: string;
  /** Restarts so far. */
  restarts: number;
  /** Samples received so far, over every run of the tool. */
  samples: number;
};

/**
 * One figure of one device in one sample: the tool's cumulative energy counter, its power, or both.
 *
 * @example
 * ```ts
 * const figure: ToolFigure = { component: 'gpu', device: '0', joules: 1_000_512.25, watts: 301 };
 * ```
 */
export type ToolFigure = { component: EnergyComponent; device: string; joules?: number; watts?: number };

/**
 * Turns a tool's output, as it arrives, into samples. One parser per run of the tool.
 *
 * @example
 * ```ts
 * const parser: ToolParser = { push: (text) => text.split('\n').filter(Boolean).map((line) => [{ component: 'gpu', device: '0', watts: Number(line) }]) };
 * ```
 */
export type ToolParser = { push(text: string): ToolFigure[][] };

/**
 * Options of {@link superviseTool}: the command, how to parse it, and what to say when it is missing.
 *
 * @example
 * ```ts
 * const options: SupervisorOptions = { tool: 'amd-smi', command: 'amd-smi', args: ['metric', '--json'], intervalMs: 1000, parser: amdSmiParser, install: 'install ROCm' };
 * ```
 */
export type SupervisorOptions = ToolSupervisionOptions & {
  /** The tool's name in messages, e.g. `'amd-smi'`. */
  tool: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** The tool's sampling interval, ms (for the default staleness and start timeouts). */
  intervalMs: number;
  parser: () => ToolParser;
  /** What to do when the executable is not there, e.g. "install ROCm 6 or later". */
  install: string;
  /** A hint for a tool that exits before its first sample, from its stderr (e.g. "needs root"). */
  explain?: (stderr: string) => string | undefined;
};

/**
 * A device channel seen in the tool's current run, and whether it reports an energy counter.
 *
 * @example
 * ```ts
 * tool.channels(); // [{ component: 'gpu', device: '0', counter: true }]
 * ```
 */
export type ToolChannel = { component: EnergyComponent; device: string; counter: boolean };

/**
 * A running tool, as {@link superviseTool} returns it.
 *
 * @example
 * ```ts
 * const tool: SupervisedTool = superviseTool(options);
 * await tool.start();
 * ```
 */
export type SupervisedTool = {
  /** Starts the tool (once); resolves at its first sample, rejects when it cannot start. */
  start(): Promise<void>;
  /** Cumulative joules per component up to now. Throws while the tool is down or failed. */
  read(): EnergyReading;
  status(): ToolStatus;
  /** The channels of the current run. */
  channels(): ToolChannel[];
  /** Kills the tool (and what it started) and stops restarting it. */
  close(): Promise<void>;
};

/**
 * A source that runs a command-line tool, with what the tool is doing now.
 *
 * @example
 * ```ts
 * const gpu: ToolEnergySource = amdSmiSource();
 * console.log(await gpu.start()); // "amd-smi energy counter, 8 GPUs"
 * ```
 */
export type ToolEnergySource = EnergySource & {
  /** Cumulative joules to this moment. Rejects while the tool is down, or when it cannot run. */
  read(): Promise<EnergyReading>;
  /** Starts the tool (once) and resolves, at its first sample, with what it measures. */
  start(): Promise<string>;
  status(): ToolStatus;
  close(): Promise<void>;
};

/**
 * The source object of a supervised tool: starts it on first use, reads it, says how it is.
 *
 * @example
 * ```ts
 * return toolSource('amd-smi', superviseTool({ … }), () => 'amd-smi energy counter, 2 GPUs, every 1 s');
 * ```
 */
export function toolSource(name: string, tool: SupervisedTool, describe: () => string): ToolEnergySource {
  return {
    name,
    measured: true,
    async start() {
      await tool.start();
      return describe();
    },
    async read() {
      await tool.start();
      return tool.read();
    },
    status: () => tool.status(),
    close: () => tool.close(),
  };
}

type Channel = { component: EnergyComponent; device: string; joules: number; at: number; watts?: number; counter?: number };

// Children alive in this process, killed with it: a crashed server must not leave a tool
// sampling forever.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // The tool runs in its own process group, so its own children (a shell's `sleep`) go too.
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

const MAX_CHANNELS = 1_024;

// A run that has sampled this long is healthy again: its next failure restarts it quickly.
const HEALTHY_AFTER_MS = 60_000;

function firstLine(text: string): string {
  return text.trim().split('\n').find((line) => line.trim() !== '')?.trim().slice(0, 300) ?? '';
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/**
 * Runs a tool that prints samples in a loop, keeps a running energy total per component from
 * what it prints, and restarts it when it exits or stops answering.
 *
 * - Energy: the tool's cumulative counter where it has one; otherwise its power, held from one
 *   sample to the next (each reading stands until the next arrives). A counter that goes back
 *   (a reset, a wrap) counts that interval at the last power instead.
 * - `read()` is current to the moment of the call: the total at the last sample plus the last
 *   power times the time since. It never goes back: a sample below what was already reported
 *   holds the total there until the counter catches up.
 * - Down: when the tool exits, or prints nothing for `staleAfterMs`, every `read()` throws, and
 *   the tool is restarted with exponential back-off. After a restart the totals continue from
 *   where they were: the time it was down is not counted, and the reads that threw say so.
 *
 * @example
 * ```ts
 * const tool = superviseTool({ tool: 'nvidia-smi', command: 'nvidia-smi', args, intervalMs: 100, parser, install: 'install the NVIDIA driver' });
 * await tool.start();
 * tool.read(); // { gpuJoules: 12.5 }
 * ```
 */
export function superviseTool(options: SupervisorOptions): SupervisedTool {
  const clock = options.clock ?? (() => performance.now());
  const staleAfterMs = options.staleAfterMs ?? Math.max(3 * options.intervalMs, 2_000);
  const startTimeoutMs = options.startTimeoutMs ?? Math.max(5 * options.intervalMs, 10_000);
  const initialDelayMs = Math.max(0, options.restartDelayMs?.initial ?? 1_000);
  const maxDelayMs = Math.max(initialDelayMs, options.restartDelayMs?.max ?? 60_000);
  const tool = options.tool;

  // `reason` never names the tool: messages put it in front.
  let state: ToolStatus['state'] = 'idle';
  let since = new Date().toISOString();
  let reason = 'has not started';
  let current: Run | undefined;
  let started: Promise<void> | undefined;
  let rejectStart: ((error: Error) => void) | undefined;
  let restarts = 0;
  let attempt = 0;
  let samples = 0;
  let lastSampleAt = 0;
  let upSince = 0;
  let nextRestartAt = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  const channels = new Map<string, Channel>();
  // Totals carried over from earlier runs, and the most ever reported (reads never go back).
  const base: Partial<Record<EnergyComponent, number>> = {};
  const reported: Partial<Record<EnergyComponent, number>> = {};

  type Run = { proc: ChildProcess | undefined; abandoned: boolean };

  const enter = (next: ToolStatus['state'], why: string) => {
    if (state !== next) since = new Date().toISOString();
    state = next;
    reason = why;
  };

  function totals(now: number | undefined): Partial<Record<EnergyComponent, number>> {
    const sums: Partial<Record<EnergyComponent, number>> = { ...base };
    for (const channel of channels.values()) {
      const carried = now === undefined || channel.watts === undefined ? 0 : (channel.watts * Math.max(0, now - channel.at)) / 1000;
      sums[channel.component] = (sums[channel.component] ?? 0) + channel.joules + carried;
    }
    return sums;
  }

  /** Ends the current run's channels: what they counted becomes the base of the next run. */
  function rebase(): void {
    const atLastSample = totals(undefined);
    for (const component of Object.keys(atLastSample) as EnergyComponent[]) {
      base[component] = Math.max(reported[component] ?? 0, atLastSample[component] ?? 0);
      reported[component] = base[component];
    }
    channels.clear();
  }

  function accept(figures: ToolFigure[], now: number): boolean {
    let usable = false;
    for (const figure of figures) {
      const joules = typeof figure.joules === 'number' && Number.isFinite(figure.joules) && figure.joules >= 0 ? figure.joules : undefined;
      const watts = typeof figure.watts === 'number' && Number.isFinite(figure.watts) && figure.watts >= 0 ? figure.watts : undefined;
      if (joules === undefined && watts === undefined) continue;
      usable = true;
      const key = `${figure.component}\0${figure.device}`;
      const channel = channels.get(key);
      if (channel === undefined) {
        // Device ids come from the tool's output: a bound, so a runaway one cannot grow memory.
        if (channels.size >= MAX_CHANNELS) continue;
        channels.set(key, { component: figure.component, device: figure.device, joules: 0, at: now, ...(watts !== undefined ? { watts } : {}), ...(joules !== undefined ? { counter: joules } : {}) });
        continue;
      }
      const dt = Math.max(0, now - channel.at) / 1000;
      let derivedWatts: number | undefined;
      if (joules !== undefined && channel.counter !== undefined && joules >= channel.counter) {
        channel.joules += joules - channel.counter;
        if (dt > 0) derivedWatts = (joules - channel.counter) / dt;
      } else if (channel.watts !== undefined) {
        // Power only, or a counter that went back: the last power held over the interval.
        channel.joules += channel.watts * dt;
      }
      channel.counter = joules;
      // The power carried forward: the tool's own figure, else the counter's last rate.
      const carry = watts ?? derivedWatts;
      if (carry !== undefined) channel.watts = carry;
      channel.at = now;
    }
    return usable;
  }

  function message(): string {
    if (state === 'closed') return `${tool} was closed`;
    if (state !== 'down') return `${tool} ${reason}`;
    const restart =
      current !== undefined
        ? 'restarted, waiting for its first sample'
        : nextRestartAt > 0
          ? `restart ${restarts} in ${seconds(Math.max(0, nextRestartAt - Date.now()))}`
          : 'restarting';
    return `${tool} down since ${since} (${reason}); ${restart}`;
  }

  function scheduleRestart(): void {
    if (state === 'closed' || restartTimer !== undefined) return;
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt);
    attempt++;
    restarts++;
    nextRestartAt = Date.now() + delay;
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      nextRestartAt = 0;
      run(undefined);
    }, delay);
    restartTimer.unref();
  }

  /** The tool stopped answering while alive: count it down and kill it; its exit restarts it. */
  function stall(): void {
    const stalled = current;
    rebase();
    enter('down', `no sample for ${seconds(clock() - lastSampleAt)}`);
    if (stalled !== undefined) {
      stalled.abandoned = true;
      if (stalled.proc !== undefined) killGroup(stalled.proc, 'SIGKILL');
    }
  }

  function run(first: { resolve: () => void; reject: (error: Error) => void } | undefined): void {
    if (state === 'closed') return;
    const parser = options.parser();
    const self: Run = { proc: undefined, abandoned: false };
    current = self;
    let stderr = '';
    let sampled = false;
    let ended = false;

    const end = (why: string, error?: NodeJS.ErrnoException) => {
      if (ended) return;
      ended = true;
      if (current === self) current = undefined;
      if (self.proc !== undefined) {
        live.delete(self.proc);
        killGroup(self.proc, 'SIGKILL');
      }
      if (state === 'closed' || state === 'failed') return;
      const said = firstLine(stderr);
      if (first !== undefined && !sampled) {
        // It never worked: say why, and do not retry.
        let why2: string;
        if (error?.code === 'ENOENT') why2 = `not found (${options.command}: ENOENT): ${options.install}`;
        else if (error?.code === 'EACCES') why2 = `could not be run (${options.command}: EACCES): make it executable, or ${options.install}`;
        else why2 = `${why} before its first sample${said ? `: ${said}` : ''}`;
        const hint = options.explain?.(stderr);
        enter('failed', hint ? `${why2}. ${hint}` : why2);
        first.reject(new Error(`${tool} ${reason}`));
        return;
      }
      if (state !== 'down') rebase();
      // Down already (a stall) keeps its reason; a failed restart says why it failed.
      if (state !== 'down' || !self.abandoned) enter('down', `${why}${said ? `: ${said}` : ''}`);
      scheduleRestart();
    };

    let proc: ChildProcess;
    try {
      proc = spawn(options.command, options.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: options.env ?? process.env });
    } catch (error) {
      end(`could not be started (${(error as Error).message})`, error as NodeJS.ErrnoException);
      return;
    }
    self.proc = proc;
    live.add(proc);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const running of live) killGroup(running, 'SIGKILL');
      });
    }
    proc.stdout!.setEncoding('utf8');
    proc.stderr!.setEncoding('utf8');
    proc.stdout!.on('data', (text: string) => {
      if (current !== self || self.abandoned || state === 'closed') return;
      const now = clock();
      let any = false;
      for (const sample of parser.push(text)) any = accept(sample, now) || any;
      if (!any) return;
      samples++;
      lastSampleAt = now;
      if (!sampled) {
        sampled = true;
        upSince = now;
        enter('running', '');
        first?.resolve();
      } else if (attempt > 0 && now - upSince >= HEALTHY_AFTER_MS) {
        attempt = 0;
      }
    });
    proc.stderr!.on('data', (text: string) => {
      stderr = (stderr + text).slice(-2_000);
    });
    proc.on('error', (error: NodeJS.ErrnoException) => end(error.code ?? error.message, error));
    proc.on('exit', (code, signal) => {
      const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
      // 'exit' can come before the last of stderr, which says why: wait for it, briefly.
      const stream = proc.stderr!;
      if (stream.readableEnded || stream.destroyed) return end(why);
      stream.once('end', () => end(why));
      setTimeout(() => end(why), 100).unref();
    });
  }

  return {
    start() {
      started ??= new Promise<void>((resolve, reject) => {
        enter('starting', 'is starting');
        const settle = (error?: Error) => {
          clearTimeout(timeout);
          rejectStart = undefined;
          if (error) return reject(error);
          watchdog = setInterval(() => {
            if (state === 'running' && clock() - lastSampleAt > staleAfterMs) stall();
          }, Math.max(10, Math.min(1_000, staleAfterMs / 2)));
          watchdog.unref();
          resolve();
        };
        rejectStart = settle;
        const timeout = setTimeout(() => {
          if (state !== 'starting') return;
          enter('failed', `printed no sample within ${seconds(startTimeoutMs)} (${[options.command, ...options.args].join(' ')})`);
          const waiting = current;
          current = undefined;
          if (waiting?.proc !== undefined) killGroup(waiting.proc, 'SIGKILL');
          settle(new Error(`${tool} ${reason}`));
        }, startTimeoutMs);
        timeout.unref();
        run({ resolve: () => settle(), reject: settle });
      });
      return started;
    },
    read() {
      if (state === 'running' && clock() - lastSampleAt > staleAfterMs) stall();
      if (state !== 'running') throw new Error(state === 'down' ? `${message()}: this interval is not measured` : message());
      const sums = totals(clock());
      const reading: EnergyReading = {};
      for (const component of Object.keys(sums) as EnergyComponent[]) {
        const joules = Math.max(reported[component] ?? 0, sums[component] ?? 0);
        reported[component] = joules;
        reading[`${component}Joules`] = joules;
      }
      return reading;
    },
    status() {
      const detail = state === 'running' ? `${tool} running since ${since}, ${samples} samples${restarts > 0 ? `, ${restarts} restarts` : ''}` : message();
      return { state, since, detail, restarts, samples };
    },
    channels() {
      return [...channels.values()].map((c) => ({ component: c.component, device: c.device, counter: c.counter !== undefined }));
    },
    async close() {
      enter('closed', 'was closed');
      if (restartTimer !== undefined) clearTimeout(restartTimer);
      if (watchdog !== undefined) clearInterval(watchdog);
      restartTimer = undefined;
      watchdog = undefined;
      rejectStart?.(new Error(`${tool} was closed before its first sample`));
      const running = current?.proc;
      current = undefined;
      if (running === undefined) return;
      live.delete(running);
      if (running.exitCode !== null || running.signalCode !== null) {
        killGroup(running, 'SIGKILL');
        return;
      }
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      killGroup(running, 'SIGTERM');
      const grace = setTimeout(() => killGroup(running, 'SIGKILL'), 1_000);
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
      clearTimeout(grace);
      // Whatever the tool started and left behind in its group.
      killGroup(running, 'SIGKILL');
    },
  };
}
