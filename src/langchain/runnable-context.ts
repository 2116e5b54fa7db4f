import { AsyncLocalStorageProviderSingleton } from '@langchain/core/singletons';

// Loosely typed on purpose: LangChain's runnable config is read defensively.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * The LangChain run the current code runs in, as LangChain's async context knows it: the
 * run id of the runnable (a LangGraph node, a tool, a `RunnableLambda`) whose body sent the
 * request, and that runnable's metadata. `undefined` outside any runnable, or where LangChain
 * keeps no async context (no `AsyncLocalStorage`: browsers, or before anything initialised it).
 *
 * Embedding classes start no run of their own, so this is how an embedding request finds the
 * chain or graph it belongs to. The context is per async call chain, so concurrent runs never
 * see each other's.
 *
 * @example
 * ```ts
 * const context = currentRunnableContext(); // inside a LangGraph node: { runId: '…', metadata: { … } }
 * ```
 */
export function currentRunnableContext(): { runId?: string; metadata?: Record<string, unknown> } | undefined {
  try {
    const config = AsyncLocalStorageProviderSingleton.getRunnableConfig() as Loose;
    if (config === undefined || config === null) return undefined;
    const runId = config.callbacks?.getParentRunId?.();
    const metadata = config.metadata;
    const context: { runId?: string; metadata?: Record<string, unknown> } = {};
    if (typeof runId === 'string') context.runId = runId;
    if (metadata !== null && typeof metadata === 'object') context.metadata = metadata as Record<string, unknown>;
    return context;
  } catch {
    return undefined; // A LangChain whose internals moved: the call is booked without a root.
  }
}
