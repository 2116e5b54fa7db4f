import { Exposition } from './prometheus';
import type { ResolvedGridIntensity } from '../wires/trace-record';
import { ENERGY_COMPONENTS, type EnergyComponent } from '../types';
import type { CombinedStats } from './meter-totals';
import type { Tables } from './tables';

/**
 * `/metrics`, written from the books: per model (100 labels at most), per API key, user and kind
 * of call, and the unlabeled totals of the meter. Every figure a rule divides by another comes
 * with its like: `carbon_trace_energy_with_tokens_joules_total` and
 * `carbon_trace_tokens_with_energy_total` are the energy and the tokens of the same requests.
 *
 * @example
 * ```ts
 * const text = metricsText(tables, meterTotals.combine(meter.stats(), grid), grid, meterTotals.grams());
 * ```
 */
export function metricsText(tables: Tables, c: CombinedStats, grid: ResolvedGridIntensity, grams: { idle: number; unattributed: number }): string {
  const text = new Exposition();
  const { models, keys, users, kinds } = tables.metricRows();
  text.family('carbon_trace_energy_joules_total', 'counter', 'Energy attributed to requests whose books are closed, J');
  for (const [model, row] of models) for (const [component, joules] of Object.entries(row.byComponent)) text.sample({ component, model }, joules ?? 0);
  text.family('carbon_trace_emissions_grams_total', 'counter', 'Emissions attributed to requests whose books are closed, gCO2eq');
  for (const [model, row] of models) for (const [component, grams] of Object.entries(row.emissionsGramsByComponent)) text.sample({ component, model }, grams ?? 0);
  text.family('carbon_trace_closed_requests_total', 'counter', 'Requests whose books are closed, all models');
  text.sample({}, c.requests);
  text.family('carbon_trace_requests_total', 'counter', 'Requests whose books are closed; measured="false" includes those with no energy figure');
  for (const [model, row] of models) {
    text.sample({ model, measured: 'true' }, row.measuredRequests);
    text.sample({ model, measured: 'false' }, row.requests - row.measuredRequests);
  }
  text.family('carbon_trace_responses_total', 'counter', 'Requests whose books are closed, by the HTTP status the client got (499: it went away; 502: the upstream could not be reached)');
  for (const [model, row] of models) for (const [status, n] of Object.entries(row.byStatus)) text.sample({ model, status }, n);
  text.family('carbon_trace_tokens_total', 'counter', 'Tokens of the requests whose usage reported them (kind: prompt or completion)');
  for (const [model, row] of models) {
    text.sample({ model, kind: 'prompt' }, row.promptTokens);
    text.sample({ model, kind: 'completion' }, row.completionTokens);
  }
  // A figure per token divides these two: the energy and the tokens of the same requests (those
  // whose usage reported that kind of token and that got an energy figure).
  text.family('carbon_trace_energy_with_tokens_joules_total', 'counter', 'Energy of the requests whose usage reported tokens of this kind and that have an energy figure, J: divide by carbon_trace_tokens_with_energy_total for energy per token');
  for (const [model, row] of models) {
    text.sample({ model, kind: 'prompt' }, row.withTokens.prompt.joules);
    text.sample({ model, kind: 'completion' }, row.withTokens.completion.joules);
  }
  text.family('carbon_trace_tokens_with_energy_total', 'counter', 'Tokens of the same requests as carbon_trace_energy_with_tokens_joules_total (kind: prompt or completion)');
  for (const [model, row] of models) {
    text.sample({ model, kind: 'prompt' }, row.withTokens.prompt.tokens);
    text.sample({ model, kind: 'completion' }, row.withTokens.completion.tokens);
  }
  text.family('carbon_trace_traces_total', 'counter', 'Requests by whether their trace reached the client whole (delivered="false": none was put on the response, or the client did not get it all)');
  for (const [model, row] of models) {
    text.sample({ model, delivered: 'true' }, row.tracesDelivered);
    text.sample({ model, delivered: 'false' }, row.tracesNotDelivered);
  }
  const perLabel = [
    ['api_key', keys, 'API key (a one-way id, never the key)'],
    ['user', users, "end user (the request's user field)"],
    ['call_kind', kinds, 'kind of call (chat, embedding, rerank; (unknown): a route no wire knows)'],
  ] as const;
  for (const [label, rows, what] of perLabel) {
    text.family(`carbon_trace_${label}_energy_joules_total`, 'counter', `Energy attributed to requests, per ${what}, J`);
    for (const [name, row] of rows) text.sample({ [label]: name }, row.joules);
    text.family(`carbon_trace_${label}_emissions_grams_total`, 'counter', `Emissions attributed to requests, per ${what}, gCO2eq`);
    for (const [name, row] of rows) text.sample({ [label]: name }, row.emissionsGrams);
    text.family(`carbon_trace_${label}_requests_total`, 'counter', `Requests whose books are closed, per ${what}`);
    for (const [name, row] of rows) text.sample({ [label]: name }, row.requests);
  }
  const perComponent = (name: string, type: 'counter' | 'gauge', help: string, pick: (component: NonNullable<CombinedStats['byComponent'][EnergyComponent]>) => number) => {
    text.family(name, type, help);
    for (const component of ENERGY_COMPONENTS) {
      const entry = c.byComponent[component];
      if (entry) text.sample({ component }, pick(entry));
    }
  };
  perComponent('carbon_trace_attributed_energy_joules_total', 'counter', 'Energy attributed to requests whose books are closed, all models, J (the per-model family keeps 100 labels)', (x) => x.attributedJoules);
  perComponent('carbon_trace_idle_energy_joules_total', 'counter', 'Energy with no request in flight, J', (x) => x.idleJoules);
  perComponent('carbon_trace_unattributed_energy_joules_total', 'counter', 'Energy the meter could not place (a source could not be read), J', (x) => x.unattributedJoules);
  perComponent('carbon_trace_in_flight_energy_joules', 'gauge', 'Energy given so far to requests still in flight, J', (x) => x.inFlightJoules);
  // Settled energy only, so that it never goes back, even across a crash (in-flight energy is a gauge).
  perComponent('carbon_trace_meter_energy_joules_total', 'counter', 'Energy the meter measured whose books are settled: attributed + idle + unattributed, J (requests still in flight: carbon_trace_in_flight_energy_joules)', (x) => x.totalJoules - x.inFlightJoules);
  text.family('carbon_trace_idle_emissions_grams_total', 'counter', 'Emissions of the energy with no request in flight, gCO2eq');
  text.sample({}, grams.idle);
  text.family('carbon_trace_unattributed_emissions_grams_total', 'counter', 'Emissions of the energy the meter could not place, gCO2eq');
  text.sample({}, grams.unattributed);
  text.family('carbon_trace_power_watts', 'gauge', 'Power the machine draws now, per component, W');
  for (const [component, watts] of Object.entries(c.powerWatts)) text.sample({ component }, watts ?? 0);
  text.family('carbon_trace_grid_intensity_grams_per_kwh', 'gauge', 'The grid intensity emissions are booked at now, gCO2eq/kWh');
  // A live figure's source names its hour: the label says only what kind it is, so the series stays one.
  text.sample({ source: grid.live === undefined ? grid.source : grid.live ? 'live' : 'yearly average', ...(grid.zone ? { zone: grid.zone } : {}) }, grid.gCo2PerKwh);
  text.family('carbon_trace_measured', 'gauge', 'Whether each component is measured by hardware (1) or estimated (0): an alert when a meter falls back');
  for (const component of ENERGY_COMPONENTS) {
    const entry = c.byComponent[component];
    if (entry) text.sample({ component, source: entry.source }, entry.measured ? 1 : 0);
  }
  text.family('carbon_trace_source_errors', 'gauge', 'Energy sources that could not be read at the last reading');
  text.sample({}, c.sourceErrors.length);
  return text.render();
}
