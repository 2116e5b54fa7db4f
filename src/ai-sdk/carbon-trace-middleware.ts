import { createCarbonTraceAccumulator } from '../core/accumulator';
import { createCallEstimator, type CarbonEstimateSetting } from '../core/call-estimator';
import { mergeAttributes, outcomeOfError, withUsageTokens } from '../core/call-details';
import { bookAtGrid, type GridIntensitySetting } from '../core/grid-intensity';
import { CARBON_METADATA_KEY, ESTIMATE_METADATA_KEY, findCarbonTrace, readCarbonTrace } from '../core/parse-carbon-trace';
import { createWarner, reportCall, type CarbonTraceWarningHandler, type TraceAbsence } from '../core/report';
import { createSessionEmissions } from '../core/session-emissions';
import { getActiveSpan, setCarbonSpanAttributes } from '../core/span-attributes';
import type { CallOutcome, CarbonAttributes, CarbonEstimate, CarbonMetrics, CarbonMetricsRecorder } from '../core/types';
import { loadEstimateCall } from '../estimate/load';
import { createCallTraceFetch, type OpenCall } from './call-trace-fetch';
import { createEmbeddingGroups } from './embedding-sum';

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
  /** The `provider` option, or the model's provider id, e.g. `'garden.chat'`. */
  provider: string;
  modelId: string;
  /** `'embed'`: one request of `embed` / `embedMany` (through `wrapEmbeddingModel`). */
  type: 'generate' | 'stream' | 'embed';
  /** What the call was: `'chat'` for a language model, `'embedding'` for an embedding model. */
  kind: 'chat' | 'embedding';
  /** The middleware's `attributes`, then the call's `providerOptions.carbonTrace.attributes`. */
  attributes: CarbonAttributes;
  /**
   * How the call ended: `'completed'`, `'failed'` (an error, e.g. HTTP 500 or a cut stream) or
   * `'aborted'` (cancelled by the caller). Failed and aborted calls count in `calls` too.
   */
  outcome: CallOutcome;
  /**
   * With the `estimate` option: the EcoLogits estimate of a call that carried no trace (then
   * `metrics` is `undefined`). Never set for a traced call.
   */
  estimate?: CarbonEstimate;
};

/**
 * What the `attributes` option function is told about a call.
 *
 * @example
 * ```ts
 * const attributes = (call: CarbonTraceAttributeCall) => ({ route: call.type === 'stream' ? 'chat' : 'batch' });
 * ```
 */
export type CarbonTraceAttributeCall = {
  provider: string;
  modelId: string;
  type: 'generate' | 'stream' | 'embed';
  /** The call's provider options, as passed to `generateText` / `streamText` / `embed`. */
  providerOptions: Record<string, unknown> | undefined;
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
   * Called once per model call: at the end of `generate` (also when it fails), or when a stream
   * finishes, errors or is cancelled. `undefined` when the call carried no usable trace, so
   * lost coverage is visible; `context.outcome` says whether it completed. A throw or rejection
   * here is reported, never raised.
   */
  onMetrics?: (metrics: CarbonMetrics | undefined, context: CarbonTraceCallContext) => unknown;
  /** Records every call, traced or not: a `CarbonTracker`, an OpenTelemetry recorder, or several. */
  tracker?: CarbonMetricsRecorder | readonly CarbonMetricsRecorder[];
  /**
   * Where warnings go (missing or malformed traces, a throwing `onMetrics`).
   * Default: `console.warn`, each distinct warning once. `false` silences them.
   */
  onWarning?: CarbonTraceWarningHandler;
  /**
   * Attributes of every call (`{ service: 'support-bot' }`), or a function that gives them per
   * call. A call's own `providerOptions: { carbonTrace: { attributes } }` are added on top. They
   * reach `onMetrics`, the trackers (`tracker.byAttribute('feature')`) and, for the keys it is
   * allowed, the OpenTelemetry recorder.
   */
  attributes?: CarbonAttributes | ((call: CarbonTraceAttributeCall) => CarbonAttributes | undefined);
  /**
   * The provider name in records, totals and `onMetrics`. Default: the model's own provider id
   * (`createOpenAICompatible({ name: 'garden' })` gives `'garden.chat'`). Set the same name on
   * the LangChain handler to see one server as one series.
   */
  provider?: string;
  /**
   * Estimate the calls that carry no trace — API providers — with EcoLogits' method, from the
   * model's size, the tokens generated and the latency measured here: `true`, or `{ zone }` to
   * set the electricity zone. The estimate goes to `providerMetadata.ecologits` (read it with
   * `getCarbonEstimate`), to `onMetrics` as `context.estimate`, and to the trackers apart from
   * traces — never to `codecarbon`. A call with a trace is never estimated. A call that was
   * estimated raises no "no x_carbon_trace" warning (that is what you asked for); one that could
   * not be (an unknown model, no token count) still does, with the reason. Default: off.
   */
  estimate?: CarbonEstimateSetting;
  /**
   * The grid the traced calls' emissions are booked at: `gwpKgco2eq` is recomputed from each
   * call's measured energy at this intensity (flagged in its `warnings`), for a server whose
   * CodeCarbon does not know its grid, or to book at a live figure. A fixed
   * `{ gCo2PerKwh, source? }`, or a provider (`createElectricityMapsProvider` from
   * `carbon-trace/grid`) whose `current()` is read as each call is booked. Reaches
   * `providerMetadata`, `onMetrics`, the trackers and OpenTelemetry. Estimates keep their own
   * grid (`estimate: { gridIntensity }`). Default: the server's own figure.
   */
  gridIntensity?: GridIntensitySetting;
  /**
   * The fetch that the middleware's own `fetch` sends requests with. Default: `globalThis.fetch`,
   * read at each request.
   */
  fetch?: typeof globalThis.fetch;
};

