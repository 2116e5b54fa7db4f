import { isGridIntensityProvider, type GridIntensitySetting } from '../core/grid-intensity';
import { createWarner, type CarbonTraceWarningHandler } from '../core/report';
import type { CarbonEstimate, CarbonEstimateInputs, CarbonRange } from '../core/types';
import { isCount, isFigure } from '../core/units';
import { gridIntensityOfZone } from '../grid/zones';
import { ZONE_HINT, zoneKey } from '../grid/iso-3166';
import { ECOLOGITS_ELECTRICITY_MIXES_GWP, ECOLOGITS_PROVIDERS, ECOLOGITS_RELEASE } from './data/ecologits';
import { llmImpacts, type LlmImpacts } from './llm-impacts';
import { findEstimateModel } from './models';

/**
 * The method behind every estimate, with the EcoLogits release it follows.
 *
 * @example
 * ```ts
 * console.log(`estimates: ${ESTIMATE_METHOD}`); // 'EcoLogits 0.9.3 LLM inference (mlco2/ecologits)'
 * ```
 */
export const ESTIMATE_METHOD = `EcoLogits ${ECOLOGITS_RELEASE.version} LLM inference (mlco2/ecologits)`;

/**
 * One call to estimate.
 *
 * @example
 * ```ts
 * const call: EstimateCallInput = { provider: 'openai', modelId: 'gpt-4o-mini', outputTokens: 120, latencySeconds: 1.8 };
 * ```
 */
export type EstimateCallInput = {
  /** As the SDK names it: `'openai.chat'`, `'anthropic'`, `'mistral'`, `'google_genai'`… */
  provider: string;
  /** As sent to the provider; aliases, `models/…` and `openai/…`-style ids resolve. */
  modelId: string;
  /** Tokens generated. */
  outputTokens: number;
  /**
   * The latency you measured, s (request sent → last token). It bounds the modelled generation
   * time; without it the modelled time is used, as EcoLogits does when it has none.
   */
  latencySeconds?: number;
  /**
   * Electricity zone: an ISO 3166-1 code (`'FR'`, `'FRA'`) or a region CO2.js knows
   * (`'WORLD'`). Default: the provider's datacenter country in EcoLogits' data. Its intensity is
   * EcoLogits' own mix for the 50 zones EcoLogits knows, and CO2.js's (Ember) beyond them.
   */
  zone?: string;
  /**
   * The grid, instead of the zone's: a fixed `{ gCo2PerKwh, source? }`, or a provider
   * (`createElectricityMapsProvider` from `carbon-trace/grid`) whose `current()` is read now.
   */
  gridIntensity?: GridIntensitySetting;
  /** Prompt tokens, carried along for reports; the method does not use them. */
  promptTokens?: number;
};

/**
 * Options of {@link estimateCallImpact}.
 *
 * @example
 * ```ts
 * estimateCallImpact(call, { onWarning: (m) => logger.warn(m) });
 * ```
 */
export type EstimateOptions = {
  /** Where the reason for no estimate goes. Default: `console.warn`, each distinct one once. `false` silences it. */
  onWarning?: CarbonTraceWarningHandler;
};

const MODEL_WARNINGS: Record<string, string> = {
  'model-arch-not-released': 'the model architecture has not been released: its parameter count is an EcoLogits estimate, expect lower precision',
  'model-arch-multimodal': 'the model architecture is multimodal: expect lower precision',
};

/**
 * Estimates the energy and emissions of one model call with EcoLogits' LLM-inference method
 * (release {@link ESTIMATE_METHOD}; methodology: ecologits.ai/latest/methodology/llm_inference):
 * GPU energy per generated token as a function of the model's active parameters at batch size
 * 64, the server's energy over the generation time, the GPUs the model's total parameters need,
 * the provider's PUE, and the grid intensity of the provider's datacenter country — EcoLogits'
 * own electricity mix for the zones it has one for, CO2.js's (Ember) beyond them, or the
 * `gridIntensity` you give, which wins.
 *
 * An estimate is not a measurement: it models a typical datacenter, not the one that served the
 * call. For closed models EcoLogits only knows a range of parameter counts, so the figures are
 * the midpoint with `min` / `max`. Emissions are the usage phase (`gwpKgco2eq`, comparable with a
 * trace's) and, apart, the manufacturing share (`embodiedGwpKgco2eq`).
 *
 * Never throws. A model or provider EcoLogits does not know, an unknown zone, or inputs that are
 * not numbers ≥ 0 give `undefined` and a warning.
 *
 * @example
 * ```ts
 * import { estimateCallImpact } from 'carbon-trace/estimate';
 *
 * const estimate = estimateCallImpact({ provider: 'openai', modelId: 'gpt-4o-mini', outputTokens: 120, latencySeconds: 1.8 });
 * estimate?.energyKwh;    // kWh, midpoint of estimate.min / estimate.max
 * estimate?.gwpKgco2eq;   // kgCO2eq, usage phase, US grid
 * estimate?.inputs.activeParametersBillion; // { min: 8, max: 28 }
 * ```
 */
