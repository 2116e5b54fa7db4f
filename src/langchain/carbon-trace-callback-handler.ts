import { BaseCallbackHandler, type BaseCallbackHandlerInput } from '@langchain/core/callbacks/base';
import type { Serialized } from '@langchain/core/load/serializable';
import type { LLMResult } from '@langchain/core/outputs';
import { CARBON_METADATA_KEY, findCarbonTrace, parseCarbonTrace } from '../core/parse-carbon-trace';
import { createWarner, reportCall, safeInvoke, type CarbonTraceWarningHandler } from '../core/report';
import { addCarbonMetrics, emptyCarbonTotals } from '../core/sum-carbon-metrics';
import type { CarbonMetrics, CarbonMetricsRecorder, CarbonTotals } from '../core/types';
import { createCaptureFetch } from './capture-fetch';

/**
 * What `onMetrics` is told about the LLM run.
 *
 * @example
 * ```ts
 * const onMetrics = (m: CarbonMetrics | undefined, run: CarbonLLMRunInfo) => console.log(run.modelName, m?.gwpKgco2eq);
 * ```
 */
export type CarbonLLMRunInfo = {
  runId: string;
  parentRunId?: string;
  /** The outermost run this handler saw: the chain or graph invocation, or the model call itself. */
  rootRunId: string;
  modelName?: string;
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
  /** Once per LLM run; `undefined` when the run carried no usable trace. Throws are reported, never raised. */
  onMetrics?: (metrics: CarbonMetrics | undefined, run: CarbonLLMRunInfo) => void | Promise<void>;
  /** Once per root run (chain, graph, agent or bare model call), with the totals of its LLM runs. */
  onRootRunEnd?: (totals: CarbonTotals, run: { rootRunId: string }) => void | Promise<void>;
  /**
   * Remove `additional_kwargs.__raw_response` once the trace is read, so the raw response does
   * not bloat graph state, checkpoints and tracer uploads. Default `true`.
   */
  stripRawResponse?: boolean;
  /** Records every LLM run, traced or not: a `CarbonTracker`, an OpenTelemetry recorder, or several. */
  tracker?: CarbonMetricsRecorder | readonly CarbonMetricsRecorder[];
  /** Where warnings go. Default: `console.warn`, each distinct warning once. `false` silences them. */
  onWarning?: CarbonTraceWarningHandler;
  /** The fetch that `handler.fetch` calls. Default: `globalThis.fetch` at call time. */
  fetch?: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  /** How long a trace captured by `handler.fetch` waits for its LLM run, ms. Default 300000. */
  captureTtlMs?: number;
  /**
   * How long a run may stay open before its state is dropped, ms. Default 1800000 (30 min).
   * LangChain reports no end for a stream the caller stops reading (`break`), nor for chains
   * around an aborted stream; this bounds what such runs leave behind.
   */
  runTtlMs?: number;
}

type RunState = { parentRunId?: string; rootRunId: string; startedAt: number };
type LLMRunState = RunState & {
  modelName?: string;
  provider?: string;
  /** The last raw trace seen on a streamed chunk (the final figure comes last). */
  chunkTrace?: unknown;
  messageIds?: Set<string>;
  detachAbort?: () => void;
};

// Bounds for state that a misbehaving caller could grow: runs that never end, captures never claimed.
const MAX_OPEN_RUNS = 10_000;
const MAX_CAPTURES = 10_000;
const DEFAULT_CAPTURE_TTL_MS = 5 * 60_000;
const DEFAULT_RUN_TTL_MS = 30 * 60_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * A LangChain.js callback handler that reads the CodeCarbon trace of every model call in a
 * chain, agent or LangGraph graph, writes it to `message.response_metadata.codecarbon`, and
 * totals it per root run.
 *
 * Give the model `handler.fetch` to see every trace (invoke, stream, usage-only last chunks);
 * without it the handler reads `__raw_response` (ChatOpenAI `__includeRawResponse: true`).
 *
 * @example
 * ```ts
 * import { ChatOpenAI } from '@langchain/openai';
 * import { CarbonTraceCallbackHandler, getCarbonMetrics } from 'carbon-trace/langchain';
 *
 * const carbon = new CarbonTraceCallbackHandler();
 * const model = new ChatOpenAI({ model: 'llama-3.1-8b', configuration: { baseURL, fetch: carbon.fetch } });
 *
 * const message = await model.invoke('Hello', { callbacks: [carbon] });
 * getCarbonMetrics(message)?.gwpKgco2eq; // kgCO2eq of this call, from response_metadata.codecarbon
 * carbon.totals().energyKwh;             // kWh of every call so far
 * ```
 */
