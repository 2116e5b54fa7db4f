import { createCarbonTraceAccumulator } from '../core/accumulator';
import { CARBON_METADATA_KEY, findCarbonTrace, parseCarbonTrace } from '../core/parse-carbon-trace';
import { createWarner, reportCall, type CarbonTraceWarningHandler } from '../core/report';
import { getActiveSpan, setCarbonSpanAttributes } from '../core/span-attributes';
import type { CarbonMetrics, CarbonMetricsRecorder } from '../core/types';

/**
 * What `onMetrics` is told about the call.
 *
 * @example
 * ```ts
 * const onMetrics = (m: CarbonMetrics | undefined, ctx: CarbonTraceCallContext) =>
 *   console.log(ctx.provider, ctx.modelId, ctx.type, m?.gwpKgco2eq);
 * ```
 */
export type CarbonTraceCallContext = {
  /** The model's provider id, e.g. `'model-garden.chat'`. */
  provider: string;
  modelId: string;
  type: 'generate' | 'stream';
};

/**
 * Options of {@link carbonTraceMiddleware}.
 *
 * @example
 * ```ts
 * carbonTraceMiddleware({ onMetrics: (m, { modelId }) => console.log(modelId, m?.gwpKgco2eq) });
 * ```
 */
export type CarbonTraceMiddlewareOptions = {
  /**
   * Called once per model call that returns: at the end of `generate`, or when a stream
   * finishes, errors or is cancelled. `undefined` when the call carried no usable trace, so
   * lost coverage is visible. A throw or rejection here is reported, never raised.
   */
  onMetrics?: (metrics: CarbonMetrics | undefined, context: CarbonTraceCallContext) => void | Promise<void>;
  /** Records every call, traced or not: a `CarbonTracker`, an OpenTelemetry recorder, or several. */
  tracker?: CarbonMetricsRecorder | readonly CarbonMetricsRecorder[];
  /**
   * Where warnings go (missing or malformed traces, a throwing `onMetrics`).
   * Default: `console.warn`, each distinct warning once. `false` silences them.
   */
  onWarning?: CarbonTraceWarningHandler;
};

// Loose on purpose: one object must satisfy the middleware types of ai@5 (v2), ai@6 (v3) and
// ai@7 (v4), whose params and results differ in detail but not in the fields we touch.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * A language-model middleware accepted by `wrapLanguageModel` of ai@5, ai@6 and ai@7.
 *
 * `specificationVersion: 'v3'` is required by ai@6, ignored by ai@5 and accepted by ai@7;
 * returns are `Promise`s because ai@5 rejects `PromiseLike` ones.
 *
 * @example
 * ```ts
 * const middleware: CarbonTraceMiddleware = carbonTraceMiddleware();
 * ```
 */
export type CarbonTraceMiddleware = {
  readonly specificationVersion: 'v3';
  transformParams: (options: { type: 'generate' | 'stream'; params: Loose; model: Loose }) => Promise<Loose>;
  wrapGenerate: (options: { doGenerate: () => PromiseLike<Loose>; doStream: () => PromiseLike<Loose>; params: Loose; model: Loose }) => Promise<Loose>;
  wrapStream: (options: { doGenerate: () => PromiseLike<Loose>; doStream: () => PromiseLike<Loose>; params: Loose; model: Loose }) => Promise<Loose>;
};

type StreamPart = { type: string; rawValue?: unknown; providerMetadata?: Record<string, unknown> };

/**
 * Reads the CodeCarbon trace of every call to a self-hosted OpenAI-compatible model and puts it
 * at `providerMetadata.codecarbon`, beside the provider's own metadata.
 *
 * - generate: from the raw response body.
 * - stream: from the raw SSE chunks (requested from the provider and removed again unless you
 *   asked for them), onto the `finish` part.
 *
 * The model call itself is never changed: no trace means no `codecarbon` key (and a warning),
 * and errors reach you exactly as without the middleware.
 *
 * @example
 * ```ts
 * import { generateText, wrapLanguageModel } from 'ai';
 * import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
 * import { carbonTraceMiddleware, getCarbonMetrics } from 'carbon-trace/ai-sdk';
 *
 * const garden = createOpenAICompatible({ name: 'garden', baseURL: 'http://gpu-box:8000/v1' });
 * const model = wrapLanguageModel({ model: garden('llama-3.1-8b'), middleware: carbonTraceMiddleware() });
 *
 * const result = await generateText({ model, prompt: 'Hello' });
 * getCarbonMetrics(result)?.gwpKgco2eq; // kgCO2eq, as measured by the server
 * ```
 */
