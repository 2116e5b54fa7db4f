import { ECOLOGITS_ALIASES, ECOLOGITS_MODELS, ECOLOGITS_PROVIDERS, type EcoLogitsCount } from './data/ecologits';
import type { CarbonRange } from '../core/types';

/**
 * A model EcoLogits knows: its provider (EcoLogits' name), id, parameter counts in billions and
 * the caveats EcoLogits attaches to it.
 *
 * @example
 * ```ts
 * const model = findEstimateModel('openai.chat', 'gpt-4o-mini');
 * model?.activeParametersBillion; // { min: 8, max: 28 }
 * ```
 */
export type EstimateModel = {
  provider: string;
  modelId: string;
  /** Set when the id asked for was an alias of `modelId`. */
  aliasOf?: string;
  architecture: 'dense' | 'moe';
  activeParametersBillion: number | CarbonRange;
  totalParametersBillion: number | CarbonRange;
  /** EcoLogits' warning codes: `model-arch-not-released`, `model-arch-multimodal`. */
  warnings: string[];
};

// How the SDKs name providers (AI SDK `model.provider` before the dot, LangChain `ls_provider`)
// → EcoLogits' names. Azure OpenAI is OpenAI, as EcoLogits' own OpenAI tracer books it.
const PROVIDER_NAMES: Record<string, string> = {
  openai: 'openai',
  azure: 'openai',
  azure_openai: 'openai',
  anthropic: 'anthropic',
  mistral: 'mistralai',
  mistralai: 'mistralai',
  google: 'google_genai',
  google_genai: 'google_genai',
  google_generative_ai: 'google_genai',
  google_vertexai: 'google_genai',
  vertex: 'google_genai',
  vertexai: 'google_genai',
  cohere: 'cohere',
  huggingface: 'huggingface_hub',
  huggingface_hub: 'huggingface_hub',
  hf: 'huggingface_hub',
};

const WARNING_CODES = [
  [1, 'model-arch-not-released'],
  [2, 'model-arch-multimodal'],
] as const;

// Built on first use: a Map per provider, aliases included.
let index: Map<string, Map<string, { entry: (typeof ECOLOGITS_MODELS)[string][number]; aliasOf?: string }>> | undefined;

function modelIndex() {
  if (index !== undefined) return index;
  index = new Map();
  for (const provider of Object.keys(ECOLOGITS_MODELS)) {
    const byName = new Map<string, { entry: (typeof ECOLOGITS_MODELS)[string][number]; aliasOf?: string }>();
    for (const entry of ECOLOGITS_MODELS[provider]!) byName.set(entry[0], { entry });
    const aliases = Object.hasOwn(ECOLOGITS_ALIASES, provider) ? ECOLOGITS_ALIASES[provider]! : {};
    for (const [alias, target] of Object.entries(aliases)) {
      const found = byName.get(target);
      if (found && !byName.has(alias)) byName.set(alias, { entry: found.entry, aliasOf: target });
    }
    index.set(provider, byName);
  }
  return index;
}

/**
 * EcoLogits' name for a provider as an SDK names it — `'openai.chat'` (AI SDK),
 * `'google_genai'` (LangChain `ls_provider`), `'mistral'` — or `undefined` when EcoLogits has no
 * data for it.
 *
 * @example
 * ```ts
 * ecologitsProviderOf('mistral.chat'); // 'mistralai'
 * ecologitsProviderOf('garden.chat');  // undefined
 * ```
 */
export function ecologitsProviderOf(provider: string): string | undefined {
  const key = String(provider).trim().toLowerCase().split('.')[0]!.replace(/-/g, '_');
  return Object.hasOwn(PROVIDER_NAMES, key) ? PROVIDER_NAMES[key] : undefined;
}

/**
 * The model EcoLogits' data has for a provider and model id, aliases resolved; `undefined` when
 * it has none. Also finds `models/gemini-…` (Google's resource names) and `openai/gpt-4o`
 * (a gateway's provider-prefixed ids) when the provider alone does not.
 *
 * @example
 * ```ts
 * findEstimateModel('anthropic', 'claude-sonnet-4-5')?.modelId; // 'claude-sonnet-4-5-20250929'
 * ```
 */
export function findEstimateModel(provider: string, modelId: string): EstimateModel | undefined {
  const id = String(modelId).trim();
  const given = ecologitsProviderOf(provider);
  const candidates: Array<[string | undefined, string]> = [[given, id]];
  if (id.startsWith('models/')) candidates.push([given, id.slice('models/'.length)]);
  const slash = id.indexOf('/');
  if (slash > 0) candidates.push([ecologitsProviderOf(id.slice(0, slash)), id.slice(slash + 1)]);
  for (const [ecoProvider, name] of candidates) {
    if (ecoProvider === undefined) continue;
    const found = modelIndex().get(ecoProvider)?.get(name);
    if (found === undefined) continue;
    const [, parameters, bits = 0] = found.entry;
    const moe = typeof parameters === 'object' && !Array.isArray(parameters);
    const model: EstimateModel = {
      provider: ecoProvider,
      modelId: found.aliasOf === undefined ? name : found.aliasOf,
      architecture: moe ? 'moe' : 'dense',
      activeParametersBillion: count(moe ? parameters.active : parameters),
      totalParametersBillion: count(moe ? parameters.total : parameters),
      warnings: WARNING_CODES.filter(([bit]) => (bits & bit) !== 0).map(([, code]) => code),
    };
    if (found.aliasOf !== undefined) model.aliasOf = found.aliasOf;
    return model;
  }
  return undefined;
}

/**
 * The providers EcoLogits has data for, with their model count, datacenter zone and PUE — the
 * compatibility table of the README.
 *
 * @example
 * ```ts
 * for (const p of estimateProviders()) console.log(p.provider, p.models, p.zone);
 * ```
 */
export function estimateProviders(): Array<{ provider: string; models: number; zone: string; pue: number | CarbonRange }> {
  return Object.keys(ECOLOGITS_MODELS).map((provider) => {
    const config = ECOLOGITS_PROVIDERS[provider]!;
    return { provider, models: ECOLOGITS_MODELS[provider]!.length, zone: config.datacenterLocation, pue: config.datacenterPue };
  });
}

function count(value: EcoLogitsCount): number | CarbonRange {
  return Array.isArray(value) ? { min: value[0], max: value[1] } : value;
}