export class CarbonTraceCallbackHandler extends BaseCallbackHandler {
  name = 'carbon_trace_callback_handler';

  /**
   * A fetch for `new ChatOpenAI({ configuration: { fetch: handler.fetch } })`: it observes each
   * response for `x_carbon_trace` without changing the bytes the client reads.
   */
  readonly fetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

  private readonly options: CarbonTraceCallbackHandlerFields;
  private readonly warn: (key: string, message: string) => void;
  private readonly runs = new Map<string, RunState>();
  private readonly llmRuns = new Map<string, LLMRunState>();
  private readonly rootTotals = new Map<string, CarbonTotals>();
  private readonly captures = new Map<string, { trace: unknown; expiresAt: number }>();
  private readonly allTotals = emptyCarbonTotals();

  constructor(fields: CarbonTraceCallbackHandlerFields = {}) {
    // Awaited so that response_metadata written in handleLLMEnd is there when invoke returns.
    super({ ...fields, _awaitHandler: true });
    this.options = fields;
    this.warn = createWarner(fields.onWarning);
    const inner = fields.fetch;
    this.fetch = createCaptureFetch(
      () => inner ?? globalThis.fetch,
      (id, trace) => this.storeCapture(id, trace),
    );
  }

  /**
   * Totals over every LLM run this handler has seen.
   *
   * @example
   * ```ts
   * const { calls, tracedCalls, gwpKgco2eq } = handler.totals();
   * ```
   */
  totals(): CarbonTotals {
    return { ...this.allTotals };
  }

  /**
   * How much per-run state is held now: open runs, open root runs, unclaimed captures.
   * All three return to 0 when no run is in flight and captures have been claimed or expired.
   *
   * @example
   * ```ts
   * expect(handler.pendingState()).toEqual({ runs: 0, roots: 0, captures: 0 });
   * ```
   */
  pendingState(): { runs: number; roots: number; captures: number } {
    this.expireCaptures(Date.now());
    this.dropStaleRuns(Date.now());
    return { runs: this.runs.size + this.llmRuns.size, roots: this.rootTotals.size, captures: this.captures.size };
  }

  // ---- run tree -------------------------------------------------------------------------

  override handleChainStart(_chain: Serialized, _inputs: unknown, runId: string, parentRunId?: unknown): void {
    // At runtime the 4th argument is parentRunId, whatever the declared types say.
    this.guard('handleChainStart', () => this.startRun(this.runs, runId, typeof parentRunId === 'string' ? parentRunId : undefined));
  }

  override handleChainEnd(_outputs: unknown, runId: string, _parentRunId?: string): void {
    this.guard('handleChainEnd', () => this.endRun(runId));
  }

  override handleChainError(_err: unknown, runId: string, _parentRunId?: string): void {
    this.guard('handleChainError', () => this.endRun(runId));
  }

  override handleToolStart(_tool: Serialized, _input: string, runId: string, parentRunId?: string): void {
    this.guard('handleToolStart', () => this.startRun(this.runs, runId, parentRunId));
  }

  override handleToolEnd(_output: unknown, runId: string, _parentRunId?: string): void {
    this.guard('handleToolEnd', () => this.endRun(runId));
  }

  override handleToolError(_err: unknown, runId: string, _parentRunId?: string): void {
    this.guard('handleToolError', () => this.endRun(runId));
  }

  override handleRetrieverStart(_retriever: Serialized, _query: string, runId: string, parentRunId?: string): void {
    this.guard('handleRetrieverStart', () => this.startRun(this.runs, runId, parentRunId));
  }

  override handleRetrieverEnd(_documents: unknown, runId: string, _parentRunId?: string): void {
    this.guard('handleRetrieverEnd', () => this.endRun(runId));
  }

  override handleRetrieverError(_err: unknown, runId: string, _parentRunId?: string): void {
    this.guard('handleRetrieverError', () => this.endRun(runId));
  }

  // ---- LLM runs -------------------------------------------------------------------------

  override handleChatModelStart(
    llm: Serialized,
    _messages: unknown,
    runId: string,
    parentRunId?: string,
    extraParams?: Record<string, unknown>,
    _tags?: string[],
    metadata?: Record<string, unknown>,
  ): void {
    this.guard('handleChatModelStart', () => this.startLLMRun(llm, runId, parentRunId, extraParams, metadata));
  }

