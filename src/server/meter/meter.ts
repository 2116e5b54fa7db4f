import { performance } from 'node:perf_hooks';
import { createWarner, type CarbonTraceWarningHandler } from '../../core/report';
import { addJoules } from './attribution';
import { createRowBook, type RowBook } from '../books/bounded-rows';
import { autoSources, type AutoSourceOptions } from '../sources/auto';
import { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent, type EnergyReading, type EnergySource, type RequestEnergy } from '../types';

/**
 * Options of {@link createEnergyMeter}.
 *
 * @example
 * ```ts
 * createEnergyMeter({ sources: 'auto', sampleIntervalMs: 100, idle: 'exclude' });
 * ```
 */
export type EnergyMeterOptions = {
  /**
   * `'auto'` (default): what this machine can read — powermetrics on macOS; elsewhere RAPL, and NVML,
   * nvidia-smi or amd-smi for GPUs — and CodeCarbon's estimate for the rest (see `auto`). Or your own sources.
   */
  sources?: 'auto' | readonly EnergySource[];
  /** How often the counters are read between request boundaries, ms. Default 100; 0 reads them at request boundaries only. */
  sampleIntervalMs?: number;
  /**
   * One reading serves every request boundary within this many ms after it, ms. Default 1: under
   * load the counters are read at most about once per millisecond, however many requests begin
   * and end, and a boundary moves back by at most that much (the energy it moves stays in the
   * books, with the requests beside it). A boundary with no reading that recent is read at once.
   */
  coalesceMs?: number;
  /**
   * Energy of slices with no request in flight. Either way it is booked as idle and never put on a
   * trace: no request may be given energy from outside its own span, or a trace would show more
   * power than the machine drew. `'exclude'` (default) reports idle apart; `'share'` also
   * allocates it, in the aggregate views only (per model in `stats()`, and per model, key and
   * user in the proxy's stats), in proportion to each row's attributed energy.
   */
  idle?: 'exclude' | 'share';
  /** Options of the `'auto'` sources (where the powercap tree is, NVML or nvidia-smi paths…). */
  auto?: AutoSourceOptions;
  /** What `describe()` says of your own sources, e.g. the `description` `autoSources()` gave. */
  description?: string;
  /**
   * A monotonic clock in ms. Default `performance.now`. The meter reads it once per reading, just
   * before it reads the sources, so a source that models time can read the same clock.
   */
  clock?: () => number;
  /**
   * A source whose `read()` has not settled after this long counts as not read, ms. Default 1000:
   * the requests waiting on a reading (a JSON response waits for its trace) never hang on a source.
   */
  readTimeoutMs?: number;
  /** How many model names `stats().byModel` keeps apart; the least active beyond fold into `(other)`. Default 1000. */
  maxModels?: number;
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
  /**
   * Closes the request's books at the next reading and returns its energy. Idempotent. The model
   * may be named here when it was not known at `begin`.
   */
  end(info?: { model?: string }): Promise<RequestEnergy>;
};

/**
 * Per-component books of a meter.
 *
 * @example
 * ```ts
 * meter.stats().byComponent.gpu?.attributedJoules;
 * ```
 */
export type ComponentStats = {
  totalJoules: number;
  /** Given to requests whose books are closed. */
  attributedJoules: number;
  /** Given so far to the requests still in flight. */
  inFlightJoules: number;
  idleJoules: number;
  /** Energy the meter could not place: intervals a source could not be read, and requests whose figure it could not be sure of. */
  unattributedJoules: number;
  measured: boolean;
  source: string;
};

/**
 * One row of the per-model books.
 *
 * @example
 * ```ts
 * const row: ModelBook = meter.stats().byModel['llama-3.1-8b']!;
 * ```
 */
export type ModelBook = {
  /** Energy of its closed requests, J. */
  joules: number;
  requests: number;
  byComponent: ComponentJoules;
  /** With `idle: 'share'` only: its part of the idle energy, in proportion to `joules`. */
  idleShareJoules?: number;
};

