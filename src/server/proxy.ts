import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { Transform } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { createWarner, type CarbonTraceWarningHandler } from '../core/report';
import { boundedName } from './books';
import { dashboardHtml } from './dashboard';
import { gridSource, type GridIntensityOption } from './grid-source';
import { asciiJson, canSplice, DEFAULT_MAX_BODY_BYTES, isCompletionPath, noteUsage, readCompletion, spliceTrace, UPSTREAM_TRACE_WARNING } from './json-splice';
import type { EnergyMeter } from './meter';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus';
import { createProxyBooks, modelGardenStats, type BookedRequest, type BookRow, type CombinedStats, type RecentRequest } from './proxy-books';

export type { BookedRequest, BookRow, RecentRequest };
import { RequestFields } from './request-fields';
import { EventTracer } from './sse-trace';
import { carbonTraceRecord, gramsOf, type ResolvedGridIntensity } from './trace-record';

/**
 * Options of {@link createCarbonProxy}.
 *
 * @example
 * ```ts
 * createCarbonProxy({ upstream: 'http://127.0.0.1:8000', meter, gridIntensity: { zone: 'FR' } });
 * ```
 */
export type CarbonProxyOptions = {
  /** The model server: its origin, optionally with a base path (`http://127.0.0.1:8000`). Credentials in it are refused. */
  upstream: string;
  meter: EnergyMeter;
  gridIntensity?: GridIntensityOption;
  /** Where warnings go. Default: `console.warn`, once per distinct warning. */
  onWarning?: CarbonTraceWarningHandler;
  /** How many recent requests the dashboard shows. Default 60. */
  recentRequests?: number;
  /** The largest request body forwarded, bytes; a larger one is answered 413 before it is read. Default 32 MiB. */
  maxBodyBytes?: number;
  /** The largest JSON completion a trace is spliced into, bytes; a larger one passes untouched. Default 64 MiB. */
  maxTracedResponseBytes?: number;
  /** How many model names, API keys and users the books each keep apart (the least active beyond fold into `(other)`). Default 1000; `/metrics` keeps 100. */
  maxModels?: number;
  /** Told when the upstream becomes reachable or unreachable (also once at start). */
  onUpstreamState?: (state: UpstreamState) => void;
  /** How often an unreachable upstream is probed, ms. Default 2000. */
  upstreamProbeMs?: number;
  /** Told about every traced request once its books are closed. */
  onBooked?: (request: BookedRequest) => void;
  /**
   * A file to keep every request's row in (CodeCarbon's emissions.csv columns and carbon-trace's),
   * appended as each closes; the books continue from it on restart. Default: none, books in memory.
   */
  ledger?: string;
  /** `project_name` of the ledger's rows. Default `'carbon-trace proxy'`. */
  projectName?: string;
};

/**
 * Whether the proxy can reach its upstream, and why not.
 *
 * @example
 * ```ts
 * const onUpstreamState = (s: UpstreamState) => console.log(s.reachable ? 'up' : `down: ${s.reason}`);
 * ```
 */
export type UpstreamState = { reachable: boolean; reason?: string };

/**
 * What `GET /carbon/stats` answers: the meter's books (with what earlier runs left in the ledger),
 * the proxy's rows per model, API key and user, and where the numbers come from. Every view adds
 * up: `attributedJoules + inFlightJoules + idleJoules + unattributedJoules = totalJoules`, and the
 * rows of `byModel`, `byApiKey` and `byUser` each add up to `attributedJoules`.
 *
 * @example
 * ```ts
 * const { totalJoules, byModel, grid } = await proxy.stats();
 * ```
 */
export type ProxyStats = CombinedStats & {
  meter: string;
  upstream: string;
  upstreamReachable: boolean;
  grid: ResolvedGridIntensity;
  emissionsGrams: { total: number; attributed: number; inFlight: number; idle: number; unattributed: number };
  byModel: Record<string, BookRow>;
  /** Per API key, as a one-way id (`sha256:` + 12 hex of the bearer token): the key itself is kept nowhere. */
  byApiKey: Record<string, BookRow>;
  /** Per end user: the request's OpenAI `user` field, or its `X-Carbon-Trace-User` header. */
  byUser: Record<string, BookRow>;
  /** Token counts of the requests whose usage reported them. */
  tokens: { prompt: number; completion: number; requestsWithUsage: number };
  /** The completion tokens of `tokens`, kept for readers of earlier versions. */
  completionTokens: number;
  recent: RecentRequest[];
};

