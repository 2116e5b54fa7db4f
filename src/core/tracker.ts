import { toBoAmpsReport, type BoAmpsReport, type BoAmpsReportOptions } from './boamps-report';
import { toEmissionsCsv, type EmissionsCsvOptions } from './emissions-csv';
import { OVERFLOW_ATTRIBUTE_VALUE, OVERFLOW_MODEL, UNATTRIBUTED, UNKNOWN_MODEL } from './model-keys';
import { isCarbonEstimate, isCarbonMetrics } from './get-carbon-metrics';
import { withGridIntensity, type GridIntensitySetting } from './grid-intensity';
import { hasCarbonFigure } from './parse-carbon-trace';
import type { CarbonTraceWarningHandler } from './report';
import { addCarbonEstimate, addCarbonMetrics, copyTotals, emptyCarbonTotals } from './sum-carbon-metrics';
import type { CallKind, CarbonMetrics, CarbonMetricsRecorder, CarbonRecordContext, CarbonTotals, EstimateMethod, TrackingMethod } from './types';

/**
 * Options of {@link CarbonTracker}.
 *
 * @example
 * ```ts
 * new CarbonTracker({ maxModels: 50 });
 * ```
 */
export type CarbonTrackerOptions = {
  /**
   * Distinct model ids kept apart; calls to further models are booked under
   * {@link OVERFLOW_MODEL}, and the exports say so. Default 1000.
   */
  maxModels?: number;
  /**
   * Distinct values kept apart per attribute key; further values are booked under
   * `'(other values)'` ({@link OVERFLOW_ATTRIBUTE_VALUE}). Default 1000. At most 64 keys are
   * broken down.
   */
  maxAttributeValues?: number;
  /**
   * The grid traced calls are booked at: each call's `gwpKgco2eq` is recomputed from its energy
   * at this intensity when it is recorded, so the totals, emissions.csv (`emissions`,
   * `emissions_rate`), BoAmps and every other view follow it. A fixed `{ gCo2PerKwh, source? }`,
   * or a provider (`createElectricityMapsProvider` from `carbon-trace/grid`) whose `current()`
   * is read at each record: every call at the intensity of its time. Estimates keep their own
   * grid. Default: the figure the call came with.
   */
  gridIntensity?: GridIntensitySetting;
  /** Where a call that could not be recomputed (no energy) is reported. Default: `console.warn`, each distinct warning once. */
  onWarning?: CarbonTraceWarningHandler;
};

const DEFAULT_MAX_MODELS = 1_000;
const MAX_ATTRIBUTE_KEYS = 64;
const MAX_ESTIMATE_METHODS = 8;


/**
 * Running totals over many model calls, overall, per model and per tracking method.
 *
 * Pass it to either adapter as `{ tracker }` and every call is recorded, traced or not, so
 * `tracedCalls / calls` shows how much carbon you actually see. Memory grows with the number
 * of models, not of calls.
 *
 * EcoLogits estimates (the adapters' `estimate` option) are never in {@link totals},
 * {@link byModel} or {@link byAttribute}: an estimated call counts there as a call without a
 * trace, and its estimate is summed apart, in `byTrackingMethod().ecologits` and
 * {@link estimatesByModel}.
 *
 * @example
 * ```ts
 * import { CarbonTracker } from 'carbon-trace';
 * import { carbonTraceMiddleware } from 'carbon-trace/ai-sdk';
 *
 * const tracker = new CarbonTracker();
 * const model = wrapLanguageModel({ model: base, middleware: carbonTraceMiddleware({ tracker }) });
 * // … calls …
 * tracker.totals().gwpKgco2eq;                 // everything
 * tracker.byModel()['llama-3.1-8b'].energyKwh; // one model
 * tracker.byTrackingMethod().codecarbon;       // measured calls only
 * ```
 */
