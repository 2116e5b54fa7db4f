import type { CarbonEstimate, CarbonMetrics, CarbonMetricsRecorder, CarbonRecordContext } from './types';

/**
 * Receives carbon-trace's warnings: a call without a trace, a malformed trace, a callback that
 * threw. Pass `false` to silence them.
 *
 * @example
 * ```ts
 * import type { CarbonTraceWarningHandler } from 'carbon-trace';
 * const onWarning: CarbonTraceWarningHandler = (message) => logger.warn(message);
 * ```
 */
export type CarbonTraceWarningHandler = ((message: string) => void) | false;

// Bounded so that a server with ever-changing warnings cannot grow memory without end.
const MAX_REMEMBERED_WARNINGS = 256;
// Shared by every default warner, so "once per process" holds across adapters and helpers.
const consoleSeen = new Set<string>();

/**
 * Creates the warning sink the adapters share. With no handler, each distinct warning goes to
 * `console.warn` once per process (a server without traces would otherwise warn on every call);
 * a handler of the user's receives every warning.
 *
 * @example
 * ```ts
 * const warn = createWarner(options.onWarning);
 * warn('model-a:no-trace', 'no x_carbon_trace in the response of model-a');
 * ```
 */
export function createWarner(handler: CarbonTraceWarningHandler | undefined): (key: string, message: string) => void {
  if (handler === false) return () => {};
  if (handler) {
    return (_key, message) => {
      try {
        handler(message);
      } catch {
        // The user's logger failing must not fail their model call.
      }
    };
  }
  return (key, message) => {
    if (consoleSeen.has(key)) return;
    if (consoleSeen.size >= MAX_REMEMBERED_WARNINGS) consoleSeen.clear();
    consoleSeen.add(key);
    console.warn(`[carbon-trace] ${message}`);
  };
}

/**
 * Why a call has no metrics, as the adapter that saw it knows it.
 *
 * @example
 * ```ts
 * const why: TraceAbsence = { reason: 'unusable', problem: 'not a trace object' };
 * ```
 */
export type TraceAbsence =
  /** The response carried no `x_carbon_trace`. */
  | { reason: 'no-trace' }
  /** It carried one with no usable figure. */
  | { reason: 'unusable'; problem: string }
  /** The call failed or was aborted: the caller has the error, nothing to warn about. */
  | { reason: 'failed' }
  /** Anything else the adapter can explain; `key` dedupes the console. */
  | { reason: 'other'; key: string; message: string };

/**
 * Warns about what a call's trace said or lacked, in the words a user can act on.
 *
 * @example
 * ```ts
 * warnAboutTrace(warn, 'openai.chat/llama-3', metrics, { reason: 'no-trace' });
 * ```
 */
function warnAboutTrace(
  warn: (key: string, message: string) => void,
  source: string,
  metrics: CarbonMetrics | undefined,
  absence: TraceAbsence,
  estimated: boolean,
): void {
  if (metrics === undefined) {
    switch (absence.reason) {
      case 'failed':
        return;
      case 'unusable':
        warn(`${source}\0unusable`, `the x_carbon_trace of ${source} has no usable figure (${absence.problem}): no carbon metrics for this call`);
        return;
      case 'other':
        warn(`${source}\0${absence.key}`, absence.message);
        return;
      default:
        // An estimated call is what the user asked `estimate` for: nothing to warn about.
        if (!estimated) warn(`${source}\0missing`, `no x_carbon_trace in the response of ${source}: no carbon metrics for this call`);
        return;
    }
  }
  if (metrics.warnings.length === 0) return;
  // Values vary call to call; the field names and reasons are what repeat.
  const key = metrics.warnings.map((w) => w.replace(/\s*\(.*\)$/, '').replace(/[+\d.e-]+ kgCO2eq over \d+/, 'n')).join('|');
  warn(`${source}\0${key}`, `the x_carbon_trace of ${source} had problems: ${metrics.warnings.join('; ')}`);
}

/**
 * Calls a user callback so that neither a throw nor a rejected promise can reach the caller's
 * model call; both become a warning.
 *
 * @example
 * ```ts
 * safeInvoke(warn, 'onMetrics', () => options.onMetrics?.(metrics, context));
 * ```
 */
export function safeInvoke(warn: (key: string, message: string) => void, name: string, fn: () => unknown): void {
  const report = (error: unknown) =>
    warn(`${name}\0${String(error)}`, `${name} threw: ${error instanceof Error ? error.message : String(error)}`);
  try {
    const result = fn();
    if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(undefined, report);
    }
  } catch (error) {
    report(error);
  }
}

/**
 * Records a call into one recorder or several (a `CarbonTracker`, an OpenTelemetry recorder…);
 * a recorder that throws is reported, never raised, and does not stop the others.
 *
 * @example
 * ```ts
 * recordCall(warn, options.tracker, metrics, { provider, modelId });
 * ```
 */
function recordCall(
  warn: (key: string, message: string) => void,
  trackers: CarbonMetricsRecorder | readonly CarbonMetricsRecorder[] | undefined,
  metrics: CarbonMetrics | undefined,
  context: CarbonRecordContext,
): void {
  if (trackers === undefined) return;
  for (const tracker of Array.isArray(trackers) ? trackers : [trackers]) {
    safeInvoke(warn, 'tracker.record', () => tracker.record(metrics, context));
  }
}

/**
 * Everything both adapters do once a call's metrics are known: warn about a missing or broken
 * trace, record the call in every tracker (with its estimate, if any, beside the metrics), and
 * tell `onMetrics`. Nothing here can throw into the caller's model call.
 *
 * @example
 * ```ts
 * reportCall(warn, options, { source: 'garden.chat/llama', record: { modelId: 'llama' } }, metrics, ctx);
 * ```
 */
export function reportCall<C>(
  warn: (key: string, message: string) => void,
  sinks: {
    tracker?: CarbonMetricsRecorder | readonly CarbonMetricsRecorder[] | undefined;
    onMetrics?: ((metrics: CarbonMetrics | undefined, context: C) => unknown) | undefined;
  },
  call: { source: string; absence?: TraceAbsence; record: CarbonRecordContext; estimate?: CarbonEstimate | undefined },
  metrics: CarbonMetrics | undefined,
  context: C,
): void {
  warnAboutTrace(warn, call.source, metrics, call.absence ?? { reason: 'no-trace' }, call.estimate !== undefined);
  recordCall(warn, sinks.tracker, metrics, call.estimate === undefined ? call.record : { ...call.record, estimate: call.estimate });
  const { onMetrics } = sinks;
  if (onMetrics) safeInvoke(warn, 'onMetrics', () => onMetrics(metrics, context));
}