/**
 * The proxy: a `node:http` request listener, a server with safe limits that uses it (not yet
 * listening), and its books.
 *
 * @example
 * ```ts
 * const proxy = createCarbonProxy({ upstream: 'http://127.0.0.1:8000', meter });
 * proxy.server.listen(8787, '127.0.0.1');
 * ```
 */
export type CarbonProxy = {
  listener: (req: IncomingMessage, res: ServerResponse) => void;
  server: Server;
  stats(): Promise<ProxyStats>;
  /** Stops the server, the probes and the upstream connections, and closes the ledger (not the meter, which is yours). */
  close(): Promise<void>;
};

// Hop-by-hop headers (RFC 9110 §7.6.1): they belong to one connection and stop at the proxy, as
// do the headers a `Connection` header names.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const DEFAULT_MAX_TRACED_RESPONSE_BYTES = 64 * 1024 * 1024;
const SMALL_BODY_BYTES = 64 * 1024;

/**
 * An OpenAI-compatible reverse proxy that puts `x_carbon_trace` on every completion of the server
 * behind it, and serves the numbers: `GET /carbon` (a live dashboard), `GET /carbon/stats`
 * (JSON), `GET /api/v1/carbon/inference/stats` (Model Garden's shape, for seeds-clients'
 * `get_carbon_stats()`), `GET /metrics` (Prometheus).
 *
 * Built to stand on a network: it only ever connects to its upstream (request targets are joined
 * onto the upstream's origin and base path as strings, and any target that is not origin-form is
 * a 400); bodies are bounded (413); hop-by-hop headers stop here and `X-Forwarded-For`, `-Proto`
 * and `-Host` are set; nothing it echoes is unbounded. Bytes are piped: only the end of a JSON
 * completion and the last events of a stream are looked at, and nothing it does not change is
 * decoded. It starts before its upstream and answers 502 until the upstream answers.
 *
 * @example
 * ```ts
 * import { createCarbonProxy, createEnergyMeter } from 'carbon-trace/server';
 * const proxy = createCarbonProxy({ upstream: 'http://127.0.0.1:8000', meter: createEnergyMeter() });
 * proxy.server.listen(8787, '127.0.0.1');
 * ```
 */