export function estimateCallImpact(call: EstimateCallInput, options: EstimateOptions = {}): CarbonEstimate | undefined {
  const warn = createWarner(options.onWarning);
  const refuse = (key: string, message: string): undefined => {
    warn(`estimate\0${key}`, `no EcoLogits estimate${describe(call)}: ${message}`);
    return undefined;
  };
  try {
    if (call === null || typeof call !== 'object') return refuse('input', 'the call to estimate is not an object');
    const { provider, modelId, outputTokens, latencySeconds, zone, promptTokens } = call;
    if (typeof provider !== 'string' || typeof modelId !== 'string') return refuse('ids', 'provider and modelId must be strings');
    if (!isCount(outputTokens)) return refuse('tokens', `outputTokens must be a whole number ≥ 0, got ${String(outputTokens)}`);
    if (latencySeconds !== undefined && !isFigure(latencySeconds)) {
      return refuse('latency', `latencySeconds must be a number of seconds ≥ 0, got ${String(latencySeconds)}`);
    }
    const model = findEstimateModel(provider, modelId);
    if (model === undefined) {
      return refuse(`model\0${provider}\0${modelId}`, `EcoLogits ${ECOLOGITS_RELEASE.version} has no data for this model`);
    }
    const config = ECOLOGITS_PROVIDERS[model.provider]!;
    let intensity: EstimateGrid;
    if (call.gridIntensity !== undefined) {
      const given = givenGrid(call.gridIntensity, zone);
      if (typeof given === 'string') return refuse(`grid\0${given}`, given);
      intensity = given;
    } else {
      const zoneName = zone === undefined ? config.datacenterLocation : zone;
      const found = typeof zoneName === 'string' ? gridOfZone(zoneName) : undefined;
      if (found === undefined) return refuse(`zone\0${String(zoneName)}`, `unknown grid zone ${JSON.stringify(zoneName)} (${ZONE_HINT})`);
      intensity = found;
    }

    // EcoLogits runs the method once per end of a range: low parameters with the low PUE, high
    // with high (compute_llm_impacts); without any range, once.
    const active = model.activeParametersBillion;
    const total = model.totalParametersBillion;
    const pue = config.datacenterPue;
    const ranged = typeof active === 'object' || typeof total === 'object' || typeof pue === 'object';
    const run = (end: 'min' | 'max'): LlmImpacts =>
      llmImpacts({
        activeParametersBillion: at(active, end),
        totalParametersBillion: at(total, end),
        outputTokens,
        requestLatencySeconds: latencySeconds ?? Number.POSITIVE_INFINITY,
        pue: at(pue, end),
        gwpKgPerKwh: intensity.gwpKgPerKwh,
      });
    const low = run('min');
    const high = ranged ? run('max') : low;
    const mid = (pick: (r: LlmImpacts) => number) => (pick(low) + pick(high)) / 2;

    const inputs: CarbonEstimateInputs = {
      provider: model.provider,
      modelId: model.modelId,
      activeParametersBillion: active,
      totalParametersBillion: total,
      gpuCount: span(low.gpuCount, high.gpuCount),
      pue,
      outputTokens,
      generationLatencySeconds: span(low.generationLatencySeconds, high.generationLatencySeconds),
      zone: intensity.zone,
      gCo2PerKwh: intensity.gCo2PerKwh,
      gridSource: intensity.source,
    };
    if (latencySeconds !== undefined) inputs.requestLatencySeconds = latencySeconds;
    const warnings = model.warnings.map((code) => MODEL_WARNINGS[code] ?? code);
    if (outputTokens === 0) warnings.push('0 output tokens: the method counts generated tokens only, so the estimate is 0');

    const estimate: CarbonEstimate = {
      trackingMethod: 'ecologits',
      measured: false,
      energyKwh: mid((r) => r.energyKwh),
      gwpKgco2eq: mid((r) => r.usageGwpKgco2eq),
      embodiedGwpKgco2eq: mid((r) => r.embodiedGwpKgco2eq),
      completionTokens: outputTokens,
      inputs,
      method: ESTIMATE_METHOD,
      warnings,
    };
    if (ranged) {
      estimate.min = bound(low);
      estimate.max = bound(high);
    }
    if (isCount(promptTokens)) estimate.promptTokens = promptTokens;
    return estimate;
  } catch (error) {
    // A hostile input (a throwing getter) costs the estimate, never the caller's call.
    return refuse('internal', `unreadable input (${String(error)})`);
  }
}

