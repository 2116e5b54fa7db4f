import { Buffer } from 'node:buffer';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { Transform } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { JOULES_PER_KWH } from '../core/units';
import { createWarner, type CarbonTraceWarningHandler } from '../core/report';
import { boundedName, createRowBook, OTHER_ROW, type RowBook } from './books';
import { dashboardHtml } from './dashboard';
import { gridSource, type GridIntensityOption } from './grid-source';
import { canSplice, carriesTrace, asciiJson, readJsonObject, spliceTrace } from './json-splice';
import type { EnergyMeter, MeterStats } from './meter';
import { Exposition, PROMETHEUS_CONTENT_TYPE } from './prometheus';
import { RequestFields } from './request-fields';
import { EventTracer } from './sse-trace';
import { carbonTraceRecord, gramsOf, type ResolvedGridIntensity } from './trace-record';
import { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent, type RequestEnergy } from './types';

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
  /** How many model names the books keep apart (the least active beyond fold into `(other)`). Default 1000; `/metrics` keeps 100. */
  maxModels?: number;
  /** Told when the upstream becomes reachable or unreachable (also once at start). */
  onUpstreamState?: (state: UpstreamState) => void;
  /** How often an unreachable upstream is probed, ms. Default 2000. */
  upstreamProbeMs?: number;
  /** Told about every traced request once its books are closed. */
  onBooked?: (request: BookedRequest) => void;
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
 * One traced request whose books are closed.
 *
 * @example
 * ```ts
 * const onBooked = (r: BookedRequest) => console.log(r.model, r.energy.totalJoules, r.trace?.emissions_g_co2);
 * ```
 */
export type BookedRequest = {
  model: string | undefined;
  /** HTTP status the client got (499: the client went away first; 502: the upstream could not be reached). */
  status: number;
  streamed: boolean;
  energy: RequestEnergy;
  /** The trace added to the response; `undefined` when none was (an error, a cut stream, the upstream's own trace). */
  trace: Record<string, unknown> | undefined;
  /** The grid intensity the request's emissions were booked at. */
  grid: ResolvedGridIntensity;
  /** Token counts, as the response's usage gave them. */
  usage: { promptTokens?: number; completionTokens?: number };
};

/**
 * One recent request, as `/carbon/stats` lists it for the dashboard.
 *
 * @example
 * ```ts
 * const last: RecentRequest = (await (await fetch('/carbon/stats')).json()).recent.at(-1);
 * ```
 */
export type RecentRequest = {
  /** When its books closed (ISO 8601). */
  at: string;
  model: string | null;
  status: number;
  streamed: boolean;
  joules: ComponentJoules;
  /** `null` when the meter had no figure for it. */
  totalJoules: number | null;
  emissionsGrams: number | null;
  durationSeconds: number;
  measured: boolean;
  completionTokens: number | null;
};

/**
 * One row of the proxy's books (per model).
 *
 * @example
 * ```ts
 * const row: BookRow = (await proxy.stats()).byModel['llama-3.1-8b']!;
 * ```
 */
export type BookRow = {
  /** Requests whose books are closed. */
  requests: number;
  /** Of those, the ones with a measured energy figure. */
  measuredRequests: number;
  /** Of those, the ones that got no energy figure. */
  requestsWithoutFigure: number;
  /** Per HTTP status the client got. */
  byStatus: Record<string, number>;
  joules: number;
  byComponent: ComponentJoules;
  emissionsGrams: number;
  /** With `idle: 'share'` only: this row's part of the idle energy, in proportion to `joules`. */
  idleShareJoules?: number;
  /** Token counts of the requests whose usage reported them; `requestsWithUsage` says how many those are. */
  promptTokens: number;
  completionTokens: number;
  requestsWithUsage: number;
};

/**
 * What `GET /carbon/stats` answers: the meter's books, the proxy's per-model rows, and where the
 * numbers come from. Every view adds up: `attributedJoules + inFlightJoules + idleJoules +
 * unattributedJoules = totalJoules`, and the rows of `byModel` add up to `attributedJoules`.
 *
 * @example
 * ```ts
 * const { totalJoules, byModel, grid } = await proxy.stats();
 * ```
 */
