import { findCarbonTrace, readCarbonTrace, warnAboutResponse, type ExtractCarbonMetricsOptions } from './parse-carbon-trace';
import type { CarbonMetrics } from './types';

/**
 * Collects the trace of one streamed response, chunk by chunk.
 *
 * @example
 * ```ts
 * import { createCarbonTraceAccumulator } from 'carbon-trace';
 * const acc = createCarbonTraceAccumulator();
 * for await (const chunk of sseChunks) acc.add(chunk);
 * const metrics = acc.build();
 * ```
 */
export type CarbonTraceAccumulator = {
  /** Feed one chunk: a parsed object or its JSON text. Chunks without a trace cost a key lookup. */
  add(chunk: unknown): void;
  /**
   * The metrics of the last chunk that carried a trace, or `undefined` — then with a warning, once
   * per accumulator (see `onWarning`). Parsed once. Call it when the stream is done.
   */
  build(): CarbonMetrics | undefined;
  /** Whether any chunk so far carried a trace (valid or not). */
  readonly hasTrace: boolean;
  /** Why `build()` gave `undefined` although a chunk carried a trace, e.g. `'not a trace object'`. */
  readonly problem: string | undefined;
};

/**
 * Creates a {@link CarbonTraceAccumulator}: the stream counterpart of `extractCarbonMetrics`.
 * When several chunks carry a trace, the last one wins — servers send the final figure last.
 * Feed it the chunks of any wire: chat completions, the Responses API's events (the trace is on
 * `response.completed`), Anthropic's (`message_delta`), Ollama's NDJSON lines.
 *
 * @example
 * ```ts
 * import { createCarbonTraceAccumulator } from 'carbon-trace';
 * const acc = createCarbonTraceAccumulator();
 * acc.add({ choices: [{ delta: { content: 'Hi' } }] });
 * acc.add({ choices: [{ delta: {}, finish_reason: 'stop' }], x_carbon_trace: { emissions_g_co2: 0.3 } });
 * acc.build()?.gwpKgco2eq; // 0.0003
 * ```
 */
export function createCarbonTraceAccumulator(options: ExtractCarbonMetricsOptions = {}): CarbonTraceAccumulator {
  let raw: unknown;
  let seen = false;
  let built: { metrics: CarbonMetrics | undefined; problem?: string } | undefined;
  let warned = false;
  const read = () => (built ??= seen ? readCarbonTrace(raw) : { metrics: undefined });
  return {
    add(chunk) {
      const trace = findCarbonTrace(chunk);
      if (trace === undefined) return;
      raw = trace;
      seen = true;
      built = undefined;
    },
    build() {
      const result = read();
      if (!warned && result.metrics === undefined) {
        warned = true;
        warnAboutResponse(options.onWarning, seen, result.problem);
      }
      return result.metrics;
    },
    get hasTrace() {
      return seen;
    },
    get problem() {
      return read().problem;
    },
  };
}
