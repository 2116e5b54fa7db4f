import { Buffer } from 'node:buffer';
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { connect, isIP } from 'node:net';
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
import type { RequestEnergy } from './types';

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
  /**
   * When set, `/carbon/stats`, `/metrics` and Model Garden's route answer only requests that bring
   * it (`Authorization: Bearer <token>`, or `?token=` for the dashboard): they list the books per
   * API key id and user. Leading and trailing whitespace is dropped (a secret file's newline); a
   * token that is empty or only whitespace is refused. Default: none (anyone who can reach the
   * proxy may read them).
   */
  adminToken?: string;
  /**
   * The `Host` names requests may carry, besides IP addresses and `localhost` (and `*.localhost`),
   * which are always allowed; `true` allows any. Anything else gets a 403: a web page whose name
   * was made to resolve to this machine (DNS rebinding) cannot reach the proxy or the model
   * through a visitor's browser. Give the names clients use to reach it (`carbon-trace.internal`,
   * a Kubernetes service name); a leading dot allows a domain and its subdomains (`.example.org`).
   * Default: none beyond those always allowed.
   */
  allowedHosts?: readonly string[] | true;
  /** How long a client may take to send a request's headers, ms; it is cut within a second of that. Default 10000. */
  headersTimeoutMs?: number;
  /** How long a client may take to send a whole request, body included, ms; it is cut within a second of that. Default 300000. */
  requestTimeoutMs?: number;
  /**
   * The secret API key ids are made with (HMAC-SHA-256): the same on every proxy of a fleet gives
   * the same id for the same key. Default: one kept beside the ledger (`<ledger>.key-id-secret`),
   * or, without a ledger, a new one per process.
   */
  keyIdSecret?: string;
  /** How long `close()` waits for the requests in flight to finish before cutting them, ms. Default 10000. */
  shutdownGraceMs?: number;
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
  /** Per API key, as a one-way id (`key:` + 12 hex of an HMAC of the bearer token): the key itself is kept nowhere. */
  byApiKey: Record<string, BookRow>;
  /** Per end user: the request's OpenAI `user` field, or its `X-Carbon-Trace-User` header. */
  byUser: Record<string, BookRow>;
  /** Per kind of call: `chat`, `embedding`, `rerank`, and `(unknown)` for a metered route no wire knows. */
  byKind: Record<string, BookRow>;
  /** Token counts of the requests whose usage reported them. */
  tokens: { prompt: number; completion: number; requestsWithUsage: number };
  /** The completion tokens of `tokens`, kept for readers of earlier versions. */
  completionTokens: number;
  recent: RecentRequest[];
  /** With `top`: how many rows each table left out. */
  rowsOmitted?: { byModel: number; byApiKey: number; byUser: number; byKind: number };
  /** With a ledger: rows booked but not yet in its file (it cannot take them now: a full disk), and rows lost from it. */
  ledger?: { path: string; pendingRows: number; lostRows: number };
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
  /** The books, as `GET /carbon/stats` gives them (with `?top=` and `?recent=` as `limits`). */
  stats(limits?: StatsLimits): Promise<ProxyStats>;
  /** Stops the server, the probes and the upstream connections, and closes the ledger (not the meter, which is yours). */
  close(): Promise<void>;
};

