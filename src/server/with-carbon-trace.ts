import { CARBON_TRACE_FIELD } from '../core/parse-carbon-trace';
import { createWarner, type CarbonTraceWarningHandler } from '../core/report';
import { isFigure } from '../core/units';
import type { EnergyMeter } from './meter';
import type { RequestEnergy } from './types';
import { traceEventStream } from './sse-trace';
import { carbonTraceRecord, WORLD_AVERAGE_GRID, withTraceMember, type ResolvedGridIntensity } from './trace-record';

/**
 * A Web-standard fetch handler: Hono, Next.js route handlers, Bun, Deno, Cloudflare Workers, or a
 * proxy's `(request) => fetch(upstream, request)`.
 *
 * @example
 * ```ts
 * const handler: FetchHandler = (request) => fetch(new URL(new URL(request.url).pathname, 'http://127.0.0.1:8000'), request);
 * ```
 */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * Options of {@link withCarbonTrace}.
 *
 * @example
 * ```ts
 * withCarbonTrace(handler, { meter, gridIntensity: { zone: 'FR' } });
 * ```
 */
export type WithCarbonTraceOptions = {
  /** The meter that attributes energy to each request. */
  meter: EnergyMeter;
  /**
   * The grid's carbon intensity, gCO2eq/kWh, or a zone (ISO 3166-1 country code or region; needs
   * `@tgwf/co2`). Default: the world average, 475 — stated in every trace.
   */
  gridIntensity?: { gCo2PerKwh: number; source?: string } | { zone: string };
  /** Which requests get a trace. Default: `POST` to a path ending in `/chat/completions` or `/completions`. */
  traced?: (request: Request) => boolean;
  /** Where warnings go. Default: `console.warn`, once per distinct warning. */
  onWarning?: CarbonTraceWarningHandler;
  /** Told about every traced request once its books are closed: for dashboards and metrics. */
  onBooked?: (request: BookedRequest) => void;
};

/**
 * One request whose books are closed, as `onBooked` is told about it.
 *
 * @example
 * ```ts
 * const onBooked = (r: BookedRequest) => console.log(r.model, r.energy.totalJoules, r.trace?.emissions_g_co2);
 * ```
 */
