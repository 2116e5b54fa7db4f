import { BaseCallbackHandler, type BaseCallbackHandlerInput } from '@langchain/core/callbacks/base';
import type { Serialized } from '@langchain/core/load/serializable';
import type { LLMResult } from '@langchain/core/outputs';
import { createCallEstimator, type CallEstimator, type CarbonEstimateSetting } from '../core/call-estimator';
import { mergeAttributes, outcomeOfError, withUsageTokens } from '../core/call-details';
import { bookAtGrid, type GridIntensitySetting } from '../core/grid-intensity';
import { CARBON_METADATA_KEY, ESTIMATE_METADATA_KEY, findCarbonTrace, readCarbonTrace } from '../core/parse-carbon-trace';
import { createWarner, reportCall, safeInvoke, type CarbonTraceWarningHandler, type TraceAbsence } from '../core/report';
import { createSessionEmissions } from '../core/session-emissions';
import { addCarbonEstimate, addCarbonMetrics, copyTotals, emptyCarbonTotals } from '../core/sum-carbon-metrics';
import type { CallKind, CallOutcome, CarbonAttributes, CarbonEstimate, CarbonMetrics, CarbonMetricsRecorder, CarbonRecordContext, CarbonTotals } from '../core/types';
import { loadEstimateCall } from '../estimate/load';
import { createCaptureFetch, type FetchLike, type ObservedRequest, type ResponseObserver } from './capture-fetch';
import { requestKeyOfMessages, TraceCaptures } from './capture-matching';
import { clientOf, fetchFixFor, type ChatClient } from './client-hints';
import { currentRunnableContext } from './runnable-context';
import { EmbeddingCapture, embeddingPromptTokens, embeddingRequestOf, type EmbeddingOutcome, type EmbeddingRequest } from './embedding-capture';

/**
 * What `onMetrics` is told about the call: an LLM run (`kind: 'chat'`), or an embedding request
 * `handler.fetch` sent (`kind: 'embedding'`).
 *
 * @example
 * ```ts
 * const onMetrics = (m: CarbonMetrics | undefined, run: CarbonLLMRunInfo) => console.log(run.kind, run.modelName, run.outcome, m?.gwpKgco2eq);
 * ```
 */
export type CarbonLLMRunInfo = {
  /**
   * `'chat'` for an LLM run (chat models and LLMs); `'embedding'` for an embedding request seen by
   * `handler.fetch` (`OpenAIEmbeddings`, `OllamaEmbeddings`), which LangChain reports to no handler.
   */
  kind: CallKind;
  /**
   * The LLM run's id. An embedding call has no LangChain run: this is an id carbon-trace gave its
   * HTTP request (`embedding:<uuid>`).
   */
  runId: string;
  /** The run the call was made in. For an embedding call: the runnable it was sent from, when known. */
  parentRunId?: string;
  /**
   * The outermost run this handler saw: the chain or graph invocation, or the model call itself.
   * An embedding call sent from inside a runnable the handler sees (a LangGraph node, a tool, a
   * `RunnableLambda`) belongs to that runnable's root; otherwise it is its own root, `runId`.
   */
  rootRunId: string;
  modelName?: string;
  /** The `provider` option, or the model's `ls_provider` (`'openai'` for ChatOpenAI). */
  provider?: string;
  /** The run's metadata values under the handler's `attributeKeys`. */
  attributes: CarbonAttributes;
  /** How the run ended; failed and aborted runs count in `calls` too. */
  outcome: CallOutcome;
  /**
   * With the `estimate` option: the EcoLogits estimate of a run that carried no trace (then
   * `metrics` is `undefined`). Never set for a traced run.
   */
  estimate?: CarbonEstimate;
};

/**
 * Fields of {@link CarbonTraceCallbackHandler}; LangChain's own handler options pass through.
 *
 * @example
 * ```ts
 * new CarbonTraceCallbackHandler({ onRootRunEnd: (totals) => console.log(totals.gwpKgco2eq) });
 * ```
 */
