import { Buffer } from 'node:buffer';
import { readBounded } from '../core/read-bounded';
import { createWarner, type CarbonTraceWarningHandler } from '../core/report';
import { boundedName } from './books/bounded-rows';
import { gridSource, type GridIntensityOption } from './grid-source';
import type { EnergyMeter } from './meter/meter';
import type { BookedRequest } from './books';
import { carbonTraceRecord } from './wires/trace-record';
import type { RequestEnergy } from './types';
import { chatWire, isCompletionPath } from './wires/chat';
import { answerFraming, isStreamed, wireFor, type Wire, type WireUsage } from './wires/index';
import { asciiJson, canSplice, DEFAULT_MAX_BODY_BYTES, readMembers, spliceTrace, UPSTREAM_TRACE_LATE_WARNING, UPSTREAM_TRACE_WARNING } from './wires/json-splice';
import { LET_GO_WARNING } from './wires/wire';
import { RequestFields } from './wires/request-fields';

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
   * The grid's carbon intensity, gCO2eq/kWh, a zone (ISO 3166-1 country code or region; needs
   * `@tgwf/co2`), or a live provider (`createElectricityMapsProvider` from `carbon-trace/grid`),
   * read as each request is booked. Default: the world average, 475 — stated in every trace.
   */
  gridIntensity?: GridIntensityOption;
  /**
   * Which requests get a trace. Default: a `POST` some wire knows (chat and completions, the
   * Responses API, embeddings, rerank and score, Ollama's, TGI's and llama.cpp's APIs, Anthropic
   * Messages); a request this says yes to that no wire knows is read as a chat completion.
   */
  traced?: (request: Request) => boolean;
  /** The largest request body a traced request may have, bytes; a larger one is answered 413. Default 32 MiB. */
  maxBodyBytes?: number;
  /** Where warnings go. Default: `console.warn`, once per distinct warning. */
  onWarning?: CarbonTraceWarningHandler;
  /** Told about every traced request once its books are closed: for dashboards and metrics. */
  onBooked?: (request: BookedRequest) => void;
};

export type { BookedRequest };


