import { Buffer } from 'node:buffer';
import type { ServerResponse } from 'node:http';
import { dashboardHtml } from './dashboard';
import type { gridSource } from '../grid-source';
import type { EnergyMeter } from '../meter/meter';
import { PROMETHEUS_CONTENT_TYPE } from '../books/prometheus';
import { modelGardenStats, type ProxyBooks } from '../books';
import { gramsOf } from '../wires/trace-record';
import type { ProxyStats, StatsLimits } from './options';
import { proxyError } from './respond';
import type { FleetShipperState } from '../fleet/shipper';
import { fleetMetrics } from '../fleet/metrics';
import { parseReportQuery, type Report, type ReportQuery } from '../fleet/report';

// The proxy's own routes (GET and HEAD), as routePath() spells them: answer() answers each.
const OWN_ROUTES = new Set(['/carbon', '/carbon/stats', '/api/v1/carbon/inference/stats', '/metrics']);
// Answers of the books' routes that may wait their turn at once (distinct ones: the same question shares one).
const MAX_BOOKS_WAITING = 16;

/**
 * The path as the proxy's own routes are named: one slash between segments, none at the end.
 *
 * @example
 * ```ts
 * routePath('//carbon//stats/'); // '/carbon/stats'
 * ```
 */
export function routePath(path: string): string {
  const collapsed = path.replace(/\/{2,}/g, '/');
  return collapsed.length > 1 ? collapsed.replace(/\/$/, '') : collapsed;
}

/** `?from=…&to=…&by=…`: a period's books instead of the live ones (`undefined` without `from`). */
function periodOf(target: string): { from: string; to: string | null; by: string | null } | undefined {
  const query = target.indexOf('?');
  if (query < 0) return undefined;
  const params = new URLSearchParams(target.slice(query + 1));
  const from = params.get('from');
  const to = params.get('to');
  const by = params.get('by');
  // Any of them asks for a period: a `to` or `by` without `from` is refused (400), not the live books.
  return from === null && to === null && by === null ? undefined : { from: from ?? '', to, by };
}

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

/**
 * The proxy's own routes: `/carbon` (the dashboard), `/carbon/stats`, Model Garden's
 * `/api/v1/carbon/inference/stats` and `/metrics`, each a view of the one set of books.
 *
 * The books' routes take turns, and each waits after its work — the answer made and written to
 * its readers — 9 times as long as that took, per reader: however many clients poll them and
 * however large the tables, each lane takes at most about a tenth of the event loop (the two
 * lanes together about a fifth), and the model's traffic the rest. Readers asking the same thing while it waits its turn share one answer; at
 * most 16 answers wait, then 503; a turn whose readers have all gone is skipped. `/metrics` has a
 * lane of its own, so that a crowd of readers of `/carbon/stats` never makes Prometheus's scrape
 * time out.
 *
 * @example
 * ```ts
 * const own = ownRoutes({ books, meter, grid, upstreamLabel, upstreamReachable: () => true });
 * if (own.has(routePath(path).toLowerCase())) await own.answer(route, target, res);
 * ```
 */
export function ownRoutes(parts: {
  books: ProxyBooks;
  meter: EnergyMeter;
  grid: ReturnType<typeof gridSource>;
  upstreamLabel: string;
  upstreamReachable: () => boolean;
  instance: string;
  fleet: () => FleetShipperState | undefined;
  report: (query: ReportQuery) => Promise<Report>;
}) {
  const { books, meter, grid } = parts;

  async function stats(limits: StatsLimits = {}): Promise<ProxyStats> {
    const g = grid.current() ?? (await grid.ready);
    const c = books.combine(meter.stats(), g);
    const v = books.views(c, limits);
    const inFlight = gramsOf(c.inFlightJoules, g);
    const ledger = books.ledgerState();
    const fleet = parts.fleet();
    return {
      ...c,
      meter: meter.describe(),
      upstream: parts.upstreamLabel,
      upstreamReachable: parts.upstreamReachable(),
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
      instance: parts.instance,
      ...(fleet ? { fleet } : {}),
    };
  }

  async function metrics(): Promise<string> {
    const g = grid.current() ?? (await grid.ready);
    let text = books.prometheus(books.combine(meter.stats(), g), g);
    const fleet = parts.fleet();
    if (fleet) text += fleetMetrics(fleet);
    // On file before Prometheus sees them (off the event loop): after a crash the counters continue from at least these.
    await books.persistTotals();
    return text;
  }

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

  return {
    stats,
    /** Whether `route` (as {@link routePath} spells it, lower case) is one of the proxy's own. */
    has: (route: string) => OWN_ROUTES.has(route),
    /** Whether `route` needs the admin token: every own route but the dashboard's page. */
    needsAdmin: (route: string) => route !== '/carbon',
    async answer(route: string, target: string, res: ServerResponse): Promise<void> {
      if (route === '/carbon') {
        const html = Buffer.from(dashboardHtml());
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': html.length });
        res.end(html);
      } else if (route === '/carbon/stats' && periodOf(target)) {
        const period = periodOf(target)!;
        let query: ReportQuery;
        try {
          query = parseReportQuery(period);
        } catch (error) {
          proxyError(res, 400, (error as Error).message);
          return;
        }
        // A failure (the database down, rows removed by retention) is each reader's 500, with why.
        // A lane of its own: a period read from a large ledger or a slow database must not hold the live books back.
        const { top } = statsLimits(target);
        await answerInTurn(res, 'period', `period\0${query.from.toISOString()}\0${query.to.toISOString()}\0${query.by.join(',')}\0${top}`, 'application/json', async () => {
          const report = await parts.report(query);
          // ?top=N: the N groups with the most emissions (the totals stay whole), and how many more there are.
          return Buffer.from(JSON.stringify(top === undefined ? report : { ...report, rows: report.rows.slice(0, top), rowsOmitted: Math.max(0, report.rows.length - top) }));
        });
      } else if (route === '/carbon/stats') {
        const limits = statsLimits(target);
        await answerInTurn(res, 'stats', `stats\0${limits.top}\0${limits.recent}`, 'application/json', async () => Buffer.from(JSON.stringify(await stats(limits))));
      } else if (route === '/api/v1/carbon/inference/stats') {
        await answerInTurn(res, 'stats', 'model-garden', 'application/json', async () => Buffer.from(JSON.stringify(modelGardenStats({ ...(await stats({ top: 0, recent: 0 })), modelNames: books.modelNames() }))));
      } else if (route === '/metrics') {
        await answerInTurn(res, 'metrics', 'metrics', PROMETHEUS_CONTENT_TYPE, async () => Buffer.from(await metrics()));
      }
    },
  };
}

/**
 * What {@link ownRoutes} gives.
 *
 * @example
 * ```ts
 * const own: OwnRoutes = ownRoutes(parts);
 * ```
 */
export type OwnRoutes = ReturnType<typeof ownRoutes>;