// Hop-by-hop headers (RFC 9110 §7.6.1): they belong to one connection and stop at the proxy, as
// do the headers a `Connection` header names.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const DEFAULT_MAX_TRACED_RESPONSE_BYTES = 64 * 1024 * 1024;
const SMALL_BODY_BYTES = 64 * 1024;
// The proxy's own routes (GET and HEAD), as routePath() spells them: ownRoute() answers each.
const OWN_ROUTES = new Set(['/carbon', '/carbon/stats', '/api/v1/carbon/inference/stats', '/metrics']);
// Each carbon-trace proxy a request passes adds its instance id here, so that one that comes back
// through any number of them is a loop, not a request.
const HOP_HEADER = 'x-carbon-trace-proxy';
// Answers of the books' routes that may wait their turn at once (distinct ones: the same question shares one).
const MAX_BOOKS_WAITING = 16;
// More carbon-trace proxies in a row than any deployment has: a loop through proxies that restarted.
const MAX_HOPS = 8;
// The failures that say the upstream cannot be reached (not that one answer went wrong).
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

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
  // Checked before anything is opened: a refused option leaves nothing behind.
  const adminToken = options.adminToken === undefined ? undefined : checkedAdminToken(options.adminToken);
  const hostAllowed = hostCheck(options.allowedHosts);
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
  const instanceId = randomUUID();
  // Requests in flight, for a shutdown that lets them finish and books them.
  const exchanges = new Map<() => void, { res: ServerResponse; dispatched: boolean }>();
  const idleWaiters: Array<() => void> = [];
  const makeExchange = (res: ServerResponse) => {
    let done = false;
    const entry = { res, dispatched: false };
    const settle = () => {
      if (done) return;
      done = true;
      exchanges.delete(settle);
      if (exchanges.size === 0) for (const wake of idleWaiters.splice(0)) wake();
    };
    exchanges.set(settle, entry);
    return Object.assign(settle, { dispatched: () => void (entry.dispatched = true) });
  };
  /** Resolves when no request is in flight, or after `ms`. */
  const allSettled = (ms: number) =>
    new Promise<void>((resolve) => {
      if (exchanges.size === 0) return resolve();
      const timer = setTimeout(resolve, ms);
      idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  const books = createProxyBooks({
    warn,
    meterStats: () => meter.stats(),
    gridNow: () => grid.current(),
    recentRequests: options.recentRequests ?? 60,
    ...(options.maxModels !== undefined ? { maxRows: options.maxModels } : {}),
    ...(options.ledger !== undefined ? { ledger: options.ledger } : {}),
    ...(options.projectName !== undefined ? { projectName: options.projectName } : {}),
    // Kept beside the ledger, made once its lock is held: the proxy that keeps the ledger uses the secret on file.
    ...(options.keyIdSecret === undefined && options.ledger !== undefined ? { keyIdSecret: 'beside-ledger' as const } : {}),
  });
  const keyIds = createKeyIds(options.keyIdSecret ?? books.keyIdSecret ?? randomBytes(32));
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

  async function stats(limits: StatsLimits = {}): Promise<ProxyStats> {
    const g = grid.current() ?? (await grid.ready);
    const c = books.combine(meter.stats(), g);
    const v = books.views(c, limits);
    const inFlight = gramsOf(c.inFlightJoules, g);
    const ledger = books.ledgerState();
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
      byKind: v.byKind,
      ...(limits.top !== undefined ? { rowsOmitted: v.rowsOmitted } : {}),
      tokens: v.tokens,
      completionTokens: v.tokens.completion,
      recent: v.recent,
      ...(ledger ? { ledger } : {}),
    };
  }

  async function metrics(): Promise<string> {
    const g = grid.current() ?? (await grid.ready);
    const text = books.prometheus(books.combine(meter.stats(), g), g);
    // On file before Prometheus sees them (off the event loop): after a crash the counters continue from at least these.
    await books.persistTotals();
    return text;
  }

  // The books' routes take turns, and each waits after its work — the answer made and written to
  // its readers — 9 times as long as that took, per reader: however many clients poll them and however large
  // the tables, they take at most about a tenth of the event loop, and the model's traffic the
  // rest. Readers asking the same thing while it waits its turn share one answer; at most
  // MAX_BOOKS_WAITING answers wait, then 503; a turn whose readers have all gone is skipped.
  // /metrics has a lane of its own, so that a crowd of readers of /carbon/stats never makes
  // Prometheus's scrape time out.
  type Turn = { readers: Set<ServerResponse>; done: Promise<void> };
  const lanes = new Map<string, { tail: Promise<void>; waiting: Map<string, Turn> }>();
  const answerInTurn = (res: ServerResponse, laneName: string, key: string, contentType: string, work: () => Promise<Buffer>): Promise<void> => {
    let lane = lanes.get(laneName);
    if (!lane) lanes.set(laneName, (lane = { tail: Promise.resolve(), waiting: new Map() }));
    const waiting = lane.waiting.get(key);
    if (waiting) {
      waiting.readers.add(res);
      return waiting.done;
    }
    if (lane.waiting.size >= MAX_BOOKS_WAITING) {
      proxyError(res, 503, 'too many readers of the books are waiting: try again shortly', { 'retry-after': '1' });
      return Promise.resolve();
    }
    let endTurn!: () => void;
    const turnEnded = new Promise<void>((resolve) => (endTurn = resolve));
    const { waiting: queue } = lane;
    const turn: Turn = { readers: new Set([res]), done: undefined as never };
    turn.done = lane.tail.then(async () => {
      // From here on a new reader gets a fresher answer than this one.
      queue.delete(key);
      const readers = [...turn.readers].filter((reader) => !reader.destroyed);
      if (readers.length === 0) return endTurn();
      const started = performance.now();
      try {
        const body = await work();
        for (const reader of readers) {
          if (reader.destroyed) continue;
          reader.writeHead(200, { 'content-type': contentType, 'content-length': body.length, 'cache-control': 'no-store' });
          reader.end(body);
        }
      } finally {
        // The next turn, after the pause: each reader's answer costs the proxy too (its bytes to
        // send, its next request to read), so the pause counts one turn's time per reader.
        setTimeout(endTurn, (performance.now() - started) * 9 * readers.length);
      }
    });
    queue.set(key, turn);
    lane.tail = turnEnded;
    return turn.done;
  };

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

  async function ownRoute(path: string, target: string, res: ServerResponse): Promise<void> {
    if (path === '/carbon') {
      const html = Buffer.from(dashboardHtml());
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': html.length });
      res.end(html);
    } else if (path === '/carbon/stats') {
      const limits = statsLimits(target);
      await answerInTurn(res, 'stats', `stats\0${limits.top}\0${limits.recent}`, 'application/json', async () => Buffer.from(JSON.stringify(await stats(limits))));
    } else if (path === '/api/v1/carbon/inference/stats') {
      await answerInTurn(res, 'stats', 'model-garden', 'application/json', async () => Buffer.from(JSON.stringify(modelGardenStats({ ...(await stats({ top: 0, recent: 0 })), modelNames: books.modelNames() }))));
    } else if (path === '/metrics') {
      await answerInTurn(res, 'metrics', 'metrics', PROMETHEUS_CONTENT_TYPE, async () => Buffer.from(await metrics()));
    }
  }

  /** What must be checked before a request's body is read: the target, our own routes, the body's size. */
  function admit(req: IncomingMessage, res: ServerResponse): { target: string; path: string } | undefined {
    const target = req.url ?? '';
    // Before anything else: a name this proxy does not answer to is a page that rebound a DNS name to it.
    const host = req.headers.host;
    if (host !== undefined && !hostAllowed(host)) {
      req.resume();
      proxyError(res, 403, `Host ${JSON.stringify(host.slice(0, 100))} is not one this proxy answers to: allow it with --allowed-host (allowedHosts)`, { connection: 'close' });
      return undefined;
    }
    // Only origin-form targets go upstream, joined onto its origin as a string: an absolute URL
    // (or anything else) could otherwise send the request, and its Authorization, elsewhere.
    if (!target.startsWith('/') || target.includes('#')) {
      req.resume();
      proxyError(res, 400, 'request target must be a path (origin-form, "/…", with no fragment)', { connection: 'close' });
      return undefined;
    }
    const query = target.indexOf('?');
    const rawPath = query < 0 ? target : target.slice(0, query);
    const path = decodedPath(rawPath);
    // Dot segments could climb out of the upstream's base path once the upstream normalises them.
    if (path === undefined || /(^|\/)\.\.?(\/|$)/.test(path)) {
      req.resume();
      proxyError(res, 400, 'request path must not hold "." or ".." segments', { connection: 'close' });
      return undefined;
    }
    const hops = hopsOf(req.headers[HOP_HEADER]);
    if (hops.includes(instanceId) || hops.length >= MAX_HOPS) {
      req.resume();
      proxyError(res, 508, hops.includes(instanceId) ? `the upstream ${upstreamLabel} sends requests back to this proxy, directly or through other carbon-trace proxies: a loop` : `the request has passed ${hops.length} carbon-trace proxies: a loop`);
      return undefined;
    }
    // Our routes however the path is spelled (a trailing or doubled slash, capitals), and with any
    // method: a spelling that went upstream could reach the model server's own /metrics — which
    // vLLM serves under every path that begins with /metrics.
    const route = routePath(path).toLowerCase();
    if (OWN_ROUTES.has(route)) {
      req.resume();
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        proxyError(res, 405, `${route} is the proxy's own route: GET only`, { allow: 'GET, HEAD' });
        return undefined;
      }
      if (route !== '/carbon' && !adminAllowed(req, target)) {
        proxyError(res, 401, 'this route needs the admin token: Authorization: Bearer <CARBON_TRACE_ADMIN_TOKEN>', { 'www-authenticate': 'Bearer' });
        return undefined;
      }
      ownRoute(route, target, res).catch((error: unknown) => proxyError(res, 500, `carbon-trace: ${error instanceof Error ? error.message : String(error)}`));
      return undefined;
    }
    if (route.startsWith('/metrics')) {
      req.resume();
      proxyError(res, 404, 'the paths under /metrics are the proxy\'s: the model server\'s own metrics are not served through it (scrape it directly)');
      return undefined;
    }
    const coding = req.headers['transfer-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'chunked') {
      // Node takes the chunks apart but not gzip or the like: passing on the rest would change it (RFC 9112 §6.1).
      req.resume();
      proxyError(res, 501, `transfer coding ${JSON.stringify(coding.slice(0, 100))} is not supported: only chunked`, { connection: 'close' });
      return undefined;
    }
    const length = Number(req.headers['content-length']);
    if (Number.isFinite(length) && length > maxBodyBytes) {
      // Answered before reading past the limit; the connection cannot be reused.
      proxyError(res, 413, `request body of ${length} bytes is larger than the limit of ${maxBodyBytes} bytes`, { connection: 'close' });
      req.socket.end();
      return undefined;
    }
    return { target, path };
  }

  function listener(req: IncomingMessage, res: ServerResponse): void {
    const admitted = admit(req, res);
    if (admitted) forward(req, res, admitted.target, admitted.path);
  }

  /** `Expect: 100-continue`: the client waits for a go before sending its body — not when it would be refused. */
  function checkContinue(req: IncomingMessage, res: ServerResponse): void {
    const admitted = admit(req, res);
    if (!admitted) return;
    res.writeContinue();
    forward(req, res, admitted.target, admitted.path);
  }

  const adminAllowed = (req: IncomingMessage, target: string): boolean => {
    if (adminToken === undefined) return true;
    const given = bearerToken(req.headers.authorization) ?? new URLSearchParams(target.slice(target.indexOf('?') + 1)).get('token') ?? '';
    const a = createHash('sha256').update(given).digest();
    const b = createHash('sha256').update(adminToken).digest();
    return timingSafeEqual(a, b);
  };

  type Close = (status: number, traced?: { usage: BookedRequest['usage'] }, cutBy?: 'upstream') => Promise<Record<string, unknown> | undefined>;

  function forward(req: IncomingMessage, res: ServerResponse, target: string, path: string): void {
    // Every request that may make the upstream work is metered, and booked per key and user; the
    // completions also get a trace. GET, HEAD and OPTIONS only read.
    const metering = req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS';
    const traced = req.method === 'POST' && isCompletionPath(path);
    const encoded = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
    const fields = metering && (encoded === 'identity' || encoded === '') ? new RequestFields(['model', 'user']) : undefined;
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
    const settleExchange = makeExchange(res);

    const close: Close = async (upstreamStatus, trace, cutBy) => {
      if (!metering || settled) return undefined;
      settled = true;
      // A response the client will not get is booked as such: 502 when the upstream cut it (an
      // upstream crash mid-stream must reach the alert on 502s), 499 when the client went away.
      const clientStatus = cutBy === 'upstream' ? 502 : res.destroyed && !res.writableFinished ? 499 : upstreamStatus;
      const model = boundedName(fields?.get('model'));
      const energy: RequestEnergy = metered
        ? await metered.end(model === undefined ? {} : { model })
        : { joules: {}, totalJoules: undefined, durationSeconds: 0, measured: false, warnings: ['no energy figure: the request ended before its body had arrived'] };
      const g = grid.current() ?? (await grid.ready);
      const usage = trace?.usage ?? {};
      const record = trace && traced ? carbonTraceRecord(energy, g, { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens }) : undefined;
      const user = boundedName(fields?.get('user')) ?? boundedName(headerValue(req.headers['x-carbon-trace-user']));
      const expectsUsage = traced && clientStatus >= 200 && clientStatus < 300;
      book({ model, apiKeyId: keyIds.of(req.headers.authorization), user, status: clientStatus, streamed, energy, trace: record, grid: g, usage, expectsUsage });
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
    const closeThen = (upstreamStatus: number, trace?: { usage: BookedRequest['usage'] }, cutBy?: 'upstream') =>
      close(upstreamStatus, trace, cutBy).finally(() => {
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

    let mode: 'pass' | 'sse' | 'json' = 'pass';
    let tracer: EventTracer | undefined;
    const usage: BookedRequest['usage'] = {};
    let held: Buffer[] = [];
    let heldBytes = 0;
    let upstreamHeadersSeen: IncomingHttpHeaders = {};
    let contentType = '';
    let completing: Promise<void> | undefined;
    const completeStream = () =>
      (completing ??= closeThen(status, { usage }).then((trace) => {
        if (tracer!.upstreamTraced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
        if (!res.destroyed) write(tracer!.complete(trace));
      }));

    // The upstream's reason phrase is not passed on: the client gets the standard one for the status
    // (a phrase Node cannot write would otherwise fail the response).
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (abandoned) c.abort(new Error('the client went away'));
      },
      onResponseStart(_c, statusCode, headers) {
        if (statusCode < 200) return; // informational
        setReachable(true);
        status = statusCode;
        upstreamHeadersSeen = headers;
        contentType = String(headers['content-type'] ?? '');
        const encoding = String(headers['content-encoding'] ?? 'identity').toLowerCase();
        const ok = status >= 200 && status < 300;
        const sse = contentType.includes('text/event-stream');
        const json = contentType.includes('json');
        streamed = sse;
        if (!traced || !ok || !(sse || json) || (encoding !== 'identity' && encoding !== '') || !canSplice(contentType)) {
          if (traced && ok && (sse || json)) warn(`untraceable\0${encoding}\0${contentType}`, `a completion came ${encoding !== 'identity' ? `encoded as ${encoding}` : `in ${contentType}`}: passed through without a trace`);
          mode = 'pass';
          startPass(headers);
          return;
        }
        if (sse) {
          mode = 'sse';
          res.writeHead(status, clientHeaders(headers, true));
          // The request's tokens pace its share of the machine's energy.
          tracer = new EventTracer({ tokens: (n) => metered?.tokens(n), usage: (u) => noteUsage(usage, u) });
        } else {
          mode = 'json';
        }
      },
      onResponseData(c, chunk) {
        if (mode === 'pass') {
          passOn(chunk);
        } else if (mode === 'sse') {
          const { out, done } = tracer!.push(chunk);
          if (out.length > 0) write(out);
          if (tracer!.gaveUp) warn('sse-unframed', 'a stream sent more than 64 KiB without an event boundary: it is passed through as it comes, without a trace');
          if (done) {
            // [DONE]: the books close now and the trace goes on the held chunk; the rest waits.
            c.pause();
            void guard(completeStream().then(() => c.resume()));
          }
        } else {
          heldBytes += chunk.length;
          held.push(chunk);
          if (heldBytes > maxTracedResponseBytes) {
            // Too large to hold: it passes untouched, without a trace.
            warn('large-response', `a completion larger than ${maxTracedResponseBytes} bytes passed through without a trace`);
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
        } else if (mode === 'sse') {
          void guard(completeStream().then(() => res.end()));
        } else {
          const body = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
          held = [];
          const completion = readCompletion(body);
          noteUsage(usage, completion.usage);
          void guard(
            closeThen(status, { usage }).then((trace) => {
              if (completion.traced) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
              const out = trace !== undefined && completion.object && !completion.traced ? spliceTrace(body, asciiJson(trace)) : undefined;
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
          if (UNREACHABLE.has(code)) setReachable(false, code);
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
      headers: upstreamHeaders(req, traced),
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
          if (received > maxBodyBytes) {
            abandon('request body over the limit');
            void guard(
              closeThen(413).then(() => {
                proxyError(res, 413, `request body larger than the limit of ${maxBodyBytes} bytes`, { connection: 'close' });
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
    const proto = 'encrypted' in req.socket ? 'https' : 'http';
    const prior = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${client}` : client;
    headers['x-forwarded-proto'] = proto;
    if (req.headers.host) headers['x-forwarded-host'] = req.headers.host;
    // The client's own X-Real-IP or Forwarded could claim any address: ours says who connected.
    headers['x-real-ip'] = client;
    const forwarded = `for=${client.includes(':') ? `"[${client}]"` : client};proto=${proto}${req.headers.host ? `;host="${req.headers.host.replace(/["\\]/g, '')}"` : ''}`;
    headers.forwarded = req.headers.forwarded ? `${req.headers.forwarded}, ${forwarded}` : forwarded;
    headers[HOP_HEADER] = [...hopsOf(req.headers[HOP_HEADER]), instanceId].join(', ');
    // The trace is spliced into the bytes: ask for them uncompressed.
    if (traced) headers['accept-encoding'] = 'identity';
    return headers;
  }

  // Slow or stalled clients hold only their own socket: headers within 10 s, a request body
  // within 5 min; the model's answer may take as long as it takes. Node checks those limits every
  // connectionsCheckingInterval (30 s by default, which let a silent client stay 30 s): every second.
  const requestTimeout = options.requestTimeoutMs ?? 300_000;
  const server = createServer(
    {
      maxHeaderSize: 16 * 1024,
      headersTimeout: Math.min(options.headersTimeoutMs ?? 10_000, requestTimeout),
      requestTimeout,
      connectionsCheckingInterval: Math.min(1_000, Math.max(100, Math.floor(requestTimeout / 4))),
    },
    listener,
  );
  server.on('checkContinue', checkContinue);
  // CONNECT asks for a tunnel to another host: never.
  server.on('connect', (_req: IncomingMessage, socket: import('node:stream').Duplex) => {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  return {
    listener,
    server,
    stats,
    async close() {
      if (closed) return;
      closed = true;
      if (probeTimer) clearTimeout(probeTimer);
      // No new connection; a request still sending its body is cut (the upstream has not begun);
      // the ones the upstream works on may finish (a stream to its end), for a while.
      const stopped = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      server.closeIdleConnections();
      for (const { res, dispatched } of exchanges.values()) if (!dispatched) res.destroy();
      await allSettled(options.shutdownGraceMs ?? 10_000);
      // The rest are cut, and booked as cut.
      for (const { res } of exchanges.values()) res.destroy();
      await allSettled(2_000);
      server.closeAllConnections();
      await stopped;
      await pool.destroy().catch(() => undefined);
      await books.close();
    },
  };
}

const headerValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);


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


/**
 * How API keys become the one-way ids the books keep: HMAC-SHA-256 of the bearer token with a
 * secret, first 12 hex digits. Without the secret an id cannot be checked against guesses, so
 * the public /metrics gives nothing away; with the same secret every proxy of a fleet gives the
 * same id for the same key.
 */
function createKeyIds(secret: Buffer | string): { of(authorization: string | undefined): string | undefined } {
  return {
    of(authorization) {
      const token = bearerToken(authorization);
      return token === undefined ? undefined : `key:${createHmac('sha256', secret).update(token).digest('hex').slice(0, 12)}`;
    },
  };
}

/** The path percent-decoded as the upstream will read it; `undefined` when its encoding is broken. */
function decodedPath(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** The token of an `Authorization: Bearer …` header. */
function bearerToken(authorization: string | undefined): string | undefined {
  return /^\s*bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
}

/**
 * How much of the tables `/carbon/stats` gives: `?top=N` (the N rows of each table with the most
 * energy; `rowsOmitted` says how many more there are) and `?recent=N` (the last N requests).
 *
 * @example
 * ```ts
 * const limits: StatsLimits = { top: 10, recent: 60 };
 * ```
 */
export type StatsLimits = { top?: number; recent?: number };

function statsLimits(target: string): StatsLimits {
  const query = target.indexOf('?');
  if (query < 0) return {};
  const params = new URLSearchParams(target.slice(query + 1));
  const limits: StatsLimits = {};
  for (const name of ['top', 'recent'] as const) {
    const value = params.get(name);
    if (value !== null && /^\d{1,7}$/.test(value)) limits[name] = Number(value);
  }
  return limits;
}

/** The path as the proxy's own routes are named: one slash between segments, none at the end. */
function routePath(path: string): string {
  const collapsed = path.replace(/\/{2,}/g, '/');
  return collapsed.length > 1 ? collapsed.replace(/\/$/, '') : collapsed;
}

/** The carbon-trace proxies a request has passed, as their `x-carbon-trace-proxy` header lists them. */
function hopsOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value.join(',') : value).split(',').map((id) => id.trim()).filter(Boolean);
}

/** The admin token without the whitespace a secret file leaves around it; one that is only whitespace is no token. */
function checkedAdminToken(token: string): string {
  const trimmed = token.trim();
  if (trimmed === '') throw new TypeError('the admin token is empty (or only whitespace): give a real token (e.g. openssl rand -hex 32), or none to leave the books open');
  if (/\s/.test(trimmed)) throw new TypeError('the admin token holds whitespace, which an Authorization: Bearer header cannot carry');
  return trimmed;
}

/** The names of a `Host` header this proxy answers to (see `allowedHosts`). */
function hostCheck(allowed: readonly string[] | true | undefined): (host: string) => boolean {
  if (allowed === true) return () => true;
  const names = new Set<string>();
  const domains: string[] = [];
  for (const entry of allowed ?? []) {
    const name = entry.trim().toLowerCase().replace(/\.$/, '');
    if (name === '*') return () => true;
    if (name.startsWith('.')) domains.push(name);
    else if (name !== '') names.add(name);
  }
  return (host) => {
    const name = hostName(host);
    if (name === undefined) return false;
    if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || names.has(name)) return true;
    return domains.some((domain) => name.endsWith(domain) || name === domain.slice(1));
  };
}

/** The name of a `Host` header (lower case, without its port or a trailing dot); `undefined` when it is not one. */
function hostName(host: string): string | undefined {
  const value = host.trim().toLowerCase();
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(value);
  if (!match) return undefined;
  const name = match[1] ?? match[2]!.replace(/\.$/, '');
  return name === '' ? undefined : name;
}
