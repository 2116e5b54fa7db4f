import { performance } from 'node:perf_hooks';
import { createWarner, type CarbonTraceWarningHandler } from '../core/report';
import { addJoules, splitSlice, sumJoules, type SliceParticipant } from './attribution';
import { autoSources, type AutoSourceOptions } from './sources/auto';
import { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent, type EnergyReading, type EnergySource, type RequestEnergy } from './types';

/**
 * Options of {@link createEnergyMeter}.
 *
 * @example
 * ```ts
 * createEnergyMeter({ sources: 'auto', sampleIntervalMs: 100, idle: 'exclude' });
 * ```
 */
export type EnergyMeterOptions = {
  /** `'auto'` (default): RAPL and NVML where readable, CodeCarbon's estimate for the rest. Or your own sources. */
  sources?: 'auto' | readonly EnergySource[];
  /** How often the counters are read between request boundaries, ms. Default 100; 0 reads them at request boundaries only. */
  sampleIntervalMs?: number;
  /**
   * Energy of slices with no request in flight: `'exclude'` (default) reports it as idle in
   * `stats()`; `'share'` gives it to the next requests that run.
   */
  idle?: 'exclude' | 'share';
  /** Options of the `'auto'` sources (where the powercap tree is, NVML or nvidia-smi paths…). */
  auto?: AutoSourceOptions;
  /** What `describe()` says of your own sources, e.g. the `description` `autoSources()` gave. */
  description?: string;
  /** A monotonic clock in ms. Default `performance.now`; a test or simulation can drive its own. */
  clock?: () => number;
  /** Where warnings go (a source that fails). Default: `console.warn`, once per distinct warning. */
  onWarning?: CarbonTraceWarningHandler;
};

/**
 * A request in flight, as the meter books it.
 *
 * @example
 * ```ts
 * const request = meter.begin({ model: 'llama-3.1-8b' });
 * request.tokens(1); // per streamed token or chunk
 * const energy = await request.end();
 * ```
 */
export type MeteredRequest = {
  /** Marks `count` tokens produced now (streamed responses): slices are shared by tokens when every request in them streams. */
  tokens(count?: number): void;
  /** Reads the counters, closes the request's books and returns its energy. Idempotent. */
  end(): Promise<RequestEnergy>;
};

/**
 * Per-component totals of a meter.
 *
 * @example
 * ```ts
 * meter.stats().byComponent.gpu?.attributedJoules;
 * ```
 */
export type ComponentStats = { totalJoules: number; attributedJoules: number; idleJoules: number; measured: boolean; source: string };

/**
 * What a meter has measured since it started. Its books balance:
 * `attributedJoules + idleJoules = totalJoules`, and the requests' energies add up to
 * `attributedJoules`.
 *
 * @example
 * ```ts
 * const { totalJoules, attributedJoules, idleJoules } = meter.stats();
 * ```
 */
export type MeterStats = {
  /** When the meter started (ISO 8601). */
  since: string;
  totalJoules: number;
  attributedJoules: number;
  idleJoules: number;
  /** Requests whose books are closed. */
  requests: number;
  /** Requests in flight now. */
  activeRequests: number;
  byComponent: Partial<Record<EnergyComponent, ComponentStats>>;
  /** Per model name (from the request body): joules attributed (in all, and per component) and requests; no prototype. */
  byModel: Record<string, { joules: number; requests: number; byComponent: ComponentJoules }>;
  /** The machine's power now, W per component: the energy of the readings of the last second or so. */
  powerWatts: ComponentJoules;
};

/**
 * Reads energy sources over time and attributes the energy to the requests in flight.
 *
 * @example
 * ```ts
 * const meter = createEnergyMeter();
 * await meter.ready;
 * console.log(meter.describe()); // CPU: RAPL package-0 (measured); GPU: none; RAM: modelled 10 W
 * ```
 */