  override handleLLMStart(
    llm: Serialized,
    _prompts: string[],
    runId: string,
    parentRunId?: string,
    extraParams?: Record<string, unknown>,
    _tags?: string[],
    metadata?: Record<string, unknown>,
  ): void {
    this.guard('handleLLMStart', () => this.startLLMRun(llm, runId, parentRunId, extraParams, metadata));
  }

  override handleLLMNewToken(_token: string, _idx: unknown, runId: string, _parentRunId?: string, _tags?: string[], fields?: { chunk?: unknown }): void {
    this.guard('handleLLMNewToken', () => {
      const run = this.llmRuns.get(runId);
      const chunk = fields?.chunk as Loose;
      if (run === undefined || chunk == null) return;
      // Each chunk's own raw response is clean; the merged message at the end is not (chunk
      // merging adds repeated numbers), so collect the trace here.
      const raw = findTraceIn(chunk.message) ?? findTraceIn(chunk);
      if (raw !== undefined) run.chunkTrace = raw;
      const id = chunk.message?.id;
      if (typeof id === 'string') (run.messageIds ??= new Set()).add(id);
    });
  }

  override handleLLMEnd(output: LLMResult, runId: string, parentRunId?: string): void {
    this.guard('handleLLMEnd', () => {
      const run = this.takeLLMRun(runId);
      const rootRunId = run?.rootRunId ?? runId;
      const { metrics, traceSeen } = this.readTrace(output, run);
      this.writeMetadata(output, metrics);

      addCarbonMetrics(this.allTotals, metrics);
      const rootTotals = this.rootTotals.get(rootRunId);
      if (rootTotals) addCarbonMetrics(rootTotals, metrics);
      const record: { provider?: string; modelId?: string } = {};
      if (run?.provider !== undefined) record.provider = run.provider;
      if (run?.modelName !== undefined) record.modelId = run.modelName;
      const info: CarbonLLMRunInfo = { runId, rootRunId };
      if (parentRunId !== undefined) info.parentRunId = parentRunId;
      if (run?.modelName !== undefined) info.modelName = run.modelName;
      reportCall(this.warn, this.options, { source: run?.modelName ?? 'the model', traceSeen, record }, metrics, info);
      if (rootRunId === runId) this.endRoot(runId);
    });
  }

  override handleLLMError(_err: unknown, runId: string, _parentRunId?: string): void {
    this.guard('handleLLMError', () => this.failLLMRun(runId));
  }

  // ---- internals ------------------------------------------------------------------------

  private startRun(map: Map<string, RunState>, runId: string, parentRunId: string | undefined): RunState {
    const now = Date.now();
    this.dropStaleRuns(now);
    const parent = parentRunId === undefined ? undefined : (this.runs.get(parentRunId) ?? this.llmRuns.get(parentRunId));
    // A parent we never saw (the handler was attached below it) makes this run a root for us.
    const rootRunId = parent?.rootRunId ?? runId;
    const state: RunState = { rootRunId, startedAt: now };
    if (parentRunId !== undefined) state.parentRunId = parentRunId;
    evictOldest(map, MAX_OPEN_RUNS);
    map.set(runId, state);
    if (rootRunId === runId) {
      evictOldest(this.rootTotals, MAX_OPEN_RUNS);
      this.rootTotals.set(runId, emptyCarbonTotals());
    }
    return state;
  }

  private startLLMRun(
    llm: Serialized,
    runId: string,
    parentRunId: string | undefined,
    extraParams: Record<string, unknown> | undefined,
    metadata: Record<string, unknown> | undefined,
  ): void {
    const state: LLMRunState = this.startRun(this.llmRuns, runId, parentRunId);
    const modelName = modelNameOf(llm, extraParams, metadata);
    if (modelName !== undefined) state.modelName = modelName;
    // LangChain chat models tag their runs with ls_provider ('openai', 'anthropic', …).
    if (typeof metadata?.ls_provider === 'string') state.provider = metadata.ls_provider;
    // An aborted stream never reaches handleLLMError: LangChain rejects the caller's iterator
    // and leaves the model's generator suspended. The call's own signal tells us instead.
    const signal = (extraParams?.options as { signal?: unknown } | undefined)?.signal as AbortSignal | undefined;
    if (signal && typeof signal.addEventListener === 'function' && !signal.aborted) {
      const onAbort = () => this.guard('abort', () => this.failLLMRun(runId));
      signal.addEventListener('abort', onAbort, { once: true });
      state.detachAbort = () => signal.removeEventListener('abort', onAbort);
    }
  }