/**
 * What a meter has measured since it started. Its books balance at every moment:
 * `attributedJoules + inFlightJoules + idleJoules + unattributedJoules = totalJoules`; the closed
 * requests' energies add up to `attributedJoules`, and so do the rows of `byModel`.
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
  inFlightJoules: number;
  idleJoules: number;
  unattributedJoules: number;
  idleMode: 'exclude' | 'share';
  /** Requests whose books are closed. */
  requests: number;
  /** Closed requests that got no energy figure (a source could not be read during them), counted in `requests`. */
  requestsWithoutFigure: number;
  /** Requests in flight now. */
  activeRequests: number;
  byComponent: Partial<Record<EnergyComponent, ComponentStats>>;
  /** Per model name (from the request body), bounded, with an `(other)` row; a prototype-free object. */
  byModel: Record<string, ModelBook>;
  /** The machine's power now, W per component: the energy of the readings of the last second or so. */
  powerWatts: ComponentJoules;
  /** Sources that could not be read at the last reading, with why. */
  sourceErrors: string[];
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
  /** Reads the counters (coalesced with any reading already due); resolves once the reading is booked. */
  sample(): Promise<void>;
  stats(): MeterStats;
  /** What measures each component, e.g. `"CPU: RAPL package-0,1 (measured); GPU: none; RAM: modelled 10 W"`. */
  describe(): string;
  /** Stops the timer, closes the books of the requests still in flight, and closes the sources. */
  close(): Promise<void>;
};

// Components by index, so that per-reading work is a few array operations.
const N = ENERGY_COMPONENTS.length;
type Vec = Float64Array;
const vec = (): Vec => new Float64Array(N);

type Req = {
  model: string | undefined;
  state: 'pending' | 'active' | 'done';
  endRequested: boolean;
  /** The reading that opened its books, and the time and indexes then. */
  startReading: number;
  startedAt: number;
  equal0: Vec;
  gaps0: Int32Array;
  failures0: number;
  streaming: boolean;
  /** Energy settled from token-shared slices. */
  tokenJoules: Vec;
  /** Tokens of the slice `pendingSlice`, not yet settled. */
  pendingTokens: number;
  pendingSlice: number;
  settle: (energy: RequestEnergy) => void;
  done: Promise<RequestEnergy>;
};

type SourceState = {
  source: EnergySource;
  /** The last good reading, per component index (NaN: none). */
  last: Vec;
  /** Components it reported at its last good reading. */
  components: Set<number>;
  /** The reading's outcome was a failure: the next good one closes a gap. */
  down: boolean;
  /** When it was last read (the unseen interval of an outage starts there). */
  lastGoodAt?: number;
  error?: string;
};

/** A slice shared by tokens: J per token per component, and how many requests still owe it a settlement. */
type TokenSlice = { perToken: Vec; refs: number };

const DEFAULT_SAMPLE_INTERVAL_MS = 100;
const DEFAULT_READ_TIMEOUT_MS = 1_000;
const DEFAULT_COALESCE_MS = 1;
const POWER_WINDOW_MS = 1_000;
const POWER_POINT_SPACING_MS = 50;
const MAX_FAILURE_EVENTS = 256;
const MAX_MODELS = 1_000;

