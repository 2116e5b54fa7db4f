import { ECOLOGITS_LLM_CONSTANTS as C } from './data/ecologits';

/**
 * The inputs of one request, in EcoLogits' units (parameters in billions).
 *
 * @example
 * ```ts
 * const request: LlmRequest = { activeParametersBillion: 8, totalParametersBillion: 8, outputTokens: 100, requestLatencySeconds: 2, pue: 1.2, gwpKgPerKwh: 0.38 };
 * ```
 */
export type LlmRequest = {
  activeParametersBillion: number;
  totalParametersBillion: number;
  outputTokens: number;
  /** The latency the client measured; `Infinity` when unknown (EcoLogits' `None`). */
  requestLatencySeconds: number;
  pue: number;
  /** kgCO2eq per kWh of the electricity mix. */
  gwpKgPerKwh: number;
};

/**
 * What one run of the method gives, with the intermediate values behind it.
 *
 * @example
 * ```ts
 * const { energyKwh, usageGwpKgco2eq } = llmImpacts(request);
 * ```
 */
export type LlmImpacts = {
  energyKwh: number;
  usageGwpKgco2eq: number;
  embodiedGwpKgco2eq: number;
  gpuCount: number;
  generationLatencySeconds: number;
};

/**
 * EcoLogits' LLM-inference method for one request with known parameter counts, after the assets
 * of `ecologits/impacts/llm.py` (release and sha256 in `./data/ecologits.ts`; methodology at
 * ecologits.ai/latest/methodology/llm_inference). Each step names the function it follows.
 *
 * @example
 * ```ts
 * llmImpacts({ activeParametersBillion: 70, totalParametersBillion: 70, outputTokens: 200, requestLatencySeconds: 5, pue: 1.2, gwpKgPerKwh: 0.38 }).energyKwh;
 * ```
 */
export function llmImpacts(request: LlmRequest): LlmImpacts {
  const { activeParametersBillion: active, totalParametersBillion: total, outputTokens, requestLatencySeconds, pue, gwpKgPerKwh } = request;
  const batch = C.BATCH_SIZE;
  // gpu_energy: Wh per output token, fitted on the ML.ENERGY leaderboard, then kWh for the request.
  const gpuEnergyPerTokenKwh = (C.GPU_ENERGY_ALPHA * Math.exp(C.GPU_ENERGY_BETA * batch) * active + C.GPU_ENERGY_GAMMA) / 1000;
  const gpuEnergyKwh = outputTokens * gpuEnergyPerTokenKwh;
  // generation_latency: the fitted latency, bounded by what the client measured.
  const modelledLatency = outputTokens * (C.LATENCY_ALPHA * active + C.LATENCY_BETA * batch + C.LATENCY_GAMMA);
  const generationLatencySeconds = requestLatencySeconds < modelledLatency ? requestLatencySeconds : modelledLatency;
  // model_required_memory (GB) and gpu_required_count, rounded up to a power of two.
  const requiredMemoryGb = (1.2 * total * C.MODEL_QUANTIZATION_BITS) / 8;
  const gpuCount = 2 ** Math.ceil(Math.log2(Math.ceil(requiredMemoryGb / C.GPU_MEMORY)));
  // server_energy: the server without its GPUs, for its share of GPUs and of the batch.
  const serverEnergyKwh = (generationLatencySeconds / 3600) * C.SERVER_POWER * (gpuCount / C.SERVER_GPUS) * (1 / batch);
  // request_energy and request_usage_gwp.
  const energyKwh = pue * (serverEnergyKwh + gpuCount * gpuEnergyKwh);
  // server_gpu_embodied_gwp, then request_embodied_gwp over the hardware's lifespan and the batch.
  const serverGpuEmbodiedKg = (gpuCount / C.SERVER_GPUS) * C.SERVER_EMBODIED_IMPACT_GWP + gpuCount * C.GPU_EMBODIED_IMPACT_GWP;
  const embodiedGwpKgco2eq = (generationLatencySeconds * serverGpuEmbodiedKg) / (C.HARDWARE_LIFESPAN * batch);
  return { energyKwh, usageGwpKgco2eq: energyKwh * gwpKgPerKwh, embodiedGwpKgco2eq, gpuCount, generationLatencySeconds };
}