export interface CarbonTraceCallbackHandlerFields extends BaseCallbackHandlerInput {
  /**
   * Once per LLM run, however it ended, and once per embedding request `handler.fetch` sent
   * (`run.kind` says which); `undefined` when it carried no usable trace. Throws are reported,
   * never raised.
   */
  onMetrics?: (metrics: CarbonMetrics | undefined, run: CarbonLLMRunInfo) => unknown;
  /**
   * Once per root run (chain, graph, agent or bare model call), with the totals of its LLM runs'
   * traces — and, apart, of their EcoLogits estimates when the `estimate` option is on.
   */
  onRootRunEnd?: (totals: CarbonTotals, run: { rootRunId: string; estimates: CarbonTotals }) => unknown;
  /**
   * Remove `additional_kwargs.__raw_response` once the trace is read, so the raw response does
   * not bloat graph state, checkpoints and tracer uploads. Default `true`.
   */
  stripRawResponse?: boolean;
  /**
   * Records every LLM run and every embedding request of `handler.fetch`, traced or not, with its
   * `kind`: a `CarbonTracker`, an OpenTelemetry recorder, or several.
   */
  tracker?: CarbonMetricsRecorder | readonly CarbonMetricsRecorder[];
  /** Where warnings go. Default: `console.warn`, each distinct warning once. `false` silences them. */
  onWarning?: CarbonTraceWarningHandler;
  /** The fetch that `handler.fetch` calls. Default: `globalThis.fetch` at call time. */
  fetch?: FetchLike;
  /**
   * How long a root run may go without any activity in its tree (a run starting or ending, a
   * token) before its state is dropped, ms. Default 1800000 (30 min). LangChain reports no end
   * for a stream the caller stops reading (`break`), nor for chains around an aborted stream;
   * this bounds what such runs leave behind. Their LLM runs count as aborted calls.
   */
  runTtlMs?: number;
  /**
   * Which keys of a run's metadata become attributes, e.g. `['userId', 'feature']` for
   * `invoke(input, { metadata: { userId, feature } })` — metadata set on a chain or graph reaches
   * its model calls. They reach `onMetrics`, the trackers (`tracker.byAttribute('feature')`) and,
   * for the keys it is allowed, the OpenTelemetry recorder. Default: none.
   */
  attributeKeys?: readonly string[];
  /**
   * The provider name in records, totals and `onMetrics`. Default: the model's `ls_provider`
   * (`'openai'` for ChatOpenAI, whatever server it talks to). Set the same name on the AI SDK
   * middleware to see one server as one series.
   */
  provider?: string;
  /**
   * Estimate the runs that carry no trace — API providers — with EcoLogits' method, from the
   * model's size, the tokens generated and the latency measured here: `true`, or `{ zone }` to
   * set the electricity zone. The estimate goes to `message.response_metadata.ecologits` (read
   * it with `getCarbonEstimate`), to `onMetrics` as `run.estimate`, and to the trackers and
   * {@link CarbonTraceCallbackHandler.estimateTotals} apart from traces — never to `codecarbon`.
   * A run with a trace is never estimated. A run that was estimated raises no "no
   * x_carbon_trace" warning (that is what you asked for); one that could not be (an unknown
   * model, no token count) still does, with the reason. Default: off.
   */
  estimate?: CarbonEstimateSetting;
  /**
   * The grid the traced runs' emissions are booked at: `gwpKgco2eq` is recomputed from each
   * run's measured energy at this intensity (flagged in its `warnings`). A fixed
   * `{ gCo2PerKwh, source? }`, or a provider (`createElectricityMapsProvider` from
   * `carbon-trace/grid`) whose `current()` is read as each run is booked. Reaches
   * `response_metadata`, `onMetrics`, the totals and the trackers. Estimates keep their own grid
   * (`estimate: { gridIntensity }`). Default: the server's own figure.
   */
  gridIntensity?: GridIntensitySetting;
}

type LLMState = {
  /** The LangChain class, for warnings that show the fix that works for it. */
  client: ChatClient;
  modelName?: string;
  provider?: string;
  /** The model's own `ls_provider`, whatever the `provider` option says: what the estimate needs. */
  lsProvider?: string;
  startedAt: number;
  attributes: CarbonAttributes;
  /** The last raw trace seen on a streamed chunk (the final figure comes last). */
  chunkTrace?: unknown;
  /** Whether LangChain handed over raw responses (`__includeRawResponse`) on streamed chunks. */
  sawRawChunks?: boolean;
  detachAbort?: () => void;
};
type RunState = { parentRunId?: string; rootRunId: string; llm?: LLMState };
type EmbeddingCall = { request: EmbeddingRequest; attributes: CarbonAttributes; parentRunId?: string; rootRunId?: string };
type RootState = { totals: CarbonTotals; estimates: CarbonTotals; lastActivityAt: number; runIds: Set<string> };