// Loose on purpose: one object must satisfy the middleware types of ai@5 (v2), ai@6 (v3) and
// ai@7 (v4), whose params and results differ in detail but not in the fields we touch.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * A middleware accepted by `wrapLanguageModel` of ai@5, ai@6 and ai@7, and by
 * `wrapEmbeddingModel` of ai@6 and ai@7 (ai@5 has none).
 *
 * `specificationVersion: 'v3'` is required by ai@6, ignored by ai@5 and accepted by ai@7;
 * returns are `Promise`s because ai@5 rejects `PromiseLike` ones. `transformParams` takes an
 * optional `type`: embedding models call it without one.
 *
 * @example
 * ```ts
 * const carbon: CarbonTraceMiddleware = carbonTraceMiddleware();
 * const ollama = createOllama({ fetch: carbon.fetch });
 * const model = wrapLanguageModel({ model: ollama('llama3.2'), middleware: carbon });
 * ```
 */
export type CarbonTraceMiddleware = {
  readonly specificationVersion: 'v3';
  transformParams: (options: { type?: 'generate' | 'stream'; params: Loose; model: Loose }) => Promise<Loose>;
  wrapGenerate: (options: { doGenerate: () => PromiseLike<Loose>; doStream: () => PromiseLike<Loose>; params: Loose; model: Loose }) => Promise<Loose>;
  wrapStream: (options: { doGenerate: () => PromiseLike<Loose>; doStream: () => PromiseLike<Loose>; params: Loose; model: Loose }) => Promise<Loose>;
  wrapEmbed: (options: { doEmbed: () => PromiseLike<Loose>; params: Loose; model: Loose }) => Promise<Loose>;
  /**
   * A `fetch` to give the provider when it drops `x_carbon_trace` before any middleware sees it
   * — `ollama-ai-provider-v2`'s streams: `createOllama({ fetch: carbon.fetch })`. It reads each
   * response on its way to the provider, bytes unchanged, and hands the trace to the call that
   * sent the request. Once you have read this property, each call of this middleware gives the
   * provider an `AbortSignal` of its own (following yours), by which the fetch knows the call;
   * the request itself is not changed.
   */
  readonly fetch: typeof globalThis.fetch;
};

type StreamPart = { type: string; rawValue?: unknown; providerMetadata?: Record<string, unknown> };

/**
 * Reads the CodeCarbon trace of every call to a self-hosted model and puts it at
 * `providerMetadata.codecarbon`, beside the provider's own metadata. One middleware serves
 * `wrapLanguageModel` (chat) and `wrapEmbeddingModel` (`embed`, `embedMany`).
 *
 * - generate and embed: from the raw response body (every wire: chat completions, Responses,
 *   Anthropic Messages, Ollama, embeddings).
 * - stream: from the raw chunks (requested from the provider and removed again unless you
 *   asked for them), onto the `finish` part.
 * - a provider that drops the trace before any middleware sees it (`ollama-ai-provider-v2`'s
 *   streams): give it the middleware's `fetch`, which reads the response on its way.
 * - `embedMany` split into several requests: their sum, stated in its `warnings`.
 *
 * The model call itself is never changed: no trace means no `codecarbon` key (and a warning),
 * and errors reach you exactly as without the middleware.
 *
 * @example
 * ```ts
 * import { embed, generateText, wrapEmbeddingModel, wrapLanguageModel } from 'ai';
 * import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
 * import { carbonTraceMiddleware, getCarbonMetrics } from 'carbon-trace/ai-sdk';
 *
 * const garden = createOpenAICompatible({ name: 'garden', baseURL: 'http://gpu-box:8000/v1' });
 * const carbon = carbonTraceMiddleware();
 * const model = wrapLanguageModel({ model: garden('llama-3.1-8b'), middleware: carbon });
 *
 * const result = await generateText({ model, prompt: 'Hello' });
 * getCarbonMetrics(result)?.gwpKgco2eq; // kgCO2eq, as measured by the server
 *
 * const embedder = wrapEmbeddingModel({ model: garden.embeddingModel('bge-m3'), middleware: carbon });
 * getCarbonMetrics(await embed({ model: embedder, value: 'Hello' }))?.energyKwh;
 * ```
 */