  /** An LLM run that ended without a result: forget it, its unclaimed capture, and its root if it was one. */
  private failLLMRun(runId: string): void {
    const run = this.takeLLMRun(runId);
    if (run?.messageIds) this.takeCapture(run.messageIds);
    if ((run?.rootRunId ?? runId) === runId) this.endRoot(runId);
  }

  /** Removes an LLM run's state and its abort listener, and returns the state. */
  private takeLLMRun(runId: string): LLMRunState | undefined {
    const run = this.llmRuns.get(runId);
    this.llmRuns.delete(runId);
    run?.detachAbort?.();
    return run;
  }

  /** Runs LangChain never ended (see `runTtlMs`); insertion order is start order. */
  private dropStaleRuns(now: number): void {
    const cutoff = now - (this.options.runTtlMs ?? DEFAULT_RUN_TTL_MS);
    for (const map of [this.runs, this.llmRuns] as Array<Map<string, LLMRunState>>) {
      for (const [runId, run] of map) {
        if (run.startedAt > cutoff) break;
        map.delete(runId);
        run.detachAbort?.();
        this.rootTotals.delete(runId);
      }
    }
  }

  private endRun(runId: string): void {
    const run = this.runs.get(runId);
    this.runs.delete(runId);
    if ((run?.rootRunId ?? runId) === runId) this.endRoot(runId);
  }

  private endRoot(rootRunId: string): void {
    const totals = this.rootTotals.get(rootRunId);
    if (totals === undefined) return;
    this.rootTotals.delete(rootRunId);
    const { onRootRunEnd } = this.options;
    if (onRootRunEnd) safeInvoke(this.warn, 'onRootRunEnd', () => onRootRunEnd(totals, { rootRunId }));
  }

  private storeCapture(responseId: string, trace: unknown): void {
    const now = Date.now();
    this.expireCaptures(now);
    evictOldest(this.captures, MAX_CAPTURES);
    this.captures.delete(responseId); // re-insert at the end: insertion order is expiry order
    this.captures.set(responseId, { trace, expiresAt: now + (this.options.captureTtlMs ?? DEFAULT_CAPTURE_TTL_MS) });
  }

  private expireCaptures(now: number): void {
    for (const [id, entry] of this.captures) {
      if (entry.expiresAt > now) break;
      this.captures.delete(id);
    }
  }

  private takeCapture(ids: Iterable<string>): unknown {
    let trace: unknown;
    for (const id of ids) {
      const entry = this.captures.get(id);
      if (entry === undefined) continue;
      this.captures.delete(id);
      trace = entry.trace;
    }
    return trace;
  }

  /**
   * The trace of one LLM run, best source first: what `handler.fetch` saw, then the clean
   * per-chunk raw responses of a stream, then what the final message carries.
   */
  private readTrace(output: LLMResult, run: LLMRunState | undefined): { metrics: CarbonMetrics | undefined; traceSeen: boolean } {
    const generations: Loose[] = (output?.generations ?? []).flat();
    const ids = new Set(run?.messageIds);
    for (const generation of generations) {
      const id = generation?.message?.id;
      if (typeof id === 'string') ids.add(id);
    }
    let raw = this.takeCapture(ids);
    if (raw === undefined) raw = run?.chunkTrace; // a captured null is still a (broken) trace
    for (const generation of generations) {
      if (raw !== undefined) break;
      raw = findTraceIn(generation?.message) ?? findTraceIn(generation);
    }
    if (raw === undefined) raw = findCarbonTrace(output?.llmOutput);
    return { metrics: parseCarbonTrace(raw), traceSeen: raw !== undefined };
  }

  private writeMetadata(output: LLMResult, metrics: CarbonMetrics | undefined): void {
    for (const generation of (output?.generations ?? []).flat() as Loose[]) {
      const message = generation?.message;
      if (metrics !== undefined) {
        if (message && typeof message === 'object') (message.response_metadata ??= {})[CARBON_METADATA_KEY] = metrics;
        (generation.generationInfo ??= {})[CARBON_METADATA_KEY] = metrics;
      }
      if (this.options.stripRawResponse !== false && message?.additional_kwargs && '__raw_response' in message.additional_kwargs) {
        delete message.additional_kwargs.__raw_response;
      }
    }
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

function evictOldest<K, V>(map: Map<K, V>, max: number): void {
  while (map.size >= max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}
