import { toBoAmpsReport, type BoAmpsReport, type BoAmpsReportOptions } from './boamps-report';
import { toEmissionsCsv, type EmissionsCsvOptions } from './emissions-csv';
import { OVERFLOW_ATTRIBUTE_VALUE, OVERFLOW_MODEL, UNATTRIBUTED, UNKNOWN_MODEL } from './model-keys';
import { hasCarbonFigure } from './parse-carbon-trace';
import { addCarbonMetrics, copyTotals, emptyCarbonTotals } from './sum-carbon-metrics';
import type { CarbonMetrics, CarbonMetricsRecorder, CarbonRecordContext, CarbonTotals, TrackingMethod } from './types';

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
};

const DEFAULT_MAX_MODELS = 1_000;
const MAX_ATTRIBUTE_KEYS = 64;


/**
 * Running totals over many model calls, overall, per model and per tracking method.
 *
 * Pass it to either adapter as `{ tracker }` and every call is recorded, traced or not, so
 * `tracedCalls / calls` shows how much carbon you actually see. Memory grows with the number
 * of models, not of calls.
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
  private methods = new Map<TrackingMethod, CarbonTotals>();
  private providers = new Map<string, Set<string>>();
  /** When each model's first traced call was recorded: the start of its measured period. */
  private firstTraced = new Map<string, Date>();
  /** Per attribute key, totals per value; every key's values add up to every call. */
  private attributes = new Map<string, Map<string, CarbonTotals>>();
  private readonly maxModels: number;
  private readonly maxAttributeValues: number;

  constructor(options: CarbonTrackerOptions = {}) {
    this.maxModels = positiveInteger(options.maxModels) ?? DEFAULT_MAX_MODELS;
    this.maxAttributeValues = positiveInteger(options.maxAttributeValues) ?? DEFAULT_MAX_MODELS;
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
    // Before the overall totals: a key seen for the first time starts from the calls before this one.
    this.recordAttributes(metrics, context.attributes);
    addCarbonMetrics(this.all, metrics);
    let model = typeof context.modelId === 'string' && context.modelId !== '' ? context.modelId : UNKNOWN_MODEL;
    if (!this.models.has(model) && this.models.size >= this.maxModels) model = OVERFLOW_MODEL;
    addCarbonMetrics(getOrCreate(this.models, model), metrics);
    if (metrics != null && !this.firstTraced.has(model) && hasCarbonFigure(metrics)) this.firstTraced.set(model, new Date());
    if (typeof context.provider === 'string' && context.provider !== '') {
      let providers = this.providers.get(model);
      if (providers === undefined) this.providers.set(model, (providers = new Set()));
      providers.add(context.provider);
    }
    if (metrics != null && (metrics.trackingMethod === 'codecarbon' || metrics.trackingMethod === 'codecarbon_estimated') && hasCarbonFigure(metrics)) {
      addCarbonMetrics(getOrCreate(this.methods, metrics.trackingMethod), metrics);
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
   * Totals per tracking method: `codecarbon` (measured by hardware counters) and
   * `codecarbon_estimated`, so measured and estimated energy are never mixed up. Untraced calls
   * belong to neither.
   *
   * @example
   * ```ts
   * const measuredKwh = tracker.byTrackingMethod().codecarbon?.energyKwh ?? 0;
   * ```
   */
  byTrackingMethod(): Partial<Record<TrackingMethod, CarbonTotals>> {
    return copyOut(this.methods);
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
   * with carbon-trace's coverage columns appended, so CodeCarbon tooling can read it.
   *
   * @example
   * ```ts
   * await writeFile('emissions.csv', tracker.toEmissionsCsv({ projectName: 'support-bot' }));
   * ```
   */
  toEmissionsCsv(options?: EmissionsCsvOptions): string {
    return toEmissionsCsv(this.byModel(), options);
  }

  /**
   * A BoAmps energy report of the traced calls (see {@link toBoAmpsReport}); you describe the
   * infrastructure. Throws a `RangeError` when no call carried a trace.
   *
   * @example
   * ```ts
   * const report = tracker.toBoAmpsReport({
   *   infrastructure: { infraType: 'onPremise', components: [{ componentType: 'gpu', nbComponent: 1 }] },
   * });
   * ```
   */
  toBoAmpsReport(options: BoAmpsReportOptions): BoAmpsReport {
    const byModel = this.byModel();
    const inScope = options.modelId === undefined ? Object.keys(byModel) : [options.modelId];
    const starts = inScope.map((m) => this.firstTraced.get(m)).filter((d): d is Date => d !== undefined);
    const measurementStart = starts.length > 0 ? new Date(Math.min(...starts.map(Number))) : undefined;
    return toBoAmpsReport(byModel, { ...(measurementStart ? { measurementStart } : {}), ...options });
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
    this.providers = new Map();
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
