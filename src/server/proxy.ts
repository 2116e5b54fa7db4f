import { Counter, Gauge, Registry } from 'prom-client';
import { dashboardHtml } from './dashboard';
import type { EnergyMeter } from './meter';
import { ENERGY_COMPONENTS, type ComponentJoules, type EnergyComponent } from './types';
import { JOULES_PER_KWH } from '../core/units';
import { gramsOf } from './trace-record';
import { resolveGrid, withCarbonTrace, type BookedRequest, type FetchHandler, type WithCarbonTraceOptions } from './with-carbon-trace';

/**
 * Options of {@link createCarbonProxy}.
 *
 * @example
 * ```ts
 * createCarbonProxy({ upstream: 'http://127.0.0.1:8000', meter, gridIntensity: { zone: 'FR' } });
 * ```
 */
export type CarbonProxyOptions = {
  /** The model server: its origin, optionally with a base path (`http://127.0.0.1:8000`). */
  upstream: string;
  meter: EnergyMeter;
  gridIntensity?: WithCarbonTraceOptions['gridIntensity'];
  onWarning?: WithCarbonTraceOptions['onWarning'];
  /** How many recent requests the dashboard shows. Default 60. */
  recentRequests?: number;
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
  totalJoules: number;
  emissionsGrams: number;
  durationSeconds: number;
  measured: boolean;
  completionTokens: number | null;
};

/**
 * The model server behind the proxy, plus carbon-trace's own routes.
 *
 * @example
 * ```ts
 * const proxy = createCarbonProxy({ upstream, meter });
 * createServer(toNodeListener(proxy.handler)).listen(8787);
 * ```
 */
export type CarbonProxy = { handler: FetchHandler; stats(): Promise<ProxyStats> };

/**
 * What `GET /carbon/stats` answers.
 *
 * @example
 * ```ts
 * const { totals, grid } = await proxy.stats();
 * ```
 */
export type ProxyStats = ReturnType<EnergyMeter['stats']> & {
  meter: string;
  upstream: string;
  grid: { gCo2PerKwh: number; source: string };
  emissionsGrams: { total: number; attributed: number; idle: number };
  /** Completion tokens of the traced responses, as their usage reported them. */
  completionTokens: number;
  recent: RecentRequest[];
};

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, never forwarded.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection'];
// Model names are label values: bounded, so that a client cannot grow the metrics without end.
const MAX_MODEL_LABELS = 100;

/**
 * An OpenAI-compatible reverse proxy that puts `x_carbon_trace` on every chat completion of the
 * server behind it, and serves the numbers: `GET /carbon` (a live dashboard), `GET /carbon/stats`
 * (JSON), `GET /api/v1/carbon/inference/stats` (Model Garden's shape, for seeds-clients'
 * `get_carbon_stats()`), `GET /metrics` (Prometheus). Every other path and method passes through,
 * streamed, hop-by-hop headers dropped, upstream errors as they came; an unreachable upstream is
 * a 502 with a one-line JSON error.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { createCarbonProxy, createEnergyMeter, toNodeListener } from 'carbon-trace/server';
 * const proxy = createCarbonProxy({ upstream: 'http://127.0.0.1:8000', meter: createEnergyMeter() });
 * createServer(toNodeListener(proxy.handler)).listen(8787);
 * ```
 */