export class CarbonTracker implements CarbonMetricsRecorder {
  private all = emptyCarbonTotals();
  private models = new Map<string, CarbonTotals>();
  private methods = new Map<TrackingMethod | EstimateMethod, CarbonTotals>();
  /** EcoLogits estimates per model, never mixed into the traced totals above. */
  private estimates = new Map<string, CarbonTotals>();
  private estimateMethods = new Set<string>();
  private providers = new Map<string, Set<string>>();
  private kinds = new Map<CallKind, CarbonTotals>();
  /** The kinds of call each model served, for the CSV's `call_kinds`. */
  private modelKinds = new Map<string, Set<CallKind>>();
  /** When each model's first traced call was recorded: the start of its measured period. */
  private firstTraced = new Map<string, Date>();
  /** Per attribute key, totals per value; every key's values add up to every call. */
  private attributes = new Map<string, Map<string, CarbonTotals>>();
  private readonly maxModels: number;
  private readonly maxAttributeValues: number;
  private readonly grid: GridIntensitySetting | undefined;
  private readonly onWarning: CarbonTraceWarningHandler | undefined;

  constructor(options: CarbonTrackerOptions = {}) {
    this.maxModels = positiveInteger(options.maxModels) ?? DEFAULT_MAX_MODELS;
    this.maxAttributeValues = positiveInteger(options.maxAttributeValues) ?? DEFAULT_MAX_MODELS;
    this.grid = options.gridIntensity ?? undefined;
    this.onWarning = options.onWarning;
  }

  /**
   * Records one call. `undefined` is a call without a trace: it counts in `calls` only.
   *
   * @example
   * ```ts
   * tracker.record(getCarbonMetrics(result), { provider: 'garden.chat', modelId: 'llama-3.1-8b' });
   * ```
   */
  record(metrics: CarbonMetrics | undefined, context: CarbonRecordContext = {}): void {
    if (this.grid !== undefined && isCarbonMetrics(metrics) && hasCarbonFigure(metrics)) {
      metrics = withGridIntensity(metrics, this.grid, this.onWarning === undefined ? {} : { onWarning: this.onWarning });
    }
    // Before the overall totals: a key seen for the first time starts from the calls before this one.
    this.recordAttributes(metrics, context.attributes);
    addCarbonMetrics(this.all, metrics);
    let model = typeof context.modelId === 'string' && context.modelId !== '' ? context.modelId : UNKNOWN_MODEL;
    if (!this.models.has(model) && this.models.size >= this.maxModels) model = OVERFLOW_MODEL;
    addCarbonMetrics(getOrCreate(this.models, model), metrics);
    if (metrics != null && !this.firstTraced.has(model) && hasCarbonFigure(metrics)) this.firstTraced.set(model, new Date());
    const kind = callKindOf(context.kind);
    addCarbonMetrics(getOrCreate(this.kinds, kind), metrics);
    let kinds = this.modelKinds.get(model);
    if (kinds === undefined) this.modelKinds.set(model, (kinds = new Set()));
    kinds.add(kind);
    if (typeof context.provider === 'string' && context.provider !== '') {
      let providers = this.providers.get(model);
      if (providers === undefined) this.providers.set(model, (providers = new Set()));
      providers.add(context.provider);
    }
    if (isCarbonMetrics(metrics) && hasCarbonFigure(metrics)) addCarbonMetrics(getOrCreate(this.methods, metrics.trackingMethod), metrics);
    // A traced call is never estimated; an estimate beside a trace is ignored.
    else if (isCarbonEstimate(context.estimate)) {
      addCarbonEstimate(getOrCreate(this.methods, 'ecologits'), context.estimate);
      // Keyed as in byModel(), whose bound on distinct ids it shares.
      addCarbonEstimate(getOrCreate(this.estimates, model), context.estimate);
      if (typeof context.estimate.method === 'string' && this.estimateMethods.size < MAX_ESTIMATE_METHODS) this.estimateMethods.add(context.estimate.method);
    }
  }

  /**
   * Totals over every recorded call.
   *
   * @example
   * ```ts
   * const { calls, tracedCalls } = tracker.totals();
   * console.log(`coverage ${(100 * tracedCalls) / calls}%`);
   * ```
   */
  totals(): CarbonTotals {
    return copyTotals(this.all);
  }