export type ProxyStats = Omit<MeterStats, 'byModel'> & {
  meter: string;
  upstream: string;
  upstreamReachable: boolean;
  grid: ResolvedGridIntensity;
  emissionsGrams: { total: number; attributed: number; inFlight: number; idle: number; unattributed: number };
  byModel: Record<string, BookRow>;
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
  /** Stops the server, the probes and the upstream connections (not the meter, which is yours). */
  close(): Promise<void>;
};

// Hop-by-hop headers (RFC 9110 §7.6.1): they belong to one connection and stop at the proxy, as
// do the headers a `Connection` header names.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_TRACED_RESPONSE_BYTES = 64 * 1024 * 1024;
const SMALL_BODY_BYTES = 64 * 1024;
const MAX_METRIC_MODELS = 100;
const MAX_MODEL_GARDEN_NAMES = 10;
// One rule for JSON and streams: a server that measures itself keeps its own trace.
const UPSTREAM_TRACE_WARNING = 'the upstream response already carries x_carbon_trace: it is passed through unchanged, and carbon-trace books its own figure for the request apart (in /carbon/stats, not in the response)';

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
  const keepRecent = options.recentRequests ?? 60;
  const grid = gridSource(options.gridIntensity, warn);

  // The books: per model (stats and dashboard) and a smaller table for Prometheus labels.
  const rowSpec = {
    create: (): BookRow => ({ requests: 0, measuredRequests: 0, requestsWithoutFigure: 0, byStatus: Object.create(null), joules: 0, byComponent: {}, emissionsGrams: 0, promptTokens: 0, completionTokens: 0, requestsWithUsage: 0 }),
    merge: mergeRows,
    requests: (row: BookRow) => row.requests,
  };
  const byModel: RowBook<BookRow> = createRowBook(options.maxModels ?? 1000, rowSpec);
  const metricModels = createRowBook<MetricRow>(MAX_METRIC_MODELS, {
    create: () => ({ requests: 0, measuredRequests: 0, joules: {}, grams: {} }),
    merge: (into, from) => {
      into.requests += from.requests;
      into.measuredRequests += from.measuredRequests;
      addInto(into.joules, from.joules);
      addInto(into.grams, from.grams);
    },
    requests: (row) => row.requests,
  });
  const recent: RecentRequest[] = [];
  const tokens = { prompt: 0, completion: 0, requestsWithUsage: 0 };
  // Idle emissions accrue at the intensity of their time.
  let idleGrams = 0;
  let idleJoulesSeen = 0;
  const accrueIdle = (stats: MeterStats, g: ResolvedGridIntensity) => {
    const delta = stats.idleJoules - idleJoulesSeen;
    if (delta > 0) idleGrams += gramsOf(delta, g);
    idleJoulesSeen = stats.idleJoules;
  };

  function book(booked: BookedRequest): void {
    const { energy } = booked;
    const known = energy.totalJoules !== undefined;
    const grams = known ? gramsOf(energy.totalJoules!, booked.grid) : 0;
    const row = byModel.row(booked.model);
    row.requests++;
    row.byStatus[String(booked.status)] = (row.byStatus[String(booked.status)] ?? 0) + 1;
    if (known) {
      row.joules += energy.totalJoules!;
      addInto(row.byComponent, energy.joules);
      row.emissionsGrams += grams;
      if (energy.measured) row.measuredRequests++;
    } else {
      row.requestsWithoutFigure++;
    }
    const { promptTokens, completionTokens } = booked.usage;
    if (promptTokens !== undefined || completionTokens !== undefined) {
      row.promptTokens += promptTokens ?? 0;
      row.completionTokens += completionTokens ?? 0;
      row.requestsWithUsage++;
      tokens.prompt += promptTokens ?? 0;
      tokens.completion += completionTokens ?? 0;
      tokens.requestsWithUsage++;
    }
    const metric = metricModels.row(booked.model);
    metric.requests++;
    if (known) {
      if (energy.measured) metric.measuredRequests++;
      addInto(metric.joules, energy.joules);
      for (const [component, joules] of Object.entries(energy.joules)) metric.grams[component as EnergyComponent] = (metric.grams[component as EnergyComponent] ?? 0) + gramsOf(joules ?? 0, booked.grid);
    }
    recent.push({
      at: new Date().toISOString(),
      model: booked.model ?? null,
      status: booked.status,
      streamed: booked.streamed,
      joules: energy.joules,
      totalJoules: energy.totalJoules ?? null,
      emissionsGrams: known ? grams : null,
      durationSeconds: energy.durationSeconds,
      measured: energy.measured,
      completionTokens: completionTokens ?? null,
    });
    if (recent.length > keepRecent) recent.shift();
    if (options.onBooked) {
      try {
        options.onBooked(booked);
      } catch (error) {
        warn(`onBooked\0${String(error)}`, `onBooked threw: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

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
    const m = meter.stats();
    accrueIdle(m, g);
    const toGrams = (joules: number) => gramsOf(joules, g);
    const rows = Object.create(null) as Record<string, BookRow>;
    let attributedGrams = 0;
    for (const [name, row] of byModel.entries()) {
      rows[name] = { ...row, byStatus: { ...row.byStatus }, byComponent: { ...row.byComponent } };
      attributedGrams += row.emissionsGrams;
      if (m.idleMode === 'share') rows[name]!.idleShareJoules = m.attributedJoules > 0 ? (m.idleJoules * row.joules) / m.attributedJoules : 0;
    }
    const inFlight = toGrams(m.inFlightJoules);
    const unattributed = toGrams(m.unattributedJoules);
    return {
      ...m,
      meter: meter.describe(),
      upstream: upstreamLabel,
      upstreamReachable: reachable !== false,
      grid: g,
      emissionsGrams: { total: attributedGrams + inFlight + idleGrams + unattributed, attributed: attributedGrams, inFlight, idle: idleGrams, unattributed },
      byModel: rows,
      tokens: { ...tokens },
      completionTokens: tokens.completion,
      recent: [...recent],
    };
  }

  async function metrics(): Promise<string> {
    const g = grid.current() ?? (await grid.ready);
    const m = meter.stats();
    accrueIdle(m, g);
    const text = new Exposition();
    const rows = [...metricModels.entries()];
    text.family('carbon_trace_energy_joules_total', 'counter', 'Energy attributed to requests whose books are closed, J');
    for (const [model, row] of rows) for (const [component, joules] of Object.entries(row.joules)) text.sample({ component, model }, joules ?? 0);
    text.family('carbon_trace_emissions_grams_total', 'counter', 'Emissions attributed to requests whose books are closed, gCO2eq');
    for (const [model, row] of rows) for (const [component, grams] of Object.entries(row.grams)) text.sample({ component, model }, grams ?? 0);
    text.family('carbon_trace_requests_total', 'counter', 'Requests whose books are closed; measured="false" includes those with no energy figure');
    for (const [model, row] of rows) {
      text.sample({ model, measured: 'true' }, row.measuredRequests);
      text.sample({ model, measured: 'false' }, row.requests - row.measuredRequests);
    }
    const perComponent = (name: string, type: 'counter' | 'gauge', help: string, pick: (c: NonNullable<MeterStats['byComponent'][EnergyComponent]>) => number) => {
      text.family(name, type, help);
      for (const component of ENERGY_COMPONENTS) {
        const c = m.byComponent[component];
        if (c) text.sample({ component }, pick(c));
      }
    };
    perComponent('carbon_trace_idle_energy_joules_total', 'counter', 'Energy with no request in flight, J', (c) => c.idleJoules);
    perComponent('carbon_trace_unattributed_energy_joules_total', 'counter', 'Energy the meter could not place (a source could not be read), J', (c) => c.unattributedJoules);
    perComponent('carbon_trace_in_flight_energy_joules', 'gauge', 'Energy given so far to requests still in flight, J', (c) => c.inFlightJoules);
    perComponent('carbon_trace_meter_energy_joules_total', 'counter', 'Energy the meter measured in all: attributed + in flight + idle + unattributed, J', (c) => c.totalJoules);
    text.family('carbon_trace_power_watts', 'gauge', 'Power the machine draws now, per component, W');
    for (const [component, watts] of Object.entries(m.powerWatts)) text.sample({ component }, watts ?? 0);
    return text.render();
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
    let finished = false; // the client has the whole response
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
      book({ model, status: clientStatus, streamed, energy, trace: record, grid: g, usage });
      return record;
    };
    const abandon = (reason: string) => {
      abandoned = true;
      controller?.abort(new Error(reason));
    };

    res.once('close', () => {
      if (finished) return;
      // The client went away first: stop the upstream work, close the books.
      abandon('the client went away');
      void close(499);
    });
    res.once('finish', () => (finished = true));

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
    const noteUsage = (u: { prompt_tokens?: unknown; completion_tokens?: unknown } | undefined) => {
      if (isCountValue(u?.prompt_tokens)) usage.promptTokens = u.prompt_tokens;
      if (isCountValue(u?.completion_tokens)) usage.completionTokens = u.completion_tokens;
    };
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
          tracer = new EventTracer({ tokens: (n) => metered!.tokens(n), usage: noteUsage });
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
          const parsed = readJsonObject(body, contentType);
          noteUsage(parsed?.usage);
          const theirs = carriesTrace(parsed);
          void close(status, { usage }).then((trace) => {
            if (theirs) warn('upstream-trace', UPSTREAM_TRACE_WARNING);
            const out = trace !== undefined && !theirs && parsed !== undefined ? spliceTrace(body, asciiJson(trace)) : undefined;
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
    },
  };
}

type MetricRow = { requests: number; measuredRequests: number; joules: ComponentJoules; grams: ComponentJoules };

function mergeRows(into: BookRow, from: BookRow): void {
  into.requests += from.requests;
  into.measuredRequests += from.measuredRequests;
  into.requestsWithoutFigure += from.requestsWithoutFigure;
  for (const [status, n] of Object.entries(from.byStatus)) into.byStatus[status] = (into.byStatus[status] ?? 0) + n;
  into.joules += from.joules;
  addInto(into.byComponent, from.byComponent);
  into.emissionsGrams += from.emissionsGrams;
  into.promptTokens += from.promptTokens;
  into.completionTokens += from.completionTokens;
  into.requestsWithUsage += from.requestsWithUsage;
}

function addInto(into: ComponentJoules, from: ComponentJoules): void {
  for (const [component, joules] of Object.entries(from)) into[component as EnergyComponent] = (into[component as EnergyComponent] ?? 0) + (joules ?? 0);
}

const isCountValue = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/** A `POST` to an OpenAI-compatible completion route gets a trace. */
function isCompletionPath(path: string): boolean {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.endsWith('/chat/completions') || trimmed.endsWith('/completions');
}

function connectionNamed(headers: IncomingHttpHeaders): Set<string> {
  const value = headers.connection;
  if (!value) return new Set();
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
 * The proxy's totals in the shape Model Garden's `/api/v1/carbon/inference/stats` has, so
 * seeds-clients' `ModelGardenClient.get_carbon_stats()` reads them unchanged. As there, the
 * totals are the whole session's, idle time included. Tokens are prompt + completion as the
 * responses' usage gave them, and `null` (unknown) when a request reported no usage.
 */
function modelGardenStats(stats: ProxyStats): Record<string, unknown> {
  const seconds = (Date.now() - Date.parse(stats.since)) / 1000;
  const requestCount = stats.requests;
  const tokensKnown = stats.tokens.requestsWithUsage === requestCount;
  const totalTokens = tokensKnown ? stats.tokens.prompt + stats.tokens.completion : null;
  const kg = stats.emissionsGrams.total / 1000;
  const kwh = stats.totalJoules / JOULES_PER_KWH;
  const models = Object.keys(stats.byModel).filter((m) => m !== OTHER_ROW);
  const shown = models.slice(0, MAX_MODEL_GARDEN_NAMES);
  const more = models.length - shown.length + (Object.hasOwn(stats.byModel, OTHER_ROW) ? 1 : 0);
  return {
    tracking: true,
    model_name: models.length === 0 ? null : `${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`,
    request_count: requestCount,
    total_tokens: totalTokens,
    requests_with_usage: stats.tokens.requestsWithUsage,
    duration_seconds: seconds,
    requests_per_second: seconds > 0 ? requestCount / seconds : 0,
    tokens_per_second: totalTokens !== null && seconds > 0 ? totalTokens / seconds : null,
    emissions_kg_co2: kg,
    emissions_g_co2: kg * 1000,
    energy_consumed_kwh: kwh,
    energy_kwh: kwh,
    ...(requestCount > 0 ? { emissions_per_request_g: (kg * 1000) / requestCount, energy_per_request_wh: (kwh * 1000) / requestCount } : {}),
    ...(totalTokens ? { emissions_per_1k_tokens_g: (kg * 1e6) / totalTokens } : {}),
    attributed_energy_kwh: stats.attributedJoules / JOULES_PER_KWH,
    idle_energy_kwh: stats.idleJoules / JOULES_PER_KWH,
    unattributed_energy_kwh: stats.unattributedJoules / JOULES_PER_KWH,
    measured: Object.values(stats.byComponent).every((c) => c?.measured),
  };
}
