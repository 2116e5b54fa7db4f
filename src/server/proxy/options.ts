import type { FleetShipperState } from '../fleet/shipper';
import type { Report, ReportQuery } from '../fleet/report';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { CarbonTraceWarningHandler } from '../../core/report';
import type { GridIntensityOption } from '../grid-source';
import type { EnergyMeter } from '../meter/meter';
import type { BookedRequest, BookRow, CombinedStats, RecentRequest } from '../books';
import type { ResolvedGridIntensity } from '../wires/trace-record';

export type { BookedRequest, BookRow, RecentRequest };

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
   * The fleet's Postgres (`postgres://user:password@host:5432/db`): every row of the ledger (which
   * it needs) is sent there in the background, batched, exactly once, and `/carbon/stats?from=`
   * answers for the whole fleet. The schema is made and migrated at the first connection. While
   * the database is down, rows wait in the ledger. Its password is shown nowhere.
   */
  db?: string;
  /** This proxy's name in the fleet's books (`instance`). Default: the host name. */
  instance?: string;
  /** With `db`: days the database keeps each request's row; the daily rollups stay. Default: kept. */
  retentionDays?: number;
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
  /** This proxy's name in period reports and the fleet's books. */
  instance: string;
  /** With `db`: the database (password masked), whether it answers, and what waits to be sent. */
  fleet?: FleetShipperState;
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
  /**
   * The books over a period, grouped, as `GET /carbon/stats?from=…&to=…&by=…` gives them: the
   * fleet's with `db`, this proxy's ledger's without it.
   *
   * @throws without `db` or a ledger (nothing keeps the rows by time).
   */
  report(query: ReportQuery): Promise<Report>;
  /** With `db`: sends what the ledger holds now; true when all of it is in the database (tests, and before a planned stop). */
  flushFleet(): Promise<boolean>;
  /** Stops the server, the probes and the upstream connections, and closes the ledger (not the meter, which is yours). */
  close(): Promise<void>;
};

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
