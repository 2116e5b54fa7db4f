import type { GridIntensitySetting } from './grid-intensity';
import type { CarbonTraceWarningHandler } from './report';
import type { CarbonEstimate } from './types';

/**
 * The adapters' `estimate` option: `true` to estimate every call that carries no trace with
 * EcoLogits' method, or settings for it.
 *
 * @example
 * ```ts
 * carbonTraceMiddleware({ estimate: { zone: 'FR' } });
 * ```
 */
export type CarbonEstimateSetting =
  | boolean
  | {
      /**
       * Electricity zone of every estimate (`'FR'`, `'FRA'`, `'WORLD'`). Default: the provider's
       * datacenter country in EcoLogits' data.
       */
      zone?: string;
      /**
       * The provider whose models these are, when the SDK's own name says nothing (a gateway):
       * `'openai'`, `'anthropic'`, `'mistralai'`, `'google_genai'`, `'cohere'`, `'huggingface_hub'`.
       * Default: the model's provider id (`'openai.chat'`) or LangChain's `ls_provider`.
       */
      provider?: string;
      /**
       * The grid of every estimate, instead of the zone's: a fixed intensity, or a provider
       * (`createElectricityMapsProvider`) read when each call is estimated. Wins over `zone`.
       */
      gridIntensity?: GridIntensitySetting;
    };

/**
 * What an adapter knows of a finished call that carried no trace.
 *
 * @example
 * ```ts
 * estimator.estimate({ provider: 'openai.chat', modelId: 'gpt-4o-mini', completionTokens: 40, promptTokens: 12, latencySeconds: 1.2 });
 * ```
 */
export type EstimableCall = { provider: string; modelId: string; completionTokens: unknown; promptTokens?: unknown; latencySeconds: number };

/**
 * The adapters' side of `carbon-trace/estimate`: loads it on first use, so its model data is
 * downloaded, parsed and held only by apps that turned estimates on.
 *
 * @example
 * ```ts
 * const estimator = createCallEstimator(options.estimate, warn);
 * if (estimator && !estimator.loaded) await estimator.ready;
 * const estimate = estimator?.estimate(call);
 * ```
 */
export type CallEstimator = {
  /** Settles once the estimate module is loaded (or failed to load); never rejects. */
  readonly ready: Promise<void>;
  /** Whether {@link CallEstimator.estimate} can answer now. */
  readonly loaded: boolean;
  /** The call's estimate, or `undefined` (warned about) when it cannot be estimated. */
  estimate(call: EstimableCall): CarbonEstimate | undefined;
};

/**
 * One call as the estimate function takes it (`carbon-trace/estimate`'s `estimateCallImpact`).
 *
 * @example
 * ```ts
 * const call: CallEstimateInput = { provider: 'openai', modelId: 'gpt-4o-mini', outputTokens: 40, latencySeconds: 1.2 };
 * ```
 */
export type CallEstimateInput = {
  provider: string;
  modelId: string;
  outputTokens: number;
  latencySeconds?: number;
  zone?: string;
  promptTokens?: number;
  gridIntensity?: GridIntensitySetting;
};

/**
 * The estimate function the core is handed: `carbon-trace/estimate`'s `estimateCallImpact`.
 *
 * @example
 * ```ts
 * const estimateFn: EstimateCallFn = estimateCallImpact;
 * ```
 */
export type EstimateCallFn = (call: CallEstimateInput, options: { onWarning?: CarbonTraceWarningHandler }) => CarbonEstimate | undefined;

/**
 * Loads the estimate function on demand. The adapters pass one that imports
 * `carbon-trace/estimate` lazily, so the core never imports upward and the model data stays in
 * its own chunk, fetched only by apps that turn estimates on.
 *
 * @example
 * ```ts
 * const load: EstimateLoader = () => import('carbon-trace/estimate').then((m) => m.estimateCallImpact);
 * ```
 */
export type EstimateLoader = () => Promise<EstimateCallFn>;

/**
 * Makes the estimator of an adapter, or `undefined` when `setting` does not ask for estimates;
 * `load` is called once, then, to fetch the estimate function.
 *
 * @example
 * ```ts
 * const estimator = createCallEstimator(true, (key, message) => console.warn(message), loadEstimateCall);
 * ```
 */
export function createCallEstimator(
  setting: CarbonEstimateSetting | undefined,
  warn: (key: string, message: string) => void,
  load: EstimateLoader,
): CallEstimator | undefined {
  if (setting === undefined || setting === false || setting === null) return undefined;
  const settings = typeof setting === 'object' ? setting : {};
  const zone = typeof settings.zone === 'string' ? settings.zone : undefined;
  const provider = typeof settings.provider === 'string' && settings.provider !== '' ? settings.provider : undefined;
  const gridIntensity = settings.gridIntensity ?? undefined;
  let estimateFn: EstimateCallFn | undefined;
  const onWarning = (message: string) => warn(message, message);
  // A loader that throws instead of rejecting fails the same way.
  const ready = Promise.resolve().then(load).then(
    (fn) => {
      estimateFn = fn;
    },
    (error: unknown) => warn('estimate-load', `carbon-trace/estimate could not be loaded, so no call is estimated: ${String(error)}`),
  );
  return {
    ready,
    get loaded() {
      return estimateFn !== undefined;
    },
    estimate(call) {
      if (estimateFn === undefined) return undefined;
      if (call.completionTokens === undefined) {
        const message = `no EcoLogits estimate for ${call.provider}/${call.modelId}: the response reported no output token count`;
        warn(message, message);
        return undefined;
      }
      const input: CallEstimateInput = {
        provider: provider ?? call.provider,
        modelId: call.modelId,
        outputTokens: call.completionTokens as number,
        latencySeconds: call.latencySeconds,
      };
      if (zone !== undefined) input.zone = zone;
      if (gridIntensity !== undefined) input.gridIntensity = gridIntensity;
      if (call.promptTokens !== undefined) input.promptTokens = call.promptTokens as number;
      return estimateFn(input, { onWarning });
    },
  };
}