export function carbonTraceMiddleware(options: CarbonTraceMiddlewareOptions = {}): CarbonTraceMiddleware {
  const warn = createWarner(options.onWarning);
  // Whether the caller itself asked for raw chunks, keyed by the params object we hand on.
  const callerWantsRaw = new WeakMap<object, boolean>();

  function report(metrics: CarbonMetrics | undefined, traceSeen: boolean, context: CarbonTraceCallContext): void {
    const record = { provider: context.provider, modelId: context.modelId };
    reportCall(warn, options, { source: `${context.provider}/${context.modelId}`, traceSeen, record }, metrics, context);
  }

  return {
    specificationVersion: 'v3',

    async transformParams({ type, params }) {
      if (type !== 'stream' || params?.includeRawChunks === true) return params;
      const forced = { ...params, includeRawChunks: true };
      callerWantsRaw.set(forced, false);
      return forced;
    },

    async wrapGenerate({ doGenerate, model }) {
      const result = await doGenerate();
      try {
        const trace = findCarbonTrace(result?.response?.body);
        const metrics = parseCarbonTrace(trace);
        setCarbonSpanAttributes(getActiveSpan(), metrics);
        report(metrics, trace !== undefined, callContext(model, 'generate'));
        if (metrics === undefined) return result;
        return { ...result, providerMetadata: withMetrics(result.providerMetadata, metrics) };
      } catch {
        return result;
      }
    },

    async wrapStream({ doStream, params, model }) {
      const keepRaw = callerWantsRaw.get(params) ?? true;
      // The doStream span is active now, not when the stream is read later.
      const span = getActiveSpan();
      const { stream, ...rest } = await doStream();
      const context = callContext(model, 'stream');
      const accumulator = createCarbonTraceAccumulator();
      let reported = false;

      const finishCall = (): CarbonMetrics | undefined => {
        if (reported) return undefined;
        reported = true;
        const metrics = accumulator.build();
        setCarbonSpanAttributes(span, metrics);
        report(metrics, accumulator.hasTrace, context);
        return metrics;
      };

      const reader = (stream as ReadableStream<StreamPart>).getReader();
      // Pull-based rather than a TransformStream: forced raw parts are skipped without ever
      // being enqueued, which measured markedly cheaper on long streams (DESIGN.md §4).
      const observed = new ReadableStream<StreamPart>({
        async pull(controller) {
          for (;;) {
            let next: ReadableStreamReadResult<StreamPart>;
            try {
              next = await reader.read();
            } catch (error) {
              safely(finishCall);
              throw error;
            }
            if (next.done) {
              safely(finishCall);
              controller.close();
              return;
            }
            let part = next.value;
            if (part?.type === 'raw') {
              accumulator.add(part.rawValue); // never throws: it only looks up one key
              if (!keepRaw) continue;
            } else if (part?.type === 'finish') {
              part = safely(() => {
                const metrics = finishCall();
                return metrics ? { ...part, providerMetadata: withMetrics(part.providerMetadata, metrics) } : part;
              }) ?? part;
            }
            controller.enqueue(part);
            return;
          }
        },
        async cancel(reason) {
          safely(finishCall);
          await reader.cancel(reason);
        },
      });

      return { ...rest, stream: observed };
    },
  };
}

function callContext(model: Loose, type: 'generate' | 'stream'): CarbonTraceCallContext {
  return { provider: String(model?.provider ?? 'unknown'), modelId: String(model?.modelId ?? 'unknown'), type };
}

function withMetrics(providerMetadata: unknown, metrics: CarbonMetrics): Record<string, unknown> {
  const existing = typeof providerMetadata === 'object' && providerMetadata !== null ? providerMetadata : {};
  return { ...existing, [CARBON_METADATA_KEY]: metrics };
}

// Our own bookkeeping must never turn into an error of the user's stream.
function safely<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