export type BookedRequest = {
  model: string | undefined;
  /** HTTP status the handler answered with. */
  status: number;
  streamed: boolean;
  energy: RequestEnergy;
  /** The trace added to the response; `undefined` when none could be (an error, a cut stream). */
  trace: Record<string, unknown> | undefined;
  /** The grid intensity the request's emissions were booked at. */
  grid: ResolvedGridIntensity;
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/**
 * Wraps a fetch handler so that every chat completion it serves carries an `x_carbon_trace`: the
 * energy the meter attributed to that request (CPU, GPU, RAM), its duration, powers and
 * emissions at the grid's intensity. JSON responses get the field as their last member; streamed
 * responses get it on the last data chunk before `[DONE]`. Every other byte is what the handler
 * returned; errors, non-2xx responses and other routes pass through untouched (their energy is
 * still booked); a client that goes away cancels the upstream body and closes the books.
 *
 * @example
 * ```ts
 * import { createEnergyMeter, withCarbonTrace } from 'carbon-trace/server';
 *
 * const meter = createEnergyMeter({ sources: 'auto', sampleIntervalMs: 100 });
 * const handler = withCarbonTrace(
 *   (request) => fetch(new URL(new URL(request.url).pathname, 'http://127.0.0.1:8000'), request),
 *   { meter, gridIntensity: { gCo2PerKwh: 56 } },
 * );
 * ```
 */
export function withCarbonTrace(handler: FetchHandler, options: WithCarbonTraceOptions): FetchHandler {
  const warn = createWarner(options.onWarning);
  const isTraced = options.traced ?? isCompletionRequest;
  let grid: Promise<ResolvedGridIntensity> | undefined;
  const gridIntensity = () => (grid ??= resolveGrid(options.gridIntensity, warn));

  return async (request) => {
    if (!isTraced(request)) return handler(request);
    const bytes = await request.arrayBuffer();
    const body = parseJson(new TextDecoder().decode(bytes));
    const model = typeof body?.model === 'string' ? body.model : undefined;
    // The handler reads the same bytes the client sent.
    const forwarded = new Request(request.url, { method: request.method, headers: request.headers, body: bytes, signal: request.signal });
    const metered = options.meter.begin(model === undefined ? {} : { model });
    const book = async (status: number, streamed: boolean, trace?: Record<string, unknown>, energy?: RequestEnergy) => {
      const closed = energy ?? (await metered.end());
      if (options.onBooked) {
        const grid = await gridIntensity();
        try {
          options.onBooked({ model, status, streamed, energy: closed, trace, grid });
        } catch (error) {
          warn(`onBooked\0${String(error)}`, `onBooked threw: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      return closed;
    };

    let response: Response;
    try {
      response = await handler(forwarded);
    } catch (error) {
      await book(0, false);
      throw error;
    }
    const type = response.headers.get('content-type') ?? '';
    if (!response.ok || response.body === null || !(type.includes('json') || type.includes('text/event-stream'))) {
      await book(response.status, false);
      return response;
    }

    let tokens: { prompt_tokens?: number; completion_tokens?: number } = {};
    if (type.includes('text/event-stream')) {
      const stream = traceEventStream(response.body, {
        token: () => metered.tokens(1),
        usage: (usage) => (tokens = usage),
        finish: async () => {
          const energy = await metered.end();
          const record = carbonTraceRecord(energy, await gridIntensity(), tokens);
          await book(response.status, true, record, energy);
          return record;
        },
        abort: () => void book(response.status, true),
      });
      return new Response(stream, { status: response.status, statusText: response.statusText, headers: withoutLength(response.headers) });
    }

    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      await book(response.status, false);
      throw error;
    }
    const energy = await metered.end();
    const parsed = parseJson(text);
    if (parsed === undefined || Object.hasOwn(parsed, CARBON_TRACE_FIELD)) {
      // Not a completion object, or the upstream measures itself: its bytes stay its own.
      if (parsed !== undefined) warn('upstream-trace', 'the upstream response already carries x_carbon_trace: it is passed through unchanged');
      await book(response.status, false, undefined, energy);
      return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
    }
    const usage = parsed.usage ?? {};
    const record = carbonTraceRecord(energy, await gridIntensity(), { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens });
    await book(response.status, false, record, energy);
    const withTrace = withTraceMember(text, record) ?? text;
    return new Response(withTrace, { status: response.status, statusText: response.statusText, headers: withoutLength(response.headers) });
  };
}

/**
 * The default of `traced`: a `POST` to an OpenAI-compatible completion route.
 *
 * @example
 * ```ts
 * isCompletionRequest(new Request('http://x/v1/chat/completions', { method: 'POST' })); // true
 * ```
 */
export function isCompletionRequest(request: Request): boolean {
  if (request.method !== 'POST') return false;
  const path = new URL(request.url).pathname.replace(/\/+$/, '');
  return path.endsWith('/chat/completions') || path.endsWith('/completions');
}

/**
 * The grid intensity `withCarbonTrace` books with, from its `gridIntensity` option: the world
 * average, with a warning and a `source` saying so, when the option is unusable.
 *
 * @example
 * ```ts
 * const grid = await resolveGrid({ zone: 'FR' }, warn);
 * ```
 */
export async function resolveGrid(
  option: WithCarbonTraceOptions['gridIntensity'],
  warn: (key: string, message: string) => void,
): Promise<ResolvedGridIntensity> {
  if (option === undefined) return WORLD_AVERAGE_GRID;
  if ('zone' in option) {
    try {
      const { gridIntensityOfZone } = await import('../grid/index');
      const found = gridIntensityOfZone(option.zone);
      if (found) return { gCo2PerKwh: found.gCo2PerKwh, source: found.source ?? `zone ${option.zone}` };
      warn('grid-zone', `unknown grid zone ${JSON.stringify(option.zone)}: traces use the world average, 475 gCO2eq/kWh, and say so`);
    } catch (error) {
      warn('grid-zone', `grid zones need @tgwf/co2 (${(error as Error).message}): traces use the world average, 475 gCO2eq/kWh, and say so`);
    }
    return { ...WORLD_AVERAGE_GRID, source: `${WORLD_AVERAGE_GRID.source}; zone ${JSON.stringify(option.zone)} unknown` };
  }
  const g = option.gCo2PerKwh;
  if (isFigure(g)) return { gCo2PerKwh: g, source: option.source ?? 'given' };
  warn('grid-number', `grid intensity ${String(g)} is not a number of gCO2eq/kWh ≥ 0: traces use the world average, 475, and say so`);
  return { ...WORLD_AVERAGE_GRID, source: `${WORLD_AVERAGE_GRID.source}; given intensity ${String(g)} unusable` };
}

function parseJson(text: string): Loose {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The body changed length: let the server frame it (chunked), not the upstream's old length. */
function withoutLength(headers: Headers): Headers {
  const copy = new Headers(headers);
  copy.delete('content-length');
  return copy;
}
