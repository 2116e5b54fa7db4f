import { sumTotals } from './sum-carbon-metrics';
import { OVERFLOW_MODEL } from './model-keys';
import type { CarbonTotals } from './types';

/**
 * A hardware component of the serving infrastructure (BoAmps `hardware_schema.json`).
 *
 * @example
 * ```ts
 * const gpu: BoAmpsComponent = { componentType: 'gpu', nbComponent: 2, componentName: 'NVIDIA L40S', memorySize: 48 };
 * ```
 */
export type BoAmpsComponent = {
  componentType: string;
  nbComponent: number;
  componentName?: string;
  memorySize?: number;
  manufacturer?: string;
  family?: string;
  series?: string;
  share?: number;
};

/**
 * Options of `tracker.toBoAmpsReport()`. The tracker knows calls, tokens and energy; what
 * served them — infrastructure, place, publisher — only you know.
 *
 * @example
 * ```ts
 * tracker.toBoAmpsReport({
 *   infrastructure: { infraType: 'onPremise', components: [{ componentType: 'gpu', nbComponent: 1, componentName: 'NVIDIA L4' }] },
 *   environment: { country: 'france' },
 * });
 * ```
 */
export type BoAmpsReportOptions = {
  infrastructure: {
    infraType: 'publicCloud' | 'privateCloud' | 'onPremise' | 'other';
    cloudProvider?: string;
    cloudInstance?: string;
    cloudService?: string;
    components: [BoAmpsComponent, ...BoAmpsComponent[]];
  };
  /** Report on one model only. Default: every model the tracker saw. */
  modelId?: string;
  /** Default `'chatbot'`. */
  taskFamily?: string;
  publisher?: { name?: string; division?: string; projectName?: string; confidentialityLevel: 'public' | 'internal' | 'confidential' | 'secret' };
  environment?: { country: string; latitude?: number; longitude?: number; location?: string; powerSupplierType?: 'public' | 'private' | 'internal' | 'other'; powerSourceCarbonIntensity?: number };
  system?: { os: string; distribution?: string; distributionVersion?: string };
  software?: { language: string; version?: string };
  reportStatus?: 'draft' | 'final' | 'corrective' | 'other';
  quality?: 'high' | 'medium' | 'low';
  /** Default: a random UUID. */
  reportId?: string;
  /** Report time (`reportDatetime`). Default: now. */
  now?: Date;
  /**
   * When the measured period began (`measurementDateTime`). A tracker fills it with the time of
   * its first traced call; without it the measure has no date.
   */
  measurementStart?: Date;
};

/**
 * A BoAmps energy report (Boavizta, format 0.1), as JSON-ready data.
 *
 * @example
 * ```ts
 * const report: BoAmpsReport = tracker.toBoAmpsReport(options);
 * report.measures[0].powerConsumption; // kWh of every traced call
 * ```
 */
export type BoAmpsReport = {
  header: {
    licensing?: string;
    formatVersion: string;
    reportId: string;
    reportDatetime: string;
    reportStatus: string;
    publisher?: BoAmpsReportOptions['publisher'];
  };
  task: {
    taskStage: 'inference';
    taskFamily: string;
    nbRequest: number;
    algorithms: Array<{ algorithmType: 'llm'; foundationModelName: string }>;
    dataset: Array<{ dataUsage: 'input' | 'output'; dataType: 'token'; dataQuantity: number }>;
    taskDescription: string;
  };
  /**
   * `codecarbon`: the traced calls (measured or CodeCarbon-estimated on the server). `ecologits`:
   * the calls without a trace, estimated from the model's size — only when asked for.
   */
  measures: Array<{
    measurementMethod: 'codecarbon' | 'ecologits';
    /** The EcoLogits release of an `ecologits` measure. */
    version?: string;
    /** kWh. */
    powerConsumption: number;
    /** Seconds the traced calls ran on the server (`codecarbon` only). */
    measurementDuration?: number;
    measurementDateTime?: string;
  }>;
  infrastructure: BoAmpsReportOptions['infrastructure'];
  environment?: BoAmpsReportOptions['environment'];
  system?: BoAmpsReportOptions['system'];
  software?: BoAmpsReportOptions['software'];
  quality?: BoAmpsReportOptions['quality'];
};

/**
 * Builds a BoAmps report from per-model totals: one inference task, its request count and
 * token datasets, and one `codecarbon` measure (energy in kWh) over the traced calls.
 *
 * `nbRequest` counts the calls the measures cover; calls without a trace are stated in
 * `taskDescription`, never booked as zero energy. `estimated` (EcoLogits estimates per model, and
 * the methods behind them) adds a separate `ecologits` measure for the calls that had one, and
 * their tokens and count to the task. Throws a `RangeError` when no call in scope has a figure,
 * since a BoAmps report needs a measure.
 *
 * @example
 * ```ts
 * const report = toBoAmpsReport(tracker.byModel(), { infrastructure });
 * writeFileSync('report.json', JSON.stringify(report, null, 2));
 * ```
 */