export type EnergyMeter = {
  /** Settles once the sources are chosen (`'auto'` probes the machine). Requests may begin before. */
  readonly ready: Promise<void>;
  /** Starts booking a request; its energy counts from the next counter reading. */
  begin(info?: { model?: string }): MeteredRequest;
  /** Reads the counters now, as the timer would; resolves once the reading is booked. */
  sample(): Promise<void>;
  stats(): MeterStats;
  /** What measures each component, e.g. `"CPU: RAPL package-0,1 (measured); GPU: none; RAM: modelled 10 W"`. */
  describe(): string;
  /** Stops the timer and closes the sources. */
  close(): Promise<void>;
};

type Request = {
  id: string;
  model: string | undefined;
  joules: ComponentJoules;
  /** Tokens since the last reading, or undefined while the response has not streamed. */
  tokens: number | undefined;
  active: boolean;
  startedAt?: number;
  endedAt?: number;
  warnings: Set<string>;
  measured: Set<EnergyComponent>;
  estimated: Set<EnergyComponent>;
  done?: Promise<RequestEnergy>;
  settle?: (energy: RequestEnergy) => void;
};

type SourceState = { source: EnergySource; last?: EnergyReading; error?: string };

const DEFAULT_SAMPLE_INTERVAL_MS = 100;
const POWER_WINDOW_MS = 1_000;
const MAX_MODELS = 1_000;

/**
 * Creates an energy meter: it reads cumulative joules from its sources every `sampleIntervalMs`
 * and at every request boundary (so a 50 ms request is not a zero), slices time at each reading,
 * and shares each slice's energy between the requests in flight through all of it — by tokens
 * when every one of them streams, equally otherwise. A slice with no request in flight is idle.
 *
 * @example
 * ```ts
 * import { createEnergyMeter, withCarbonTrace } from 'carbon-trace/server';
 * const meter = createEnergyMeter({ sources: 'auto', sampleIntervalMs: 100 });
 * const handler = withCarbonTrace((request) => fetch(upstream(request), request), { meter });
 * ```
 */