export function carbonTraceMiddleware(options: CarbonTraceMiddlewareOptions = {}): CarbonTraceMiddleware {
  const warn = createWarner(options.onWarning);
  // Per-call state, keyed by the params object we hand on (the wrap functions receive it back).
  const callerWantsRaw = new WeakMap<object, boolean>();
  const openCalls = new WeakMap<object, OpenCall>();
  const sessions = createSessionEmissions();
  const estimator = createCallEstimator(options.estimate, warn, loadEstimateCall);
  const calls = createCallTraceFetch(options.fetch);
  const embeddingGroups = createEmbeddingGroups();
  // Calls get a signal of their own only once the fetch has been handed out: until then no
  // provider can be using it, and the params stay exactly the caller's.
  let fetchTaken = false;

  function callContext(model: Loose, params: Loose, type: 'generate' | 'stream' | 'embed', outcome: CallOutcome): CarbonTraceCallContext {
    const provider = typeof options.provider === 'string' && options.provider !== '' ? options.provider : String(model?.provider ?? 'unknown');
    const modelId = String(model?.modelId ?? 'unknown');
    const providerOptions = params?.providerOptions;
    let defaults: unknown = options.attributes;
    if (typeof defaults === 'function') {
      try {
        defaults = (defaults as (call: CarbonTraceAttributeCall) => unknown)({ provider, modelId, type, providerOptions });
      } catch (error) {
        warn(`attributes\0${String(error)}`, `the attributes option threw: ${error instanceof Error ? error.message : String(error)}`);
        defaults = undefined;
      }
    }
    const kind = type === 'embed' ? 'embedding' : 'chat';
    return { provider, modelId, type, kind, attributes: mergeAttributes(defaults, providerOptions?.carbonTrace?.attributes), outcome };
  }

  /**
   * Why a completed call has no trace, in the words that fix it for the client at hand: a
   * provider that drops the trace from streams needs the middleware's fetch.
   */
  function absenceOf(source: string, model: Loose, type: 'generate' | 'stream' | 'embed', call: OpenCall | undefined): TraceAbsence | undefined {
    if (type !== 'stream' || !dropsStreamedTrace(model)) return undefined;
    if (call === undefined) {
      return {
        reason: 'other',
        key: 'needs-fetch',
        message: `ollama-ai-provider-v2 drops x_carbon_trace from the streamed responses of ${source} before any middleware sees them: pass the middleware's fetch to the provider — const carbon = carbonTraceMiddleware(); createOllama({ fetch: carbon.fetch }); wrapLanguageModel({ model, middleware: carbon })`,
      };
    }
    if (!call.slot.seen) {
      return {
        reason: 'other',
        key: 'fetch-unseen',
        message: `the middleware's fetch did not see the streamed response of ${source}: give the provider the fetch of the same middleware that wraps the model — createOllama({ fetch: carbon.fetch }) and wrapLanguageModel({ model, middleware: carbon })`,
      };
    }
    return undefined;
  }

  /**
   * Derives what a session snapshot leaves open, fills tokens from the response's usage,
   * estimates a call that carried no trace when asked to, tells every sink, and returns what the
   * call's metadata should carry.
   */
  function report(
    read: { metrics: CarbonMetrics | undefined; problem?: string } | undefined,
    context: CarbonTraceCallContext,
    call?: { usage: unknown; model: Loose; startedAt: number; open: OpenCall | undefined },
  ): { metrics?: CarbonMetrics; estimate?: CarbonEstimate } {
    const source = `${context.provider}/${context.modelId}`;
    const tokens: { promptTokens?: unknown; completionTokens?: unknown } =
      context.kind === 'embedding' ? { promptTokens: (call?.usage as Loose)?.tokens } : tokensOf(call?.usage);
    // The server's session totals are read before the grid recomputes anything.
    const metrics = bookAtGrid(withUsageTokens(sessions.apply(source, read?.metrics), tokens), options.gridIntensity, options.onWarning);
    const absence: TraceAbsence =
      context.outcome !== 'completed'
        ? { reason: 'failed' }
        : read?.problem !== undefined
          ? { reason: 'unusable', problem: read.problem }
          : (read === undefined ? absenceOf(source, call?.model, context.type, call?.open) : undefined) ?? { reason: 'no-trace' };
    // Only a completed chat call with no trace at all: a broken trace still came from a traced
    // server, and EcoLogits' method is one of generation.
    const estimate =
      estimator !== undefined && read === undefined && absence.reason === 'no-trace' && call !== undefined && context.kind === 'chat'
        ? estimator.estimate({
            provider: String(call.model?.provider ?? 'unknown'),
            modelId: context.modelId,
            completionTokens: tokens.completionTokens,
            promptTokens: tokens.promptTokens,
            latencySeconds: (performance.now() - call.startedAt) / 1000,
          })
        : undefined;
    if (estimate !== undefined) context.estimate = estimate;
    const record = { provider: context.provider, modelId: context.modelId, attributes: context.attributes, kind: context.kind };
    reportCall(warn, options, { source, absence, record, estimate }, metrics, context);
    return { ...(metrics ? { metrics } : {}), ...(estimate ? { estimate } : {}) };
  }

  /** The trace of a whole response body, or else what the fetch saw; `undefined` when neither had one. */
  function readTrace(body: unknown, open: OpenCall | undefined): { metrics: CarbonMetrics | undefined; problem?: string } | undefined {
    let trace = findCarbonTrace(body);
    if (trace === undefined && open?.slot.hasTrace === true) trace = open.slot.trace;
    return trace === undefined ? undefined : readCarbonTrace(trace);
  }

  const middleware: CarbonTraceMiddleware = {
    specificationVersion: 'v3',

    get fetch() {
      fetchTaken = true;
      return calls.fetch;
    },

    async transformParams({ type, params }) {
      const forceRaw = type === 'stream' && params?.includeRawChunks !== true;
      if (!forceRaw && !fetchTaken) return params;
      const transformed = { ...params };
      if (forceRaw) {
        transformed.includeRawChunks = true;
        callerWantsRaw.set(transformed, false);
      }
      if (fetchTaken) {
        const open = calls.open(params?.abortSignal);
        transformed.abortSignal = open.signal;
        openCalls.set(transformed, open);
      }
      return transformed;
    },

    async wrapGenerate({ doGenerate, params, model }) {
      const startedAt = performance.now();
      const open = openCalls.get(params);
      let result: Loose;
      try {
        result = await doGenerate();
      } catch (error) {
        open?.close();
        // A failed call is still a call: it counts, without metrics, and the error is the caller's.
        safely(() => report(undefined, callContext(model, params, 'generate', outcomeOfError(error))));
        throw error;
      }
      open?.close();
      try {
        const read = readTrace(result?.response?.body, open);
        if (read === undefined && estimator?.loaded === false) await estimator.ready;
        const reported = report(read, callContext(model, params, 'generate', 'completed'), { usage: result?.usage, model, startedAt, open });
        setCarbonSpanAttributes(getActiveSpan(), reported.metrics);
        if (reported.metrics === undefined && reported.estimate === undefined) return result;
        return { ...result, providerMetadata: withMetrics(result.providerMetadata, reported) };
      } catch {
        return result;
      }
    },

    async wrapStream({ doStream, params, model }) {
      const keepRaw = callerWantsRaw.get(params) ?? true;
      const open = openCalls.get(params);
      // The doStream span is active now, not when the stream is read later.
      const span = getActiveSpan();
      const startedAt = performance.now();
      let streamResult: Loose;
      try {
        streamResult = await doStream();
      } catch (error) {
        open?.close();
        safely(() => report(undefined, callContext(model, params, 'stream', outcomeOfError(error))));
        throw error;
      }
      const { stream, ...rest } = streamResult;
      const accumulator = createCarbonTraceAccumulator({ onWarning: false });
      let reported = false;

      const finishCall = (outcome: CallOutcome, usage?: unknown): { metrics?: CarbonMetrics; estimate?: CarbonEstimate } => {
        if (reported) return {};
        reported = true;
        open?.close();
        const read = accumulator.hasTrace
          ? { metrics: accumulator.build(), ...(accumulator.problem ? { problem: accumulator.problem } : {}) }
          : readTrace(undefined, open);
        const result = report(read, callContext(model, params, 'stream', outcome), { usage, model, startedAt, open });
        setCarbonSpanAttributes(span, result.metrics);
        return result;
      };

      const reader = (stream as ReadableStream<StreamPart>).getReader();
      // Providers report a failed request inside the stream as an error part, not a throw.
      let sawError = false;
      // Pull-based rather than a TransformStream: forced raw parts are skipped without ever
      // being enqueued, which measured markedly cheaper on long streams (DESIGN.md §4).
      const observed = new ReadableStream<StreamPart>({
        async pull(controller) {
          for (;;) {
            let next: ReadableStreamReadResult<StreamPart>;
            try {
              next = await reader.read();
            } catch (error) {
              safely(() => finishCall(outcomeOfError(error)));
              throw error;
            }
            if (next.done) {
              safely(() => finishCall(sawError ? 'failed' : 'completed'));
              controller.close();
              return;
            }
            let part = next.value;
            if (part?.type === 'raw') {
              accumulator.add(part.rawValue); // never throws: it only looks up one key
              if (!keepRaw) continue;
            } else if (part?.type === 'error') {
              sawError = true;
            } else if (part?.type === 'finish') {
              // Loaded by now in all but the first, fastest calls; only then does this wait.
              if (!accumulator.hasTrace && open?.slot.hasTrace !== true && estimator?.loaded === false) await estimator.ready;
              part = safely(() => {
                const reported = finishCall(sawError ? 'failed' : 'completed', (part as { usage?: unknown }).usage);
                return reported.metrics || reported.estimate ? { ...part, providerMetadata: withMetrics(part.providerMetadata, reported) } : part;
              }) ?? part;
            }
            controller.enqueue(part);
            return;
          }
        },
        async cancel(reason) {
          safely(() => finishCall('aborted'));
          await reader.cancel(reason);
        },
      });

      return { ...rest, stream: observed };
    },

    async wrapEmbed({ doEmbed, params, model }) {
      const open = openCalls.get(params);
      const member = safely(() => embeddingGroups.join(params));
      let result: Loose;
      try {
        result = await doEmbed();
      } catch (error) {
        open?.close();
        safely(() => member?.settle('failed'));
        safely(() => report(undefined, callContext(model, params, 'embed', outcomeOfError(error))));
        throw error;
      }
      open?.close();
      try {
        const read = readTrace(result?.response?.body, open);
        const reported = report(read, callContext(model, params, 'embed', 'completed'), { usage: result?.usage, model, startedAt: 0, open });
        setCarbonSpanAttributes(getActiveSpan(), reported.metrics);
        // embedMany merges its requests' metadata key by key; the group decides what this one carries.
        const metadata = member === undefined ? reported.metrics : member.settle({ metrics: reported.metrics });
        if (metadata === undefined) return result;
        const existing = typeof result.providerMetadata === 'object' && result.providerMetadata !== null ? result.providerMetadata : {};
        return { ...result, providerMetadata: { ...existing, [CARBON_METADATA_KEY]: metadata } };
      } catch {
        return result;
      }
    },
  };
  return middleware;
}