// Bound for state a misbehaving caller could grow: runs that never end.
const MAX_OPEN_RUNS = 10_000;
const DEFAULT_RUN_TTL_MS = 30 * 60_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * A LangChain.js callback handler that reads the CodeCarbon trace of every model call in a
 * chain, agent or LangGraph graph, writes it to `message.response_metadata.codecarbon`, and
 * totals it per root run.
 *
 * Give the model `handler.fetch` to see every trace (invoke, stream, usage-only last chunks), on
 * every wire a LangChain class speaks: chat completions and the Responses API (`ChatOpenAI`),
 * Ollama's NDJSON (`ChatOllama`), Anthropic Messages (`ChatAnthropic`). Given to
 * `OpenAIEmbeddings` or `OllamaEmbeddings`, it books their calls too (`kind: 'embedding'`).
 * Without it the handler reads what the class keeps: `__raw_response` (ChatOpenAI
 * `__includeRawResponse: true`), `response_metadata` (ChatOllama), `llmOutput` (ChatAnthropic).
 *
 * @example
 * ```ts
 * import { ChatOpenAI } from '@langchain/openai';
 * import { CarbonTraceCallbackHandler, getCarbonMetrics } from 'carbon-trace/langchain';
 *
 * const carbon = new CarbonTraceCallbackHandler();
 * const model = new ChatOpenAI({
 *   model: 'llama-3.1-8b',
 *   apiKey: 'not-needed', // self-hosted servers take any key, but the client wants one
 *   configuration: { baseURL: 'http://gpu-box:8000/v1', fetch: carbon.fetch },
 * });
 *
 * const message = await model.invoke('Hello', { callbacks: [carbon] });
 * getCarbonMetrics(message)?.gwpKgco2eq; // kgCO2eq of this call, from response_metadata.codecarbon
 * carbon.totals().energyKwh;             // kWh of every call so far
 *
 * // Other classes take the fetch in their own option:
 * // new ChatOllama({ baseUrl, fetch: carbon.fetch }), new OllamaEmbeddings({ baseUrl, fetch: carbon.fetch }),
 * // new ChatAnthropic({ anthropicApiUrl, clientOptions: { fetch: carbon.fetch } }),
 * // new OpenAIEmbeddings({ configuration: { baseURL, fetch: carbon.fetch } })
 * ```
 */
export class CarbonTraceCallbackHandler extends BaseCallbackHandler {
  name = 'carbon_trace_callback_handler';

  /**
   * A fetch to give the model's HTTP client: it observes each response for `x_carbon_trace`
   * without changing the bytes the client reads. `new ChatOpenAI({ configuration: { fetch } })`,
   * `new ChatOllama({ fetch })`, `new ChatAnthropic({ clientOptions: { fetch } })`.
   *
   * Embedding classes start no LangChain run, so this fetch books their calls itself
   * (`kind: 'embedding'`, in {@link totals}, the trackers and `onMetrics`):
   * `new OpenAIEmbeddings({ configuration: { fetch } })`, `new OllamaEmbeddings({ fetch })`.
   */
  readonly fetch: FetchLike;

  private readonly options: CarbonTraceCallbackHandlerFields;
  private readonly warn: (key: string, message: string) => void;
  private readonly runs = new Map<string, RunState>();
  /** In order of last activity, so the stalest come first. */
  private readonly roots = new Map<string, RootState>();
  private readonly captures = new TraceCaptures();
  private readonly sessions = createSessionEmissions();
  private readonly allTotals = emptyCarbonTotals();
  private readonly allEstimates = emptyCarbonTotals();
  private readonly estimator: CallEstimator | undefined;
  private readonly warnedOnce = new Set<string>();
  /** Trace objects already booked, so that one handed to two runs counts once; weak, so they go with their messages. */
  private readonly bookedTraces = new WeakSet<object>();

  constructor(fields: CarbonTraceCallbackHandlerFields = {}) {
    // Awaited so that response_metadata written in handleLLMEnd is there when invoke returns,
    // and so that a run has started before its model sends the request.
    super({ ...fields, _awaitHandler: true });
    this.options = fields;
    this.warn = createWarner(fields.onWarning);
    this.estimator = createCallEstimator(fields.estimate, this.warn, loadEstimateCall);
    const inner = fields.fetch;
    this.fetch = createCaptureFetch(
      () => inner ?? globalThis.fetch,
      (request) => this.beginRequest(request),
    );
  }

  /**
   * Totals over every call this handler has seen — LLM runs, and the embedding requests of
   * `handler.fetch` — failed and aborted ones included.
   *
   * @example
   * ```ts
   * const { calls, tracedCalls, gwpKgco2eq } = handler.totals();
   * ```
   */
  totals(): CarbonTotals {
    return copyTotals(this.allTotals);
  }

  /**
   * Totals of the EcoLogits estimates of the runs that carried no trace (`estimate` option),
   * never mixed into {@link totals}: `calls` counts every call (embedding requests included, which
   * are never estimated), `tracedCalls` the estimated ones.
   *
   * @example
   * ```ts
   * const { tracedCalls: estimated, gwpKgco2eq } = handler.estimateTotals();
   * ```
   */
  estimateTotals(): CarbonTotals {
    return copyTotals(this.allEstimates);
  }