type EstimateGrid = { gCo2PerKwh: number; gwpKgPerKwh: number; zone: string; source: string };

/**
 * The grid of a zone as EcoLogits would take it: its own electricity mix for the zones it knows
 * (kgCO2eq/kWh as electricity_mixes.csv has it, so usage emissions are EcoLogits' own product),
 * CO2.js's Ember average beyond them.
 */
function gridOfZone(zone: string): EstimateGrid | undefined {
  const key = zoneKey(zone);
  const ecologitsKey = key === 'WORLD' ? 'WOR' : key;
  if (Object.hasOwn(ECOLOGITS_ELECTRICITY_MIXES_GWP, ecologitsKey)) {
    const gwpKgPerKwh = ECOLOGITS_ELECTRICITY_MIXES_GWP[ecologitsKey]!;
    return {
      gwpKgPerKwh,
      // For display only: 0.17481 × 1000 is 174.81000000000003 in binary floating point.
      gCo2PerKwh: Number((gwpKgPerKwh * 1000).toPrecision(12)),
      zone: ecologitsKey,
      source: `EcoLogits ${ECOLOGITS_RELEASE.version} electricity mix (electricity_mixes.csv), zone ${ecologitsKey}`,
    };
  }
  const found = gridIntensityOfZone(zone);
  if (found === undefined) return undefined;
  return { gwpKgPerKwh: found.gCo2PerKwh / 1000, gCo2PerKwh: found.gCo2PerKwh, zone: found.zone ?? key, source: found.source ?? 'carbon-trace/grid' };
}

/** An intensity given explicitly, read now; a string says why it cannot be used. */
function givenGrid(setting: GridIntensitySetting, zone: unknown): EstimateGrid | string {
  let reading: unknown;
  try {
    reading = isGridIntensityProvider(setting) ? setting.current() : setting;
  } catch (error) {
    return `the grid intensity provider failed (${error instanceof Error ? error.message : String(error)})`;
  }
  const { gCo2PerKwh, source, zone: readingZone } = (reading ?? {}) as { gCo2PerKwh?: unknown; source?: unknown; zone?: unknown };
  if (!isFigure(gCo2PerKwh)) return `grid intensity ${String(gCo2PerKwh)} is not a number of gCO2eq/kWh ≥ 0`;
  return {
    gCo2PerKwh,
    gwpKgPerKwh: gCo2PerKwh / 1000,
    zone: typeof readingZone === 'string' ? readingZone : typeof zone === 'string' ? zone : 'unspecified',
    source: typeof source === 'string' ? source : 'given intensity',
  };
}

function at(value: number | CarbonRange, end: 'min' | 'max'): number {
  return typeof value === 'number' ? value : value[end];
}

function span(min: number, max: number): number | CarbonRange {
  return min === max ? min : { min, max };
}

function bound(r: LlmImpacts) {
  return { energyKwh: r.energyKwh, gwpKgco2eq: r.usageGwpKgco2eq, embodiedGwpKgco2eq: r.embodiedGwpKgco2eq };
}

function describe(call: unknown): string {
  try {
    const { provider, modelId } = call as { provider?: unknown; modelId?: unknown };
    return typeof provider === 'string' && typeof modelId === 'string' ? ` for ${provider}/${modelId}` : '';
  } catch {
    return '';
  }
}
