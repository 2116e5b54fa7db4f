import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { Pool } from 'undici';
import { createWarner } from '../../core/report';
import { gridSource } from '../grid-source';
import { createProxyBooks, type BookedRequest } from '../books';
import { DEFAULT_MAX_BODY_BYTES } from '../wires/json-splice';
import { adminCheck, checkedAdminToken, createKeyIds, hostCheck } from './access';
import { admission } from './admit';
import { forwarder } from './forward';
import type { CarbonProxy, CarbonProxyOptions } from './options';
import { ownRoutes } from './own-routes';
import { createExchanges, shutDown } from './shutdown';
import { upstreamHealth } from './upstream-health';
import { upstreamModels } from './upstream-models';
import { createFleetShipper, KEY_ID_CHECK, type FleetShipper } from '../fleet/shipper';
import { redactDatabaseUrl, scrubbed } from '../fleet/connect';
import { instanceIdBeside } from '../fleet/instance';
import { defaultInstanceName, reportFromDatabase, reportFromLedger, type ReportQuery } from '../fleet/report';

export type { BookedRequest, BookRow, CarbonProxy, CarbonProxyOptions, ProxyStats, RecentRequest, StatsLimits, UpstreamState } from './options';

const DEFAULT_MAX_TRACED_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * A reverse proxy that puts `x_carbon_trace` on every answer of the model server behind it, on
 * every wire it knows (OpenAI chat and completions, the Responses API, embeddings, rerank and
 * score, Ollama's API, TGI's, llama.cpp's, Anthropic Messages: `src/server/wires/`), and serves
 * the numbers: `GET /carbon` (a live dashboard), `GET /carbon/stats` (JSON),
 * `GET /api/v1/carbon/inference/stats` (Model Garden's shape, for seeds-clients'
 * `get_carbon_stats()`), `GET /metrics` (Prometheus).
 *
 * Built to stand on a network: it only ever connects to its upstream (request targets are joined
 * onto the upstream's origin and base path as strings, and any target that is not origin-form is
 * a 400); bodies are bounded (413); hop-by-hop headers stop here and `X-Forwarded-For`, `-Proto`
 * and `-Host` are set; nothing it echoes is unbounded. Bytes are piped: only the end of a JSON
 * answer and the events of a stream that may carry the trace are looked at, and nothing it does
 * not change is decoded. It starts before its upstream and answers 502 until the upstream answers.
 *
 * Its parts, each in a file of this folder: the request checks (`admit`), its own routes
 * (`own-routes`), forwarding (`forward`), the upstream's health (`upstream-health`) and model
 * list (`upstream-models`), and shutdown (`shutdown`); the wires and the books are beside it.
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
  if (options.db !== undefined) {
    // The ledger is the write-ahead record the database is filled from: without it, a row the database missed would be gone.
    if (options.ledger === undefined) throw new TypeError('db needs a ledger (--ledger FILE): rows go to the database from it, and wait in it while the database is down');
    if (!/^postgres(ql)?:\/\//i.test(options.db)) throw new TypeError(`db must be a postgres:// URL, got ${redactDatabaseUrl(options.db)}`);
  }
  if (options.retentionDays !== undefined && !(Number.isFinite(options.retentionDays) && options.retentionDays > 0)) throw new TypeError('retentionDays must be a number of days above 0');
  const instance = options.instance ?? defaultInstanceName();
  const basePath = upstream.pathname.replace(/\/+$/, '');
  const upstreamLabel = `${upstream.origin}${basePath}`;
  // undici's pool: keep-alive connections to the upstream, at about twice the rate of http.Agent.
  const pool = new Pool(upstream.origin, { connections: null, pipelining: 1 });
  const meter = options.meter;
  const warn = createWarner(options.onWarning);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const grid = gridSource(options.gridIntensity, warn);
  const instanceId = randomUUID();
  const exchanges = createExchanges();

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
  let shipper: FleetShipper | undefined;
  const files = books.files();
  if (options.db !== undefined && options.keyIdSecret === undefined) {
    warn('fleet-key-ids', "db without a key-id secret shared by the fleet (CARBON_TRACE_KEY_ID_SECRET, or keyIdSecret): each proxy keeps its own, so one API key has a different id on each proxy and the fleet's books by api_key split it");
  }
  if (options.db !== undefined && files) {
    try {
      shipper = createFleetShipper({
        db: options.db,
        instance: { name: instance, id: instanceIdBeside(files.ledger.realPath), host: hostname() },
        files: () => books.files(),
        warn,
        keyIdCheck: keyIds.of(KEY_ID_CHECK)!,
        ...(options.retentionDays !== undefined ? { retentionDays: options.retentionDays } : {}),
      });
    } catch (error) {
      void books.close();
      throw error;
    }
  }
  const report = (query: ReportQuery) => {
    if (shipper) {
      const db = options.db!;
      const ledgerPath = books.files()?.ledger.realPath;
      return reportFromDatabase(shipper.pool, query).catch(async (error: unknown) => {
        const why = `fleet database ${redactDatabaseUrl(db)}: ${scrubbed(error, db)}`;
        // The fleet's books cannot be read: this proxy's own ledger still can, said as such.
        const refused = error instanceof Error && /removed \(--retention\)/.test(error.message);
        if (ledgerPath === undefined || refused) throw new Error(why);
        const own = await reportFromLedger(ledgerPath, query, { instance });
        return { ...own, note: `${why}: this proxy's ledger only, not the fleet's` };
      });
    }
    const kept = books.files();
    if (!kept) return Promise.reject(new Error('this proxy keeps no ledger (--ledger) and no database (--db): its books are since start only, with no period'));
    return reportFromLedger(kept.ledger.realPath, query, { instance });
  };
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
  const health = upstreamHealth(upstream, { onState: options.onUpstreamState, probeMs: options.upstreamProbeMs });
  const own = ownRoutes({ books, meter, grid, upstreamLabel, upstreamReachable: health.reachable, instance, fleet: () => shipper?.state(), report });
  const admit = admission({ hostAllowed, adminAllowed: adminCheck(adminToken), instanceId, upstreamLabel, maxBodyBytes, own });
  const forward = forwarder({
    pool,
    basePath,
    upstreamLabel,
    instanceId,
    meter,
    grid,
    warn,
    book,
    keyIds,
    exchanges,
    health,
    models: upstreamModels(pool, basePath, instanceId),
    maxBodyBytes,
    maxTracedResponseBytes: options.maxTracedResponseBytes ?? DEFAULT_MAX_TRACED_RESPONSE_BYTES,
  });

  function listener(req: IncomingMessage, res: ServerResponse): void {
    const admitted = admit(req, res);
    if (admitted) forward(req, res, admitted);
  }

  /** `Expect: 100-continue`: the client waits for a go before sending its body — not when it would be refused. */
  function checkContinue(req: IncomingMessage, res: ServerResponse): void {
    const admitted = admit(req, res);
    if (!admitted) return;
    res.writeContinue();
    forward(req, res, admitted);
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

  let closed = false;
  return {
    listener,
    server,
    stats: own.stats,
    report,
    flushFleet: () => shipper?.flush() ?? Promise.resolve(true),
    async close() {
      if (closed) return;
      closed = true;
      health.close();
      await shutDown({
        server,
        exchanges,
        graceMs: options.shutdownGraceMs ?? 10_000,
        closeUpstream: () => pool.destroy(),
        closeBooks: async () => {
          await books.close();
          // After the books: the last rows and the last idle interval are in the files, and go too if the database answers.
          await shipper?.close();
        },
      });
    },
  };
}