  /**
   * How much per-run state is held now: open runs, open root runs, responses waiting for their
   * run. All three return to 0 when no run is in flight.
   *
   * @example
   * ```ts
   * expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
   * ```
   */
  pendingState(): { runs: number; roots: number; captures: number } {
    this.dropStaleRoots(Date.now());
    return { runs: this.runs.size, roots: this.roots.size, captures: this.captures.size };
  }

  // ---- run tree -------------------------------------------------------------------------

  override handleChainStart(_chain: Serialized, _inputs: unknown, runId: string, parentRunId?: unknown): void {
    // At runtime the 4th argument is parentRunId, whatever the declared types say.
    this.guard('handleChainStart', () => this.startRun(runId, typeof parentRunId === 'string' ? parentRunId : undefined));
  }

  override handleChainEnd(_outputs: unknown, runId: string): void {
    this.guard('handleChainEnd', () => this.endRun(runId));
  }

  override handleChainError(_err: unknown, runId: string): void {
    this.guard('handleChainError', () => this.endRun(runId));
  }

  override handleToolStart(_tool: Serialized, _input: string, runId: string, parentRunId?: string): void {
    this.guard('handleToolStart', () => this.startRun(runId, parentRunId));
  }

  override handleToolEnd(_output: unknown, runId: string): void {
    this.guard('handleToolEnd', () => this.endRun(runId));
  }

  override handleToolError(_err: unknown, runId: string): void {
    this.guard('handleToolError', () => this.endRun(runId));
  }

  override handleRetrieverStart(_retriever: Serialized, _query: string, runId: string, parentRunId?: string): void {
    this.guard('handleRetrieverStart', () => this.startRun(runId, parentRunId));
  }

  override handleRetrieverEnd(_documents: unknown, runId: string): void {
    this.guard('handleRetrieverEnd', () => this.endRun(runId));
  }

  override handleRetrieverError(_err: unknown, runId: string): void {
    this.guard('handleRetrieverError', () => this.endRun(runId));
  }

  // ---- LLM runs -------------------------------------------------------------------------

  override handleChatModelStart(
    llm: Serialized,
    messages: unknown[][],
    runId: string,
    parentRunId?: string,
    extraParams?: Record<string, unknown>,
    _tags?: string[],
    metadata?: Record<string, unknown>,
  ): void {
    this.guard('handleChatModelStart', () => this.startLLMRun(llm, runId, parentRunId, extraParams, metadata, messages?.[0]));
  }

  override handleLLMStart(
    llm: Serialized,
    prompts: string[],
    runId: string,
    parentRunId?: string,
    extraParams?: Record<string, unknown>,
    _tags?: string[],
    metadata?: Record<string, unknown>,
  ): void {
    this.guard('handleLLMStart', () => this.startLLMRun(llm, runId, parentRunId, extraParams, metadata, prompts?.[0]));
  }

  override handleLLMNewToken(_token: string, _idx: unknown, runId: string, _parentRunId?: string, _tags?: string[], fields?: { chunk?: unknown }): void {
    this.guard('handleLLMNewToken', () => {
      const run = this.runs.get(runId);
      const chunk = fields?.chunk as Loose;
      if (run?.llm === undefined || chunk == null) return;
      this.touch(run.rootRunId);
      // Each chunk's own raw response is clean; the merged message at the end is not (chunk
      // merging adds repeated numbers), so collect the trace here.
      if (chunk.message?.additional_kwargs?.__raw_response !== undefined) run.llm.sawRawChunks = true;
      const raw = findTraceIn(chunk.message) ?? findTraceIn(chunk);
      if (raw !== undefined) run.llm.chunkTrace = raw;
    });
  }

  override handleLLMEnd(output: LLMResult, runId: string, parentRunId?: string, _tags?: string[], extraParams?: Record<string, unknown>): void | Promise<void> {
    // LangChain's cache answered: no model call was made, and the answer's trace (if it kept
    // one) was booked when it was generated. Reading it again would count its energy twice.
    if (extraParams?.cached === true) {
      this.guard('handleLLMEnd', () => this.endCachedRun(runId, parentRunId));
      return;
    }
    // Only the first runs of a handler with `estimate` can end before its data is loaded.
    if (this.estimator?.loaded === false && this.runs.get(runId)?.llm !== undefined) {
      return this.estimator.ready.then(() => this.endLLMRun(output, runId, parentRunId));
    }
    this.endLLMRun(output, runId, parentRunId);
  }

  private endCachedRun(runId: string, parentRunId: string | undefined): void {
    const source = this.runs.get(runId)?.llm?.modelName ?? 'the model';
    this.finishLLMRun(runId, parentRunId, undefined, {
      reason: 'other',
      key: 'cached',
      message: `the answer of ${source} came from LangChain's cache, not from a model call: no carbon metrics for it (the call that generated it was booked then)`,
    }, 'completed');
  }