export function createCarbonProxy(options: CarbonProxyOptions): CarbonProxy {
  const upstream = new URL(options.upstream);
  const basePath = upstream.pathname.replace(/\/+$/, '');
  const recent: RecentRequest[] = [];
  const keep = options.recentRequests ?? 60;
  let completionTokens = 0;
  // The grid the traces book with, known before the first request; withCarbonTrace resolves the
  // same option and gives the warnings.
  const gridReady = resolveGrid(options.gridIntensity, () => {});

  const registry = new Registry();
  const labels = (model: string | undefined) => {
    const name = model ?? 'unknown';
    return modelLabels.has(name) || modelLabels.size < MAX_MODEL_LABELS ? (modelLabels.add(name), name) : '(other models)';
  };
  const modelLabels = new Set<string>();
  const energy = new Counter({ name: 'carbon_trace_energy_joules_total', help: 'Energy attributed to requests, J', labelNames: ['component', 'model'], registers: [registry] });
  const emissions = new Counter({ name: 'carbon_trace_emissions_grams_total', help: 'Emissions attributed to requests, gCO2eq', labelNames: ['component', 'model'], registers: [registry] });
  const requests = new Counter({ name: 'carbon_trace_requests_total', help: 'Requests whose books are closed', labelNames: ['model', 'measured'], registers: [registry] });
  let idleSeen: ComponentJoules = {};
  new Counter({
    name: 'carbon_trace_idle_energy_joules_total',
    help: 'Energy with no request in flight, J',
    labelNames: ['component'],
    registers: [registry],
    collect() {
      const idle = idleByComponent(options.meter);
      for (const component of Object.keys(idle) as EnergyComponent[]) {
        const delta = (idle[component] ?? 0) - (idleSeen[component] ?? 0);
        if (delta > 0) this.inc({ component }, delta);
      }
      idleSeen = idle;
    },
  });
  new Gauge({
    name: 'carbon_trace_power_watts',
    help: 'Power the machine draws now, per component, W',
    labelNames: ['component'],
    registers: [registry],
    collect() {
      for (const [component, watts] of Object.entries(options.meter.stats().powerWatts)) this.set({ component }, watts ?? 0);
    },
  });

  const onBooked = (booked: BookedRequest) => {
    const model = labels(booked.model);
    for (const component of ENERGY_COMPONENTS) {
      const joules = booked.energy.joules[component];
      if (joules === undefined) continue;
      energy.inc({ component, model }, joules);
      emissions.inc({ component, model }, gramsOf(joules, booked.grid));
    }
    requests.inc({ model, measured: String(booked.energy.measured) });
    const completion = booked.trace?.completion_tokens;
    if (typeof completion === 'number') completionTokens += completion;
    recent.push({
      at: new Date().toISOString(),
      model: booked.model ?? null,
      status: booked.status,
      streamed: booked.streamed,
      joules: booked.energy.joules,
      totalJoules: booked.energy.totalJoules,
      emissionsGrams: gramsOf(booked.energy.totalJoules, booked.grid),
      durationSeconds: booked.energy.durationSeconds,
      measured: booked.energy.measured,
      completionTokens: typeof completion === 'number' ? completion : null,
    });
    if (recent.length > keep) recent.shift();
  };

  const forward: FetchHandler = async (request) => {
    const url = new URL(request.url);
    const path = basePath !== '' && url.pathname.startsWith(`${basePath}/`) ? url.pathname : `${basePath}${url.pathname}`;
    const target = new URL(`${path}${url.search}`, upstream.origin);
    const headers = new Headers(request.headers);
    for (const name of [...HOP_BY_HOP, 'host', 'content-length']) headers.delete(name);
    // Uncompressed from the upstream: fetch would decode a compressed body and leave a stale
    // content-encoding behind.
    headers.set('accept-encoding', 'identity');
    let response: Response;
    try {
      response = await fetch(target, {
        method: request.method,
        headers,
        body: request.method === 'GET' || request.method === 'HEAD' ? null : request.body,
        signal: request.signal,
        redirect: 'manual',
        duplex: 'half',
      } as RequestInit);
    } catch (error) {
      if (request.signal.aborted) throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return Response.json(
        { error: { message: `upstream ${upstream.origin} unreachable: ${cause?.code ?? cause?.message ?? (error as Error).message}`, type: 'proxy_error' } },
        { status: 502 },
      );
    }
    const out = new Headers(response.headers);
    for (const name of [...HOP_BY_HOP, 'content-encoding', 'content-length']) out.delete(name);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers: out });
  };

  const traced = withCarbonTrace(forward, { meter: options.meter, onBooked, ...(options.gridIntensity ? { gridIntensity: options.gridIntensity } : {}), ...(options.onWarning !== undefined ? { onWarning: options.onWarning } : {}) });

  async function stats(): Promise<ProxyStats> {
    const meter = options.meter.stats();
    const grid = await gridReady;
    const toGrams = (joules: number) => gramsOf(joules, grid);
    return {
      ...meter,
      meter: options.meter.describe(),
      upstream: upstream.href,
      grid,
      emissionsGrams: { total: toGrams(meter.totalJoules), attributed: toGrams(meter.attributedJoules), idle: toGrams(meter.idleJoules) },
      completionTokens,
      recent: [...recent],
    };
  }

  const handler: FetchHandler = async (request) => {
    const { pathname } = new URL(request.url);
    if (request.method === 'GET') {
      if (pathname === '/carbon' || pathname === '/carbon/') return new Response(dashboardHtml(), { headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' } });
      if (pathname === '/carbon/stats') return Response.json(await stats(), { headers: { 'cache-control': 'no-store' } });
      if (pathname === '/api/v1/carbon/inference/stats') return Response.json(modelGardenStats(await stats()));
      if (pathname === '/metrics') return new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } });
    }
    return traced(request);
  };
  return { handler, stats };
}

function idleByComponent(meter: EnergyMeter): ComponentJoules {
  const idle: ComponentJoules = {};
  for (const [component, stats] of Object.entries(meter.stats().byComponent)) idle[component as EnergyComponent] = stats?.idleJoules ?? 0;
  return idle;
}

/**
 * The proxy's totals in the shape Model Garden's `/api/v1/carbon/inference/stats` has, so
 * seeds-clients' `ModelGardenClient.get_carbon_stats()` reads them unchanged. As there, the
 * totals are the whole session's, idle time included.
 */
function modelGardenStats(stats: ProxyStats): Record<string, unknown> {
  const seconds = (Date.now() - Date.parse(stats.since)) / 1000;
  const requestCount = stats.requests;
  const totalTokens = stats.completionTokens;
  const kg = stats.emissionsGrams.total / 1000;
  const kwh = stats.totalJoules / JOULES_PER_KWH;
  const models = Object.keys(stats.byModel);
  return {
    tracking: true,
    model_name: models.length === 1 ? models[0] : models.join(', ') || null,
    request_count: requestCount,
    total_tokens: totalTokens,
    duration_seconds: seconds,
    requests_per_second: seconds > 0 ? requestCount / seconds : 0,
    tokens_per_second: seconds > 0 ? totalTokens / seconds : 0,
    emissions_kg_co2: kg,
    emissions_g_co2: kg * 1000,
    energy_consumed_kwh: kwh,
    energy_kwh: kwh,
    ...(requestCount > 0 ? { emissions_per_request_g: (kg * 1000) / requestCount, energy_per_request_wh: (kwh * 1000) / requestCount } : {}),
    ...(totalTokens > 0 ? { emissions_per_1k_tokens_g: (kg * 1e6) / totalTokens } : {}),
    attributed_energy_kwh: stats.attributedJoules / JOULES_PER_KWH,
    idle_energy_kwh: stats.idleJoules / JOULES_PER_KWH,
    measured: Object.values(stats.byComponent).every((c) => c?.measured),
  };
}