export function createCarbonProxy(options: CarbonProxyOptions): CarbonProxy {
  const upstream = new URL(options.upstream);
  if (upstream.protocol !== 'http:' && upstream.protocol !== 'https:') throw new TypeError(`upstream must be an http(s) URL, got ${upstream.protocol}`);
  if (upstream.username !== '' || upstream.password !== '') {
    throw new TypeError('upstream must not carry credentials: they would be shown in the stats and never sent; the client\'s own Authorization header is forwarded');
  }
  const upstreamLabel = `${upstream.origin}${upstream.pathname.replace(/\/+$/, '')}`;
  const basePath = upstream.pathname.replace(/\/+$/, '');
  const upstreamPort = Number(upstream.port || (upstream.protocol === 'https:' ? 443 : 80));
  // undici's pool: keep-alive connections to the upstream, at about twice the rate of http.Agent.
  const pool = new Pool(upstream.origin, { connections: null, pipelining: 1 });
  const meter = options.meter;
  const warn = createWarner(options.onWarning);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxTracedResponseBytes = options.maxTracedResponseBytes ?? DEFAULT_MAX_TRACED_RESPONSE_BYTES;
  const grid = gridSource(options.gridIntensity, warn);

  const books = createProxyBooks({
    warn,
    meterStats: () => meter.stats(),
    gridNow: () => grid.current(),
    recentRequests: options.recentRequests ?? 60,
    ...(options.maxModels !== undefined ? { maxRows: options.maxModels } : {}),
    ...(options.ledger !== undefined ? { ledger: options.ledger } : {}),
    ...(options.projectName !== undefined ? { projectName: options.projectName } : {}),
  });
  const book = (booked: BookedRequest) => {
    books.book(booked);
    if (options.onBooked) {
      try {
        options.onBooked(booked);
      } catch (error) {
        warn(`onBooked\0${String(error)}`, `onBooked threw: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  };

  // Reachability of the upstream: learned from every request, probed while it is down.
  let reachable: boolean | undefined;
  let probeTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const setReachable = (up: boolean, reason?: string) => {
    if (up === reachable) return;
    reachable = up;
    try {
      options.onUpstreamState?.(up ? { reachable: true } : { reachable: false, ...(reason ? { reason } : {}) });
    } catch {
      // A callback of the user's must not stop the proxy.
    }
    if (!up) scheduleProbe();
  };
  const scheduleProbe = () => {
    if (closed || probeTimer !== undefined) return;
    probeTimer = setTimeout(() => {
      probeTimer = undefined;
      probe();
    }, options.upstreamProbeMs ?? 2_000);
    probeTimer.unref();
  };
  const probe = () => {
    if (closed) return;
    const socket = connect({ host: upstream.hostname.replace(/^\[|\]$/g, ''), port: upstreamPort });
    socket.setTimeout(5_000);
    socket.once('connect', () => {
      socket.destroy();
      setReachable(true);
    });
    const down = (reason: string) => {
      socket.destroy();
      if (reachable !== false) setReachable(false, reason);
      else scheduleProbe();
    };
    socket.once('timeout', () => down('no answer within 5 s'));
    socket.once('error', (error: NodeJS.ErrnoException) => down(error.code ?? error.message));
  };
  probe();

  async function stats(): Promise<ProxyStats> {
    const g = grid.current() ?? (await grid.ready);
    const c = books.combine(meter.stats(), g);
    const v = books.views(c);
    const inFlight = gramsOf(c.inFlightJoules, g);
    return {
      ...c,
      meter: meter.describe(),
      upstream: upstreamLabel,
      upstreamReachable: reachable !== false,
      grid: g,
      emissionsGrams: { total: v.attributedGrams + inFlight + v.idleGrams + v.unattributedGrams, attributed: v.attributedGrams, inFlight, idle: v.idleGrams, unattributed: v.unattributedGrams },
      byModel: v.byModel,
      byApiKey: v.byApiKey,
      byUser: v.byUser,
      tokens: v.tokens,
      completionTokens: v.tokens.completion,
      recent: v.recent,
    };
  }

  async function metrics(): Promise<string> {
    const g = grid.current() ?? (await grid.ready);
    return books.prometheus(books.combine(meter.stats(), g), g);
  }

  const respondJson = (res: ServerResponse, status: number, body: unknown, extra: OutgoingHttpHeaders = {}) => {
    const bytes = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, ...extra });
    res.end(bytes);
  };
  const proxyError = (res: ServerResponse, status: number, message: string, extra: OutgoingHttpHeaders = {}) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    respondJson(res, status, { error: { message, type: 'proxy_error' } }, extra);
  };

  async function ownRoute(path: string, res: ServerResponse): Promise<boolean> {
    if (path === '/carbon' || path === '/carbon/') {
      const html = Buffer.from(dashboardHtml());
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': html.length });
      res.end(html);
    } else if (path === '/carbon/stats') {
      respondJson(res, 200, await stats(), { 'cache-control': 'no-store' });
    } else if (path === '/api/v1/carbon/inference/stats') {
      respondJson(res, 200, modelGardenStats(await stats()), { 'cache-control': 'no-store' });
    } else if (path === '/metrics') {
      const body = Buffer.from(await metrics());
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': body.length });
      res.end(body);
    } else {
      return false;
    }
    return true;
  }

  function listener(req: IncomingMessage, res: ServerResponse): void {
    const target = req.url ?? '';
    // Only origin-form targets go upstream, joined onto its origin as a string: an absolute URL
    // (or anything else) could otherwise send the request, and its Authorization, elsewhere.
    if (!target.startsWith('/')) {
      req.resume();
      proxyError(res, 400, 'request target must be a path (origin-form, "/…")', { connection: 'close' });
      return;
    }
    const query = target.indexOf('?');
    const path = query < 0 ? target : target.slice(0, query);
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/carbon' || path === '/carbon/' || path === '/carbon/stats' || path === '/api/v1/carbon/inference/stats' || path === '/metrics') {
        req.resume();
        ownRoute(path, res).catch((error: unknown) => proxyError(res, 500, `carbon-trace: ${error instanceof Error ? error.message : String(error)}`));
        return;
      }
    }
    const length = Number(req.headers['content-length']);
    if (Number.isFinite(length) && length > maxBodyBytes) {
      // Answered before reading past the limit; the connection cannot be reused.
      proxyError(res, 413, `request body of ${length} bytes is larger than the limit of ${maxBodyBytes} bytes`, { connection: 'close' });
      req.socket.end();
      return;
    }
    forward(req, res, target, req.method === 'POST' && isCompletionPath(path));
  }

  type Close = (status: number, traced?: { usage: BookedRequest['usage'] }) => Promise<Record<string, unknown> | undefined>;

  function forward(req: IncomingMessage, res: ServerResponse, target: string, traced: boolean): void {
    const fields = traced ? new RequestFields(['model', 'user']) : undefined;
    const metered = traced ? meter.begin() : undefined;
    let status = 0; // the upstream's, once it answered
    let streamed = false;
    let settled = false; // the request's books are closed, or closing
    let abandoned = false; // the upstream exchange was ended here, not by the upstream
    let controller: Dispatcher.DispatchController | undefined;

    const close: Close = async (clientStatus, trace) => {
      if (!metered || settled) return undefined;
      settled = true;
      const model = boundedName(fields?.get('model'));
      const energy = await metered.end(model === undefined ? {} : { model });
      const g = grid.current() ?? (await grid.ready);
      const usage = trace?.usage ?? {};
      const record = trace ? carbonTraceRecord(energy, g, { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens }) : undefined;
      const user = boundedName(fields?.get('user')) ?? boundedName(headerValue(req.headers['x-carbon-trace-user']));
      book({ model, apiKeyId: apiKeyIdOf(req.headers.authorization), user, status: clientStatus, streamed, energy, trace: record, grid: g, usage });
      return record;
    };
    const abandon = (reason: string) => {
      abandoned = true;
      controller?.abort(new Error(reason));
    };

    res.once('close', () => {
      if (res.writableFinished) return;
      // The client went away first: stop the upstream work, close the books.
      abandon('the client went away');
      void close(499);
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

    let mode: 'pass' | 'sse' | 'json' = 'pass';
    let tracer: EventTracer | undefined;
    const usage: BookedRequest['usage'] = {};
    let held: Buffer[] = [];
    let heldBytes = 0;
    let upstreamHeadersSeen: IncomingHttpHeaders = {};
    let statusMessage: string | undefined;
    let contentType = '';
    let completing: Promise<void> | undefined;
    const completeStream = () =>
      (completing ??= close(status, { usage }).then((trace) => {
        if (tracer!.upstreamTraced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
        if (!res.destroyed) write(tracer!.complete(trace));
      }));

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (abandoned) c.abort(new Error('the client went away'));
      },
      onResponseStart(_c, statusCode, headers, message) {
        if (statusCode < 200) return; // informational
        setReachable(true);
        status = statusCode;
        statusMessage = message;
        upstreamHeadersSeen = headers;
        contentType = String(headers['content-type'] ?? '');
        const encoding = String(headers['content-encoding'] ?? 'identity').toLowerCase();
        const ok = status >= 200 && status < 300;
        const sse = contentType.includes('text/event-stream');
        const json = contentType.includes('json');
        if (!traced || !ok || !(sse || json) || (encoding !== 'identity' && encoding !== '') || !canSplice(contentType)) {
          if (traced && ok && (sse || json)) warn(`untraceable\0${encoding}\0${contentType}`, `a completion came ${encoding !== 'identity' ? `encoded as ${encoding}` : `in ${contentType}`}: passed through without a trace`);
          mode = 'pass';
          res.writeHead(status, message, clientHeaders(headers, false));
          return;
        }
        streamed = sse;
        if (sse) {
          mode = 'sse';
          res.writeHead(status, message, clientHeaders(headers, true));
          // The request's tokens pace its share of the machine's energy.
          tracer = new EventTracer({ tokens: (n) => metered!.tokens(n), usage: (u) => noteUsage(usage, u) });
        } else {
          mode = 'json';
        }
      },
      onResponseData(c, chunk) {
        if (mode === 'pass') {
          write([chunk]);
        } else if (mode === 'sse') {
          const { out, done } = tracer!.push(chunk);
          if (out.length > 0) write(out);
          if (done) {
            // [DONE]: the books close now and the trace goes on the held chunk; the rest waits.
            c.pause();
            void completeStream().then(() => c.resume());
          }
        } else {
          heldBytes += chunk.length;
          held.push(chunk);
          if (heldBytes > maxTracedResponseBytes) {
            // Too large to hold: it passes untouched, without a trace.
            warn('large-response', `a completion larger than ${maxTracedResponseBytes} bytes passed through without a trace`);
            mode = 'pass';
            res.writeHead(status, statusMessage, clientHeaders(upstreamHeadersSeen, false));
            write(held);
            held = [];
          }
        }
      },
      onResponseEnd() {
        if (mode === 'pass') {
          res.end();
          void close(status);
        } else if (mode === 'sse') {
          void completeStream().then(() => res.end());
        } else {
          const body = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
          held = [];
          const completion = readCompletion(body);
          noteUsage(usage, completion.usage);
          void close(status, { usage }).then((trace) => {
            if (completion.traced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
            const out = trace !== undefined && completion.object && !completion.traced ? spliceTrace(body, asciiJson(trace)) : undefined;
            if (res.destroyed) return;
            const headers = clientHeaders(upstreamHeadersSeen, out !== undefined);
            const bytes = out ?? body;
            headers['content-length'] = bytes.length;
            res.writeHead(status, statusMessage, headers);
            res.end(bytes);
          });
        }
      },
      onResponseError(_c, error) {
        if (abandoned) return;
        const code = (error as NodeJS.ErrnoException).code ?? error.message;
        if (status === 0) {
          // No answer came: the upstream could not be reached, or dropped the connection.
          setReachable(false, code);
          proxyError(res, 502, `upstream ${upstreamLabel} unreachable: ${code}`);
          void close(502);
        } else {
          // A cut upstream reaches the client as a cut; the books close without a trace.
          res.destroy();
          void close(status);
        }
      },
    };

    const options = (body: Dispatcher.DispatchOptions['body']): Dispatcher.DispatchOptions => ({
      path: `${basePath}${target}`,
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamHeaders(req, traced),
      body,
      // The model's answer takes as long as it takes; the client decides when to give up.
      headersTimeout: 0,
      bodyTimeout: 0,
    });

    const declared = Number(req.headers['content-length']);
    if (!req.headers['transfer-encoding'] && (Number.isNaN(declared) || declared === 0)) {
      req.resume();
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
        pool.dispatch(options(body), handler);
      });
    } else {
      // Larger or of unknown length: streamed upstream as it comes, counted, read for model and user.
      let received = 0;
      const body = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          received += chunk.length;
          if (received > maxBodyBytes) {
            abandon('request body over the limit');
            proxyError(res, 413, `request body larger than the limit of ${maxBodyBytes} bytes`, { connection: 'close' });
            req.socket.end();
            void close(413);
            callback(new Error('request body over the limit'));
            return;
          }
          fields?.write(chunk);
          callback(null, chunk);
        },
      });
      req.pipe(body);
      req.once('error', (error) => body.destroy(error));
      pool.dispatch(options(body), handler);
    }
  }

  function upstreamHeaders(req: IncomingMessage, traced: boolean): Record<string, string | string[]> {
    const named = connectionNamed(req.headers);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      // The upstream's Host comes from its origin; 100-continue was answered here.
      if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || name === 'host' || name === 'expect') continue;
      headers[name] = value;
    }
    const client = req.socket.remoteAddress ?? '';
    const prior = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}` : client;
    headers['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http';
    if (req.headers.host) headers['x-forwarded-host'] = req.headers.host;
    // The trace is spliced into the bytes: ask for them uncompressed.
    if (traced) headers['accept-encoding'] = 'identity';
    return headers;
  }

  const server = createServer({ maxHeaderSize: 16 * 1024 }, listener);
  // Slow or stalled clients hold only their own socket: headers within 10 s, a request body
  // within 5 min; the model's answer may take as long as it takes.
  server.headersTimeout = 10_000;
  server.requestTimeout = 300_000;
  // CONNECT asks for a tunnel to another host: never.
  server.on('connect', (_req: IncomingMessage, socket: import('node:stream').Duplex) => {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  return {
    listener,
    server,
    stats,
    async close() {
      closed = true;
      if (probeTimer) clearTimeout(probeTimer);
      await new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await pool.destroy().catch(() => undefined);
      books.close();
    },
  };
}

const headerValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/**
 * The one-way id books keep for an API key: `sha256:` and the first 12 hex digits of the SHA-256 of
 * the bearer token. The same key gives the same id on every proxy of a fleet; the key itself is
 * kept nowhere — not in stats, metrics, the ledger or logs.
 *
 * @example
 * ```ts
 * apiKeyIdOf('Bearer sk-live-123'); // 'sha256:…'
 * ```
 */
export function apiKeyIdOf(authorization: string | undefined): string | undefined {
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return match ? `sha256:${createHash('sha256').update(match[1]!).digest('hex').slice(0, 12)}` : undefined;
}

const NONE: ReadonlySet<string> = new Set();

function connectionNamed(headers: IncomingHttpHeaders): ReadonlySet<string> {
  const value = headers.connection;
  // keep-alive and close are hop-by-hop already: only other names need a set.
  if (!value || value === 'keep-alive' || value === 'close') return NONE;
  return new Set(String(value).split(',').map((token) => token.trim().toLowerCase()).filter(Boolean));
}

/** The upstream's response headers as the client gets them: hop-by-hop ones dropped; for a changed body, no length, digest or strong validator. */
function clientHeaders(headers: IncomingHttpHeaders, changed: boolean): OutgoingHttpHeaders {
  const named = connectionNamed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (changed && (name === 'content-length' || name === 'content-md5' || name === 'digest' || name === 'content-digest' || name === 'repr-digest')) continue;
    out[name] = value;
  }
  if (changed && typeof out.etag === 'string' && !out.etag.startsWith('W/')) out.etag = `W/${out.etag}`;
  return out;
}