  /**
   * Totals per model id (calls without one are under `'unknown'`, calls beyond `maxModels`
   * distinct ids under `'(other models)'`). The object has no prototype, so any model id is a
   * safe key.
   *
   * @example
   * ```ts
   * for (const [model, t] of Object.entries(tracker.byModel())) console.log(model, t.gwpKgco2eq);
   * ```
   */
  byModel(): Record<string, CarbonTotals> {
    return copyOut(this.models);
  }

  /**
   * Totals per value of one attribute — which feature, user or tenant emits what. Calls that
   * did not carry the attribute are under `'(none)'` ({@link UNATTRIBUTED}), so the values always
   * add up to {@link totals}. Values are compared as strings. The object has no prototype.
   *
   * @example
   * ```ts
   * for (const [feature, t] of Object.entries(tracker.byAttribute('feature'))) console.log(feature, t.gwpKgco2eq);
   * ```
   */
  byAttribute(key: string): Record<string, CarbonTotals> {
    const values = this.attributes.get(key);
    if (values === undefined) {
      const out = Object.create(null) as Record<string, CarbonTotals>;
      if (this.all.calls > 0) out[UNATTRIBUTED] = copyTotals(this.all);
      return out;
    }
    return copyOut(values);
  }

  /**
   * The attribute keys calls have carried so far.
   *
   * @example
   * ```ts
   * tracker.attributeKeys(); // ['feature', 'tenant']
   * ```
   */
  attributeKeys(): string[] {
    return [...this.attributes.keys()];
  }

  /**
   * Totals per kind of call: `chat` (every generation, and calls recorded without a kind),
   * `embedding`, `rerank`. They add up to {@link totals}. The object has no prototype.
   *
   * @example
   * ```ts
   * const embeddingsKwh = tracker.byKind().embedding?.energyKwh;
   * ```
   */
  byKind(): Partial<Record<CallKind, CarbonTotals>> {
    return copyOut(this.kinds);
  }

  /**
   * Totals per kind of figure, never mixed: `codecarbon` (measured by the server's hardware
   * counters), `codecarbon_estimated` (the server's CodeCarbon fell back to its power model) and
   * `ecologits` (estimated here from the model's size, for calls without a trace). Calls with
   * neither a trace nor an estimate belong to none. In `ecologits`, `tracedCalls` counts the calls
   * that got an estimate.
   *
   * @example
   * ```ts
   * const measuredKwh = tracker.byTrackingMethod().codecarbon?.energyKwh ?? 0;
   * const estimatedKg = tracker.byTrackingMethod().ecologits?.gwpKgco2eq ?? 0;
   * ```
   */
  byTrackingMethod(): Partial<Record<TrackingMethod | EstimateMethod, CarbonTotals>> {
    return copyOut(this.methods);
  }

  /**
   * EcoLogits estimates per model id (calls beyond `maxModels` distinct ids under
   * `'(other models)'`): the calls without a trace that got one. The object has no prototype.
   *
   * @example
   * ```ts
   * tracker.estimatesByModel()['gpt-4o-mini']?.gwpKgco2eq; // kgCO2eq, estimated
   * ```
   */
  estimatesByModel(): Record<string, CarbonTotals> {
    return copyOut(this.estimates);
  }

  /**
   * The providers each model was called through, for reports.
   *
   * @example
   * ```ts
   * tracker.providersOf('llama-3.1-8b'); // ['garden.chat']
   * ```
   */
  providersOf(modelId: string): string[] {
    return [...(this.providers.get(modelId) ?? [])];
  }

  /**
   * Per-model totals as CodeCarbon's emissions.csv (kgCO2eq, kWh, W, s; `run_id` = model id),
   * with carbon-trace's coverage columns appended, so CodeCarbon tooling can read it. The
   * `tracking_methods` column says which kinds each row sums. EcoLogits estimates are left out
   * unless `estimates: true`, which adds one row per estimated model, marked `ecologits`.
   *
   * @example
   * ```ts
   * await writeFile('emissions.csv', tracker.toEmissionsCsv({ projectName: 'support-bot' }));
   * ```
   */
  toEmissionsCsv(options: EmissionsCsvOptions & { estimates?: boolean } = {}): string {
    const { estimates, ...csv } = options;
    const kindsByModel = Object.fromEntries([...this.modelKinds].map(([model, kinds]) => [model, [...kinds].sort()]));
    return toEmissionsCsv(this.byModel(), { kindsByModel, ...csv }, estimates === true ? this.estimatesByModel() : undefined);
  }