  private endLLMRun(output: LLMResult, runId: string, parentRunId: string | undefined): void {
    this.guard('handleLLMEnd', () => {
      const run = this.runs.get(runId);
      const { read, absence } = this.readTrace(runId, output, run?.llm);
      const usage = usageOf(output);
      // The server's session totals are read before the grid recomputes anything.
      const metrics = bookAtGrid(withUsageTokens(this.sessions.apply(sessionKey(run?.llm), read?.metrics), usage), this.options.gridIntensity, this.options.onWarning);
      // Only a run with no trace at all: a broken trace still came from a traced server.
      const llm = run?.llm;
      const estimate =
        this.estimator !== undefined && llm !== undefined && read === undefined && absence.reason === 'no-trace'
          ? this.estimator.estimate({
              provider: llm.lsProvider ?? 'unknown',
              modelId: llm.modelName ?? 'unknown',
              completionTokens: usage.completionTokens,
              promptTokens: usage.promptTokens,
              latencySeconds: (performance.now() - llm.startedAt) / 1000,
            })
          : undefined;
      this.writeMetadata(output, metrics, estimate);
      this.finishLLMRun(runId, parentRunId, metrics, absence, 'completed', estimate);
    });
  }

  override handleLLMError(err: unknown, runId: string, parentRunId?: string): void {
    this.guard('handleLLMError', () => this.finishLLMRun(runId, parentRunId, undefined, { reason: 'failed' }, outcomeOfError(err)));
  }

  // ---- internals ------------------------------------------------------------------------

  /** A request is about to be sent through `handler.fetch`: what observes its response. */
  private beginRequest(request: ObservedRequest): ResponseObserver | undefined {
    // No model call is a GET (model lists, health checks): nothing there to tie to a run.
    if (request.method === 'GET' || request.method === 'HEAD') return undefined;
    const embedding = embeddingRequestOf(request);
    if (embedding !== undefined) return this.beginEmbedding(embedding);
    const capture = this.captures.begin(request.body);
    if (capture === undefined) {
      this.warnOnce(
        'fetch-without-runs',
        'handler.fetch saw a request while none of its LLM runs was open, so the response is not read: ' +
          'pass the handler in callbacks as well, e.g. model.invoke(input, { callbacks: [handler] })',
      );
    }
    return capture;
  }

  private startRun(runId: string, parentRunId: string | undefined): RunState {
    const now = Date.now();
    this.dropStaleRoots(now);
    const parent = parentRunId === undefined ? undefined : this.runs.get(parentRunId);
    // A parent we never saw (the handler was attached below it) makes this run a root for us.
    const rootRunId = parent?.rootRunId ?? runId;
    const state: RunState = { rootRunId };
    if (parentRunId !== undefined) state.parentRunId = parentRunId;
    if (this.runs.size >= MAX_OPEN_RUNS) this.dropRoot(this.roots.keys().next().value as string);
    this.runs.set(runId, state);
    if (rootRunId === runId) {
      this.roots.set(runId, { totals: emptyCarbonTotals(), estimates: emptyCarbonTotals(), lastActivityAt: now, runIds: new Set([runId]) });
    }
    else {
      this.roots.get(rootRunId)?.runIds.add(runId);
      this.touch(rootRunId, now);
    }
    return state;
  }