export function createEnergyMeter(options: EnergyMeterOptions = {}): EnergyMeter {
  const clock = options.clock ?? (() => performance.now());
  const warn = createWarner(options.onWarning);
  const shareIdle = options.idle === 'share';
  const since = new Date().toISOString();
  let states: SourceState[] = [];
  let description = 'sources not chosen yet';
  const ready = (async () => {
    const chosen = options.sources === undefined || options.sources === 'auto' ? await autoSources(options.auto ?? {}) : { sources: [...options.sources], description: undefined };
    states = chosen.sources.map((source) => ({ source }));
    description = options.description ?? chosen.description ?? describeSources(chosen.sources);
  })().catch((error: unknown) => {
    description = `no energy source: ${error instanceof Error ? error.message : String(error)}`;
    warn('meter-sources', description);
  });

  const totals = { total: {} as ComponentJoules, attributed: {} as ComponentJoules, idle: {} as ComponentJoules };
  const componentMeasured = new Map<EnergyComponent, { measured: boolean; sources: Set<string> }>();
  const byModel = new Map<string, { joules: number; requests: number; byComponent: ComponentJoules }>();
  // Recent readings (time, cumulative joules per component) for the power now.
  const recent: Array<{ at: number; total: ComponentJoules }> = [];
  const active = new Map<string, Request>();
  let pendingIdle: ComponentJoules = {};
  let requestsDone = 0;
  let counter = 0;

  // Boundaries wait for the next reading; readings never overlap, and a burst of boundaries
  // shares one reading.
  let begins: Request[] = [];
  let ends: Request[] = [];
  let next: { promise: Promise<void>; resolve: () => void } | undefined;
  let running = false;
  let closed = false;

  function schedule(): Promise<void> {
    if (next === undefined) {
      let resolve = () => {};
      const promise = new Promise<void>((r) => (resolve = r));
      next = { promise, resolve };
    }
    const { promise } = next;
    if (!running) void loop();
    return promise;
  }

  async function loop(): Promise<void> {
    running = true;
    try {
      await ready;
      while (next !== undefined) {
        const current = next;
        next = undefined;
        await sample();
        current.resolve();
      }
    } finally {
      running = false;
    }
  }

  async function sample(): Promise<void> {
    // The reading stands for the moment the counters were read, not when the reads came back.
    const now = clock();
    const readings = await Promise.allSettled(states.map(async (state) => state.source.read()));
    const delta: ComponentJoules = {};
    const failures: string[] = [];
    readings.forEach((result, i) => {
      const state = states[i]!;
      if (result.status === 'rejected') {
        const message = `${state.source.name} could not be read: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`;
        state.error = message;
        failures.push(message);
        warn(`source\0${state.source.name}`, message);
        return;
      }
      state.error = undefined;
      const reading = result.value ?? {};
      for (const component of ENERGY_COMPONENTS) {
        const value = reading[`${component}Joules`];
        if (typeof value !== 'number' || !Number.isFinite(value)) continue;
        noteComponent(component, state.source);
        const previous = state.last?.[`${component}Joules`];
        if (typeof previous !== 'number') continue;
        const joules = value - previous;
        if (joules < 0) {
          failures.push(`${state.source.name} ${component} counter went back by ${-joules} J (reset?): this interval is not counted`);
          continue;
        }
        delta[component] = (delta[component] ?? 0) + joules;
      }
      state.last = reading;
    });

    recent.push({ at: now, total: { ...addJoules({ ...totals.total }, delta) } });
    while (recent.length > 2 && now - recent[1]!.at >= POWER_WINDOW_MS) recent.shift();

    // The slice that ends now belongs to the requests active through all of it.
    const participants = [...active.values()];
    for (const request of participants) for (const failure of failures) request.warnings.add(failure);
    addJoules(totals.total, delta);
    if (participants.length === 0) {
      addJoules(shareIdle ? pendingIdle : totals.idle, delta);
      if (shareIdle) addJoules(totals.idle, delta);
    } else {
      const energy = shareIdle ? addJoules({ ...delta }, pendingIdle) : delta;
      if (shareIdle) {
        subtractJoules(totals.idle, pendingIdle);
        pendingIdle = {};
      }
      const shares = splitSlice(
        energy,
        participants.map((r): SliceParticipant => (r.tokens === undefined ? { id: r.id } : { id: r.id, tokens: r.tokens })),
      );
      for (const request of participants) {
        const share = shares.get(request.id) ?? {};
        addJoules(request.joules, share);
        addJoules(totals.attributed, share);
        for (const component of Object.keys(share) as EnergyComponent[]) {
          (componentMeasured.get(component)?.measured ? request.measured : request.estimated).add(component);
        }
        if (request.tokens !== undefined) request.tokens = 0;
      }
    }

    // Boundaries at this reading: ends first (they were in the slice), then begins.
    const ending = ends;
    ends = [];
    const deferred: Request[] = [];
    for (const request of ending) {
      // A request must span two readings, or it would get nothing: its end waits for the next.
      if (!request.active) deferred.push(request);
      else finish(request, now);
    }
    for (const request of begins) {
      request.active = true;
      request.startedAt = now;
      active.set(request.id, request);
      for (const failure of failures) request.warnings.add(failure);
    }
    begins = [];
    if (deferred.length > 0) {
      ends.push(...deferred);
      void schedule();
    }
  }

  function finish(request: Request, now: number): void {
    active.delete(request.id);
    request.active = false;
    request.endedAt = now;
    requestsDone++;
    if (request.model !== undefined) {
      let model = byModel.get(request.model);
      if (model === undefined && byModel.size < MAX_MODELS) byModel.set(request.model, (model = { joules: 0, requests: 0, byComponent: {} }));
      if (model) {
        model.joules += sumJoules(request.joules);
        model.requests++;
        addJoules(model.byComponent, request.joules);
      }
    }
    const measured = request.estimated.size === 0 && request.measured.size > 0;
    request.settle!({
      joules: { ...request.joules },
      totalJoules: sumJoules(request.joules),
      durationSeconds: Math.max(0, (now - (request.startedAt ?? now)) / 1000),
      measured,
      warnings: [...request.warnings],
    });
  }

  function noteComponent(component: EnergyComponent, source: EnergySource): void {
    let entry = componentMeasured.get(component);
    if (entry === undefined) componentMeasured.set(component, (entry = { measured: source.measured, sources: new Set() }));
    if (!entry.sources.has(source.name)) {
      entry.sources.add(source.name);
      entry.measured &&= source.measured;
    }
  }

  const interval = options.sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS;
  const timer =
    interval > 0
      ? setInterval(() => {
          if (!running) void schedule();
        }, interval)
      : undefined;
  timer?.unref?.();
  // The first reading is the baseline every later one is measured from.
  void schedule();

  return {
    ready,
    begin(info = {}) {
      const request: Request = {
        id: String(++counter),
        model: typeof info.model === 'string' && info.model !== '' ? info.model : undefined,
        joules: {},
        tokens: undefined,
        active: false,
        warnings: new Set(),
        measured: new Set(),
        estimated: new Set(),
      };
      request.done = new Promise<RequestEnergy>((resolve) => (request.settle = resolve));
      begins.push(request);
      void schedule();
      let ended = false;
      return {
        tokens(count = 1) {
          if (Number.isFinite(count) && count > 0) request.tokens = (request.tokens ?? 0) + count;
        },
        end() {
          if (!ended) {
            ended = true;
            ends.push(request);
            void schedule();
          }
          return request.done!;
        },
      };
    },
    sample() {
      return schedule();
    },
    stats() {
      const byComponent: MeterStats['byComponent'] = {};
      for (const [component, entry] of componentMeasured) {
        byComponent[component] = {
          totalJoules: totals.total[component] ?? 0,
          attributedJoules: totals.attributed[component] ?? 0,
          idleJoules: totals.idle[component] ?? 0,
          measured: entry.measured,
          source: [...entry.sources].join(' + '),
        };
      }
      const models = Object.create(null) as MeterStats['byModel'];
      for (const [model, entry] of byModel) models[model] = { ...entry, byComponent: { ...entry.byComponent } };
      const powerWatts: ComponentJoules = {};
      const first = recent[0];
      const last = recent.at(-1);
      if (first && last && last.at > first.at) {
        for (const component of Object.keys(last.total) as EnergyComponent[]) {
          powerWatts[component] = ((last.total[component] ?? 0) - (first.total[component] ?? 0)) / ((last.at - first.at) / 1000);
        }
      }
      return {
        since,
        totalJoules: sumJoules(totals.total),
        attributedJoules: sumJoules(totals.attributed),
        idleJoules: sumJoules(totals.idle),
        requests: requestsDone,
        activeRequests: active.size,
        byComponent,
        byModel: models,
        powerWatts,
      };
    },
    describe() {
      const errors = states.filter((s) => s.error).map((s) => s.error);
      return errors.length > 0 ? `${description} (${errors.join('; ')})` : description;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await ready;
      // Whatever is still in flight gets its books closed with the last reading.
      const inFlight = [...active.values(), ...begins];
      if (inFlight.length > 0) await Promise.all(inFlight.map((r) => { ends.push(r); return schedule().then(() => r.done); }));
      await Promise.allSettled(states.map(async (s) => s.source.close?.()));
    },
  };
}

function subtractJoules(from: ComponentJoules, amount: ComponentJoules): void {
  for (const component of Object.keys(amount) as EnergyComponent[]) from[component] = (from[component] ?? 0) - (amount[component] ?? 0);
}

/** "CPU: RAPL package-0 (measured); GPU: none; RAM: modelled 10 W" from sources' names. */
export function describeSources(sources: readonly EnergySource[]): string {
  if (sources.length === 0) return 'no energy source';
  return sources.map((s) => `${s.name} (${s.measured ? 'measured' : 'estimated'})`).join('; ');
}