/**
 * Whether the model is one of `ollama-ai-provider-v2`'s, whose streams validate each NDJSON line
 * against a schema that strips unknown fields, `x_carbon_trace` included.
 */
function dropsStreamedTrace(model: Loose): boolean {
  const provider = String(model?.provider ?? '');
  const className = String(model?.constructor?.name ?? '');
  return /^ollama(\.|$)/i.test(provider) || /^Ollama\w*LanguageModel$/.test(className);
}

/**
 * Token counts of a provider-level usage: ai@5 (v2) has numbers, ai@6/7 (v3/v4) `{ total }`.
 */
function tokensOf(usage: Loose): { promptTokens?: unknown; completionTokens?: unknown } {
  if (usage === null || typeof usage !== 'object') return {};
  const total = (value: Loose) => (typeof value === 'number' ? value : value?.total);
  return { promptTokens: total(usage.inputTokens), completionTokens: total(usage.outputTokens) };
}

function withMetrics(providerMetadata: unknown, reported: { metrics?: CarbonMetrics; estimate?: CarbonEstimate }): Record<string, unknown> {
  const existing = typeof providerMetadata === 'object' && providerMetadata !== null ? providerMetadata : {};
  if (reported.metrics !== undefined) return { ...existing, [CARBON_METADATA_KEY]: reported.metrics };
  return { ...existing, [ESTIMATE_METADATA_KEY]: reported.estimate };
}

// Our own bookkeeping must never turn into an error of the user's stream.
function safely<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