  private startLLMRun(
    llm: Serialized,
    runId: string,
    parentRunId: string | undefined,
    extraParams: Record<string, unknown> | undefined,
    metadata: Record<string, unknown> | undefined,
    messages: unknown,
  ): void {
    const llmState: LLMState = { client: clientOf(llm), attributes: this.attributesOf(metadata), startedAt: performance.now() };
    this.startRun(runId, parentRunId).llm = llmState;
    this.captures.openRun(runId, requestKeyOfMessages(messages));
    const modelName = modelNameOf(llm, extraParams, metadata);
    if (modelName !== undefined) llmState.modelName = modelName;
    // LangChain chat models tag their runs with ls_provider ('openai', 'anthropic', …).
    const provider = this.options.provider || metadata?.ls_provider;
    if (typeof provider === 'string') llmState.provider = provider;
    if (typeof metadata?.ls_provider === 'string') llmState.lsProvider = metadata.ls_provider;
    // An aborted stream never reaches handleLLMError: LangChain rejects the caller's iterator
    // and leaves the model's generator suspended. The call's own signal tells us instead.
    const signal = (extraParams?.options as { signal?: unknown } | undefined)?.signal as AbortSignal | undefined;
    if (signal && typeof signal.addEventListener === 'function' && !signal.aborted) {
      const onAbort = () => this.guard('abort', () => this.finishLLMRun(runId, parentRunId, undefined, { reason: 'failed' }, 'aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      llmState.detachAbort = () => signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Books one LLM run, however it ended, and forgets it: totals, trackers, `onMetrics`, and its
   * root when it was one.
   */
  private finishLLMRun(
    runId: string,
    parentRunId: string | undefined,
    metrics: CarbonMetrics | undefined,
    absence: TraceAbsence,
    outcome: CallOutcome,
    estimate?: CarbonEstimate,
  ): void {
    const run = this.runs.get(runId);
    // Ended once already (an abort, then LangChain's own end or error).
    if (run?.llm === undefined) return;
    this.runs.delete(runId);
    this.captures.closeRun(runId);
    run.llm.detachAbort?.();
    const root = this.roots.get(run.rootRunId);
    root?.runIds.delete(runId);
    addCarbonMetrics(this.allTotals, metrics);
    addCarbonEstimate(this.allEstimates, estimate);
    if (root) {
      addCarbonMetrics(root.totals, metrics);
      addCarbonEstimate(root.estimates, estimate);
    }

    const { modelName, provider, attributes } = run.llm;
    const record: CarbonRecordContext = { kind: 'chat', attributes };
    if (provider !== undefined) record.provider = provider;
    if (modelName !== undefined) record.modelId = modelName;
    const info: CarbonLLMRunInfo = { kind: 'chat', runId, rootRunId: run.rootRunId, attributes, outcome };
    if (parentRunId !== undefined) info.parentRunId = parentRunId;
    if (modelName !== undefined) info.modelName = modelName;
    if (provider !== undefined) info.provider = provider;
    if (estimate !== undefined) info.estimate = estimate;
    reportCall(this.warn, this.options, { source: modelName ?? 'the model', absence, record, estimate }, metrics, info);
    if (run.rootRunId === runId) this.endRoot(runId);
    else this.touch(run.rootRunId);
  }

  /**
   * Embedding classes start no LangChain run: the request itself is the call, booked when its
   * response has been read or has failed. Sent from inside a runnable this handler sees, it
   * counts in that runnable's root as well.
   */
  private beginEmbedding(request: EmbeddingRequest): ResponseObserver {
    const context = currentRunnableContext();
    const parentRunId = context?.runId !== undefined && this.runs.has(context.runId) ? context.runId : undefined;
    const rootRunId = parentRunId === undefined ? undefined : this.runs.get(parentRunId)?.rootRunId;
    if (rootRunId !== undefined) this.touch(rootRunId);
    const call: EmbeddingCall = { request, attributes: this.attributesOf(context?.metadata) };
    if (parentRunId !== undefined) call.parentRunId = parentRunId;
    if (rootRunId !== undefined) call.rootRunId = rootRunId;
    return new EmbeddingCapture((ended) => this.guard('embedding', () => this.finishEmbedding(call, ended)));
  }

  private finishEmbedding(call: EmbeddingCall, ended: EmbeddingOutcome): void {
    const { request, attributes } = call;
    const modelName = request.modelName;
    const provider = this.options.provider || request.provider;
    const source = modelName ?? 'the embedding model';
    let metrics: CarbonMetrics | undefined;
    let absence: TraceAbsence = { reason: 'failed' };
    if (ended.outcome === 'completed' && Array.isArray(ended.body)) {
      absence = {
        reason: 'other',
        key: 'bare-array',
        message: `the response of ${source} is a bare JSON array (TEI's /embed), which has no place for x_carbon_trace: no carbon metrics for this call`,
      };
    } else if (ended.outcome === 'completed') {
      const raw = findCarbonTrace(ended.body);
      const read = raw === undefined ? undefined : readCarbonTrace(raw);
      absence = read?.problem === undefined ? { reason: 'no-trace' } : { reason: 'unusable', problem: read.problem };
      const usage = { promptTokens: embeddingPromptTokens(ended.body) };
      metrics = bookAtGrid(withUsageTokens(this.sessions.apply(`${provider}/${modelName ?? 'unknown'}`, read?.metrics), usage), this.options.gridIntensity, this.options.onWarning);
    }
    const outcome: CallOutcome = ended.outcome;
    addCarbonMetrics(this.allTotals, metrics);
    // Counted in estimateTotals' calls too, so that both say how many calls there were.
    addCarbonEstimate(this.allEstimates, undefined);
    const root = call.rootRunId === undefined ? undefined : this.roots.get(call.rootRunId);
    if (root) {
      addCarbonMetrics(root.totals, metrics);
      addCarbonEstimate(root.estimates, undefined);
      this.touch(call.rootRunId!);
    }

    const runId = `embedding:${globalThis.crypto.randomUUID()}`;
    const record: CarbonRecordContext = { kind: 'embedding', provider, attributes };
    if (modelName !== undefined) record.modelId = modelName;
    const info: CarbonLLMRunInfo = { kind: 'embedding', runId, rootRunId: call.rootRunId ?? runId, attributes, outcome, provider };
    if (call.parentRunId !== undefined) info.parentRunId = call.parentRunId;
    if (modelName !== undefined) info.modelName = modelName;
    reportCall(this.warn, this.options, { source, absence, record }, metrics, info);
  }

  private endRun(runId: string): void {
    const run = this.runs.get(runId);
    if (run === undefined) return;
    this.runs.delete(runId);
    this.roots.get(run.rootRunId)?.runIds.delete(runId);
    if (run.rootRunId === runId) this.endRoot(runId);
    else this.touch(run.rootRunId);
  }

  private endRoot(rootRunId: string): void {
    const root = this.roots.get(rootRunId);
    if (root === undefined) return;
    this.roots.delete(rootRunId);
    const { onRootRunEnd } = this.options;
    if (onRootRunEnd) safeInvoke(this.warn, 'onRootRunEnd', () => onRootRunEnd(root.totals, { rootRunId, estimates: root.estimates }));
  }

  /** Marks activity in a root's tree, moving it to the back of the staleness order. */
  private touch(rootRunId: string, now = Date.now()): void {
    const root = this.roots.get(rootRunId);
    if (root === undefined) return;
    root.lastActivityAt = now;
    this.roots.delete(rootRunId);
    this.roots.set(rootRunId, root);
  }

  /** Roots whose whole tree has been idle for `runTtlMs` (see its docs). */
  private dropStaleRoots(now: number): void {
    const cutoff = now - (this.options.runTtlMs ?? DEFAULT_RUN_TTL_MS);
    for (const [rootRunId, root] of this.roots) {
      if (root.lastActivityAt > cutoff) break;
      this.dropRoot(rootRunId);
    }
  }

  /** Ends a root LangChain never ended: its open LLM runs count as aborted calls. */
  private dropRoot(rootRunId: string): void {
    const root = this.roots.get(rootRunId);
    if (root === undefined) return;
    for (const runId of [...root.runIds]) {
      const run = this.runs.get(runId);
      if (run?.llm) this.finishLLMRun(runId, run.parentRunId, undefined, { reason: 'failed' }, 'aborted');
      else this.runs.delete(runId);
    }
    this.endRoot(rootRunId);
  }

  /**
   * The trace of one LLM run, best source first: the response `handler.fetch` tied to it, then
   * the clean per-chunk raw responses of a stream, then what the final message carries — and,
   * when there is none, why, in words that point to the fix.
   */
  private readTrace(
    runId: string,
    output: LLMResult,
    llm: LLMState | undefined,
  ): { read: ReturnType<typeof readCarbonTrace> | undefined; absence: TraceAbsence } {
    const claim = this.captures.claim(runId, output);
    let raw = claim.kind === 'found' ? claim.trace : undefined;
    const fromFetch = raw !== undefined;
    const generations: Loose[] = (output?.generations ?? []).flat();
    // Per-run by construction, so still trustworthy when the fetch could not tell responses apart.
    if (raw === undefined) raw = llm?.chunkTrace;
    for (const generation of generations) {
      if (raw !== undefined) break;
      raw = findTraceIn(generation?.message) ?? findTraceIn(generation);
    }
    if (raw === undefined) raw = findCarbonTrace(output?.llmOutput);

    const source = llm?.modelName ?? 'the model';
    if (raw !== null && typeof raw === 'object') {
      // One trace object reaching a second run was handed to both (BaseLLM gives every run of a
      // call a copy of one llmOutput): it is one response's figure, booked once.
      if (this.bookedTraces.has(raw)) {
        return {
          read: undefined,
          absence: {
            reason: 'other',
            key: 'booked-twice',
            message: `the x_carbon_trace LangChain handed over for ${source} was already booked for another call (one output shared between calls): no carbon metrics for this call rather than the same figure twice`,
          },
        };
      }
      this.bookedTraces.add(raw);
    }
    if (raw !== undefined) {
      // Only chat completions streamed with __includeRawResponse can lose a trace on the usage-only chunk.
      if (!fromFetch && llm?.chunkTrace !== undefined && llm.sawRawChunks === true) {
        this.warnOnce(
          'usage-chunk',
          'streamed traces are read from the chunks LangChain hands to handlers (__includeRawResponse); a trace a server sends on the ' +
            'usage-only last chunk never reaches them and would be missed: give the model handler.fetch (configuration: { fetch: handler.fetch }) to see every trace',
        );
      }
      const read = readCarbonTrace(raw);
      return { read, absence: read.problem === undefined ? { reason: 'no-trace' } : { reason: 'unusable', problem: read.problem } };
    }
    if (claim.kind === 'ambiguous') {
      return {
        read: undefined,
        absence: {
          reason: 'other',
          key: 'ambiguous',
          message:
            `handler.fetch saw ${claim.responses} responses that could each be the one of this call to ${source} (same prompt, same answer, ` +
            'in flight together) and they do not all carry the same trace (one may carry none): no carbon metrics for this call rather than another call\'s',
        },
      };
    }
    if (claim.kind === 'unobserved' && llm?.sawRawChunks === true) {
      return {
        read: undefined,
        absence: {
          reason: 'other',
          key: 'raw-chunks',
          message:
            `no x_carbon_trace on the streamed chunks LangChain handed over for ${source}; a server that sends it on the usage-only ` +
            `last chunk is seen only through handler.fetch — ${fetchFixFor(llm.client)}`,
        },
      };
    }
    const sawRaw = generations.some((g) => g?.message?.additional_kwargs?.__raw_response !== undefined);
    if (claim.kind === 'unobserved' && !sawRaw) {
      return {
        read: undefined,
        absence: {
          reason: 'other',
          key: 'unobserved',
          message:
            `carbon-trace did not see the response of ${source}: give the model the handler's fetch — ` +
            `${fetchFixFor(llm?.client)} — so its x_carbon_trace can be read`,
        },
      };
    }
    return { read: undefined, absence: { reason: 'no-trace' } };
  }

  private writeMetadata(output: LLMResult, metrics: CarbonMetrics | undefined, estimate: CarbonEstimate | undefined): void {
    const [key, value] = metrics !== undefined ? [CARBON_METADATA_KEY, metrics] : [ESTIMATE_METADATA_KEY, estimate];
    for (const generation of (output?.generations ?? []).flat() as Loose[]) {
      const message = generation?.message;
      if (value !== undefined) {
        if (message && typeof message === 'object') (message.response_metadata ??= {})[key] = value;
        (generation.generationInfo ??= {})[key] = value;
      }
      if (this.options.stripRawResponse !== false && message?.additional_kwargs && '__raw_response' in message.additional_kwargs) {
        delete message.additional_kwargs.__raw_response;
      }
    }
  }

  private attributesOf(metadata: Record<string, unknown> | undefined): CarbonAttributes {
    const keys = this.options.attributeKeys;
    if (!Array.isArray(keys) || keys.length === 0 || metadata == null) return {};
    const picked: Array<[string, unknown]> = [];
    for (const key of keys) if (typeof key === 'string' && Object.hasOwn(metadata, key)) picked.push([key, metadata[key]]);
    return mergeAttributes(Object.fromEntries(picked));
  }

  private warnOnce(key: string, message: string): void {
    if (this.warnedOnce.has(key)) return;
    this.warnedOnce.add(key);
    this.warn(key, message);
  }

  // A bug of ours must never fail the user's run.
  private guard(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.warn(`internal:${name}`, `internal error in ${name} (please report): ${String(error)}`);
    }
  }
}

/** Where ChatOpenAI and other chat models leave the raw trace on a message or generation. */
function findTraceIn(holder: Loose): unknown {
  if (holder == null || typeof holder !== 'object') return undefined;
  return (
    findCarbonTrace(holder.additional_kwargs?.__raw_response) ??
    findCarbonTrace(holder.response_metadata) ??
    findCarbonTrace(holder.generationInfo)
  );
}

function modelNameOf(llm: Serialized, extraParams?: Record<string, unknown>, metadata?: Record<string, unknown>): string | undefined {
  const fromMetadata = metadata?.ls_model_name;
  if (typeof fromMetadata === 'string') return fromMetadata;
  const invocation = (extraParams?.invocation_params ?? {}) as Record<string, unknown>;
  const fromParams = invocation.model ?? invocation.model_name;
  if (typeof fromParams === 'string') return fromParams;
  const id = (llm as { id?: unknown })?.id;
  return Array.isArray(id) && typeof id.at(-1) === 'string' ? (id.at(-1) as string) : undefined;
}

/** Token counts LangChain read from the response (`usage_metadata`, or the legacy `llmOutput.tokenUsage`). */
function usageOf(output: Loose): { promptTokens?: unknown; completionTokens?: unknown } {
  const usage = output?.generations?.[0]?.[0]?.message?.usage_metadata;
  if (usage && typeof usage === 'object') return { promptTokens: usage.input_tokens, completionTokens: usage.output_tokens };
  const legacy = output?.llmOutput?.tokenUsage;
  return { promptTokens: legacy?.promptTokens, completionTokens: legacy?.completionTokens };
}

/** One server session per provider and model, as the AI SDK middleware keys it. */
function sessionKey(llm: LLMState | undefined): string {
  return `${llm?.provider ?? 'unknown'}/${llm?.modelName ?? 'unknown'}`;
}