/**
 * Wraps a fetch handler so that every answer it serves on a wire carbon-trace knows carries an
 * `x_carbon_trace`: the energy the meter attributed to that request (CPU, GPU, RAM), its
 * duration, powers and emissions at the grid's intensity — where that wire's clients keep it
 * (DESIGN.md §8: the top level of a JSON body; in a stream, the chunk with the `finish_reason`,
 * the `response` of `response.completed`, Ollama's `"done": true` line, TGI's and llama.cpp's last
 * event, Anthropic's `message_delta`). Every other byte is what the handler returned — a BOM, a
 * charset, an array body (TEI's, which has no place for a trace); errors, non-2xx responses and
 * other routes pass through untouched (their energy is still booked); a response that already
 * carries `x_carbon_trace` keeps its own, on whatever event of a stream. A client that goes away
 * cancels the upstream body and closes the books (booked 499; a stream the upstream cuts, 502, as
 * the proxy books them). Request bodies beyond `maxBodyBytes` are answered 413.
 *
 * The handler is asked for an uncompressed body (`accept-encoding: identity`), and the
 * `content-encoding` and `content-length` of a body it rewrites are dropped: `fetch` decodes a
 * compressed body and keeps the header, which would tell the client to decode it again.
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
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  let grid: ReturnType<typeof gridSource> | undefined;
  const gridNow = async () => {
    grid ??= gridSource(options.gridIntensity, warn);
    return grid.current() ?? (await grid.ready);
  };
  const wireOf = (request: Request): Wire | undefined => {
    const path = decodedPath(new URL(request.url).pathname);
    const wire = wireFor(request.method, path);
    if (options.traced === undefined) return wire;
    return options.traced(request) ? (wire ?? chatWire) : undefined;
  };

  return async (request) => {
    const wire = wireOf(request);
    if (wire === undefined) return handler(request);
    const path = decodedPath(new URL(request.url).pathname);
    const declared = Number(request.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > maxBodyBytes) return tooLarge(maxBodyBytes);
    const fields = new RequestFields(wire.userField === undefined ? ['model'] : ['model', wire.userField]);
    const body = await readBounded(request.body, maxBodyBytes, (chunk) => fields.write(chunk));
    if (body === undefined) return tooLarge(maxBodyBytes);
    const model = boundedName(fields.get('model'));
    const user = wire.userField === undefined ? undefined : boundedName(fields.get(wire.userField));
    const headers = new Headers(request.headers);
    headers.set('accept-encoding', 'identity');
    // The handler reads the same bytes the client sent.
    const forwarded = new Request(request.url, { method: request.method, headers, body: body as BodyInit, signal: request.signal });
    const metered = options.meter.begin(model === undefined ? {} : { model });
    let booked = false;
    /** Closes the books; `answered` when the answer could be read (its usage, whether the trace goes on it). */
    const book = async (status: number, streamed: boolean, answered?: { usage: WireUsage; places: boolean; usagePlace: boolean }) => {
      if (booked) return undefined;
      booked = true;
      const energy: RequestEnergy = await metered.end();
      const g = await gridNow();
      const usage = answered?.usage ?? {};
      const trace = answered?.places ? carbonTraceRecord(energy, g, { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens }) : undefined;
      const ok = status >= 200 && status < 300;
      if (options.onBooked) {
        try {
          options.onBooked({
            model,
            ...(user === undefined ? {} : { user }),
            status,
            streamed,
            energy,
            trace,
            grid: g,
            usage,
            expectsUsage: ok && wire.reportsUsage(path) && answered?.usagePlace !== false,
            wire: wire.name,
            kind: wire.kind(path),
            traceDelivered: trace !== undefined && ok,
          });
        } catch (error) {
          warn(`onBooked\0${String(error)}`, `onBooked threw: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      return trace;
    };

    let response: Response;
    try {
      response = await handler(forwarded);
    } catch (error) {
      await book(0, false);
      throw error;
    }
    const type = response.headers.get('content-type') ?? '';
    const framing = answerFraming(type);
    const streamed = isStreamed(framing);
    const usage: WireUsage = {};
    const tracer =
      response.ok && (framing === 'sse' || framing === 'ndjson') ? wire.streamTracer(framing, { tokens: (n) => metered.tokens(n), usage: (u) => Object.assign(usage, u) }) : undefined;
    if (!response.ok || response.body === null || !(tracer !== undefined || framing === 'json') || !canSplice(type)) {
      // A stream this wire cannot frame passes as it comes: it is never held whole.
      if (response.ok && response.body !== null && (streamed || framing === 'json')) warn(`untraceable\0${type}`, `a completion came in ${type}: passed through without a trace`);
      await book(response.status, streamed);
      return response;
    }
    const out = withoutLengthAndEncoding(response.headers);

    if (tracer !== undefined) {
      const reader = response.body.getReader();
      const finish = async () => {
        const trace = await book(response.status, true, { usage, places: tracer.placesTrace, usagePlace: true });
        if (tracer.upstreamTraced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
        else if (tracer.letGo) warn('stream-let-go', LET_GO_WARNING);
        return tracer.complete(trace);
      };
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          for (;;) {
            let next: ReadableStreamReadResult<Uint8Array>;
            try {
              next = await reader.read();
            } catch (error) {
              // A cut upstream: close the books as the proxy does (502: the client did not get the
              // answer, and an alert on 502s must see it), and hand the client the same error.
              await book(502, true);
              throw error;
            }
            if (next.done) {
              if (!tracer.isComplete) for (const chunk of await finish()) controller.enqueue(chunk);
              // The upstream's own trace after its wire's last event came after ours and the books: both reached the client.
              if (tracer.upstreamTracedLate) warn('upstream-trace-late', UPSTREAM_TRACE_LATE_WARNING);
              controller.close();
              return;
            }
            const { out: ready, done } = tracer.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength));
            for (const chunk of ready) controller.enqueue(chunk);
            if (done) for (const chunk of await finish()) controller.enqueue(chunk);
            if (ready.length > 0 || done) return;
          }
        },
        async cancel(reason) {
          // The client went away before the end: booked 499, as the proxy books it.
          void book(499, true);
          await reader.cancel(reason);
        },
      });
      return new Response(stream, { status: response.status, statusText: response.statusText, headers: out });
    }

    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      await book(response.status, false);
      throw error;
    }
    const answer = readMembers(bytes, wire.usageMembers);
    if (answer.traced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
    const trace = await book(response.status, false, { usage: wire.usageOf(answer.members), places: answer.object && !answer.traced, usagePlace: answer.object });
    const spliced = trace !== undefined ? spliceTrace(bytes, asciiJson(trace)) : undefined;
    if (spliced !== undefined) {
      const etag = out.get('etag');
      if (etag !== null && !etag.startsWith('W/')) out.set('etag', `W/${etag}`);
      for (const name of ['content-md5', 'digest', 'content-digest', 'repr-digest']) out.delete(name);
    }
    return new Response((spliced ?? bytes) as BodyInit, { status: response.status, statusText: response.statusText, headers: out });
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
  return request.method === 'POST' && isCompletionPath(new URL(request.url).pathname);
}

/** The path percent-decoded as a server routes it; as it came when its encoding is broken. */
function decodedPath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function tooLarge(limit: number): Response {
  return Response.json({ error: { message: `request body larger than the limit of ${limit} bytes`, type: 'proxy_error' } }, { status: 413, headers: { connection: 'close' } });
}

/** The body is the decoded one, maybe of another length: let the server frame it. */
function withoutLengthAndEncoding(headers: Headers): Headers {
  const copy = new Headers(headers);
  copy.delete('content-length');
  copy.delete('content-encoding');
  return copy;
}