  /**
   * A BoAmps energy report of the traced calls (see {@link toBoAmpsReport}); you describe the
   * infrastructure. With `estimates: true`, the EcoLogits estimates are a second measure whose
   * `measurementMethod` is `'ecologits'`. Throws a `RangeError` when no call in scope has a
   * figure to report.
   *
   * @example
   * ```ts
   * const report = tracker.toBoAmpsReport({
   *   infrastructure: { infraType: 'onPremise', components: [{ componentType: 'gpu', nbComponent: 1 }] },
   * });
   * ```
   */
  toBoAmpsReport(options: BoAmpsReportOptions & { estimates?: boolean }): BoAmpsReport {
    const { estimates, ...reportOptions } = options;
    const byModel = this.byModel();
    const inScope = reportOptions.modelId === undefined ? Object.keys(byModel) : [reportOptions.modelId];
    const starts = inScope.map((m) => this.firstTraced.get(m)).filter((d): d is Date => d !== undefined);
    const measurementStart = starts.length > 0 ? new Date(Math.min(...starts.map(Number))) : undefined;
    const estimated = estimates === true ? { byModel: this.estimatesByModel(), methods: [...this.estimateMethods] } : undefined;
    return toBoAmpsReport(byModel, { ...(measurementStart ? { measurementStart } : {}), ...reportOptions }, estimated);
  }

  /**
   * Forgets everything recorded so far.
   *
   * @example
   * ```ts
   * setInterval(() => { flush(tracker.byModel()); tracker.reset(); }, 60_000);
   * ```
   */
  reset(): void {
    this.all = emptyCarbonTotals();
    this.models = new Map();
    this.methods = new Map();
    this.estimates = new Map();
    this.estimateMethods = new Set();
    this.providers = new Map();
    this.kinds = new Map();
    this.modelKinds = new Map();
    this.firstTraced = new Map();
    this.attributes = new Map();
  }

  private recordAttributes(metrics: CarbonMetrics | undefined, attributes: CarbonRecordContext['attributes']): void {
    const carried = attributes !== null && typeof attributes === 'object' ? attributes : {};
    for (const key of Object.keys(carried)) {
      if (this.attributes.has(key) || this.attributes.size >= MAX_ATTRIBUTE_KEYS) continue;
      // Every call recorded before this key first appeared lacked it.
      const values = new Map<string, CarbonTotals>();
      if (this.all.calls > 0) values.set(UNATTRIBUTED, copyTotals(this.all));
      this.attributes.set(key, values);
    }
    for (const [key, values] of this.attributes) {
      const raw = Object.hasOwn(carried, key) ? carried[key] : undefined;
      let value = raw === undefined ? UNATTRIBUTED : String(raw);
      if (!values.has(value) && values.size >= this.maxAttributeValues) value = OVERFLOW_ATTRIBUTE_VALUE;
      addCarbonMetrics(getOrCreate(values, value), metrics);
    }
  }
}

const CALL_KINDS: ReadonlySet<string> = new Set(['chat', 'embedding', 'rerank']);

/** A recorded call's kind; anything else (or none: every caller before kinds existed) is a generation. */
function callKindOf(kind: unknown): CallKind {
  return typeof kind === 'string' && CALL_KINDS.has(kind) ? (kind as CallKind) : 'chat';
}

function positiveInteger(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? value : undefined;
}

function getOrCreate<K>(map: Map<K, CarbonTotals>, key: K): CarbonTotals {
  let totals = map.get(key);
  if (totals === undefined) map.set(key, (totals = emptyCarbonTotals()));
  return totals;
}

function copyOut<K extends string>(map: Map<K, CarbonTotals>): Record<K, CarbonTotals> {
  const out = Object.create(null) as Record<K, CarbonTotals>;
  for (const [key, totals] of map) out[key] = copyTotals(totals);
  return out;
}