export function toBoAmpsReport(
  byModel: Record<string, CarbonTotals>,
  options: BoAmpsReportOptions,
  estimated?: { byModel: Record<string, CarbonTotals>; methods?: readonly string[] },
): BoAmpsReport {
  const models = options.modelId === undefined ? Object.keys(byModel) : [options.modelId].filter((m) => Object.hasOwn(byModel, m));
  const totals = sumTotals(models.map((m) => byModel[m]!));
  const estimates = sumTotals(models.filter((m) => estimated !== undefined && Object.hasOwn(estimated.byModel, m)).map((m) => estimated!.byModel[m]!));
  // A measure needs an energy: calls that traced emissions alone give none to report.
  if (totals.energyKwh === undefined && estimates.energyKwh === undefined) {
    throw new RangeError(
      `no traced${estimated ? ' or estimated' : ''} calls${options.modelId === undefined ? '' : ` for model ${options.modelId}`}: a BoAmps report needs a measured or estimated energy`,
    );
  }
  const untraced = totals.calls - totals.tracedCalls;
  const covered = totals.tracedCalls + estimates.tracedCalls;
  const uncovered = totals.calls - covered;
  const version = estimated?.methods?.length === 1 ? /EcoLogits (\S+)/.exec(estimated.methods[0]!)?.[1] : undefined;
  const measures: BoAmpsReport['measures'] = [];
  if (totals.energyKwh !== undefined) {
    measures.push({
      measurementMethod: 'codecarbon',
      powerConsumption: totals.energyKwh,
      ...(totals.durationSeconds !== undefined ? { measurementDuration: totals.durationSeconds } : {}),
      ...(options.measurementStart ? { measurementDateTime: boampsDateTime(options.measurementStart) } : {}),
    });
  }
  if (estimates.energyKwh !== undefined) {
    measures.push({ measurementMethod: 'ecologits', ...(version ? { version } : {}), powerConsumption: estimates.energyKwh });
  }
  const estimateText =
    estimated === undefined
      ? ''
      : ` ${estimates.tracedCalls} call${estimates.tracedCalls === 1 ? '' : 's'} without a trace ${estimates.tracedCalls === 1 ? 'is' : 'are'} ` +
        `estimated from the model's size, not measured (${(estimated.methods ?? []).join('; ') || 'EcoLogits'}): the "ecologits" measure, ` +
        `${estimates.gwpKgco2eq} kgCO2eq usage emissions, never summed with the traced calls.` +
        `${uncovered > 0 ? ` ${uncovered} call${uncovered === 1 ? ' has' : 's have'} neither a trace nor an estimate.` : ''}`;
  const report: BoAmpsReport = {
    header: {
      formatVersion: '0.1',
      reportId: options.reportId ?? globalThis.crypto.randomUUID(),
      reportDatetime: boampsDateTime(options.now ?? new Date()),
      reportStatus: options.reportStatus ?? 'draft',
      ...(options.publisher ? { publisher: options.publisher } : {}),
    },
    task: {
      taskStage: 'inference',
      taskFamily: options.taskFamily ?? 'chatbot',
      nbRequest: covered,
      algorithms: models.map((m) => ({ algorithmType: 'llm' as const, foundationModelName: m })),
      // A token count no call reported is left out, not written as 0.
      dataset: [
        ...tokenEntry('input', totals.promptTokens, estimates.promptTokens),
        ...tokenEntry('output', totals.completionTokens, estimates.completionTokens),
      ],
      taskDescription:
        `LLM inference measured by CodeCarbon on the serving hardware, read by carbon-trace: ` +
        `${totals.tracedCalls} of ${totals.calls} calls carried a trace (${totals.measuredCalls} measured by hardware counters, ` +
        `${totals.tracedCalls - totals.measuredCalls} estimated); ${untraced} call${untraced === 1 ? '' : 's'} without a trace ` +
        `${untraced === 1 ? 'is' : 'are'} not in the codecarbon measure.` +
        // No traced call: no emissions figure at all rather than a 0 that reads as measured.
        `${totals.gwpKgco2eq !== undefined ? ` Emissions of the traced calls: ${totals.gwpKgco2eq} kgCO2eq${partial(totals)}.` : ''}` +
        `${estimateText}${models.includes(OVERFLOW_MODEL) ? ` "${OVERFLOW_MODEL}" stands for the models beyond the tracker's maxModels distinct ids.` : ''}`,
    },
    measures,
    infrastructure: options.infrastructure,
  };
  if (options.environment) report.environment = options.environment;
  if (options.system) report.system = options.system;
  if (options.software) report.software = options.software;
  if (options.quality) report.quality = options.quality;
  return report;
}

/** BoAmps dates are `YYYY-MM-DD HH:MM:SS` (UTC here). */
function boampsDateTime(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

/** Says which sums cover fewer calls than were traced, so a partial figure is not read as whole. */
function partial(totals: CarbonTotals): string {
  const { energyKwh, gwpKgco2eq, durationSeconds } = totals.callsWith;
  const gaps = [
    energyKwh < totals.tracedCalls ? `energy from ${energyKwh}` : '',
    gwpKgco2eq < totals.tracedCalls ? `emissions from ${gwpKgco2eq}` : '',
    durationSeconds < totals.tracedCalls ? `duration from ${durationSeconds}` : '',
  ].filter(Boolean);
  return gaps.length > 0 ? ` (${gaps.join(', ')} of the ${totals.tracedCalls} traced calls)` : '';
}

function tokenEntry(dataUsage: 'input' | 'output', traced: number | undefined, estimated: number | undefined): BoAmpsReport['task']['dataset'] {
  if (traced === undefined && estimated === undefined) return [];
  return [{ dataUsage, dataType: 'token', dataQuantity: (traced ?? 0) + (estimated ?? 0) }];
}