/**
 * Creates an energy meter: it reads cumulative joules from its sources every `sampleIntervalMs`
 * and at request boundaries (so a 50 ms request is not a zero), one reading serving every boundary
 * of the same moment; slices time at each reading, and shares each slice's energy between the
 * requests in flight through all of it — by tokens when every one of them streams, equally
 * otherwise. A slice with no request in flight is idle; a slice a source could not see is
 * unattributed, and a request that overlaps one gets no energy figure, and a warning, rather than
 * a wrong one.
 *
 * Each reading costs the same however many requests are in flight: the meter keeps running
 * per-request indexes ("reward per share") and settles a request's energy once, when it ends.
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
  const coalesceMs = Math.max(0, options.coalesceMs ?? DEFAULT_COALESCE_MS);
  const readTimeoutMs = options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  const since = new Date().toISOString();
  let states: SourceState[] = [];
  let description = 'sources not chosen yet';
  let isReady = false;
  const ready = (async () => {
    const chosen = options.sources === undefined || options.sources === 'auto' ? await autoSources(options.auto ?? {}) : { sources: [...options.sources], description: undefined };
    states = chosen.sources.map((source) => ({ source, last: vec().fill(NaN), components: new Set(), down: false }));
    description = options.description ?? chosen.description ?? describeSources(chosen.sources);
  })()
    .catch((error: unknown) => {
      description = `no energy source: ${error instanceof Error ? error.message : String(error)}`;
      warn('meter-sources', description);
    })
    .finally(() => {
      isReady = true;
    });

  // The books, per component index.
  const total = vec();
  const idle = vec();
  const unattributed = vec();
  const given = vec(); // to requests in flight at the time
  const closed = vec(); // given to requests whose books closed with a figure
  const revoked = vec(); // given to requests whose books closed without one: moved to unattributed
  // Running indexes: J per request over equally shared slices, and gap slices seen.
  const equal = vec();
  const gaps = new Int32Array(N);
  // The reading from which each component has been known (-1: never).
  const knownSince = new Int32Array(N).fill(-1);
  const componentInfo: Array<{ measured: boolean; sources: Set<string> } | undefined> = new Array(N);
  const tokenSlices = new Map<number, TokenSlice>();
  const failureEvents: Array<{ reading: number; message: string }> = [];
  let failures = 0;

  const byModel: RowBook<ModelBook> = createRowBook(options.maxModels ?? MAX_MODELS, {
    create: (): ModelBook => ({ joules: 0, requests: 0, byComponent: {} }),
    merge: (into, from) => {
      into.joules += from.joules;
      into.requests += from.requests;
      addJoules(into.byComponent, from.byComponent);
    },
    requests: (row) => row.requests,
  });
  const powerPoints: Array<{ at: number; total: Vec }> = [];

  let readings = 0; // readings done; the open slice is the one the next reading closes
  let lastReadingAt = -Infinity;
  let active = 0;
  let nonStreamingActive = 0;
  let sliceTokens = 0;
  let sliceContributors = 0;
  let requestsDone = 0;
  let requestsWithoutFigure = 0;
  const activeSet = new Set<Req>();
  let pending: Req[] = []; // begun, waiting for their first reading
  let ending: Req[] = []; // active, waiting for their last reading

  // Readings never overlap; boundaries arriving meanwhile wait for the next one.
  let due: { promise: Promise<void>; resolve: () => void } | undefined;
  let reading = false;
  let scheduled = false;
  let closing = false;

  function requestReading(): Promise<void> {
    if (due === undefined) {
      let resolve = () => {};
      const promise = new Promise<void>((r) => (resolve = r));
      due = { promise, resolve };
    }
    if (!reading && !scheduled) schedule();
    return due.promise;
  }

  function schedule(): void {
    scheduled = true;
    setImmediate(run);
  }

  function run(): void {
    scheduled = false;
    if (reading || due === undefined) return;
    if (!isReady) {
      scheduled = true;
      void ready.then(() => {
        scheduled = false;
        run();
      });
      return;
    }
    readNow();
  }

  /** Takes a reading now: done before this returns when every source answers at once. */
  function readNow(): void {
    reading = true;
    const current = due;
    due = undefined;
    const done = () => {
      reading = false;
      current?.resolve();
      if (due !== undefined && !scheduled) schedule();
    };
    let result: void | Promise<void>;
    try {
      result = takeReading();
    } catch (error) {
      warn(`meter-bug\0${String(error)}`, `energy meter reading failed: ${error instanceof Error ? error.message : String(error)}`);
      done();
      return;
    }
    if (result instanceof Promise) result.then(done, done);
    else done();
  }

  /** A request boundary: a reading now when none is under way, else the next one. */
  function boundary(): void {
    if (!reading && isReady) readNow();
    else void requestReading();
  }

  /** Whether the last reading is recent enough to stand for a boundary now (within `coalesceMs`). */
  const recentReading = () => isReady && !reading && readings > 0 && clock() - lastReadingAt <= coalesceMs;

  /** Reads every source: synchronously when they all answer at once (the usual case), else once the slow ones do. */
  function takeReading(): void | Promise<void> {
    const now = clock();
    const outcomes: Array<{ ok: true; value: EnergyReading } | { ok: false; error: unknown }> = new Array(states.length);
    let waits: Array<Promise<void>> | undefined;
    states.forEach((state, i) => {
      try {
        const value = state.source.read();
        if (value instanceof Promise) {
          (waits ??= []).push(
            withTimeout(value, readTimeoutMs, `no answer within ${readTimeoutMs} ms`).then(
              (v) => void (outcomes[i] = { ok: true, value: v }),
              (error: unknown) => void (outcomes[i] = { ok: false, error }),
            ),
          );
        } else {
          outcomes[i] = { ok: true, value };
        }
      } catch (error) {
        outcomes[i] = { ok: false, error };
      }
    });
    if (waits === undefined) return book(now, outcomes);
    return Promise.all(waits).then(() => book(now, outcomes));
  }

  function book(now: number, outcomes: Array<{ ok: true; value: EnergyReading } | { ok: false; error: unknown }>): void {
    const k = readings; // this reading closes slice k
    const delta = vec();
    const gap = new Uint8Array(N);
    const messages: string[] = [];
    outcomes.forEach((outcome, i) => {
      const state = states[i]!;
      if (!outcome.ok) {
        const why = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
        const message = `${state.source.name} could not be read: ${why}`;
        state.error = message;
        if (!state.down) {
          // Said once when it goes down and once when it is back, not at every reading.
          warn(`source\0${state.source.name}\0${why}`, message);
        }
        state.down = true;
        for (const c of state.components) gap[c] = 1;
        messages.push(message);
        return;
      }
      const value = outcome.value ?? {};
      const wasDown = state.down;
      const unseenSince = state.lastGoodAt ?? now;
      state.down = false;
      state.error = undefined;
      state.lastGoodAt = now;
      for (let c = 0; c < N; c++) {
        const joules = value[`${ENERGY_COMPONENTS[c]!}Joules`];
        if (typeof joules !== 'number' || !Number.isFinite(joules)) continue;
        noteComponent(c, state.source, k);
        state.components.add(c);
        const previous = state.last[c]!;
        state.last[c] = joules;
        if (Number.isNaN(previous)) continue; // its first reading: the baseline
        const d = joules - previous;
        if (wasDown || d < 0) {
          // The energy since the last good reading cannot be placed in time (or a counter reset).
          gap[c] = 1;
          if (d > 0) delta[c]! += d;
          continue;
        }
        delta[c]! += d;
      }
      if (wasDown) {
        const seconds = ((now - unseenSince) / 1000).toFixed(1);
        messages.push(`${state.source.name} could not be read for ${seconds} s: the energy of that interval is unattributed`);
        warn(`source-back\0${state.source.name}`, `${state.source.name} can be read again after ${seconds} s; the energy of that interval is booked as unattributed`);
      }
    });
    if (messages.length > 0) {
      failures++;
      for (const message of messages) failureEvents.push({ reading: k, message });
      if (failureEvents.length > MAX_FAILURE_EVENTS) failureEvents.splice(0, failureEvents.length - MAX_FAILURE_EVENTS);
    }

    // The slice that ends now belongs to the requests active through all of it.
    const byTokens = active > 0 && nonStreamingActive === 0 && sliceTokens > 0;
    let perToken: Vec | undefined;
    for (let c = 0; c < N; c++) {
      const d = delta[c]!;
      total[c]! += d;
      if (gap[c]) {
        unattributed[c]! += d;
        gaps[c]!++;
      } else if (active === 0) {
        idle[c]! += d;
      } else {
        given[c]! += d;
        if (byTokens) (perToken ??= vec())[c] = d / sliceTokens;
        else equal[c]! += d / active;
      }
    }
    if (byTokens && sliceContributors > 0) tokenSlices.set(k, { perToken: perToken ?? vec(), refs: sliceContributors });
    sliceTokens = 0;
    sliceContributors = 0;
    readings = k + 1;
    lastReadingAt = now;
    notePower(now);

    // Boundaries at this reading: ends first (they were in the slice), then begins.
    const closing_ = ending;
    ending = [];
    for (const request of closing_) finish(request, k, now);
    const starting = pending;
    pending = [];
    for (const request of starting) activate(request, k, now);
    if (ending.length > 0) void requestReading();
  }

  function activate(request: Req, k: number, at: number): void {
    request.state = 'active';
    request.startReading = k;
    request.startedAt = at;
    request.equal0 = equal.slice();
    request.gaps0 = gaps.slice();
    request.failures0 = failures;
    request.pendingSlice = -1;
    activeSet.add(request);
    active++;
    if (!request.streaming) nonStreamingActive++;
    // A request must span two readings, or it would get nothing: an early end waits for the next.
    if (request.endRequested) ending.push(request);
  }

  function settle(request: Req): void {
    if (request.pendingTokens > 0) {
      const slice = tokenSlices.get(request.pendingSlice);
      if (slice !== undefined) {
        for (let c = 0; c < N; c++) request.tokenJoules[c]! += request.pendingTokens * slice.perToken[c]!;
        if (--slice.refs <= 0) tokenSlices.delete(request.pendingSlice);
      }
    }
    request.pendingTokens = 0;
  }

  function finish(request: Req, k: number, now: number): void {
    if (request.pendingSlice === readings) {
      // Tokens after the reading that closes its books fall in a slice it is not part of.
      sliceTokens -= request.pendingTokens;
      sliceContributors--;
      request.pendingTokens = 0;
    }
    settle(request);
    activeSet.delete(request);
    active--;
    if (!request.streaming) nonStreamingActive--;
    request.state = 'done';
    requestsDone++;

    const energy = vec();
    for (let c = 0; c < N; c++) energy[c] = equal[c]! - request.equal0[c]! + request.tokenJoules[c]!;
    // A figure only when every component the meter knows was seen through the whole request.
    const unknown: string[] = [];
    for (let c = 0; c < N; c++) {
      if (knownSince[c]! < 0) continue;
      if (knownSince[c]! > request.startReading || gaps[c] !== request.gaps0[c]) unknown.push(ENERGY_COMPONENTS[c]!);
    }
    const warnings = new Set<string>();
    if (failures !== request.failures0) {
      for (const event of failureEvents) if (event.reading > request.startReading && event.reading <= k) warnings.add(event.message);
    }
    const joules: ComponentJoules = {};
    let totalJoules: number | undefined;
    let measured = false;
    if (unknown.length > 0) {
      for (let c = 0; c < N; c++) {
        revoked[c]! += energy[c]!;
        unattributed[c]! += energy[c]!;
      }
      requestsWithoutFigure++;
      warnings.add(`no energy figure: the ${unknown.join(' and ').toUpperCase()} energy of this request is not known (a source could not be read during it)`);
    } else {
      totalJoules = 0;
      measured = true;
      let any = false;
      for (let c = 0; c < N; c++) {
        if (knownSince[c]! < 0) continue;
        any = true;
        const j = Math.max(0, energy[c]!);
        joules[ENERGY_COMPONENTS[c]!] = j;
        totalJoules += j;
        closed[c]! += energy[c]!;
        if (!componentInfo[c]!.measured) measured = false;
      }
      if (!any) {
        totalJoules = undefined;
        measured = false;
        requestsWithoutFigure++;
        warnings.add(`no energy figure: the meter has no energy source that could be read (${describeNow()})`);
      }
    }
    if (totalJoules !== undefined) {
      const row = byModel.row(request.model);
      row.joules += totalJoules;
      row.requests++;
      addJoules(row.byComponent, joules);
    } else {
      byModel.row(request.model).requests++;
    }
    if (active === 0) {
      // Nothing in flight: what was given is all settled; drop the float residue of the indexes.
      for (let c = 0; c < N; c++) given[c] = closed[c]! + revoked[c]!;
    }
    request.settle({ joules, totalJoules, durationSeconds: Math.max(0, (now - request.startedAt) / 1000), measured, warnings: [...warnings] });
  }

  function noteComponent(c: number, source: EnergySource, k: number): void {
    let entry = componentInfo[c];
    if (entry === undefined) {
      componentInfo[c] = entry = { measured: source.measured, sources: new Set() };
      knownSince[c] = k;
    }
    if (!entry.sources.has(source.name)) {
      entry.sources.add(source.name);
      entry.measured &&= source.measured;
    }
  }

  function notePower(now: number): void {
    const last = powerPoints.at(-1);
    if (last !== undefined && now - last.at < POWER_POINT_SPACING_MS && powerPoints.length > 1) {
      last.at = now;
      last.total = total.slice();
    } else {
      powerPoints.push({ at: now, total: total.slice() });
    }
    while (powerPoints.length > 2 && now - powerPoints[1]!.at >= POWER_WINDOW_MS) powerPoints.shift();
  }

  function describeNow(): string {
    const errors = states.filter((s) => s.error).map((s) => s.error);
    return errors.length > 0 ? `${description} (${errors.join('; ')})` : description;
  }

  const interval = options.sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS;
  const timer = interval > 0 ? setInterval(() => void requestReading(), interval) : undefined;
  timer?.unref?.();
  // The first reading is the baseline every later one is measured from.
  void requestReading();

  function begin(info: { model?: string } = {}): MeteredRequest {
    let settle: (energy: RequestEnergy) => void = () => {};
    const done = new Promise<RequestEnergy>((resolve) => (settle = resolve));
    const request: Req = {
      model: typeof info.model === 'string' && info.model !== '' ? info.model : undefined,
      state: 'pending',
      endRequested: false,
      startReading: -1,
      startedAt: 0,
      equal0: equal,
      gaps0: gaps,
      failures0: 0,
      streaming: false,
      tokenJoules: vec(),
      pendingTokens: 0,
      pendingSlice: -1,
      settle,
      done,
    };
    if (closing) {
      settle({ joules: {}, totalJoules: undefined, durationSeconds: 0, measured: false, warnings: ['no energy figure: the energy meter is closed'] });
    } else if (pending.length === 0 && recentReading()) {
      // One reading serves every boundary within `coalesceMs`: this one opens its books.
      activate(request, readings - 1, lastReadingAt);
    } else {
      pending.push(request);
      boundary();
    }
    return {
      tokens(count = 1) {
        if (!(Number.isFinite(count) && count > 0) || request.state === 'done') return;
        if (!request.streaming) {
          request.streaming = true;
          if (request.state === 'active') nonStreamingActive--;
        }
        // Tokens before its first reading fall in a slice it is not part of.
        if (request.state !== 'active') return;
        if (request.pendingSlice !== readings) {
          settle_(request);
          request.pendingSlice = readings;
          sliceContributors++;
        }
        request.pendingTokens += count;
        sliceTokens += count;
      },
      end(endInfo) {
        if (!request.endRequested) {
          request.endRequested = true;
          if (request.model === undefined && typeof endInfo?.model === 'string' && endInfo.model !== '') request.model = endInfo.model;
          if (request.state === 'active') {
            if (readings - 1 > request.startReading && recentReading()) {
              finish(request, readings - 1, lastReadingAt);
            } else {
              ending.push(request);
              boundary();
            }
          }
          // A pending request is moved to `ending` when its first reading activates it.
        }
        return request.done;
      },
    };
  }
  const settle_ = settle;

  return {
    ready,
    begin,
    sample() {
      return requestReading();
    },
    stats() {
      const byComponent: MeterStats['byComponent'] = {};
      let inFlightTotal = 0;
      for (let c = 0; c < N; c++) {
        const entry = componentInfo[c];
        if (entry === undefined) continue;
        const inFlight = active === 0 ? 0 : Math.max(0, given[c]! - closed[c]! - revoked[c]!);
        inFlightTotal += inFlight;
        byComponent[ENERGY_COMPONENTS[c]!] = {
          totalJoules: total[c]!,
          attributedJoules: closed[c]!,
          inFlightJoules: inFlight,
          idleJoules: idle[c]!,
          unattributedJoules: unattributed[c]!,
          measured: entry.measured,
          source: [...entry.sources].join(' + '),
        };
      }
      const attributedJoules = sum(closed);
      const idleJoules = sum(idle);
      const models = Object.create(null) as MeterStats['byModel'];
      for (const [model, row] of byModel.entries()) {
        models[model] = { joules: row.joules, requests: row.requests, byComponent: { ...row.byComponent } };
        if (shareIdle) models[model]!.idleShareJoules = attributedJoules > 0 ? (idleJoules * row.joules) / attributedJoules : 0;
      }
      const powerWatts: ComponentJoules = {};
      const first = powerPoints[0];
      const last = powerPoints.at(-1);
      if (first && last && last.at > first.at) {
        for (let c = 0; c < N; c++) {
          if (componentInfo[c] === undefined) continue;
          powerWatts[ENERGY_COMPONENTS[c]!] = (last.total[c]! - first.total[c]!) / ((last.at - first.at) / 1000);
        }
      }
      return {
        since,
        totalJoules: sum(total),
        attributedJoules,
        inFlightJoules: inFlightTotal,
        idleJoules,
        unattributedJoules: sum(unattributed),
        idleMode: shareIdle ? 'share' : 'exclude',
        requests: requestsDone,
        requestsWithoutFigure,
        activeRequests: active + pending.length,
        byComponent,
        byModel: models,
        powerWatts,
        sourceErrors: states.flatMap((s) => (s.error ? [s.error] : [])),
      };
    },
    describe: describeNow,
    async close() {
      if (closing) return;
      closing = true;
      if (timer) clearInterval(timer);
      await ready;
      // Whatever is still in flight gets its books closed at the next readings (one to open the
      // books of those not yet begun, one to close them all).
      const open = [...activeSet, ...pending];
      for (const request of open) {
        if (!request.endRequested) {
          request.endRequested = true;
          if (request.state === 'active') ending.push(request);
        }
      }
      for (let i = 0; i < 3 && (activeSet.size > 0 || pending.length > 0); i++) await requestReading();
      await Promise.allSettled(states.map(async (s) => s.source.close?.()));
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref?.();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sum(values: Vec): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}

/** "CPU: RAPL package-0 (measured); GPU: none; RAM: modelled 10 W" from sources' names. */
export function describeSources(sources: readonly EnergySource[]): string {
  if (sources.length === 0) return 'no energy source';
  return sources.map((s) => `${s.name} (${s.measured ? 'measured' : 'estimated'})`).join('; ');
}
