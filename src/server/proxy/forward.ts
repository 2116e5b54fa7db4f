import { Buffer } from 'node:buffer';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import { boundedName } from '../books/bounded-rows';
import type { gridSource } from '../grid-source';
import type { EnergyMeter } from '../meter/meter';
import type { BookedRequest } from '../books';
import { carbonTraceRecord } from '../wires/trace-record';
import type { RequestEnergy } from '../types';
import { answerFraming, isStreamed, wireFor, type StreamTracer, type WireUsage } from '../wires/index';
import { LET_GO_WARNING } from '../wires/wire';
import { asciiJson, canSplice, readMembers, spliceTrace, UPSTREAM_TRACE_LATE_WARNING, UPSTREAM_TRACE_WARNING } from '../wires/json-splice';
import { RequestFields } from '../wires/request-fields';
import { clientHeaders, headerValue, upstreamHeaders } from './headers';
import { proxyError } from './respond';
import type { Exchanges } from './shutdown';
import { UNREACHABLE, type UpstreamHealth } from './upstream-health';
import type { UpstreamModels } from './upstream-models';

const SMALL_BODY_BYTES = 64 * 1024;

/** 65536 → '64 KiB', as the warnings say sizes. */
const sizeText = (bytes: number) => (bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`);

/**
 * What forwarding needs from the rest of the proxy.
 *
 * @example
 * ```ts
 * const forward = forwarder({ pool, basePath: '', upstreamLabel, instanceId, meter, grid, warn, book, keyIds, exchanges, health, models, maxBodyBytes, maxTracedResponseBytes });
 * ```
 */
export type ForwardParts = {
  pool: Pool;
  basePath: string;
  upstreamLabel: string;
  instanceId: string;
  meter: EnergyMeter;
  grid: ReturnType<typeof gridSource>;
  warn: (key: string, message: string) => void;
  book: (booked: BookedRequest) => void;
  keyIds: { of(authorization: string | undefined): string | undefined };
  exchanges: Exchanges;
  health: UpstreamHealth;
  models: UpstreamModels;
  maxBodyBytes: number;
  maxTracedResponseBytes: number;
};

/** What the answer let the books know: its usage, whether the trace goes on it, and whether it had a place for usage at all. */
type Answered = { usage: WireUsage; places: boolean; usagePlace: boolean };

/**
 * Forwarding: sends an admitted request upstream through the pool and its answer back, byte for
 * byte. Every request that may make the upstream work is metered and booked (per model, key, user
 * and kind); a request some wire knows (`wireFor`) also gets a trace, where that wire puts it,
 * and its usage booked. The response is not finished for the client before its books are closed.
 *
 * @example
 * ```ts
 * const forward = forwarder(parts);
 * forward(req, res, { target: '/v1/chat/completions', path: '/v1/chat/completions' });
 * ```
 */
export function forwarder(parts: ForwardParts): (req: IncomingMessage, res: ServerResponse, admitted: { target: string; path: string }) => void {
  const { pool, basePath, upstreamLabel, meter, grid, warn, exchanges, health } = parts;

  return function forward(req, res, { target, path }) {
    // Every request that may make the upstream work is metered, and booked per key and user; the
    // ones a wire knows also get a trace. GET, HEAD and OPTIONS only read.
    const metering = req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS';
    const upstreamPath = `${basePath}${path}`;
    // A wire's documented path, as the upstream serves it or after the upstream's base path (an
    // upstream at /anthropic serves /v1/messages as /anthropic/v1/messages).
    const wire = metering ? (wireFor(req.method ?? '', upstreamPath) ?? (basePath === '' ? undefined : wireFor(req.method ?? '', path))) : undefined;
    const traced = wire !== undefined;
    const encoded = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
    const userField = wire ? wire.userField : 'user';
    const fields = metering && (encoded === 'identity' || encoded === '') ? new RequestFields(userField === undefined ? ['model'] : ['model', userField]) : undefined;
    if (wire) parts.models.refresh(wire);
    // The request is in flight from when its body has arrived: a client that sends it slowly
    // makes the machine do nothing meanwhile.
    let metered: ReturnType<EnergyMeter['begin']> | undefined;
    const startMetering = () => {
      if (metering && metered === undefined && !settled) metered = meter.begin();
    };
    let status = 0; // the upstream's, once it answered
    let streamed = false;
    let settled = false; // the request's books are closed, or closing
    let abandoned = false; // the upstream exchange was ended here, not by the upstream
    let controller: Dispatcher.DispatchController | undefined;
    const settleExchange = exchanges.open(res);

    const close = async (upstreamStatus: number, answered?: Answered, cutBy?: 'upstream'): Promise<Record<string, unknown> | undefined> => {
      if (!metering || settled) return undefined;
      settled = true;
      // A response the client will not get is booked as such: 502 when the upstream cut it (an
      // upstream crash mid-stream must reach the alert on 502s), 499 when the client went away.
      const clientStatus = cutBy === 'upstream' ? 502 : res.destroyed && !res.writableFinished ? 499 : upstreamStatus;
      const rawModel = fields?.get('model') || (wire ? parts.models.nameFor(wire) : undefined) || undefined;
      const model = boundedName(rawModel);
      const energy: RequestEnergy = metered
        ? await metered.end(model === undefined ? {} : { model })
        : { joules: {}, totalJoules: undefined, durationSeconds: 0, measured: false, warnings: ['no energy figure: the request ended before its body had arrived'] };
      const g = grid.current() ?? (await grid.ready);
      const usage = answered?.usage ?? {};
      const record = answered && traced ? carbonTraceRecord(energy, g, { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens }) : undefined;
      const rawUser = (userField === undefined ? undefined : fields?.get(userField)) || headerValue(req.headers['x-carbon-trace-user']) || undefined;
      const user = boundedName(rawUser);
      const ok = clientStatus >= 200 && clientStatus < 300;
      const delivered = record !== undefined && answered?.places === true && ok && !res.destroyed;
      parts.book({
        model,
        apiKeyId: parts.keyIds.of(req.headers.authorization),
        user,
        status: clientStatus,
        streamed,
        energy,
        trace: delivered ? record : undefined,
        grid: g,
        usage,
        expectsUsage: wire !== undefined && ok && wire.reportsUsage(upstreamPath) && answered?.usagePlace !== false,
        ...(wire ? { wire: wire.name, kind: wire.kind(upstreamPath) } : {}),
        traceDelivered: delivered,
        names: { model: rawModel, user: rawUser },
      });
      return record;
    };
    // A shutdown waits for both: the response sent (or cut) and the books closed.
    let responseDone = false;
    let booksDone = !metering;
    res.once('close', () => {
      responseDone = true;
      if (booksDone) settleExchange();
    });
    const abandon = (reason: string) => {
      abandoned = true;
      controller?.abort(new Error(reason));
    };
    /** Closes the books, then lets a shutdown waiting on this exchange go on. */
    const closeThen = (upstreamStatus: number, answered?: Answered, cutBy?: 'upstream') =>
      close(upstreamStatus, answered, cutBy).finally(() => {
        booksDone = true;
        if (responseDone) settleExchange();
      });
    // A throw while answering (a header the client socket refuses) must cut this response, never the process.
    const guard = (promise: Promise<unknown>) =>
      promise.catch((error: unknown) => {
        warn(`answer\0${String(error)}`, `a response could not be written to the client: ${error instanceof Error ? error.message : String(error)}`);
        res.destroy();
      });

    res.once('close', () => {
      if (res.writableFinished) return;
      // The client went away first: stop the upstream work, close the books.
      abandon('the client went away');
      void closeThen(499);
    });

    /** Writes to the client; a full socket pauses the upstream until it drains. */
    const write = (chunks: Buffer[]) => {
      let ok = true;
      for (const chunk of chunks) ok = res.write(chunk) && ok;
      if (!ok && controller && !controller.paused) {
        controller.pause();
        res.once('drain', () => controller?.resume());
      }
    };

    // A metered response is not finished for the client before its books are: the row is in the
    // ledger before the client can have the whole response, on every path. An unsized body ends
    // with res.end(); a sized one is whole at its last byte, which waits.
    let unsent: number | undefined; // bytes of a sized, metered body not yet passed on
    let lastByte: Buffer | undefined;
    const startPass = (headers: IncomingHttpHeaders) => {
      const length = Number(headers['content-length']);
      if (metering && status !== 204 && status !== 304 && Number.isSafeInteger(length) && length > 0) unsent = length;
      res.writeHead(status, clientHeaders(headers, false));
    };
    const passOn = (chunk: Buffer) => {
      if (unsent === undefined) return write([chunk]);
      unsent -= chunk.length;
      if (unsent > 0) return write([chunk]);
      if (chunk.length > 1) write([chunk.subarray(0, chunk.length - 1)]);
      lastByte = Buffer.from(chunk.subarray(chunk.length - 1));
    };

    let mode: 'pass' | 'stream' | 'json' = 'pass';
    let tracer: StreamTracer | undefined;
    const usage: WireUsage = {};
    let held: Buffer[] = [];
    let heldBytes = 0;
    let upstreamHeadersSeen: IncomingHttpHeaders = {};
    let completing: Promise<void> | undefined;
    const completeStream = () =>
      (completing ??= closeThen(status, { usage, places: tracer!.placesTrace, usagePlace: true }).then((trace) => {
        if (tracer!.upstreamTraced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
        else if (tracer!.letGo) warn('stream-let-go', LET_GO_WARNING);
        if (!res.destroyed) write(tracer!.complete(trace));
      }));
    // The upstream's own trace after its wire's last event came after ours was sent and the books
    // closed (they close before the client can have the whole response): both reach the client.
    const warnLateTrace = () => {
      if (tracer?.upstreamTracedLate) warn('upstream-trace-late', UPSTREAM_TRACE_LATE_WARNING);
    };

    // The upstream's reason phrase is not passed on: the client gets the standard one for the status
    // (a phrase Node cannot write would otherwise fail the response).
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (abandoned) c.abort(new Error('the client went away'));
      },
      onResponseStart(_c, statusCode, headers) {
        if (statusCode < 200) return; // informational
        health.set(true);
        status = statusCode;
        upstreamHeadersSeen = headers;
        const contentType = String(headers['content-type'] ?? '');
        const encoding = String(headers['content-encoding'] ?? 'identity').toLowerCase();
        const ok = status >= 200 && status < 300;
        const framing = answerFraming(contentType);
        streamed = isStreamed(framing);
        if (wire !== undefined && ok && (framing === 'sse' || framing === 'ndjson')) {
          // The request's tokens pace its share of the machine's energy. A frame is held whole up
          // to the operator's limit on what one response may hold.
          tracer = wire.streamTracer(framing, { tokens: (n) => metered?.tokens(n), usage: (u) => Object.assign(usage, u) }, { maxFrameBytes: parts.maxTracedResponseBytes });
        }
        const traceable = tracer !== undefined || framing === 'json';
        const identity = encoding === 'identity' || encoding === '';
        if (!traced || !ok || !traceable || !identity || !canSplice(contentType)) {
          // A stream this wire cannot frame passes as it comes: it is never held whole.
          if (traced && ok && (traceable || streamed)) warn(`untraceable\0${encoding}\0${contentType}`, `a completion came ${identity ? `in ${contentType}` : `encoded as ${encoding}`}: passed through without a trace`);
          tracer = undefined;
          mode = 'pass';
          startPass(headers);
          return;
        }
        if (tracer !== undefined) {
          mode = 'stream';
          res.writeHead(status, clientHeaders(headers, true));
          // The status and headers go now: a first frame the tracer holds must not hold them too.
          res.flushHeaders();
        } else {
          mode = 'json';
        }
      },
      onResponseData(c, chunk) {
        if (mode === 'pass') {
          passOn(chunk);
        } else if (mode === 'stream') {
          const { out, done } = tracer!.push(chunk);
          if (out.length > 0) write(out);
          if (tracer!.gaveUp) warn('stream-unframed', `a stream sent more than ${sizeText(tracer!.maxFrameBytes)} without an event boundary: it is passed through as it comes, without a trace`);
          if (done) {
            // The wire's last event came: the books close now and the trace goes on the held event; the rest waits.
            c.pause();
            void guard(completeStream().then(() => c.resume()));
          }
        } else {
          heldBytes += chunk.length;
          held.push(chunk);
          if (heldBytes > parts.maxTracedResponseBytes) {
            // Too large to hold: it passes untouched, without a trace.
            warn('large-response', `a completion larger than ${parts.maxTracedResponseBytes} bytes passed through without a trace`);
            mode = 'pass';
            startPass(upstreamHeadersSeen);
            for (const part of held) passOn(part);
            held = [];
          }
        }
      },
      onResponseEnd() {
        if (mode === 'pass') {
          if (!metering) res.end();
          else void guard(closeThen(status).then(() => void (res.destroyed || res.end(lastByte))));
        } else if (mode === 'stream') {
          void guard(
            completeStream().then(() => {
              warnLateTrace();
              res.end();
            }),
          );
        } else {
          const body = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
          held = [];
          const answer = readMembers(body, wire!.usageMembers);
          const places = answer.object && !answer.traced;
          void guard(
            closeThen(status, { usage: wire!.usageOf(answer.members), places, usagePlace: answer.object }).then((trace) => {
              if (answer.traced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
              const out = trace !== undefined && places ? spliceTrace(body, asciiJson(trace)) : undefined;
              if (res.destroyed) return;
              const headers = clientHeaders(upstreamHeadersSeen, out !== undefined);
              const bytes = out ?? body;
              headers['content-length'] = bytes.length;
              res.writeHead(status, headers);
              res.end(bytes);
            }),
          );
        }
      },
      onResponseError(_c, error) {
        if (abandoned) return;
        const code = (error as NodeJS.ErrnoException).code ?? error.message;
        if (status === 0) {
          // No answer came. Only a failure to connect says the upstream is down.
          if (UNREACHABLE.has(code)) health.set(false, code);
          const message = UNREACHABLE.has(code) ? `upstream ${upstreamLabel} unreachable: ${code}` : `upstream ${upstreamLabel} failed: ${code}`;
          void guard(closeThen(502).then(() => proxyError(res, 502, message)));
        } else {
          // A cut upstream reaches the client as a cut; the books close without a trace, as the upstream's failure.
          void closeThen(status, undefined, 'upstream');
          res.destroy();
        }
      },
    };

    const options = (body: Dispatcher.DispatchOptions['body']): Dispatcher.DispatchOptions => ({
      path: `${basePath}${target}`,
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamHeaders(req, traced, parts.instanceId),
      body,
      // The model's answer takes as long as it takes; the client decides when to give up.
      headersTimeout: 0,
      bodyTimeout: 0,
    });

    const declared = Number(req.headers['content-length']);
    if (!req.headers['transfer-encoding'] && (Number.isNaN(declared) || declared === 0)) {
      req.resume();
      startMetering();
      settleExchange.dispatched();
      pool.dispatch(options(null), handler);
    } else if (declared <= SMALL_BODY_BYTES) {
      // A chat request is usually a few kB, often in the packet with its headers: gathered, it
      // goes upstream in one write.
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.once('end', () => {
        if (abandoned) return;
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        fields?.write(body);
        startMetering();
        settleExchange.dispatched();
        pool.dispatch(options(body), handler);
      });
    } else {
      // Larger or of unknown length: streamed upstream as it comes, counted, read for model and user.
      let received = 0;
      const body = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          received += chunk.length;
          if (received > parts.maxBodyBytes) {
            abandon('request body over the limit');
            void guard(
              closeThen(413).then(() => {
                proxyError(res, 413, `request body larger than the limit of ${parts.maxBodyBytes} bytes`, { connection: 'close' });
                req.socket.end();
              }),
            );
            callback(new Error('request body over the limit'));
            return;
          }
          fields?.write(chunk);
          callback(null, chunk);
        },
        flush(callback) {
          startMetering();
          callback();
        },
      });
      req.pipe(body);
      req.once('error', (error) => body.destroy(error));
      // Streamed: the upstream gets the body as it comes, so it counts as begun.
      settleExchange.dispatched();
      pool.dispatch(options(body), handler);
    }
  };
}
